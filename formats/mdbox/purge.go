package mdbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxlist"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtx"
	"github.com/boxsync/boxsync/index"
)

var _ formats.Purger = (*Store)(nil)

// maxPurgeBatch bounds how many old files one map commit retires (each
// is held open and flock()ed until then).
const maxPurgeBatch = 64

// Purge rewrites the m.* files that hold messages no mailbox references
// any more (map refcount 0), as `doveadm purge` does (mdbox-purge.c,
// spec §5.4): each such file is flock()ed as dbox_file_try_lock does
// (a file another process holds is skipped, Dovecot's "try"), its
// messages are checked against the map in file order, the live ones are
// copied byte for byte (message header, bytes and metadata block) into
// new files, and under the map's log lock the map records are pointed at
// the copies, the refcount-0 map UIDs expunged and highest_file_id
// raised, all in one transaction; only then is the old file unlinked.
//
// Differences from Dovecot, each on the side of losing nothing:
//   - The copies go to new .temp.* files, made durable and named m.<id>
//     only at the map commit, never appended to an existing m.* file, so
//     that a crash leaves a stray temporary file rather than an m.* file
//     with bytes the map does not know (which Dovecot's next purge would
//     find corrupted). Several old files share an output file up to
//     mdbox_rotate_size.
//   - A file whose map records disagree with its contents is left as it
//     is and reported (KindInvalidData, naming the file; run
//     force-resync) instead of starting a storage rebuild.
//   - A missing m.* file has its map records removed only when none is
//     still referenced (Dovecot removes them all).
//   - A refcount-0 message with external attachments ('X') is not
//     dropped (we cannot delete attachments): its file is reported.
//   - If a dropped message gained a reference meanwhile (a copy made
//     while we read), the old file stays and its copies become new
//     refcount-0 records for the next purge (Dovecot truncates them
//     away, which it can since it appends to files it alone holds).
//
// ALT= files are purged too and their live mail goes to primary storage,
// as with Dovecot's default mdbox_purge_preserve_alt=no.
func (s *Store) Purge(ctx context.Context) (st formats.PurgeStats, err error) {
	const op = "purge"
	if s.opt.ReadOnly {
		return st, fail(formats.KindNotPossible, op, "", 0, s.storageDir, errors.New("store opened read-only"))
	}
	if _, err := s.mapIndex(false); errors.Is(err, formats.ErrNotFound) {
		return st, nil // no map, no mail (mdbox_map_get_zero_ref_files)
	}
	mv, err := s.mapView(op)
	if err != nil {
		return st, err
	}
	p := &purger{s: s, st: &st, view: mv}
	defer p.abort()
	var errs []error
	for _, id := range zeroRefFiles(mv) {
		if err := ctx.Err(); err != nil {
			return st, wrap(err, op, "", 0, "")
		}
		if err := p.add(id); err != nil {
			errs = append(errs, err)
			continue
		}
		if len(p.batch) >= maxPurgeBatch || p.outBytes() >= s.rotate {
			if err := p.commit(ctx); err != nil {
				return st, errors.Join(append(errs, err)...)
			}
		}
	}
	if err := p.commit(ctx); err != nil {
		errs = append(errs, err)
	}
	return st, errors.Join(errs...)
}

// zeroRefFiles lists, ascending, the ids of files holding a message with
// refcount 0 (mdbox_map_get_zero_ref_files).
func zeroRefFiles(mv *index.View) []uint32 {
	seen := map[uint32]bool{}
	var ids []uint32
	for i := range mv.Count() {
		if ref, _ := mv.RefCount(i); ref != 0 {
			continue
		}
		if r, ok := mv.MapRec(i); ok && r.FileID != 0 && !seen[r.FileID] {
			seen[r.FileID] = true
			ids = append(ids, r.FileID)
		}
	}
	slices.Sort(ids)
	return ids
}

// fileMsg is a map record of one file.
type fileMsg struct {
	mapUID       uint32
	offset, size uint32
	ref          uint16
}

// fileMsgs lists file id's map records by offset (mdbox_map_get_file_msgs).
func fileMsgs(mv *index.View, id uint32) []fileMsg {
	var msgs []fileMsg
	for i := range mv.Count() {
		r, ok := mv.MapRec(i)
		if !ok || r.FileID != id {
			continue
		}
		ref, _ := mv.RefCount(i)
		msgs = append(msgs, fileMsg{mapUID: mv.Message(i).UID, offset: r.Offset, size: r.Size, ref: ref})
	}
	slices.SortFunc(msgs, func(a, b fileMsg) int { return int(int64(a.offset) - int64(b.offset)) })
	return msgs
}

// purger carries a purge: old files read and locked, copies written,
// waiting for one map commit.
type purger struct {
	s     *Store
	st    *formats.PurgeStats
	batch []*purgeFile
	outs  []*purgeOut // new files of the batch, the last one being written
	buf   []byte
	view  *index.View // the map as read for this batch, or nil
}

// purgeFile is one old file of the batch.
type purgeFile struct {
	id      uint32
	f       *os.File // nil: the file is missing
	path    string
	size    int64
	dropped []uint32 // refcount-0 map UIDs
	copies  []copied
}

type copied struct {
	mapUID uint32
	out    *purgeOut
	offset int64
	size   int64
}

// purgeOut is a new file copies go to.
type purgeOut struct {
	f     *os.File
	tmp   string // the path: .temp.*, then m.<id>
	first int64  // where the first message goes (after the file header)
	end   int64
	id    uint32 // once named m.<id>
}

func (p *purger) outBytes() int64 {
	if len(p.outs) == 0 {
		return 0
	}
	return p.outs[len(p.outs)-1].end
}

// add locks and reads file id, copying its live messages. A file it
// cannot lock is skipped; one whose map records disagree with it is
// reported and left alone.
func (p *purger) add(id uint32) error {
	const op = "purge"
	s := p.s
	f, path, err := dboxlist.OpenMail(s.mailFile(id), s.altMailFile(id))
	if errors.Is(err, fs.ErrNotExist) {
		mv, err := s.mapView(op)
		if err != nil {
			return err
		}
		pf := &purgeFile{id: id, path: path}
		for _, m := range fileMsgs(mv, id) {
			if m.ref != 0 {
				return fail(formats.KindInvalidData, op, "", 0, path,
					fmt.Errorf("mdbox: file m.%d is missing but map uid %d still has refcount %d; %s", id, m.mapUID, m.ref, forceResync))
			}
			pf.dropped = append(pf.dropped, m.mapUID)
		}
		p.batch = append(p.batch, pf)
		return nil
	}
	if err != nil {
		return wrap(err, op, "", 0, path)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			p.st.Skipped++ // someone appends to it: next time
			return nil
		}
		return wrap(&os.PathError{Op: "flock", Path: path, Err: err}, op, "", 0, path)
	}
	// still there under this name? another purge may have removed it
	fi, err := f.Stat()
	if err != nil {
		return wrap(err, op, "", 0, path)
	}
	if cur, err := os.Stat(path); err != nil || !os.SameFile(cur, fi) {
		return nil
	}
	// The file's records: a view of the map read after the flock holds
	// them all (messages are appended only under it), an older one
	// (read once per batch: a view copies the whole map) all but those
	// appended just before; so an older view that does not match the
	// file is read again before the file counts as damaged.
	fresh := p.view == nil
	for {
		if p.view == nil {
			if p.view, err = s.mapView(op); err != nil {
				return err
			}
		}
		pf, damaged, err := p.scan(f, fi.Size(), id, path, p.view)
		if damaged && !fresh {
			p.view, fresh = nil, true
			continue
		}
		if err != nil {
			return err
		}
		keep = true
		p.batch = append(p.batch, pf)
		return nil
	}
}

// scan checks file id against its map records in mv, in file order, and
// copies its live messages; damaged says the records and the file
// disagree (the error then says how). Nothing is copied on error.
func (p *purger) scan(f *os.File, size int64, id uint32, path string, mv *index.View) (_ *purgeFile, damaged bool, _ error) {
	const op = "purge"
	msgs := fileMsgs(mv, id)
	r, err := dbox.NewReader(f, size, path)
	if err != nil {
		return nil, true, p.corrupt(path, err)
	}
	pf := &purgeFile{id: id, f: f, path: path, size: size}
	mark := p.mark()
	off := r.FirstOffset()
	for i, m := range msgs {
		if int64(m.offset) != off {
			p.undo(mark)
			return nil, true, p.corrupt(path, fmt.Errorf("purging found mismatched offsets (%d vs %d, %d/%d)", off, m.offset, i, len(msgs)))
		}
		dm, err := r.ReadMessage(off)
		if err != nil {
			p.undo(mark)
			return nil, true, p.corrupt(path, err)
		}
		n := dm.End - off
		if m.ref == 0 {
			if _, ok := dm.Metadata.Get(dbox.MetaExtRef); ok {
				p.undo(mark)
				return nil, false, fail(formats.KindNotPossible, op, "", 0, path,
					fmt.Errorf("map uid %d has external attachments, which boxsync cannot delete: use `doveadm purge`", m.mapUID))
			}
			pf.dropped = append(pf.dropped, m.mapUID)
		} else {
			c, err := p.copy(f, off, n)
			if err != nil {
				p.undo(mark)
				return nil, false, err
			}
			c.mapUID = m.mapUID
			pf.copies = append(pf.copies, c)
		}
		off = dm.End
	}
	if off != size {
		p.undo(mark)
		return nil, true, p.corrupt(path, fmt.Errorf("more messages available than in map (%d < %d)", off, size))
	}
	return pf, false, nil
}

func (p *purger) corrupt(path string, err error) error {
	return fail(formats.KindInvalidData, "purge", "", 0, path, fmt.Errorf("mdbox: %w; left unpurged, %s", err, forceResync))
}

// copy appends n bytes of f at off (one whole message: header, bytes,
// metadata) to the current output file, starting a new one at
// mdbox_rotate_size.
func (p *purger) copy(f *os.File, off, n int64) (copied, error) {
	s := p.s
	var out *purgeOut
	if len(p.outs) > 0 {
		out = p.outs[len(p.outs)-1]
	}
	if out == nil || out.end+n > s.rotate && out.end > out.first {
		var err error
		if out, err = p.newOut(); err != nil {
			return copied{}, err
		}
	}
	if p.buf == nil {
		p.buf = make([]byte, 64<<10)
	}
	w := io.NewOffsetWriter(out.f, out.end)
	if _, err := io.CopyBuffer(w, io.NewSectionReader(f, off, n), p.buf); err != nil {
		out.f.Truncate(out.end)
		return copied{}, wrap(err, "purge", "", 0, out.tmp)
	}
	c := copied{out: out, offset: out.end, size: n}
	out.end += n
	return c, nil
}

func (p *purger) newOut() (*purgeOut, error) {
	s := p.s
	if err := os.MkdirAll(s.storageDir, s.l.DirMode); err != nil {
		return nil, wrap(err, "purge", "", 0, s.storageDir)
	}
	for {
		path := filepath.Join(s.storageDir, dboxtx.TempName())
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, s.l.FileMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, wrap(err, "purge", "", 0, path)
		}
		hdr, err := dbox.AppendFileHeader(nil, dbox.NewFileHeader(time.Now()))
		if err == nil {
			_, err = f.Write(hdr)
		}
		if err != nil {
			f.Close()
			os.Remove(path)
			return nil, wrap(err, "purge", "", 0, path)
		}
		out := &purgeOut{f: f, tmp: path, first: int64(len(hdr)), end: int64(len(hdr))}
		p.outs = append(p.outs, out)
		return out, nil
	}
}

// outMark is where the outputs were before a file's copies.
type outMark struct {
	n   int
	end int64
}

func (p *purger) mark() outMark {
	if len(p.outs) == 0 {
		return outMark{}
	}
	return outMark{n: len(p.outs), end: p.outs[len(p.outs)-1].end}
}

// undo drops what was copied since m. A file already named m.<id> is
// left alone: the map commit that failed after naming it may have
// landed all the same (an error after the append), and a file the map
// does not name is only wasted space.
func (p *purger) undo(m outMark) {
	for _, out := range p.outs[m.n:] {
		out.f.Close()
		if out.id == 0 {
			os.Remove(out.tmp)
		}
	}
	p.outs = p.outs[:m.n]
	if m.n > 0 {
		out := p.outs[m.n-1]
		out.f.Truncate(m.end)
		out.end = m.end
	}
}

// abort drops an uncommitted batch.
func (p *purger) abort() {
	p.undo(outMark{})
	for _, pf := range p.batch {
		if pf.f != nil {
			pf.f.Close()
		}
	}
	p.batch = nil
}

// commit makes the copies durable, then under the map's log lock checks
// that nothing changed (mdbox_file_purge_check_refcounts), names the new
// files, and moves the map records and expunges the dropped ones in one
// transaction; then it unlinks the old files (after the map, so readers
// never miss a message).
func (p *purger) commit(ctx context.Context) error {
	const op = "purge"
	s := p.s
	if len(p.batch) == 0 {
		p.undo(outMark{})
		return nil
	}
	defer p.abort()
	for _, out := range p.outs {
		if s.opt.Fsync != formats.FsyncNever {
			if err := out.f.Sync(); err != nil {
				return wrap(err, op, "", 0, out.tmp)
			}
		}
	}
	mu := mapLock(s.mapDir)
	mu.Lock()
	defer mu.Unlock()
	mix, err := s.mapIndex(false)
	if err != nil {
		return err
	}
	var retired []*purgeFile
	_, err = mix.Update(func(lv *index.View, mtx *index.Tx) error {
		if err := s.checkMap(op, lv); err != nil {
			return err
		}
		// what changed since the files were read?
		var orphans []copied // copies of files that stay: refcount-0 records
		retired = nil
		for _, pf := range p.batch {
			ok := true
			for _, u := range pf.dropped {
				i, _, found := lv.Lookup(u)
				if !found {
					return fail(formats.KindInvalidData, op, "", 0, pf.path,
						fmt.Errorf("mdbox map corrupted: Purging unexpectedly lost map_uid=%d; %s", u, forceResync))
				}
				if ref, _ := lv.RefCount(i); ref > 0 {
					ok = false // copied meanwhile
				}
			}
			for _, c := range pf.copies {
				i, _, found := lv.Lookup(c.mapUID)
				if !found {
					ok = false
					continue
				}
				if r, _ := lv.MapRec(i); r.FileID != pf.id {
					ok = false
				}
			}
			if ok {
				retired = append(retired, pf)
				continue
			}
			p.st.Skipped++
			for _, c := range pf.copies {
				c.mapUID = 0
				orphans = append(orphans, c)
			}
		}

		hdr, _ := lv.MapHdr()
		nextID := hdr.HighestFileID + 1
		for _, out := range p.outs {
			for {
				final := s.mailFile(nextID)
				err := dboxlist.LinkNoReplace(out.tmp, final)
				if err == nil {
					out.id, out.tmp = nextID, final
					nextID++
					break
				}
				if !errors.Is(err, fs.ErrExist) {
					return wrap(err, op, "", 0, final)
				}
				nextID++ // an m.* the map does not know: never overwrite it
			}
		}
		named := len(p.outs) > 0
		if named && s.l.Sync() {
			if err := dboxlist.FsyncPath(s.storageDir); err != nil {
				return wrap(err, op, "", 0, s.storageDir)
			}
		}
		if named {
			mtx.ExtHdrUpdate(index.ExtMap, 0, le32(nextID-1))
		}
		for _, pf := range retired {
			for _, c := range pf.copies {
				mtx.ExtRecUpdate(index.ExtMap, c.mapUID, index.MapRec{FileID: c.out.id, Offset: uint32(c.offset), Size: uint32(c.size)}.Encode())
			}
			for _, u := range pf.dropped {
				mtx.Expunge(u, [16]byte{})
			}
		}
		next := lv.NextUID()
		for _, c := range orphans {
			mtx.Append(next, 0)
			mtx.ExtRecUpdate(index.ExtMap, next, index.MapRec{FileID: c.out.id, Offset: uint32(c.offset), Size: uint32(c.size)}.Encode())
			mtx.ExtRecUpdate(index.ExtRef, next, []byte{0, 0})
			next++
		}
		return nil
	})
	if err != nil {
		// the old files stay; new ones are left as they are (undo)
		return dboxlist.WrapIndex(err, driverName, op, "", s.mapDir)
	}

	p.view = nil // the map changed: read it again for the next batch

	// the map no longer names the old files
	var written int64
	for _, out := range p.outs {
		written += out.end
		out.f.Close()
	}
	p.outs = nil
	var errs []error
	dirs := map[string]bool{}
	for _, pf := range retired {
		p.st.Files++
		p.st.Messages += len(pf.dropped)
		p.st.Copied += len(pf.copies)
		p.st.Freed += pf.size
		if pf.f == nil {
			continue
		}
		if err := os.Remove(pf.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, wrap(err, op, "", 0, pf.path))
		}
		dirs[filepath.Dir(pf.path)] = true
	}
	p.st.Freed -= written
	if s.l.Sync() {
		for dir := range dirs {
			if err := dboxlist.FsyncPath(dir); err != nil {
				errs = append(errs, wrap(err, op, "", 0, dir))
			}
		}
	}
	return errors.Join(errs...)
}
