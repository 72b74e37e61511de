package mdbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxlist"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtx"
	"github.com/boxsync/boxsync/index"
	"github.com/boxsync/boxsync/index/log"
)

// mapLocks serialise this process's commits, purges and rebuilds on one
// map: each holds the map's log lock only for one index.Update, but
// their steps (map records, then mailbox records, then refcounts) must
// not interleave with another's.
var (
	mapLocksMu sync.Mutex
	mapLocks   = map[string]*sync.Mutex{}
)

func mapLock(dir string) *sync.Mutex {
	mapLocksMu.Lock()
	defer mapLocksMu.Unlock()
	mu := mapLocks[dir]
	if mu == nil {
		mu = &sync.Mutex{}
		mapLocks[dir] = mu
	}
	return mu
}

// Commit makes the transaction visible, in the order of Dovecot's mdbox
// save commit (mdbox_transaction_save_commit_pre/post):
//
//  1. make the appended bytes durable: one syncfs(2) (mail_fsync =
//     optimized; always: each message was fsynced at Save);
//  2. under the map's log lock: name each new file m.<id> above the map's
//     highest_file_id without replacing any file, fsync storage/, and
//     append the map records — file, offset, size, refcount 1 — with
//     highest_file_id, in one EXTERNAL transaction;
//  3. under the mailbox's log lock: append the messages with their map
//     UIDs, save dates and GUIDs (mdbox and guid extensions), flags,
//     keywords and modseqs, the flag and keyword changes, the expunges
//     with their GUIDs, POP3 header flags and the next UID;
//  4. decrement the map refcounts of the expunged messages, so that a
//     purge can remove them.
//
// QUIRK: every map record is EXTERNAL, so that the map log's tail follows
// its head (spec §2.6.6) and Dovecot never finds an "Inconsistency in map
// index"; Dovecot instead keeps the tail behind while it expunges, as a
// crash marker. Our order makes a crash leak space, never lose mail: map
// records before the mailbox records that use them, refcount decrements
// after the mailbox expunges. A failed mailbox commit gives the new map
// records refcount 0 again.
func (t *tx) Commit(ctx context.Context) (err error) {
	if t.Done {
		return nil
	}
	t.finish()
	m, s := t.m, t.m.s
	const op = "commit"
	mapped := false
	var newMapUIDs []uint32
	defer func() {
		switch {
		case err == nil:
			used := map[*appendFile]bool{}
			for _, af := range t.files {
				used[af] = af.id != 0
			}
			t.undoFiles(used) // new files whose messages were all expunged again
		case !mapped:
			t.undoFiles(nil)
		default:
			// the map has the messages, no mailbox does: let a
			// purge take them
			if len(newMapUIDs) > 0 {
				_ = s.changeRefs(context.WithoutCancel(ctx), op, newMapUIDs, -1)
			}
			t.closeFiles()
		}
	}()
	if err := ctx.Err(); err != nil {
		return wrap(err, op, m.b.Name, 0, "")
	}
	if t.Empty() {
		return nil
	}
	mu := mapLock(s.mapDir)
	mu.Lock()
	defer mu.Unlock()

	var mapUIDValidity uint32
	if len(t.Saves) > 0 {
		if err := t.syncFiles(); err != nil {
			return err
		}
		newMapUIDs, mapUIDValidity, mapped, err = t.commitMap(ctx)
		if err != nil {
			return err
		}
	}

	var goneMapUIDs []uint32
	pos, err := m.ix.Update(func(v *index.View, itx *index.Tx) error {
		v, _, err := m.withMap(op, v)
		if err != nil {
			return err
		}
		h, _ := v.MdboxHdr()
		if mapUIDValidity != 0 && h.MapUIDValidity != mapUIDValidity {
			if v.Count() > 0 {
				return fail(formats.KindTemp, op, m.b.Name, 0, m.b.IndexDir,
					fmt.Errorf("mdbox: map uidvalidity mismatch (%d vs %d); %s", h.MapUIDValidity, mapUIDValidity, forceResync))
			}
			itx.ExtHdrUpdate(index.ExtMdboxHdr, 0, le32(mapUIDValidity)) // mdbox_update_header
		}
		for _, d := range []index.ExtDef{index.ExtDefMdbox, index.ExtDefGUID} {
			if _, ok := v.Ext(d.Name); !ok && len(t.Saves) > 0 {
				itx.ExtIntro(d)
			}
		}
		t.IntroModSeq(itx, v)
		next := v.NextUID()
		for i := range t.Saves {
			sv := &t.Saves[i]
			sv.UID = max(sv.UID, next)
			next = sv.UID + 1
			dboxtx.Append(itx, &sv.Save, func() {
				itx.ExtRecUpdate(index.ExtMdbox, sv.UID, index.MdboxRec{MapUID: newMapUIDs[i], SaveDate: uint32(sv.saved.Unix())}.Encode())
				itx.ExtRecUpdate(index.ExtGUID, sv.UID, sv.guid[:])
			})
		}
		t.WriteChanges(itx, v, dboxtx.Hdr{Ext: index.ExtMdboxHdr, Flags: h.Flags}, func(i int, _ uint32) [16]byte {
			if r, ok := v.MdboxRec(i); ok && r.MapUID != 0 {
				goneMapUIDs = append(goneMapUIDs, r.MapUID)
			}
			g, _ := v.GUID(i)
			return g
		})
		return nil
	})
	if err != nil {
		if pos != (log.Pos{}) {
			// the mailbox has the messages (only what followed the
			// append failed): their map records must keep refcount 1
			newMapUIDs = nil
		}
		return dboxlist.WrapIndex(err, driverName, op, m.b.Name, m.b.IndexDir)
	}
	newMapUIDs = nil // the mailbox has them now
	if len(goneMapUIDs) > 0 {
		if err := s.changeRefsLocked(ctx, "expunge", goneMapUIDs, -1); err != nil {
			// QUIRK: the messages are expunged; their space is
			// leaked until a rebuild
			return wrap(err, "expunge", m.b.Name, 0, s.mapDir)
		}
	}
	return nil
}

// syncFiles makes the appended bytes durable: one syncfs, or an fsync per
// file where there is none.
func (t *tx) syncFiles() error {
	s := t.m.s
	if s.opt.Fsync != formats.FsyncOptimized {
		return nil
	}
	if err := dboxlist.SyncFS(s.storageDir); err == nil {
		return nil
	}
	for _, af := range t.files {
		if err := af.f.Sync(); err != nil {
			return wrap(err, "commit", t.m.b.Name, 0, af.f.Name())
		}
	}
	return nil
}

// commitMap names the new files and writes the map records of the saved
// messages, under the map's log lock. It returns their map UIDs, in
// t.saves order, the map's UIDVALIDITY, and whether the records are in
// the map (also when an error followed their append).
func (t *tx) commitMap(ctx context.Context) ([]uint32, uint32, bool, error) {
	m, s := t.m, t.m.s
	const op = "commit"
	mix, err := s.mapIndex(true)
	if err != nil {
		return nil, 0, false, err
	}
	var uids []uint32
	var uidValidity uint32
	pos, err := mix.Update(func(mv *index.View, mtx *index.Tx) error {
		if err := s.checkMap(op, mv); err != nil {
			return err
		}
		uidValidity = mv.UIDValidity()
		used := map[*appendFile]bool{}
		for _, sv := range t.Saves {
			used[sv.file] = true
		}
		hdr, _ := mv.MapHdr()
		nextID := hdr.HighestFileID + 1
		named := false
		for _, af := range t.files {
			if af.id != 0 || !used[af] {
				continue
			}
			for {
				final := s.mailFile(nextID)
				err := dboxlist.LinkNoReplace(af.tmp, final)
				if err == nil {
					af.id, af.final, af.tmp = nextID, final, ""
					nextID++
					named = true
					break
				}
				if !errors.Is(err, fs.ErrExist) {
					return wrap(err, op, m.b.Name, 0, final)
				}
				nextID++ // an m.* the map does not know: never overwrite it
			}
		}
		if named && s.l.Sync() {
			if err := dboxlist.FsyncPath(s.storageDir); err != nil {
				return wrap(err, op, m.b.Name, 0, s.storageDir)
			}
		}
		if named {
			mtx.ExtHdrUpdate(index.ExtMap, 0, le32(nextID-1))
		}
		uids = make([]uint32, len(t.Saves))
		mapUID := mv.NextUID()
		for i, sv := range t.Saves {
			uids[i] = mapUID
			mtx.Append(mapUID, 0)
			mtx.ExtRecUpdate(index.ExtMap, mapUID, index.MapRec{FileID: sv.file.id, Offset: uint32(sv.offset), Size: uint32(sv.size)}.Encode())
			mtx.ExtRecUpdate(index.ExtRef, mapUID, []byte{1, 0})
			mapUID++
		}
		return nil
	})
	if err != nil {
		// appended all the same? then the files stay and the caller
		// lowers the records' refcounts
		landed := pos != (log.Pos{})
		return uids, uidValidity, landed, dboxlist.WrapIndex(err, driverName, op, m.b.Name, s.mapDir)
	}
	return uids, uidValidity, true, nil
}
