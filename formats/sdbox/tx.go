package sdbox

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtx"
	"github.com/boxsync/boxsync/formats/internal/unnamed"
	"github.com/boxsync/boxsync/formats/internal/zlib"
)

// tx is an sdbox transaction. Saved messages wait in unnamed files on
// dbox-Mails' file system (O_TMPFILE, package unnamed) or, where there
// are none, in .temp.* files in dbox-Mails, which Dovecot ignores (and
// deletes after 36 hours); nothing is visible before Commit.
type tx struct {
	m *mailbox

	// Owned by the caller's goroutine, like the contract says.
	dboxtx.Pending[saveRec, *saveRec]
	buf []byte // the body copy buffer
	hdr []byte // header line, message header, metadata of copySection
	w   dbox.MessageWriter
}

// newTx starts a transaction whose saves get UIDs from next.
func newTx(m *mailbox, next uint32) *tx {
	t := &tx{m: m}
	t.Pending = dboxtx.Pending[saveRec, *saveRec]{
		Driver: driverName, Mailbox: m.b.Name, Next: next,
		Discard: func(s *saveRec) { t.discard(s) },
	}
	return t
}

type saveRec struct {
	dboxtx.Save
	file  *os.File // the unnamed file holding the message, or nil: tmp names it
	tmp   string   // file name in dbox-Mails, if not unnamed
	final string   // u.<uid> once named, for cleanup
}

var (
	_ formats.Tx                = (*tx)(nil)
	_ formats.FirstRecentRaiser = (*tx)(nil)
)

// Save writes the message to a new file — the file header line, the
// message header, the body (64 KiB at a time, counting its size and
// virtual size, or in the kernel, see fileSection) and the metadata block
// — and plans it for Commit. The file is unnamed (kept open until Commit
// names it u.<uid>) where the system can, else a .temp.* file in
// dbox-Mails.
func (t *tx) Save(ctx context.Context, msg formats.Message, r io.Reader) (formats.UID, error) {
	kws, err := t.Keywords("save", msg.UID, msg.Keywords)
	if err != nil {
		return 0, err
	}
	if k, err := dbox.CheckMessage(msg); err != nil {
		return 0, t.Failf("save", msg.UID, k, "%s", err)
	}
	guid := msg.GUID
	if guid == "" {
		guid = dbox.NewGUID()
	}
	received := msg.Received
	if received.IsZero() {
		received = time.Now() // dbox_save_begin: ioloop_time
	}
	m := t.m
	var s saveRec
	f, path, err := t.create(&s)
	if err != nil {
		return 0, wrap(err, "save", m.b.Name, msg.UID, path)
	}
	err = t.write(ctx, f, msg, guid, received, r)
	if err == nil && m.s.opt.Fsync == formats.FsyncAlways {
		err = f.Sync()
	}
	if s.file == nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.discard(&s)
		return 0, wrap(err, "save", m.b.Name, msg.UID, path)
	}
	uid, err := t.NextUID(msg.UID)
	if err != nil {
		t.discard(&s)
		return 0, err
	}
	uidl, order := dbox.HasPOP3(msg)
	s.Save = dboxtx.Save{
		UID: uid, Flags: msg.Flags & formats.SystemFlags, Keywords: kws, ModSeq: msg.ModSeq, UIDL: uidl, Order: order,
	}
	t.Saves = append(t.Saves, s)
	return formats.UID(uid), nil
}

// create makes the file a Save writes into: an unnamed file on
// dbox-Mails' file system, kept open in s.file until Commit links it as
// u.<uid>: no temporary name to make (dbox_generate_tmp_filename), look
// up and unlink, and nothing left behind by a crash (measured in the
// package doc), or, where there are none or too many are
// open (unnamed.Reserve), a new .temp.* file in dbox-Mails named in
// s.tmp. path names the file for errors.
func (t *tx) create(s *saveRec) (f *os.File, path string, err error) {
	m := t.m
	dir := m.b.MailDir
	if !m.s.noUnnamed.Load() && unnamed.Reserve() {
		f, err = unnamed.Open(dir, m.s.l.FileMode)
		if err == nil {
			s.file = f
			return f, dir, nil
		}
		unnamed.Release()
		if !errors.Is(err, unnamed.ErrUnsupported) {
			return nil, dir, err
		}
		m.s.noUnnamed.Store(true)
	}
	for {
		s.tmp = dboxtx.TempName()
		path = filepath.Join(dir, s.tmp)
		f, err = createExcl(path, m.s.l.FileMode)
		if !errors.Is(err, fs.ErrExist) {
			return f, path, err
		}
	}
}

// createExcl creates path for reading and writing, failing if it
// exists, like os.OpenFile with O_CREATE|O_EXCL but without its attempt
// to make a regular file non-blocking and poll it (four fcntl and an
// epoll_ctl per file, all futile for a regular file).
func createExcl(path string, mode fs.FileMode) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, uint32(mode.Perm()))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// discard removes the file of a save that will not be committed: an
// unnamed one goes away when it is closed.
func (t *tx) discard(s *saveRec) error {
	if s.file != nil {
		return t.closeUnnamed(s)
	}
	if s.tmp == "" {
		return nil
	}
	err := os.Remove(filepath.Join(t.m.b.MailDir, s.tmp))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// closeUnnamed closes the unnamed file of s (freeing it unless Commit
// linked it).
func (t *tx) closeUnnamed(s *saveRec) error {
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	unnamed.Release()
	return err
}

// write writes the file: header line, message, metadata.
func (t *tx) write(ctx context.Context, f *os.File, msg formats.Message, guid string, received time.Time, r io.Reader) error {
	hdr, err := dbox.AppendFileHeader(t.hdr[:0], dbox.NewFileHeader(time.Now()))
	if err != nil {
		return err
	}
	if src, off, ok := t.fileSection(r, msg); ok {
		return t.copySection(f, hdr, src, off, msg, guid, received)
	}
	announce := int64(-1)
	if msg.Size > 0 {
		announce = msg.Size
	}
	t.w.Reset(f, 0, hdr, announce)
	if err := t.w.Compress(t.m.s.zlib.Save, t.m.s.zlib.Level); err != nil {
		return err
	}
	if t.buf == nil {
		t.buf = make([]byte, 64<<10)
	}
	if err := dbox.CopyBody(ctx, &t.w, r, t.buf); err != nil {
		return err
	}
	if msg.Size > 0 && t.w.Size() != msg.Size {
		return t.Failf("save", msg.UID, formats.KindInvalidData, "body has %d bytes, expected %d", t.w.Size(), msg.Size)
	}
	_, err = t.w.Finish(dbox.SaveMetadata(msg, guid, received, t.w.VSize(), ""))
	return err
}

// fileSection says whether the body can be copied in the kernel: it is
// a plain range of a file (formats.FileSection: a Maildir file, an
// uncompressed mdbox message), nothing is compressed on the way, and the
// source knows the sizes, so that the message header's size is checked
// against what was copied and 'V' is the source's virtual size (Maildir
// ,W=, dbox 'V': what Dovecot reports for the source message) instead of
// a count.
func (t *tx) fileSection(r io.Reader, msg formats.Message) (*os.File, int64, bool) {
	sec, ok := r.(formats.FileSection)
	if !ok || t.m.s.zlib.Save != zlib.None || msg.Size <= 0 || msg.VSize < msg.Size {
		return nil, 0, false
	}
	return sec.FileSection()
}

// copySection writes the message whose body is msg.Size bytes at off of
// src in three steps: the header line and message header (§3.1-3.2) in
// one write, the body by copy_file_range (os.File.ReadFrom falls back to
// a plain copy where the kernel cannot), the metadata block (§3.3) in one
// write.
func (t *tx) copySection(f *os.File, hdr []byte, src *os.File, off int64, msg formats.Message, guid string, received time.Time) error {
	hdr = dbox.AppendMsgHeader(hdr, msg.Size)
	if _, err := f.Write(hdr); err != nil {
		return err
	}
	if _, err := src.Seek(off, io.SeekStart); err != nil {
		return err
	}
	n, err := f.ReadFrom(&io.LimitedReader{R: src, N: msg.Size})
	if err != nil {
		return err
	}
	if n != msg.Size {
		return t.Failf("save", msg.UID, formats.KindInvalidData, "body has %d bytes, expected %d", n, msg.Size)
	}
	meta, err := dbox.AppendMetadata(hdr[:0], dbox.SaveMetadata(msg, guid, received, msg.VSize, ""))
	if err != nil {
		return err
	}
	t.hdr = meta[:0]
	_, err = f.Write(meta)
	return err
}

// Rollback removes the saved files (closes the unnamed ones, which frees
// them).
func (t *tx) Rollback() error {
	if t.Done {
		return nil
	}
	t.finish()
	var errs []error
	for i := range t.Saves {
		s := &t.Saves[i]
		if err := t.discard(s); err != nil {
			errs = append(errs, wrap(err, "rollback", t.m.b.Name, formats.UID(s.UID), ""))
		}
	}
	return errors.Join(errs...)
}

func (t *tx) finish() {
	t.Done = true
	t.m.mu.Lock()
	if t.m.tx == t {
		t.m.tx = nil
	}
	t.m.mu.Unlock()
}
