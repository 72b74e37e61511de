package mdbox

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtx"
)

// tx is an mdbox transaction. Saved messages are appended to the newest
// m.* file (locked with flock, as Dovecot locks a file it appends to) or
// to new .temp.* files in storage/; nothing is visible before Commit
// records them in the map and the mailbox index.
type tx struct {
	m *mailbox

	// Owned by the caller's goroutine, like the contract says.
	dboxtx.Pending[saveRec, *saveRec]
	files     []*appendFile
	cur       *appendFile // the file Save appends to, or nil
	triedLast bool        // the newest existing file was considered
	buf       []byte
	w         dbox.MessageWriter
}

// newTx starts a transaction whose saves get UIDs from next. A message
// saved in it and expunged again has its bytes cut off when they are the
// last in their file, else they stay as a message no map record names
// (QUIRK: a storage rebuild would find it again).
func newTx(m *mailbox, next uint32) *tx {
	t := &tx{m: m}
	t.Pending = dboxtx.Pending[saveRec, *saveRec]{
		Driver: driverName, Mailbox: m.b.Name, Next: next,
		Discard: func(s *saveRec) {
			if s.offset+s.size == s.file.end {
				if err := s.file.f.Truncate(s.offset); err == nil {
					s.file.end = s.offset
				}
			}
		},
	}
	return t
}

// appendFile is a file the transaction appends to.
type appendFile struct {
	f     *os.File
	id    uint32 // 0 until a new file is named m.<id> at Commit
	tmp   string // a new file's temporary path
	start int64  // the size before this transaction (0 for a new file)
	end   int64
	final string // m.<id> path of a new file once named
}

type saveRec struct {
	dboxtx.Save
	file         *appendFile
	offset, size int64 // in the file, message header to end of metadata
	saved        time.Time
	guid         [16]byte
}

var (
	_ formats.Tx                = (*tx)(nil)
	_ formats.FirstRecentRaiser = (*tx)(nil)
)

// appendTarget returns the file the next message of size bytes (-1:
// unknown) goes to: the current one while it stays below
// mdbox_rotate_size, then the newest existing m.* file if it has room
// (once per transaction, mdbox_map_find_appendable_file), else a new
// file.
func (t *tx) appendTarget(size int64) (*appendFile, error) {
	rotate := t.m.s.rotate
	if c := t.cur; c != nil && (c.end == c.start || c.end+max(size, 0) <= rotate && c.end < rotate) {
		return c, nil
	}
	if !t.triedLast {
		t.triedLast = true
		if af := t.openNewest(max(size, 0)); af != nil {
			t.files = append(t.files, af)
			t.cur = af
			return af, nil
		}
	}
	s := t.m.s
	if err := os.MkdirAll(s.storageDir, s.l.DirMode); err != nil {
		return nil, wrap(err, "save", t.m.b.Name, 0, s.storageDir)
	}
	for {
		path := filepath.Join(s.storageDir, dboxtx.TempName())
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, s.l.FileMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, wrap(err, "save", t.m.b.Name, 0, path)
		}
		af := &appendFile{f: f, tmp: path}
		t.files = append(t.files, af)
		t.cur = af
		return af, nil
	}
}

// openNewest opens the newest m.* file for appending if, as
// mdbox_map_file_try_append checks, it is the file of the map's last
// message, has room for size more bytes, can be flock()ed at once, and
// ends exactly where the map says its last message ends.
func (t *tx) openNewest(size int64) *appendFile {
	s := t.m.s
	mv, err := s.mapView("save")
	if err != nil || mv.Count() == 0 {
		return nil
	}
	last, ok := mv.MapRec(mv.Count() - 1)
	if !ok || last.FileID == 0 {
		return nil
	}
	if h, ok := mv.MapHdr(); !ok || h.HighestFileID != last.FileID {
		return nil
	}
	end := int64(last.Offset) + int64(last.Size)
	if end+size >= s.rotate {
		return nil
	}
	f, err := os.OpenFile(s.mailFile(last.FileID), os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() != end {
		f.Close() // garbage at the end, or appended by someone meanwhile
		return nil
	}
	r, err := dbox.NewReader(f, fi.Size(), f.Name())
	if err != nil || r.Header().Version != dbox.Version || r.Header().MsgHeaderSize() != dbox.MsgHeaderSize {
		f.Close()
		return nil
	}
	return &appendFile{f: f, id: last.FileID, start: end, end: end}
}

// Save appends the message (message header, body counted on the way,
// metadata with B = the mailbox's storage name, as Dovecot's mdbox writes
// it) to the current append file.
func (t *tx) Save(ctx context.Context, msg formats.Message, r io.Reader) (formats.UID, error) {
	kws, err := t.Keywords("save", msg.UID, msg.Keywords)
	if err != nil {
		return 0, err
	}
	if k, err := dbox.CheckMessage(msg); err != nil {
		return 0, t.Failf("save", msg.UID, k, "%s", err)
	}
	size := int64(-1)
	if msg.Size > 0 {
		size = msg.Size
	}
	af, err := t.appendTarget(size)
	if err != nil {
		return 0, err
	}
	guid := msg.GUID
	if guid == "" {
		guid = dbox.NewGUID()
	}
	received := msg.Received
	if received.IsZero() {
		received = time.Now()
	}
	saved := msg.Saved
	if saved.IsZero() || saved.Unix() <= 0 || saved.Unix() > 0xffffffff {
		saved = time.Now() // mdbox_save_set_map_uids: ioloop_time
	}
	var prefix []byte
	if af.end == 0 {
		if prefix, err = dbox.AppendFileHeader(nil, dbox.NewFileHeader(time.Now())); err != nil {
			return 0, err
		}
	}
	offset := af.end + int64(len(prefix))
	end, err := t.write(ctx, af, prefix, msg, guid, received, size, r)
	if err == nil && t.m.s.opt.Fsync == formats.FsyncAlways {
		err = af.f.Sync()
	}
	if err != nil {
		af.f.Truncate(af.end) // drop the partial message
		return 0, wrap(err, "save", t.m.b.Name, msg.UID, af.f.Name())
	}
	if end-offset > 0xffffffff {
		af.f.Truncate(af.end)
		return 0, t.Failf("save", msg.UID, formats.KindLimit, "message of %d bytes is too large for mdbox (4 GiB)", end-offset)
	}
	af.end = end
	uid, err := t.NextUID(msg.UID)
	if err != nil {
		return 0, err
	}
	uidl, order := dbox.HasPOP3(msg)
	t.Saves = append(t.Saves, saveRec{
		Save: dboxtx.Save{
			UID: uid, Flags: msg.Flags & formats.SystemFlags, Keywords: kws, ModSeq: msg.ModSeq, UIDL: uidl, Order: order,
		},
		file: af, offset: offset, size: end - offset, saved: saved, guid: dbox.GUID128(guid),
	})
	return formats.UID(uid), nil
}

func (t *tx) write(ctx context.Context, af *appendFile, prefix []byte, msg formats.Message, guid string, received time.Time, size int64, r io.Reader) (int64, error) {
	t.w.Reset(af.f, af.end, prefix, size)
	if err := t.w.Compress(t.m.s.zlib.Save, t.m.s.zlib.Level); err != nil {
		return 0, err
	}
	if t.buf == nil {
		t.buf = make([]byte, 64<<10)
	}
	if err := dbox.CopyBody(ctx, &t.w, r, t.buf); err != nil {
		return 0, err
	}
	if msg.Size > 0 && t.w.Size() != msg.Size {
		return 0, t.Failf("save", msg.UID, formats.KindInvalidData, "body has %d bytes, expected %d", t.w.Size(), msg.Size)
	}
	return t.w.Finish(dbox.SaveMetadata(msg, guid, received, t.w.VSize(), strings.Join(t.m.b.Levels, "/")))
}

// Rollback removes new files and cuts what was appended to existing ones
// (dbox_file_append_rollback).
func (t *tx) Rollback() error {
	if t.Done {
		return nil
	}
	t.finish()
	return t.undoFiles(nil)
}

// undoFiles removes new files not yet in the map (keep says which are)
// and truncates existing ones back, then unlocks and closes them all.
func (t *tx) undoFiles(keep map[*appendFile]bool) error {
	var errs []error
	for _, af := range t.files {
		if keep[af] {
			continue
		}
		if af.id != 0 && af.final == "" {
			if err := af.f.Truncate(af.start); err != nil {
				errs = append(errs, wrap(err, "rollback", t.m.b.Name, 0, af.f.Name()))
			}
		} else {
			for _, p := range []string{af.tmp, af.final} {
				if p != "" {
					if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
						errs = append(errs, wrap(err, "rollback", t.m.b.Name, 0, p))
					}
				}
			}
		}
	}
	t.closeFiles()
	return errors.Join(errs...)
}

func (t *tx) closeFiles() {
	for _, af := range t.files {
		af.f.Close() // drops the flock
	}
	t.files, t.cur = nil, nil
}

func (t *tx) finish() {
	t.Done = true
	t.m.mu.Lock()
	if t.m.tx == t {
		t.m.tx = nil
	}
	t.m.mu.Unlock()
}
