package sdbox

import (
	"context"
	"errors"
	"io/fs"
	"iter"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxlist"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtx"
	"github.com/boxsync/boxsync/index"
)

// mailbox is one open sdbox mailbox. Its state is the index, read afresh
// by each call (index.Index.View reads only what changed).
type mailbox struct {
	s  *Store
	b  *dboxlist.Box
	ix *index.Index

	mu     sync.Mutex // guards tx and cached
	tx     *tx
	cached *index.View // the last view read, for Body
}

var _ formats.Mailbox = (*mailbox)(nil)

func (m *mailbox) Name() string { return m.b.Name }

func (m *mailbox) Close() error { return nil }

// view returns the index as it is now, checking what sdbox_read_header and
// sdbox_sync_index check: a dbox-hdr with a mailbox GUID and a UIDVALIDITY.
// Dovecot rebuilds such an index; we say so.
func (m *mailbox) view(op string) (*index.View, error) {
	v, err := m.freshView(op)
	if err == nil {
		m.mu.Lock()
		m.cached = v
		m.mu.Unlock()
	}
	return v, err
}

// lastView returns the last view read, or a new one. Reading the index
// copies its whole state, so Body does not do it for every message; a
// message expunged since is found missing all the same (its file is
// gone), and a UID the view does not know makes it read the index again.
func (m *mailbox) lastView(op string) (*index.View, error) {
	m.mu.Lock()
	v := m.cached
	m.mu.Unlock()
	if v != nil {
		return v, nil
	}
	return m.view(op)
}

func (m *mailbox) freshView(op string) (*index.View, error) {
	v, err := m.ix.View()
	if err != nil {
		return nil, wrap(err, op, m.b.Name, 0, m.b.IndexDir)
	}
	if err := m.checkView(op, v); err != nil {
		return nil, err
	}
	return v, nil
}

// checkView checks what sdbox checks of an index: a dbox-hdr mailbox
// GUID and a UIDVALIDITY (else Dovecot rebuilds it).
func (m *mailbox) checkView(op string, v *index.View) error {
	h, ok := v.DboxHdr()
	switch {
	case !ok || h.MailboxGUID == [16]byte{}:
		return fail(formats.KindTemp, op, m.b.Name, 0, m.b.IndexDir,
			errors.New("sdbox: index has no dbox-hdr mailbox GUID; Dovecot would rebuild it: run `boxsync force-resync` or `doveadm force-resync` on the mailbox"))
	case v.UIDValidity() == 0:
		return fail(formats.KindTemp, op, m.b.Name, 0, m.b.IndexDir,
			errors.New("sdbox: Broken index: missing UIDVALIDITY; run `boxsync force-resync` or `doveadm force-resync` on the mailbox"))
	}
	return nil
}

func (m *mailbox) Status(ctx context.Context) (formats.Status, error) {
	v, err := m.view("status")
	if err != nil {
		return formats.Status{}, err
	}
	h, _ := v.DboxHdr()
	return dboxtx.Status(v, h.MailboxGUID, Driver{}.Caps()), nil
}

// openFile is one message file, open.
type openFile struct {
	f     *os.File
	r     *dbox.Reader
	msg   *dbox.Message
	ctime time.Time
}

func (mf *openFile) Close() error { return mf.f.Close() }

// openMail opens u.<uid> and reads its header and metadata. A missing file
// is an fs.ErrNotExist error; damage a *dbox.CorruptError.
func (m *mailbox) openMail(uid uint32) (*openFile, error) {
	f, path, err := dboxlist.OpenMail(mailFile(m.b, uid), altMailFile(m.b, uid))
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	r, err := dbox.NewReader(f, fi.Size(), path)
	if err == nil {
		var msg *dbox.Message
		if msg, err = r.ReadMessage(r.FirstOffset()); err == nil {
			return &openFile{f: f, r: r, msg: msg, ctime: ctimeOf(fi)}, nil
		}
	}
	f.Close()
	return nil, err
}

func ctimeOf(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec))
	}
	return fi.ModTime()
}

// readErr turns an error reading u.<uid> into the mailbox's error: a
// missing file is "expunged" if the index no longer has the UID, else
// Dovecot's "Unexpectedly lost uid" (sdbox_mail_set_expunged), which makes
// it rebuild.
func (m *mailbox) readErr(op string, uid uint32, err error) error {
	path := mailFile(m.b, uid)
	if errors.Is(err, fs.ErrNotExist) {
		if v, verr := m.ix.View(); verr == nil {
			if _, _, ok := v.Lookup(uid); !ok {
				return fail(formats.KindExpunged, op, m.b.Name, formats.UID(uid), path, errors.New("message was expunged"))
			}
		}
		return fail(formats.KindTemp, op, m.b.Name, formats.UID(uid), path,
			errors.New("sdbox: Unexpectedly lost uid: the index has the message but its file is missing; "+
				"run `boxsync force-resync` or `doveadm force-resync` on the mailbox"))
	}
	return wrap(err, op, m.b.Name, formats.UID(uid), path)
}

// pop3 says which POP3 metadata Dovecot would honour for uid, as
// dbox-hdr says (sdbox_mail_get_special).
func pop3(v *index.View, uid uint32) (uidl, order bool) {
	h, _ := v.DboxHdr()
	return dboxtx.POP3(v, h.Flags, uid)
}

// Messages yields the messages with UID >= from as the index has them now,
// each with the metadata of its file. A message whose file is missing or
// damaged is still yielded, from the index alone (no GUID, sizes -1), so
// that the rest of the mailbox can be read; Body then fails for it with
// the reason.
func (m *mailbox) Messages(ctx context.Context, from formats.UID) iter.Seq2[formats.Message, error] {
	return func(yield func(formats.Message, error) bool) {
		v, err := m.view("list")
		if err != nil {
			yield(formats.Message{}, err)
			return
		}
		dboxtx.List(ctx, v, from, yield, func(_ int, base formats.Message) formats.Message {
			mf, err := m.openMail(uint32(base.UID))
			if err != nil {
				return base
			}
			defer mf.Close()
			uidl, order := pop3(v, uint32(base.UID))
			msg := base
			msg.Saved = mf.ctime
			if err := dbox.FillMessage(&msg, mf.msg, uidl, order); err != nil {
				return base
			}
			return msg
		})
	}
}

// Body streams the bytes of message uid from its file.
func (m *mailbox) Body(ctx context.Context, uid formats.UID, fn func(formats.Body) error) error {
	v, err := m.lastView("read")
	if err != nil {
		return err
	}
	if _, _, ok := v.Lookup(uint32(uid)); !ok {
		if v, err = m.view("read"); err != nil {
			return err
		}
	}
	if _, _, ok := v.Lookup(uint32(uid)); !ok {
		return fail(formats.KindExpunged, "read", m.b.Name, uid, "", errors.New("no such message"))
	}
	mf, err := m.openMail(uint32(uid))
	if err != nil {
		return m.readErr("read", uint32(uid), err)
	}
	defer mf.Close()
	md := &mf.msg.Metadata
	for _, k := range []byte{dbox.MetaReceivedTime, dbox.MetaVirtualSize} {
		if _, _, err := md.Hex(k); err != nil {
			return fail(formats.KindTemp, "read", m.b.Name, uid, mf.f.Name(),
				&dbox.CorruptError{File: mf.f.Name(), Offset: mf.msg.Header.Size + mf.msg.BodyOffset, Reason: err.Error()})
		}
	}
	rc, size, err := mf.r.Body(mf.msg)
	if err != nil {
		return m.readErr("read", uint32(uid), err)
	}
	defer rc.Close()
	return fn(dboxtx.Body(ctx, rc, size))
}

// Begin starts a transaction.
func (m *mailbox) Begin(ctx context.Context) (formats.Tx, error) {
	if err := m.s.l.Writable("begin", m.b.Name); err != nil {
		return nil, err
	}
	v, err := m.view("begin")
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tx != nil {
		return nil, fail(formats.KindInUse, "begin", m.b.Name, 0, "", errors.New("a transaction is already open on this mailbox handle"))
	}
	t := newTx(m, v.NextUID())
	m.tx = t
	return t, nil
}

var _ formats.ExpungeLogger = (*mailbox)(nil)

// ExpungedGUIDs lists the expunges dovecot.index.log still records (see
// formats.ExpungeLogger).
func (m *mailbox) ExpungedGUIDs(ctx context.Context) (map[formats.UID][16]byte, error) {
	out, err := dboxtx.ExpungedGUIDs(m.ix)
	if err != nil || out == nil {
		return nil, wrap(err, "expunge log", m.b.Name, 0, m.b.IndexDir)
	}
	return out, nil
}
