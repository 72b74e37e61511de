package log

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// WriterOptions tune a Writer.
type WriterOptions struct {
	Fsync       formats.FsyncMode
	LockMethod  LockMethod
	LockTimeout time.Duration // 0: DefaultLockTimeout
	// Known is the log as this process last had it: the File of an
	// earlier Writer of the same path, after its appends. When the file
	// locked is that file, grown (same inode and header), only the bytes
	// after Known.End are read and checked, in place in Known's array
	// when it has room (Writers leave some): a large log (an mdbox map's)
	// is not read again per commit. Nobody may write Known's array
	// meanwhile.
	Known *File
}

// Writer is a dovecot.index.log opened for appending and write-locked the
// way Dovecot locks it. Everything a Writer does happens under that lock;
// Close releases it. A Writer is not safe for concurrent use.
type Writer struct {
	path   string
	opt    WriterOptions
	f      *os.File
	unlock func() error
	plock  chan struct{} // held in-process lock: fcntl locks don't exclude our own process
	file   *File         // the file's contents as of the lock (and our appends)
}

// process-wide locks per log path (1-slot semaphores): POSIX fcntl locks
// are per process, so two Writers of one process would not exclude each
// other otherwise.
var (
	plocksMu sync.Mutex
	plocks   = map[string]chan struct{}{}
)

// processLock takes the in-process lock for path, waiting at most timeout.
func processLock(path string, timeout time.Duration) (chan struct{}, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	plocksMu.Lock()
	c := plocks[abs]
	if c == nil {
		c = make(chan struct{}, 1)
		plocks[abs] = c
	}
	plocksMu.Unlock()
	select {
	case c <- struct{}{}:
		return c, nil
	default:
	}
	t := time.NewTimer(timeoutOr(timeout))
	defer t.Stop()
	select {
	case c <- struct{}{}:
		return c, nil
	case <-t.C:
		return nil, lockTimeout(path, timeoutOr(timeout))
	}
}

// OpenWriter opens and locks an existing log. Like
// mail_transaction_log_lock_head it checks after locking that path still
// names the locked file (a rotation may have replaced it meanwhile) and
// retries if not. The file is then read: File() is its state under the
// lock. A missing log is an error matching fs.ErrNotExist.
func OpenWriter(path string, opt WriterOptions) (_ *Writer, err error) {
	pl, err := processLock(path, opt.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			<-pl
		}
	}()
	for {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		unlock, err := lock(f, path, opt.LockMethod, opt.LockTimeout)
		if err != nil {
			f.Close()
			return nil, err
		}
		same, err := sameFile(f, path)
		if err != nil || !same {
			unlock()
			f.Close()
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			continue // replaced or removed while we waited: try again
		}
		w := &Writer{path: path, opt: opt, f: f, unlock: unlock, plock: pl}
		if err := w.reload(); err != nil {
			w.release()
			return nil, err
		}
		return w, nil
	}
}

func sameFile(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

func (w *Writer) reload() error {
	fi, err := w.f.Stat()
	if err != nil {
		return err
	}
	if f, err := w.reloadKnown(fi); err != nil || f != nil {
		w.file = f
		return err
	}
	// Room for a transaction past the end: an index commit replays its
	// transaction on the log's bytes followed by it, in this very array
	// when it has room (index.commitLocked), rather than in a copy of
	// the whole log (1 MB for a large mdbox map) per commit.
	size := fi.Size()
	data := make([]byte, size, size+size/8+32<<10)
	if _, err := io.ReadFull(io.NewSectionReader(w.f, 0, size), data); err != nil {
		return fmt.Errorf("log: read %s: %w", w.path, err)
	}
	w.file, err = Parse(w.path, data)
	if w.file != nil {
		w.file.fi = fi
	}
	return err
}

// reloadKnown is reload from w.opt.Known when that is this file, grown:
// the bytes up to Known.End are taken as read and checked then (a log is
// only appended to, and rotated to a new file), the rest is read and its
// records checked as Parse does. nil, nil: read the whole file.
func (w *Writer) reloadKnown(fi os.FileInfo) (*File, error) {
	k := w.opt.Known
	size := fi.Size()
	if k == nil || k.fi == nil || k.Path != w.path || !os.SameFile(k.fi, fi) || size < int64(k.End) ||
		int(k.End) > len(k.Data) || int(k.Hdr.HdrSize) > int(k.End) {
		return nil, nil
	}
	hdr := make([]byte, k.Hdr.HdrSize)
	if _, err := io.ReadFull(io.NewSectionReader(w.f, 0, int64(len(hdr))), hdr); err != nil {
		return nil, fmt.Errorf("log: read %s: %w", w.path, err)
	}
	if !bytes.Equal(hdr, k.Data[:len(hdr)]) {
		return nil, nil // not the file Known was read from
	}
	var data []byte
	if len(k.Data) == int(k.End) && int64(cap(k.Data)) >= size {
		data = k.Data[:size] // bytes past every File's end in this array
	} else {
		// garbage Known saw stays as it saw it; or no room
		data = make([]byte, size, size+size/8+32<<10)
		copy(data, k.Data[:k.End])
	}
	if _, err := io.ReadFull(io.NewSectionReader(w.f, int64(k.End), size-int64(k.End)), data[k.End:]); err != nil {
		return nil, fmt.Errorf("log: read %s: %w", w.path, err)
	}
	end, err := scanEnd(w.path, data, k.End)
	if err != nil {
		return nil, err
	}
	return &File{Path: w.path, Hdr: k.Hdr, Data: data, End: end, fi: fi}, nil
}

// File is the log's content under the lock, including what this Writer
// appended. Its Data must not be modified.
func (w *Writer) File() *File { return w.file }

// Path is the log's path.
func (w *Writer) Path() string { return w.path }

// Append writes recs as one transaction at the end of the log: preceded by
// an EXTERNAL BOUNDARY record when there is more than one record, as
// mail_transaction_log_append_locked does. Garbage after the last complete
// transaction (a failed earlier write) is truncated first. The boundary
// takes the SYNC flag of the first record. It returns the position of the
// first byte written.
func (w *Writer) Append(recs []Record) (Pos, error) {
	buf, err := EncodeTransaction(recs)
	if err != nil {
		return Pos{}, err
	}
	pos := Pos{FileSeq: w.file.Hdr.FileSeq, Offset: w.file.End}
	if len(buf) == 0 {
		return pos, nil
	}
	if uint64(w.file.End)+uint64(len(buf)) > 1<<32-1 {
		return Pos{}, &formats.Error{Kind: formats.KindLimit, Op: "index: append", Path: w.path,
			Err: errors.New("transaction log would exceed 4 GiB")}
	}
	if w.file.Garbage() > 0 {
		if err := w.f.Truncate(int64(w.file.End)); err != nil {
			return Pos{}, err
		}
		// A File that saw the garbage keeps seeing it: the append
		// below copies instead of writing over it.
		w.file.Data = w.file.Data[:w.file.End:w.file.End]
	}
	if _, err := w.f.WriteAt(buf, int64(w.file.End)); err != nil {
		// leave the partial write for the next writer to truncate, as
		// Dovecot does; our view of the file stays at End
		return Pos{}, err
	}
	if w.opt.Fsync != formats.FsyncNever {
		if err := w.f.Sync(); err != nil {
			return Pos{}, err
		}
	}
	// In place when the array has room (the index's commit prepared it
	// holding these bytes): no copy of the whole log per transaction.
	w.file.Data = append(w.file.Data, buf...)
	w.file.End += uint32(len(buf))
	return pos, nil
}

// SetFsync changes whether the Writer's later appends are fsynced.
func (w *Writer) SetFsync(m formats.FsyncMode) { w.opt.Fsync = m }

// EncodeTransaction encodes recs as Append writes them.
func EncodeTransaction(recs []Record) ([]byte, error) {
	var buf []byte
	var err error
	if len(recs) > 1 {
		b := &Boundary{Hdr: Hdr{Flags: External | FlagsOf(recs[0])&Sync}}
		if buf, err = AppendRecord(buf, b); err != nil {
			return nil, err
		}
	}
	for _, r := range recs {
		if buf, err = AppendRecord(buf, r); err != nil {
			return nil, err
		}
	}
	if len(recs) > 1 {
		le.PutUint32(buf[RecordHeaderSize:], uint32(len(buf)))
	}
	return buf, nil
}

// Rotate starts a new log file with header h (FileSeq, PrevFileSeq/Offset,
// InitialModSeq set by the caller) and the records first (written without a
// boundary, one transaction each is not needed: the file is not visible
// until it is complete). As mail_transaction_log_file_create2 does, the new
// file is written as PATH.newlock, locked, the old log is hard-linked to
// PATH.2 (replacing it), and PATH.newlock is renamed to PATH. The Writer then
// holds the new file.
func (w *Writer) Rotate(h Header, first []Record) error {
	nw, err := writeNewLog(w.path, h, first, w.opt, true)
	if err != nil {
		return err
	}
	// the old file is unlocked only now, after the new one is in place
	oldF, oldUnlock := w.f, w.unlock
	w.f, w.file = nw.f, nw.file
	if w.opt.LockMethod == LockDotlock {
		// PATH.lock covers the new file as well: keep it
		return oldF.Close()
	}
	w.unlock = nw.unlock
	return errors.Join(oldUnlock(), oldF.Close())
}

// Create creates a new log at path with header h and the records first
// (one record each, no boundary) and returns it locked. It fails with an
// error matching fs.ErrExist when path exists.
func Create(path string, h Header, first []Record, opt WriterOptions) (_ *Writer, err error) {
	pl, err := processLock(path, opt.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			<-pl
		}
	}()
	w, err := writeNewLog(path, h, first, opt, false)
	if err != nil {
		return nil, err
	}
	w.plock = pl
	return w, nil
}

func writeNewLog(path string, h Header, first []Record, opt WriterOptions, rotate bool) (_ *Writer, err error) {
	buf := h.Encode()
	for _, r := range first {
		if buf, err = AppendRecord(buf, r); err != nil {
			return nil, err
		}
	}
	newPath := path + ".newlock"
	f, err := createExcl(newPath, opt.LockTimeout)
	if err != nil {
		return nil, err
	}
	var unlock func() error
	defer func() {
		if err != nil {
			if unlock != nil {
				unlock()
			}
			f.Close()
			os.Remove(newPath)
		}
	}()
	if _, err = f.Write(buf); err != nil {
		return nil, err
	}
	if opt.Fsync != formats.FsyncNever {
		if err = f.Sync(); err != nil {
			return nil, err
		}
	}
	if opt.LockMethod != LockDotlock {
		// the new file is locked before anyone can see it; with dotlocks
		// the caller's PATH.lock already covers it
		if unlock, err = lock(f, newPath, opt.LockMethod, opt.LockTimeout); err != nil {
			return nil, err
		}
	} else if rotate {
		unlock = func() error { return nil }
	} else {
		if unlock, err = dotlock(path+".lock", time.Now().Add(timeoutOr(opt.LockTimeout))); err != nil {
			return nil, err
		}
	}
	if rotate {
		// keep two log files: .log.2 is a hard link of the old one
		path2 := path + ".2"
		if err := os.Remove(path2); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err := os.Link(path, path2); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if err = os.Rename(newPath, path); err != nil {
			return nil, err
		}
	} else {
		// link, not rename: never replace a log someone else created
		if err = os.Link(newPath, path); err != nil {
			return nil, err
		}
		os.Remove(newPath)
	}
	if opt.Fsync != formats.FsyncNever {
		if err = syncDir(filepath.Dir(path)); err != nil {
			return nil, err
		}
	}
	file, perr := Parse(path, buf)
	if perr != nil {
		return nil, perr
	}
	return &Writer{path: path, opt: opt, f: f, unlock: unlock, file: file}, nil
}

func timeoutOr(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultLockTimeout
	}
	return d
}

// createExcl creates path with O_EXCL, waiting for (and finally overriding,
// when older than the dotlock stale time) a leftover from another writer,
// as file_dotlock_open does for PATH.newlock.
func createExcl(path string, timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeoutOr(timeout))
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, createModeOf(path))
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if fi, serr := os.Stat(path); serr == nil && time.Since(fi.ModTime()) > dotlockStale {
			os.Remove(path)
			continue
		}
		if time.Now().After(deadline) {
			return nil, lockTimeout(path, timeoutOr(timeout))
		}
		time.Sleep(lockPoll)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, syscall.EINVAL) {
		err = nil // some file systems can't sync directories
	}
	return errors.Join(err, d.Close())
}

// Close releases the lock and closes the file.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.release()
	return err
}

func (w *Writer) release() error {
	var errU error
	if w.unlock != nil {
		errU = w.unlock()
	}
	errC := w.f.Close()
	w.f = nil
	if w.plock != nil {
		<-w.plock
		w.plock = nil
	}
	return errors.Join(errU, errC)
}
