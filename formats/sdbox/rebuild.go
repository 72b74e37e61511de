package sdbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtx"
	"github.com/boxsync/boxsync/index"
)

// Rebuild recreates a mailbox's index from its u.<uid> files, as `doveadm
// force-resync` does (sdbox-sync-rebuild.c): every readable file becomes a
// message with the UID of its name and the GUID, dates and sizes of its
// metadata. What the old index still knows is kept: UIDVALIDITY, the
// mailbox GUID, the next UID and each surviving message's flags, keywords
// and modseq (from dovecot.index, else dovecot.index.backup). Without an
// old index the mailbox gets a new UIDVALIDITY and GUID and the messages
// no flags, as with Dovecot. rebuild_count in dbox-hdr is incremented.
//
// Unreadable files are skipped, as Dovecot skips "unfixable" ones; the
// rebuild then completes and returns a KindInvalidData error naming them.
//
// Run it on a mailbox nothing else uses: a lost index has no log to lock,
// and the old index files are moved aside (to *.boxsync-old) while the new
// one is written. Commits of this process to the mailbox wait for it.
func (s *Store) Rebuild(ctx context.Context, name string) error {
	const op = "rebuild"
	if err := s.l.Writable(op, name); err != nil {
		return err
	}
	b, err := s.l.Resolve(op, name)
	if err != nil {
		return err
	}
	if !s.l.Exists(b) {
		return fail(formats.KindNotFound, op, b.Name, 0, b.MailDir, errors.New("no such mailbox"))
	}
	mu := commitLock(b.IndexDir)
	mu.Lock()
	defer mu.Unlock()

	var old *index.View
	for _, prefix := range []string{index.Prefix, index.Prefix + ".backup"} {
		if ix, err := index.Open(b.IndexDir, prefix, s.indexOptions()); err == nil {
			if v, err := ix.View(); err == nil {
				old = v
				break
			}
		}
	}
	m := &mailbox{s: s, b: b}
	type found struct {
		uid         uint32
		uidl, order bool
	}
	var files []found
	var skipped []string
	// with ALT=, the files in the alternate dbox-Mails count too
	// (sdbox_sync_index_rebuild_dir on the alt path)
	names, dir, err := mailFiles(b)
	if err != nil {
		return wrap(err, op, b.Name, 0, dir)
	}
	for _, uid := range slices.Sorted(maps.Keys(names)) {
		name := names[uid]
		if err := ctx.Err(); err != nil {
			return wrap(err, op, b.Name, 0, "")
		}
		mf, err := m.openMail(uid)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s (%s)", name, err))
			continue
		}
		_, uidl := mf.msg.Metadata.Get(dbox.MetaPOP3UIDL)
		_, order := mf.msg.Metadata.Get(dbox.MetaPOP3Order)
		mf.Close()
		files = append(files, found{uid, uidl, order})
	}
	slices.SortFunc(files, func(a, b found) int { return int(int64(a.uid) - int64(b.uid)) })

	hdr := index.DboxHdr{MailboxGUID: formats.NewGUID()}
	uidValidity := s.l.NewUIDValidity()
	var next uint32 = 1
	if old != nil {
		if h, ok := old.DboxHdr(); ok {
			hdr.RebuildCount = h.RebuildCount
			if h.MailboxGUID != [16]byte{} {
				hdr.MailboxGUID = h.MailboxGUID
			}
		}
		if uv := old.UIDValidity(); uv != 0 {
			uidValidity = uv
		}
		next = old.NextUID()
	}
	hdr.RebuildCount++
	if hdr.RebuildCount == 0 {
		hdr.RebuildCount = 1
	}
	for _, f := range files {
		if f.uidl {
			hdr.Flags |= dboxtx.HdrPOP3UIDLs
		}
		if f.order {
			hdr.Flags |= dboxtx.HdrPOP3Orders
		}
	}

	// Move the old index files aside, write the new index, then remove
	// them. A crash in between leaves the mailbox without an index, so
	// that the next rebuild starts again.
	aside, err := s.moveAside(b.IndexDir)
	if err != nil {
		return wrap(err, op, b.Name, 0, b.IndexDir)
	}
	ix, err := s.createIndex(b.IndexDir, hdr.MailboxGUID, uidValidity)
	if err != nil {
		return wrap(err, op, b.Name, 0, b.IndexDir)
	}
	tx := ix.Begin()
	defer tx.Rollback()
	for _, f := range files {
		var flags uint8
		var kws []string
		var modseq uint64
		if old != nil {
			if _, om, ok := old.Lookup(f.uid); ok {
				flags, kws, modseq = om.Flags&index.SystemFlags, om.Keywords, om.ModSeq
			}
		}
		tx.Append(f.uid, flags)
		if len(kws) > 0 {
			tx.UpdateKeywords(f.uid, index.KeywordsAdd, kws...)
		}
		if modseq > 0 {
			tx.SetModSeq(f.uid, modseq)
		}
		next = max(next, f.uid+1)
	}
	if old != nil {
		tx.SetModSeq(0, old.HighestModSeq())
	}
	tx.ExtHdrUpdate(index.ExtDboxHdr, 0, hdr.Encode())
	tx.SetHeader(index.FieldNextUID, next)
	if _, err := tx.Commit(); err != nil {
		return wrap(err, op, b.Name, 0, b.IndexDir)
	}
	for _, p := range aside {
		os.Remove(p)
	}
	if len(skipped) > 0 {
		return fail(formats.KindInvalidData, op, b.Name, 0, b.MailDir,
			fmt.Errorf("index rebuilt without %d unreadable mail file(s): %s", len(skipped), strings.Join(skipped, "; ")))
	}
	return nil
}

// moveAside renames the index files in dir (dovecot.index, .log, .log.2,
// .cache, .backup) to <name>.boxsync-old and returns the new names.
func (s *Store) moveAside(dir string) ([]string, error) {
	var moved []string
	for _, suffix := range []string{"", ".log", ".log.2", ".cache", ".backup"} {
		p := filepath.Join(dir, index.Prefix+suffix)
		err := os.Rename(p, p+".boxsync-old")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return moved, err
		}
		moved = append(moved, p+".boxsync-old")
	}
	return moved, nil
}
