package mdbox

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxlist"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtx"
	"github.com/boxsync/boxsync/index"
)

var _ formats.Rebuilder = (*Store)(nil)

// rebuildMaxRefCount is REBUILD_MAX_REFCOUNT: a message kept by more
// mailbox records than this is dropped from the rest.
const rebuildMaxRefCount = 32768

// Rebuild rebuilds the storage the mailbox belongs to, as `doveadm
// force-resync` does for mdbox: Dovecot's storage rebuild
// (mdbox-storage-rebuild.c, spec §5.4) always covers the whole store, so
// the first call on a Store rebuilds everything and later calls only
// check that their mailbox exists.
//
// What it does, as Dovecot does:
//
//  1. Under the map's log lock, read every message of every m.* file
//     (ALT= included; a file id found in both gets a new id) with its
//     GUID, offset and size. Reading a file stops at the first damage;
//     what came before is kept (Dovecot instead cuts the file there).
//     Two messages with the same GUID and size are one message: the
//     second is kept with refcount 0, for a purge.
//  2. Keep each map record that still points at a message (by file,
//     offset and size) with its map UID; expunge the others; give new
//     map UIDs to the messages no record points at.
//  3. Rebuild each mailbox index from its old records: a record whose
//     GUID (else map UID) finds a message keeps its UID, flags,
//     keywords, modseq and save date; UIDVALIDITY, next UID, mailbox GUID
//     and HIGHESTMODSEQ come from the old index, else from
//     dovecot.index.backup, else are new. The map UIDVALIDITY and the
//     POP3 flags of mdbox-hdr are set anew.
//  4. A message no mailbox kept and the map did not know as expunged
//     (refcount 0) is restored, with a new UID, no flags and the current
//     save date, into the mailbox named in its 'B' metadata (created if
//     missing), else INBOX.
//  5. Every map refcount is set to the number of mailbox records using
//     it; highest_file_id and rebuild_count are updated.
//
// So with the mailbox indexes lost but the map intact, mail returns to
// its mailbox with new UIDs and no flags, copies beyond the first are
// lost, and mail expunged but not yet purged stays expunged; with the
// map lost too, that mail comes back as well (verified against `doveadm
// force-resync`, rebuild_test.go).
//
// Written differently: the new map is one transaction committed before
// any mailbox index, and each mailbox index is written anew (the old
// files moved aside to *.boxsync-old until it is written), so a crash
// leaves a store that the next rebuild repairs. Unreadable files or
// messages are reported after the rebuild as one KindInvalidData error
// naming them. Run it on a store nothing else uses, like Dovecot's
// rebuild, which also holds only the map's lock.
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
	s.mu.Lock()
	done := s.rebuilt
	s.rebuilt = true
	s.mu.Unlock()
	if done {
		return nil
	}
	return s.rebuildStorage(ctx)
}

// rmsg is a message found in an m.* file.
type rmsg struct {
	guid         [16]byte
	fileID       uint32
	offset, size uint32 // of the message header; up to the end of the metadata
	mailSize     int64  // the message's own size, for telling duplicates
	mapUID       uint32
	refcount     int
	seenZeroRef  bool   // the map had it with refcount 0, or a duplicate
	origMailbox  string // 'B'
	next         *rmsg  // another message with the same GUID
}

// boxPlan is a mailbox index to write.
type boxPlan struct {
	b           *dboxlist.Box
	exists      bool
	uidValidity uint32
	nextUID     uint32
	guid        [16]byte
	highest     uint64
	recs        []boxRec
}

type boxRec struct {
	uid      uint32
	flags    uint8
	keywords []string
	modseq   uint64
	mapUID   uint32
	saveDate uint32
	guid     [16]byte
}

func (s *Store) rebuildStorage(ctx context.Context) error {
	const op = "rebuild"
	mu := mapLock(s.mapDir)
	mu.Lock()
	defer mu.Unlock()

	mix, err := s.mapIndex(true)
	if err != nil && !errors.Is(err, formats.ErrNotFound) {
		// an unreadable map: start a new one (mdbox_map_open_or_create
		// after the index layer gives up on it)
		if _, err := moveAside(s.mapDir, index.MapPrefix); err != nil {
			return wrap(err, op, "", 0, s.mapDir)
		}
		mix, err = s.mapIndex(true)
	}
	if err != nil {
		return err
	}
	// everything from reading the map to its new records under the map's
	// log lock, as Dovecot's rebuild holds it (mdbox_map_atomic_lock)
	var (
		sc             *scan
		plans          map[string]*boxPlan
		order          []string
		mapUIDValidity uint32
	)
	_, err = mix.Update(func(mv *index.View, mtx *index.Tx) error {
		mapHdr, _ := mv.MapHdr()

		// 1. the messages in the files
		sc = &scan{s: s, highest: mapHdr.HighestFileID, byGUID: map[[16]byte]*rmsg{}}
		if err := sc.dir(ctx, s.storageDir); err != nil {
			return err
		}
		if s.altStorageDir != "" {
			if err := sc.dir(ctx, s.altStorageDir); err != nil {
				return err
			}
		}
		msgs := sc.msgs

		// 2. the map records that still point at them
		byPlace := func(a, b *rmsg) int {
			return cmp.Or(cmp.Compare(a.fileID, b.fileID), cmp.Compare(a.offset, b.offset), cmp.Compare(a.size, b.size))
		}
		slices.SortFunc(msgs, byPlace)
		var expunged []uint32
		for i := range mv.Count() {
			r, ok := mv.MapRec(i)
			if !ok {
				break // no map extension: ignore the old map entirely
			}
			uid := mv.Message(i).UID
			j, found := slices.BinarySearchFunc(msgs, &rmsg{fileID: r.FileID, offset: r.Offset, size: r.Size}, byPlace)
			if !found || msgs[j].mapUID != 0 {
				expunged = append(expunged, uid)
				continue
			}
			msgs[j].mapUID = uid
			if ref, _ := mv.RefCount(i); ref == 0 {
				msgs[j].seenZeroRef = true
			}
		}
		oldMapUIDs := map[uint32]bool{}
		next := mv.NextUID()
		var appended []*rmsg
		for _, m := range msgs {
			if m.mapUID == 0 {
				m.mapUID = next
				next++
				appended = append(appended, m)
			} else {
				oldMapUIDs[m.mapUID] = true
			}
		}
		slices.SortFunc(msgs, func(a, b *rmsg) int { return cmp.Compare(a.mapUID, b.mapUID) })
		byMapUID := func(u uint32) *rmsg {
			j, ok := slices.BinarySearchFunc(msgs, u, func(m *rmsg, u uint32) int { return cmp.Compare(m.mapUID, u) })
			if !ok {
				return nil
			}
			return msgs[j]
		}

		// 3. the mailboxes' records
		_, boxes, err := s.l.List(ctx)
		if err != nil {
			return err
		}
		plans = map[string]*boxPlan{}
		for _, b := range boxes {
			p := s.planBox(b, sc.byGUID, byMapUID)
			plans[b.Name] = p
			order = append(order, b.Name)
		}

		// 4. mail no mailbox kept
		now := uint32(time.Now().Unix())
		for _, m := range msgs {
			if m.refcount != 0 || m.seenZeroRef {
				continue
			}
			p, err := s.restoreTarget(m.origMailbox, plans, &order)
			if err != nil {
				return err
			}
			p.recs = append(p.recs, boxRec{uid: p.nextUID, mapUID: m.mapUID, saveDate: now, guid: m.guid})
			p.nextUID++
			m.refcount++
		}

		// 5. the map, then the mailboxes
		for _, u := range expunged {
			mtx.Expunge(u, [16]byte{})
		}
		for _, m := range appended {
			mtx.Append(m.mapUID, 0)
			mtx.ExtRecUpdate(index.ExtMap, m.mapUID, index.MapRec{FileID: m.fileID, Offset: m.offset, Size: m.size}.Encode())
		}
		for i := range mv.Count() {
			uid := mv.Message(i).UID
			if !oldMapUIDs[uid] {
				continue
			}
			m := byMapUID(uid)
			if ref, _ := mv.RefCount(i); int(ref) != m.refcount {
				mtx.ExtRecUpdate(index.ExtRef, uid, binary.LittleEndian.AppendUint16(nil, uint16(m.refcount)))
			}
		}
		for _, m := range appended {
			mtx.ExtRecUpdate(index.ExtRef, m.mapUID, binary.LittleEndian.AppendUint16(nil, uint16(m.refcount)))
		}
		mapHdr.HighestFileID = sc.highest
		mapHdr.RebuildCount++
		mtx.ExtHdrUpdate(index.ExtMap, 0, mapHdr.Encode())
		mapUIDValidity = mv.UIDValidity()
		return nil
	})
	if err != nil {
		return dboxlist.WrapIndex(err, driverName, op, "", s.mapDir)
	}

	var pop3 uint8
	if sc.uidls {
		pop3 |= dboxtx.HdrPOP3UIDLs
	}
	if sc.orders {
		pop3 |= dboxtx.HdrPOP3Orders
	}
	var errs []error
	for _, name := range order {
		if err := s.writeBox(plans[name], mapUIDValidity, pop3); err != nil {
			errs = append(errs, err)
		}
	}
	if len(sc.skipped) > 0 {
		errs = append(errs, fail(formats.KindInvalidData, op, "", 0, s.storageDir,
			fmt.Errorf("storage rebuilt without unreadable mail: %s", strings.Join(sc.skipped, "; "))))
	}
	return errors.Join(errs...)
}

// scan reads the m.* files.
type scan struct {
	s             *Store
	highest       uint32 // highest file id
	seen          map[uint32]bool
	msgs          []*rmsg
	byGUID        map[[16]byte]*rmsg
	skipped       []string
	uidls, orders bool
}

func (sc *scan) dir(ctx context.Context, dir string) error {
	const op = "rebuild"
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // no mail stored yet (or no ALT storage)
		}
		return wrap(err, op, "", 0, dir)
	}
	if sc.seen == nil {
		sc.seen = map[uint32]bool{}
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return wrap(err, op, "", 0, "")
		}
		fname := e.Name()
		if !strings.HasPrefix(fname, mailFilePrefix) {
			continue
		}
		id64, err := strconv.ParseUint(fname[len(mailFilePrefix):], 10, 32)
		if err != nil || id64 == 0 {
			continue // m.*.broken, m.*.lock: not mail files
		}
		id := uint32(id64)
		path := filepath.Join(dir, fname)
		if sc.seen[id] {
			// in primary and ALT storage both: keep both under
			// different ids (rebuild_rename_file)
			for {
				sc.highest++
				to := filepath.Join(dir, mailFilePrefix+strconv.FormatUint(uint64(sc.highest), 10))
				err := dboxlist.LinkNoReplace(path, to)
				if err == nil {
					id, path = sc.highest, to
					break
				}
				if !errors.Is(err, fs.ErrExist) {
					return wrap(err, op, "", 0, path)
				}
			}
		}
		sc.seen[id] = true
		sc.highest = max(sc.highest, id)
		sc.file(id, path)
	}
	return nil
}

// file reads the messages of one m.* file, up to the first damage.
func (sc *scan) file(id uint32, path string) {
	f, err := os.Open(path)
	if err != nil {
		sc.skipped = append(sc.skipped, fmt.Sprintf("%s (%s)", path, err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		sc.skipped = append(sc.skipped, fmt.Sprintf("%s (%s)", path, err))
		return
	}
	r, err := dbox.NewReader(f, fi.Size(), path)
	if err != nil {
		sc.skipped = append(sc.skipped, fmt.Sprintf("%s (%s)", path, err))
		return
	}
	for off := r.FirstOffset(); off < fi.Size(); {
		dm, err := r.ReadMessage(off)
		if err != nil {
			sc.skipped = append(sc.skipped, fmt.Sprintf("%s from offset %d (%s)", path, off, err))
			return
		}
		g, _ := dm.Metadata.Get(dbox.MetaGUID)
		if g == "" {
			sc.skipped = append(sc.skipped, fmt.Sprintf("%s from offset %d (Message is missing GUID)", path, off))
			return
		}
		if dm.End-off > 0xffffffff || off > 0xffffffff {
			sc.skipped = append(sc.skipped, fmt.Sprintf("%s from offset %d (beyond 4 GiB)", path, off))
			return
		}
		if _, ok := dm.Metadata.Get(dbox.MetaPOP3UIDL); ok {
			sc.uidls = true
		}
		if _, ok := dm.Metadata.Get(dbox.MetaPOP3Order); ok {
			sc.orders = true
		}
		size, _ := dm.PlainSize()
		orig, _ := dm.Metadata.Get(dbox.MetaOrigMailbox)
		m := &rmsg{guid: dbox.GUID128(g), fileID: id, offset: uint32(off), size: uint32(dm.End - off), mailSize: size, origMailbox: orig}
		sc.msgs = append(sc.msgs, m)
		switch old := sc.byGUID[m.guid]; {
		case old == nil:
			sc.byGUID[m.guid] = m
		case old.mailSize == m.mailSize:
			m.seenZeroRef = true // the same mail twice: let a purge drop it
		default:
			m.next, old.next = old.next, m // same GUID, other mail
		}
		off = dm.End
	}
}

// planBox keeps the records of a mailbox's old index whose messages were
// found (rebuild_mailbox_multi) and its header (index_rebuild_header).
func (s *Store) planBox(b *dboxlist.Box, byGUID map[[16]byte]*rmsg, byMapUID func(uint32) *rmsg) *boxPlan {
	p := &boxPlan{b: b, exists: true}
	var old, backup *index.View
	if ix, err := index.Open(b.IndexDir, index.Prefix, s.indexOptions()); err == nil {
		old, _ = ix.View()
	}
	if ix, err := index.Open(b.IndexDir, index.Prefix+".backup", s.indexOptions()); err == nil {
		backup, _ = ix.View()
	}
	for _, v := range []*index.View{old, backup} {
		if v == nil {
			continue
		}
		if p.uidValidity == 0 {
			p.uidValidity = v.UIDValidity()
		}
		if p.nextUID == 0 {
			p.nextUID = v.NextUID()
		}
		if h, ok := v.MdboxHdr(); ok && p.guid == [16]byte{} {
			p.guid = h.MailboxGUID
		}
		p.highest = max(p.highest, v.HighestModSeq())
	}
	if old != nil {
		for i := range old.Count() {
			var rec *rmsg
			mr, _ := old.MdboxRec(i)
			mapUID := mr.MapUID
			if g, ok := old.GUID(i); ok {
				rec = byGUID[g]
			}
			switch {
			case rec == nil:
				// not found by GUID: lost, or a damaged GUID
				if mapUID != 0 {
					rec = byMapUID(mapUID)
				}
			default:
				// the GUID's message with this map UID, else the
				// first (assume the map UID is the damaged one)
				for r := rec; r != nil; r = r.next {
					if r.mapUID == mapUID {
						rec = r
						break
					}
				}
			}
			if rec == nil || rec.refcount >= rebuildMaxRefCount {
				continue
			}
			rec.refcount++
			om := old.Message(i)
			p.recs = append(p.recs, boxRec{uid: om.UID, flags: om.Flags, keywords: om.Keywords, // the ALT bit too, as Dovecot copies them
				modseq: om.ModSeq, mapUID: rec.mapUID, saveDate: mr.SaveDate, guid: rec.guid})
		}
	}
	if p.uidValidity == 0 {
		p.uidValidity = s.l.NewUIDValidity()
	}
	if p.nextUID == 0 {
		p.nextUID = 1
	}
	if p.guid == [16]byte{} {
		p.guid = formats.NewGUID()
	}
	for _, r := range p.recs {
		p.nextUID = max(p.nextUID, r.uid+1)
	}
	return p
}

// restoreTarget is the mailbox mail no mailbox kept goes back to: the
// one its 'B' metadata names, created if missing, else INBOX
// (rebuild_restore_msg).
func (s *Store) restoreTarget(orig string, plans map[string]*boxPlan, order *[]string) (*boxPlan, error) {
	name := s.l.NameOf(orig)
	if name == "" {
		name = "INBOX"
	}
	for {
		if p := plans[name]; p != nil {
			return p, nil
		}
		b, err := s.l.Resolve("rebuild", name)
		if err == nil {
			p := &boxPlan{b: b, exists: s.l.Exists(b), uidValidity: s.l.NewUIDValidity(), nextUID: 1, guid: formats.NewGUID()}
			plans[name] = p
			*order = append(*order, name)
			return p, nil
		}
		if name == "INBOX" {
			return nil, err
		}
		name = "INBOX"
	}
}

// writeBox writes a mailbox's rebuilt index: the old index files moved
// aside, a new log-only index written, the old files removed. A mailbox
// that does not exist yet is created with it.
func (s *Store) writeBox(p *boxPlan, mapUIDValidity uint32, pop3 uint8) error {
	const op = "rebuild"
	b := p.b
	write := func(dir string) error {
		ix, err := index.Create(dir, index.Prefix, index.Options{
			UIDValidity: p.uidValidity,
			Extensions: []index.ExtDef{index.MdboxHdr{MapUIDValidity: mapUIDValidity, MailboxGUID: p.guid, Flags: pop3}.Ext(),
				index.ExtDefMdbox, index.ExtDefGUID},
			Fsync: s.opt.Fsync,
		})
		if err != nil {
			return err
		}
		tx := ix.Begin()
		defer tx.Rollback()
		slices.SortFunc(p.recs, func(a, b boxRec) int { return cmp.Compare(a.uid, b.uid) })
		for _, r := range p.recs {
			tx.Append(r.uid, r.flags)
			tx.ExtRecUpdate(index.ExtMdbox, r.uid, index.MdboxRec{MapUID: r.mapUID, SaveDate: r.saveDate}.Encode())
			tx.ExtRecUpdate(index.ExtGUID, r.uid, r.guid[:])
			if len(r.keywords) > 0 {
				tx.UpdateKeywords(r.uid, index.KeywordsAdd, r.keywords...)
			}
			if r.modseq > 0 {
				tx.SetModSeq(r.uid, r.modseq)
			}
		}
		if p.highest > 0 {
			tx.SetModSeq(0, p.highest)
		}
		tx.SetHeader(index.FieldNextUID, p.nextUID)
		_, err = tx.Commit()
		return err
	}
	if !p.exists {
		return wrap(s.l.Create(b, write), op, b.Name, 0, b.MailDir)
	}
	aside, err := moveAside(b.IndexDir, index.Prefix)
	if err != nil {
		return wrap(err, op, b.Name, 0, b.IndexDir)
	}
	if err := write(b.IndexDir); err != nil {
		return wrap(err, op, b.Name, 0, b.IndexDir)
	}
	for _, f := range aside {
		os.Remove(f)
	}
	return nil
}

// moveAside renames the index files <dir>/<prefix>{,.log,.log.2,.cache,
// .backup} to *.boxsync-old and returns the new names.
func moveAside(dir, prefix string) ([]string, error) {
	var moved []string
	for _, suffix := range []string{"", ".log", ".log.2", ".cache", ".backup"} {
		p := filepath.Join(dir, prefix+suffix)
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
