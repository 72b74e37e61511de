package sdbox

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtx"
)

// tx is an sdbox transaction. Saved messages wait in dbox-Mails as
// .temp.* files, which Dovecot ignores (and deletes after 36 hours);
// nothing is visible before Commit.
type tx struct {
	m *mailbox

	// Owned by the caller's goroutine, like the contract says.
	dboxtx.Pending[saveRec, *saveRec]
	buf []byte
	w   dbox.MessageWriter
}

// newTx starts a transaction whose saves get UIDs from next.
func newTx(m *mailbox, next uint32) *tx {
	t := &tx{m: m}
	t.Pending = dboxtx.Pending[saveRec, *saveRec]{
		Driver: driverName, Mailbox: m.b.Name, Next: next,
		Discard: func(s *saveRec) { os.Remove(filepath.Join(m.b.MailDir, s.tmp)) },
	}
	return t
}

type saveRec struct {
	dboxtx.Save
	tmp   string // file name in dbox-Mails
	final string // u.<uid> once named, for cleanup
}

var _ formats.Tx = (*tx)(nil)

// Save writes the message to a new .temp.* file in dbox-Mails — the file
// header line, the message header, the body (64 KiB at a time, counting
// its size and virtual size) and the metadata block — and plans it for
// Commit.
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
	var f *os.File
	var name string
	for {
		name = dboxtx.TempName()
		var err error
		f, err = os.OpenFile(filepath.Join(m.b.MailDir, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, m.s.l.FileMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return 0, wrap(err, "save", m.b.Name, msg.UID, filepath.Join(m.b.MailDir, name))
		}
		break
	}
	path := f.Name()
	err = t.write(ctx, f, msg, guid, received, r)
	if err == nil && m.s.opt.Fsync == formats.FsyncAlways {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return 0, wrap(err, "save", m.b.Name, msg.UID, path)
	}
	uid, err := t.NextUID(msg.UID)
	if err != nil {
		os.Remove(path)
		return 0, err
	}
	uidl, order := dbox.HasPOP3(msg)
	t.Saves = append(t.Saves, saveRec{tmp: name, Save: dboxtx.Save{
		UID: uid, Flags: msg.Flags & formats.SystemFlags, Keywords: kws, ModSeq: msg.ModSeq, UIDL: uidl, Order: order,
	}})
	return formats.UID(uid), nil
}

// write writes the file: header line, message, metadata.
func (t *tx) write(ctx context.Context, f *os.File, msg formats.Message, guid string, received time.Time, r io.Reader) error {
	hdr, err := dbox.AppendFileHeader(nil, dbox.NewFileHeader(time.Now()))
	if err != nil {
		return err
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

// Rollback removes the saved .temp.* files.
func (t *tx) Rollback() error {
	if t.Done {
		return nil
	}
	t.finish()
	var errs []error
	for _, s := range t.Saves {
		if err := os.Remove(filepath.Join(t.m.b.MailDir, s.tmp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
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
