package sdbox

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxlist"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtx"
	"github.com/boxsync/boxsync/formats/internal/unnamed"
	"github.com/boxsync/boxsync/index"
	"github.com/boxsync/boxsync/index/log"
)

// Commit makes the transaction visible, in the order of Dovecot's sdbox
// save commit (sdbox_transaction_save_commit_pre/post) and expunge sync:
//
//  1. make the saved files durable: one syncfs(2) for all of them
//     (mail_fsync=optimized; always: each was fsynced at Save; never:
//     nothing);
//  2. take Dovecot's log lock, read the index as it is now and give the
//     saved messages their UIDs (the ones Save promised unless someone
//     took them meanwhile);
//  3. name each file u.<uid> without ever replacing an existing file
//     (sdbox_file_assign_uid refuses one too): an unnamed file by
//     linkat(2) of its descriptor, a .temp.* file by link(2) and unlink
//     of the temporary name (Dovecot renames it); then fsync dbox-Mails:
//     no index record may name a file that is not on stable storage;
//  4. append one transaction to dovecot.index.log under Dovecot's log
//     lock, EXTERNAL (the files are already there) and fsynced: appends
//     with flags, keywords and modseqs, flag and keyword changes,
//     expunges with their GUIDs, the dbox-hdr POP3 flags, the next UID;
//  5. unlink the expunged messages' files (after the index says they are
//     gone, as dbox_sync_expunge_files does).
//
// If anything fails before the index is written, the files are removed
// again (unnamed ones vanish when closed); nothing is visible. As in
// Dovecot, a crash between steps 3 and 4 leaves u.<uid> files that no
// index record names: invisible until a rebuild, never replaced (a later
// save takes the next UID), and with mail_fsync=never possibly partial
// after a power loss, which Dovecot's rebuild reports as corrupted.
func (t *tx) Commit(ctx context.Context) (err error) {
	if t.Done {
		return nil
	}
	t.finish()
	m := t.m
	op := "commit"
	written := false
	defer func() {
		defer t.closeFiles()
		if err == nil || written {
			return
		}
		// Undo what no index names: the saved files. A file whose UID
		// the index has meanwhile (someone rebuilt it) stays.
		v, verr := m.ix.View()
		for i := range t.Saves {
			s := &t.Saves[i]
			t.discard(s)
			if s.final == "" {
				continue
			}
			if verr == nil {
				if _, _, ok := v.Lookup(s.UID); ok {
					continue
				}
			}
			os.Remove(s.final)
		}
	}()
	if err := ctx.Err(); err != nil {
		return wrap(err, op, m.b.Name, 0, "")
	}
	if t.Empty() {
		return nil
	}
	mu := commitLock(m.b.IndexDir)
	mu.Lock()
	defer mu.Unlock()

	sync := m.s.l.Sync()
	if len(t.Saves) > 0 && m.s.opt.Fsync == formats.FsyncOptimized {
		if err := t.syncTemps(); err != nil {
			return err
		}
	}
	var gone []uint32
	// Under Dovecot's log lock from reading the index to the append
	// (index.Update): it must not assign the UIDs we take.
	pos, err := m.ix.Update(func(v *index.View, itx *index.Tx) error {
		if err := m.checkView(op, v); err != nil {
			return err
		}
		// UIDs: keep what Save promised unless another writer took them.
		next := v.NextUID()
		for i := range t.Saves {
			s := &t.Saves[i]
			s.UID = max(s.UID, next)
			for {
				final := mailFile(m.b, s.UID)
				err := t.name(s, final)
				if err == nil {
					s.final = final
					break
				}
				if !errors.Is(err, fs.ErrExist) {
					return wrap(err, op, m.b.Name, formats.UID(s.UID), final)
				}
				// a u.<uid> no index names: left by a crash, or being
				// saved by Dovecot right now; take the next UID
				s.UID++
				if s.UID == 0xffffffff {
					return t.Failf(op, 0, formats.KindLimit, "UIDs exhausted")
				}
			}
			next = s.UID + 1
		}
		if len(t.Saves) > 0 && sync {
			if err := dboxlist.FsyncPath(m.b.MailDir); err != nil {
				return wrap(err, op, m.b.Name, 0, m.b.MailDir)
			}
		}
		t.IntroModSeq(itx, v)
		for i := range t.Saves {
			dboxtx.Append(itx, &t.Saves[i].Save, nil)
		}
		h, _ := v.DboxHdr()
		t.WriteChanges(itx, v, dboxtx.Hdr{Ext: index.ExtDboxHdr, Flags: h.Flags}, func(_ int, uid uint32) [16]byte {
			gone = append(gone, uid)
			return t.guid128(uid)
		})
		return nil
	})
	if err != nil {
		// appended before the failure: the index names the files
		written = pos != (log.Pos{})
		return dboxlist.WrapIndex(err, driverName, op, m.b.Name, m.b.IndexDir)
	}
	written = true

	for _, uid := range gone {
		// the file is in the primary dbox-Mails or, with ALT=, in the
		// alternate one (sdbox_file_unlink_aborted_save / dbox_file_unlink)
		for _, p := range []string{mailFile(m.b, uid), altMailFile(m.b, uid)} {
			if p == "" {
				continue
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				// QUIRK: the message is expunged; its file stays
				// behind, invisible, as when Dovecot fails to unlink.
				return wrap(err, "expunge", m.b.Name, formats.UID(uid), p)
			}
		}
	}
	return nil
}

// name gives the saved file of s the name final, never replacing an
// existing file (fs.ErrExist). A .temp.* file is linked and its temporary
// name removed (dboxlist.LinkNoReplace); an unnamed one is linked by its
// descriptor and, named now, closed.
func (t *tx) name(s *saveRec, final string) error {
	if s.file == nil {
		return dboxlist.LinkNoReplace(filepath.Join(t.m.b.MailDir, s.tmp), final)
	}
	if err := unnamed.Link(s.file, final); err != nil {
		return err
	}
	s.tmp = ""
	return nil
}

// closeFiles closes the unnamed files of the saves, all named by now.
func (t *tx) closeFiles() {
	for i := range t.Saves {
		t.closeUnnamed(&t.Saves[i])
	}
}

// guid128 returns the 128-bit GUID of an existing message for its
// EXPUNGE_GUID record, or zero when its file cannot be read.
func (t *tx) guid128(uid uint32) [16]byte {
	mf, err := t.m.openMail(uid)
	if err != nil {
		return [16]byte{}
	}
	defer mf.Close()
	g, ok := mf.msg.Metadata.Get(dbox.MetaGUID)
	if !ok || g == "" {
		return [16]byte{}
	}
	return dbox.GUID128(g)
}

// syncTemps makes the saved files durable: one syncfs for the
// filesystem, or an fsync per file where there is none.
func (t *tx) syncTemps() error {
	m := t.m
	if err := dboxlist.SyncFS(m.b.MailDir); err == nil {
		return nil
	}
	for _, s := range t.Saves {
		if s.file != nil {
			if err := s.file.Sync(); err != nil {
				return wrap(err, "commit", m.b.Name, formats.UID(s.UID), m.b.MailDir)
			}
			continue
		}
		p := filepath.Join(m.b.MailDir, s.tmp)
		if err := dboxlist.FsyncPath(p); err != nil {
			return wrap(err, "commit", m.b.Name, formats.UID(s.UID), p)
		}
	}
	return nil
}
