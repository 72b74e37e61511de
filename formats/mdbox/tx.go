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
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxlist"
	"github.com/boxsync/boxsync/formats/internal/dotlock"
	"github.com/boxsync/boxsync/index"
)

// tx is an mdbox transaction. Saved messages are appended to the newest
// m.* file (locked with flock, as Dovecot locks a file it appends to) or
// to new .temp.* files in storage/; nothing is visible before Commit
// records them in the map and the mailbox index.
type tx struct {
	m *mailbox

	// Owned by the caller's goroutine, like the contract says.
	done      bool
	next      uint32
	files     []*appendFile
	cur       *appendFile // the file Save appends to, or nil
	triedLast bool        // the newest existing file was considered
	saves     []saveRec
	flags     map[uint32]flagSet
	expunge   map[uint32]bool
	raise     uint32
	hms       uint64 // RaiseHighestModSeq's value
	buf       []byte
	w         dbox.MessageWriter
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
	file         *appendFile
	offset, size int64 // in the file, message header to end of metadata
	uid          uint32
	flags        formats.Flags
	keywords     []string
	modseq       formats.ModSeq
	saved        time.Time
	guid         [16]byte
	uidl, order  bool
}

type flagSet struct {
	flags    formats.Flags
	keywords []string
}

var _ formats.Tx = (*tx)(nil)

func (t *tx) failf(op string, uid formats.UID, k formats.Kind, format string, args ...any) error {
	return fail(k, op, t.m.b.Name, uid, "", fmt.Errorf(format, args...))
}

func (t *tx) checkKeywords(op string, uid formats.UID, kws []string) error {
	for _, k := range kws {
		if err := index.CheckKeyword(k); err != nil {
			return t.failf(op, uid, formats.KindParams, "%s", err)
		}
	}
	return nil
}

var tempCount atomic.Uint64

// tempName is dbox_generate_tmp_filename's name.
func tempName() string {
	now := time.Now()
	return fmt.Sprintf("%s%d.P%dQ%dM%d.%s", dboxlist.TempPrefix, now.Unix(), os.Getpid(),
		tempCount.Add(1)-1, now.Nanosecond()/1000, dotlock.Hostname())
}

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
		path := filepath.Join(s.storageDir, tempName())
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
	if t.done {
		return 0, t.failf("save", msg.UID, formats.KindParams, "transaction is finished")
	}
	kws := formats.NormalizeKeywords(slices.Clone(msg.Keywords))
	if err := t.checkKeywords("save", msg.UID, kws); err != nil {
		return 0, err
	}
	if k, err := dbox.CheckMessage(msg); err != nil {
		return 0, t.failf("save", msg.UID, k, "%s", err)
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
		return 0, t.failf("save", msg.UID, formats.KindLimit, "message of %d bytes is too large for mdbox (4 GiB)", end-offset)
	}
	af.end = end
	uid := uint32(msg.UID)
	if uid == 0 || uid < t.next {
		uid = t.next
	}
	if uid >= 0xffffffff {
		return 0, t.failf("save", msg.UID, formats.KindLimit, "UIDs exhausted")
	}
	t.next = uid + 1
	uidl, order := dbox.HasPOP3(msg)
	t.saves = append(t.saves, saveRec{
		file: af, offset: offset, size: end - offset, uid: uid, flags: msg.Flags & formats.SystemFlags,
		keywords: kws, modseq: msg.ModSeq, saved: saved, guid: dbox.GUID128(guid), uidl: uidl, order: order,
	})
	return formats.UID(uid), nil
}

func (t *tx) write(ctx context.Context, af *appendFile, prefix []byte, msg formats.Message, guid string, received time.Time, size int64, r io.Reader) (int64, error) {
	t.w.Reset(af.f, af.end, prefix, size)
	if t.buf == nil {
		t.buf = make([]byte, 64<<10)
	}
	if err := dbox.CopyBody(ctx, &t.w, r, t.buf); err != nil {
		return 0, err
	}
	if msg.Size > 0 && t.w.Size() != msg.Size {
		return 0, t.failf("save", msg.UID, formats.KindInvalidData, "body has %d bytes, expected %d", t.w.Size(), msg.Size)
	}
	return t.w.Finish(dbox.SaveMetadata(msg, guid, received, t.w.VSize(), strings.Join(t.m.b.Levels, "/")))
}

// SetFlags replaces the flags and keywords of a message at Commit.
func (t *tx) SetFlags(uid formats.UID, flags formats.Flags, keywords []string) error {
	if t.done {
		return t.failf("flags", uid, formats.KindParams, "transaction is finished")
	}
	kws := formats.NormalizeKeywords(slices.Clone(keywords))
	if err := t.checkKeywords("flags", uid, kws); err != nil {
		return err
	}
	fs := flagSet{flags: flags & formats.SystemFlags, keywords: kws}
	for i := range t.saves {
		if t.saves[i].uid == uint32(uid) {
			t.saves[i].flags, t.saves[i].keywords = fs.flags, fs.keywords
			return nil
		}
	}
	if t.flags == nil {
		t.flags = map[uint32]flagSet{}
	}
	t.flags[uint32(uid)] = fs
	return nil
}

// Expunge removes a message at Commit. A message saved in this
// transaction is dropped from it; its bytes are cut off when they are the
// last in their file, else they stay as a message no map record names
// (QUIRK: a storage rebuild would find it again).
func (t *tx) Expunge(uid formats.UID) error {
	if t.done {
		return t.failf("expunge", uid, formats.KindParams, "transaction is finished")
	}
	for i := range t.saves {
		if s := t.saves[i]; s.uid == uint32(uid) {
			if s.offset+s.size == s.file.end {
				if err := s.file.f.Truncate(s.offset); err == nil {
					s.file.end = s.offset
				}
			}
			t.saves = slices.Delete(t.saves, i, i+1)
			return nil
		}
	}
	if t.expunge == nil {
		t.expunge = map[uint32]bool{}
	}
	t.expunge[uint32(uid)] = true
	delete(t.flags, uint32(uid))
	return nil
}

// SetUIDNext raises the next UID at Commit.
// RaiseHighestModSeq raises HIGHESTMODSEQ at Commit
// (formats.ModSeqRaiser), so the mailbox never reports less than its
// source did.
func (t *tx) RaiseHighestModSeq(m formats.ModSeq) error {
	if t.done {
		return t.failf("highestmodseq", 0, formats.KindParams, "transaction is finished")
	}
	t.hms = max(t.hms, uint64(m))
	return nil
}

func (t *tx) SetUIDNext(next formats.UID) error {
	if t.done {
		return t.failf("uidnext", 0, formats.KindParams, "transaction is finished")
	}
	t.raise = max(t.raise, uint32(next))
	t.next = max(t.next, uint32(next))
	return nil
}

// Rollback removes new files and cuts what was appended to existing ones
// (dbox_file_append_rollback).
func (t *tx) Rollback() error {
	if t.done {
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
	t.done = true
	t.m.mu.Lock()
	if t.m.tx == t {
		t.m.tx = nil
	}
	t.m.mu.Unlock()
}
