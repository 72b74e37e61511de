package convert_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/mem"
)

var storeSeq atomic.Int64

func newStore(t *testing.T) formats.Store {
	t.Helper()
	loc := formats.Location{Driver: "mem", Path: fmt.Sprintf("/backup-test/%d", storeSeq.Add(1))}
	s, err := mem.Driver{}.Open(context.Background(), loc, formats.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dump(t *testing.T, s formats.Store) string {
	t.Helper()
	d, err := formatstest.Dump(context.Background(), s, formatstest.FieldsBackup)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// populate fills s with a random tree: nested and non-ASCII names, a
// container-only parent, random flags, keywords and bodies.
func populate(t *testing.T, rng *rand.Rand, s formats.Store) {
	t.Helper()
	ctx := context.Background()
	names := []string{"INBOX", "Sent", "Entwürfe", "日本語", "R&D", "Lists/dovecot", "Work/Projects 2024", "Work"}
	kws := []string{"$Forwarded", "$Junk", "Important", "work", "$Label1"}
	for _, name := range names[:2+rng.IntN(len(names)-1)] {
		if err := s.Create(ctx, name, formats.NewGUID(), 1000+rng.Uint32N(1e6)); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(2) == 0 {
			s.SetSubscribed(ctx, name, true)
		}
		mb, err := s.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		tx, _ := mb.Begin(ctx)
		uid := formats.UID(0)
		for i := rng.IntN(30); i > 0; i-- {
			uid += formats.UID(1 + rng.IntN(3))
			var k []string
			for _, kw := range kws {
				if rng.IntN(4) == 0 {
					k = append(k, kw)
				}
			}
			body := fmt.Appendf(nil, "Subject: %s %d\r\n\r\n%x\n", name, uid, rng.Uint64())
			m := formats.Message{UID: uid, GUID: fmt.Sprintf("%032x", rng.Uint64()), Flags: formats.Flags(rng.IntN(32)),
				Keywords: k, Received: time.Unix(int64(1e9+rng.IntN(1e8)), 0), Size: int64(len(body))}
			if _, err := tx.Save(ctx, m, bytes.NewReader(body)); err != nil {
				t.Fatal(err)
			}
		}
		if rng.IntN(3) == 0 {
			tx.SetUIDNext(uid + 5)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		mb.Close()
	}
}

// mutate makes random changes a user might make to a backup destination.
func mutate(t *testing.T, rng *rand.Rand, s formats.Store) {
	t.Helper()
	ctx := context.Background()
	boxes, _ := s.Mailboxes(ctx)
	for _, b := range boxes {
		if b.NoSelect {
			continue
		}
		switch rng.IntN(6) {
		case 0:
			s.Delete(ctx, b.Name)
			continue
		case 1:
			s.SetSubscribed(ctx, b.Name, !b.Subscribed)
		}
		mb, err := s.Open(ctx, b.Name)
		if err != nil {
			t.Fatal(err)
		}
		tx, _ := mb.Begin(ctx)
		for m, err := range mb.Messages(ctx, 1) {
			if err != nil {
				t.Fatal(err)
			}
			switch rng.IntN(5) {
			case 0:
				tx.Expunge(m.UID)
			case 1:
				tx.SetFlags(m.UID, formats.Flags(rng.IntN(32)), []string{"dest-only"})
			}
		}
		if rng.IntN(3) == 0 {
			tx.Save(ctx, formats.Message{Received: time.Unix(5, 0)}, bytes.NewReader([]byte("Subject: local\n\n")))
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		mb.Close()
	}
	if rng.IntN(2) == 0 {
		s.Create(ctx, "DestOnly/Box", formats.GUID{}, 0)
	}
}

func backup(t *testing.T, src, dst formats.Store, opt convert.Options) convert.Result {
	t.Helper()
	res, err := convert.Run(context.Background(), src, dst, opt)
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("Run() errors: %v", res.Errors)
	}
	return res
}

// TestBackupConverges is the round-trip property: for random sources and
// random destination states, a backup makes the destination's dump equal
// the source's, leaves the source untouched, and a second backup changes
// nothing.
func TestBackupConverges(t *testing.T) {
	seed := testSeed()
	t.Logf("seed %d (BOXSYNC_SEED=%d to replay)", seed, seed)
	for i := 0; i < 40; i++ {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		src, dst := newStore(t), newStore(t)
		populate(t, rng, src)
		before := dump(t, src)
		if i%2 == 1 {
			backup(t, src, dst, convert.Options{})
			mutate(t, rng, dst)
		}
		backup(t, src, dst, convert.Options{})
		if d := formatstest.Diff(before, dump(t, src)); d != "" {
			t.Fatalf("seed %d/%d: backup changed the source:\n%s", seed, i, d)
		}
		if d := formatstest.Diff(before, dump(t, dst)); d != "" {
			t.Fatalf("seed %d/%d: destination differs from source:\n%s", seed, i, d)
		}
		res := backup(t, src, dst, convert.Options{})
		if res.Messages.Saved+res.Messages.Expunged+res.Messages.FlagsChanged+res.Mailboxes.Created+res.Mailboxes.Deleted != 0 {
			t.Fatalf("seed %d/%d: second backup was not a no-op: %+v", seed, i, res)
		}
	}
}

func TestBackupRevertsDestinationChanges(t *testing.T) {
	ctx := context.Background()
	src, dst := newStore(t), newStore(t)
	populate(t, rand.New(rand.NewPCG(1, 2)), src)
	backup(t, src, dst, convert.Options{})
	// A message expunged on the destination sits below its UIDNEXT: the
	// UID can't be reused, so the mailbox is copied again (as dsync).
	mb, _ := dst.Open(ctx, "INBOX")
	var first formats.UID
	for m := range mb.Messages(ctx, 1) {
		first = m.UID
		break
	}
	if first == 0 {
		t.Fatal("the seeded INBOX is empty: the test would prove nothing")
	}
	tx, _ := mb.Begin(ctx)
	tx.Expunge(first)
	tx.Commit(ctx)
	var log bytes.Buffer
	res := backup(t, src, dst, convert.Options{Log: &log})
	if res.Mailboxes.Created != 1 || !bytes.Contains(log.Bytes(), []byte("is missing locally")) {
		t.Errorf("expected INBOX to be recreated, got %+v, log %q", res, log.String())
	}
	if d := formatstest.Diff(dump(t, src), dump(t, dst)); d != "" {
		t.Fatalf("destination differs:\n%s", d)
	}
}

func TestBackupMasks(t *testing.T) {
	src, dst := newStore(t), newStore(t)
	populate(t, rand.New(rand.NewPCG(7, 7)), src)
	backup(t, src, dst, convert.Options{Exclude: []string{"Work*", "R&D"}})
	boxes, _ := dst.Mailboxes(context.Background())
	for _, b := range boxes {
		if b.Name == "R&D" || (len(b.Name) >= 4 && b.Name[:4] == "Work" && !b.NoSelect) {
			t.Errorf("excluded mailbox %q was copied", b.Name)
		}
	}
}

func TestMatchMask(t *testing.T) {
	tests := []struct {
		mask, name string
		want       bool
	}{
		{"Work*", "Work/Projects", true},
		{"Work%", "Work/Projects", false},
		{"Work/%", "Work/Projects", true},
		{"inbox", "INBOX", true},
		{"Entw?rfe", "Entwürfe", true},
		{"*", "anything/at/all", true},
		{"Sent", "Sent Items", false},
	}
	for _, tc := range tests {
		if got := convert.MatchMask(tc.mask, tc.name); got != tc.want {
			t.Errorf("MatchMask(%q, %q) = %v, want %v", tc.mask, tc.name, got, tc.want)
		}
	}
}

// failingStore makes Body fail for chosen UIDs, like an unreadable file.
type failingStore struct {
	formats.Store
	fail map[formats.UID]bool
}

func (s failingStore) Open(ctx context.Context, name string) (formats.Mailbox, error) {
	mb, err := s.Store.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return failingMailbox{mb, s.fail}, nil
}

type failingMailbox struct {
	formats.Mailbox
	fail map[formats.UID]bool
}

func (m failingMailbox) Body(ctx context.Context, uid formats.UID, fn func(formats.Body) error) error {
	if m.fail[uid] {
		return &formats.Error{Kind: formats.KindPerm, Op: "test: open", Mailbox: m.Name(), UID: uid, Path: "/x/cur/file", Err: errors.New("permission denied")}
	}
	return m.Mailbox.Body(ctx, uid, fn)
}

func TestBackupUnreadableMessage(t *testing.T) {
	ctx := context.Background()
	src, dst := newStore(t), newStore(t)
	src.Create(ctx, "INBOX", formats.NewGUID(), 42)
	mb, _ := src.Open(ctx, "INBOX")
	tx, _ := mb.Begin(ctx)
	for uid := formats.UID(1); uid <= 5; uid++ {
		tx.Save(ctx, formats.Message{UID: uid}, bytes.NewReader(fmt.Appendf(nil, "Subject: %d\n\n", uid)))
	}
	tx.Commit(ctx)
	res, err := convert.Run(ctx, failingStore{src, map[formats.UID]bool{3: true}}, dst, convert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 1 || formats.KindOf(res.Errors[0]) != formats.KindPerm {
		t.Fatalf("errors = %v, want one Perm error", res.Errors)
	}
	msg := res.Errors[0].Error()
	for _, want := range []string{`"INBOX"`, "uid 3", "/x/cur/file"} {
		if !bytes.Contains([]byte(msg), []byte(want)) {
			t.Errorf("error %q does not name %s", msg, want)
		}
	}
	if res.Messages.Saved != 4 {
		t.Errorf("saved %d, want the 4 readable messages", res.Messages.Saved)
	}
	// Once the file is readable again, a rerun completes the mirror.
	backup(t, src, dst, convert.Options{})
	if d := formatstest.Diff(dump(t, src), dump(t, dst)); d != "" {
		t.Fatalf("after rerun:\n%s", d)
	}
}

// cancellingStore cancels the run's context after n bodies were read.
type cancellingStore struct {
	formats.Store
	n      *atomic.Int64
	cancel context.CancelFunc
}

func (s cancellingStore) Open(ctx context.Context, name string) (formats.Mailbox, error) {
	mb, err := s.Store.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return cancellingMailbox{mb, s}, nil
}

type cancellingMailbox struct {
	formats.Mailbox
	s cancellingStore
}

func (m cancellingMailbox) Body(ctx context.Context, uid formats.UID, fn func(formats.Body) error) error {
	if m.s.n.Add(-1) < 0 {
		m.s.cancel()
		return ctx.Err()
	}
	return m.Mailbox.Body(ctx, uid, fn)
}

func TestBackupInterruptedThenRerun(t *testing.T) {
	for _, after := range []int64{0, 1, 5, 17, 40} {
		src, dst := newStore(t), newStore(t)
		populate(t, rand.New(rand.NewPCG(3, uint64(after))), src)
		ctx, cancel := context.WithCancel(context.Background())
		n := &atomic.Int64{}
		n.Store(after)
		_, err := convert.Run(ctx, cancellingStore{src, n, cancel}, dst, convert.Options{CommitEvery: 3})
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: %v", err)
		}
		backup(t, src, dst, convert.Options{})
		if d := formatstest.Diff(dump(t, src), dump(t, dst)); d != "" {
			t.Fatalf("after interrupt at %d and rerun:\n%s", after, d)
		}
	}
}

var _ = io.EOF

// hidingStore lists its mailboxes without one of them, as a listing taken
// just before someone else created it would.
type hidingStore struct {
	formats.Store
	hide string
}

func (h hidingStore) Mailboxes(ctx context.Context) ([]formats.MailboxInfo, error) {
	boxes, err := h.Store.Mailboxes(ctx)
	var out []formats.MailboxInfo
	for _, b := range boxes {
		if b.Name != h.hide {
			out = append(out, b)
		}
	}
	return out, err
}

// A destination mailbox that appears between the listing and the create
// (a Dovecot session, a concurrent CREATE on an IMAP server) is synced
// into, not a failure: the result is the mirror, reported as a desync
// (exit 2, run again), as dsync reports changes during a sync.
func TestBackupMailboxAppeared(t *testing.T) {
	ctx := context.Background()
	src, raw := newStore(t), newStore(t)
	populate(t, rand.New(rand.NewPCG(7, 7)), src)
	if err := raw.Create(ctx, "Sent", formats.NewGUID(), 42); err != nil {
		t.Fatal(err)
	}
	res, err := convert.Run(ctx, src, hidingStore{raw, "Sent"}, convert.Options{Mode: convert.Backup})
	if err != nil || len(res.Errors) > 0 {
		t.Fatalf("Run = %v, errors %v", err, res.Errors)
	}
	if res.Desync == "" {
		t.Errorf("no desync reported for a mailbox that appeared during the run")
	}
	if a, b := dump(t, src), dump(t, raw); a != b {
		t.Errorf("destination is not a mirror:\n%s", formatstest.Diff(a, b))
	}
}
