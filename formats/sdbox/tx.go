package sdbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxlist"
	"github.com/boxsync/boxsync/formats/internal/dotlock"
	"github.com/boxsync/boxsync/index"
)

// tx is an sdbox transaction. Saved messages wait in dbox-Mails as
// .temp.* files, which Dovecot ignores (and deletes after 36 hours);
// nothing is visible before Commit.
type tx struct {
	m *mailbox

	// Owned by the caller's goroutine, like the contract says.
	done    bool
	next    uint32 // the next UID Save hands out
	saves   []saveRec
	flags   map[uint32]flagSet
	expunge map[uint32]bool
	raise   uint32
	hms     uint64 // RaiseHighestModSeq's value
	buf     []byte
	w       dbox.MessageWriter
}

type saveRec struct {
	tmp         string // file name in dbox-Mails
	final       string // u.<uid> once named, for cleanup
	uid         uint32
	flags       formats.Flags
	keywords    []string
	modseq      formats.ModSeq
	uidl, order bool // has POP3 metadata
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

// tempCount makes temporary file names unique within the process.
var tempCount atomic.Uint64

// tempName returns a new temporary file name as dbox_generate_tmp_filename
// makes it: ".temp.<secs>.P<pid>Q<count>M<usecs>.<host>".
func tempName() string {
	now := time.Now()
	return fmt.Sprintf("%s%d.P%dQ%dM%d.%s", dboxlist.TempPrefix, now.Unix(), os.Getpid(),
		tempCount.Add(1)-1, now.Nanosecond()/1000, dotlock.Hostname())
}

// Save writes the message to a new .temp.* file in dbox-Mails — the file
// header line, the message header, the body (64 KiB at a time, counting
// its size and virtual size) and the metadata block — and plans it for
// Commit.
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
		name = tempName()
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
	err := t.write(ctx, f, msg, guid, received, r)
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
	uid := uint32(msg.UID)
	if uid == 0 || uid < t.next {
		uid = t.next
	}
	if uid >= 0xffffffff {
		os.Remove(path)
		return 0, t.failf("save", msg.UID, formats.KindLimit, "UIDs exhausted")
	}
	t.next = uid + 1
	uidl, order := dbox.HasPOP3(msg)
	t.saves = append(t.saves, saveRec{
		tmp: name, uid: uid, flags: msg.Flags & formats.SystemFlags, keywords: kws, modseq: msg.ModSeq,
		uidl: uidl, order: order,
	})
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
	if t.buf == nil {
		t.buf = make([]byte, 64<<10)
	}
	if err := dbox.CopyBody(ctx, &t.w, r, t.buf); err != nil {
		return err
	}
	if msg.Size > 0 && t.w.Size() != msg.Size {
		return t.failf("save", msg.UID, formats.KindInvalidData, "body has %d bytes, expected %d", t.w.Size(), msg.Size)
	}
	_, err = t.w.Finish(dbox.SaveMetadata(msg, guid, received, t.w.VSize(), ""))
	return err
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

// Expunge removes a message at Commit.
func (t *tx) Expunge(uid formats.UID) error {
	if t.done {
		return t.failf("expunge", uid, formats.KindParams, "transaction is finished")
	}
	for i := range t.saves {
		if t.saves[i].uid == uint32(uid) {
			os.Remove(filepath.Join(t.m.b.MailDir, t.saves[i].tmp))
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

// Rollback removes the saved .temp.* files.
func (t *tx) Rollback() error {
	if t.done {
		return nil
	}
	t.finish()
	var errs []error
	for _, s := range t.saves {
		if err := os.Remove(filepath.Join(t.m.b.MailDir, s.tmp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, wrap(err, "rollback", t.m.b.Name, formats.UID(s.uid), ""))
		}
	}
	return errors.Join(errs...)
}

func (t *tx) finish() {
	t.done = true
	t.m.mu.Lock()
	if t.m.tx == t {
		t.m.tx = nil
	}
	t.m.mu.Unlock()
}
