package imapc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// The conformance suite's sample without what IMAP cannot carry: no empty
// body, no NUL, CRLF line ends, no Ext.
var destBodies = []string{
	"From: a@example.com\r\nSubject: one\r\nMessage-ID: <1@x>\r\n\r\nHello\r\nFrom here\r\n>From there\r\n",
	"Subject: two\r\n\r\nLine one\r\nLine two\r\n",
	"Subject: no newline at the end\r\n\r\nlast line",
	"Subject: \xe4\xf6\xfc caf\xc3\xa9\r\n\r\nbinary\xff\r\n",
}

func TestDestination(t *testing.T) {
	ctx := context.Background()
	d, st := newStore(t)
	for _, n := range []string{"INBOX", "Entwürfe/Sub", "Work"} {
		if err := st.Create(ctx, n, formats.GUID{}, 0); err != nil {
			t.Fatalf("Create(%q) = %v", n, err)
		}
	}
	if err := st.Create(ctx, "Work", formats.GUID{}, 0); formats.KindOf(err) != formats.KindExists {
		t.Errorf("Create(existing) = %v, want Exists", err)
	}
	mb, err := st.Open(ctx, "Entwürfe/Sub")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	want := []formats.Message{
		{Flags: formats.FlagSeen, Keywords: []string{"$Forwarded", "Important"}, Received: base},
		{Flags: formats.FlagAnswered | formats.FlagFlagged, Received: base.Add(time.Hour)},
		{Flags: formats.FlagDeleted | formats.FlagDraft, Keywords: []string{"$Junk"}, Received: base.AddDate(-10, 0, 0)},
		{Flags: formats.SystemFlags, Keywords: []string{"work"}, Received: base.Add(time.Second)},
	}
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var predicted []formats.UID
	for i, m := range want {
		m.Size = int64(len(destBodies[i]))
		uid, err := tx.Save(ctx, m, bytes.NewReader([]byte(destBodies[i])))
		if err != nil {
			t.Fatal(err)
		}
		predicted = append(predicted, uid)
	}
	// Nothing is visible before Commit.
	if s, _ := mb.Status(ctx); s.Messages != 0 {
		t.Errorf("%d messages visible before Commit", s.Messages)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Errorf("Rollback after Commit = %v", err)
	}
	got := collect(t, mb, 1)
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.UID != predicted[i] || g.Flags != w.Flags || !formats.EqualKeywords(g.Keywords, w.Keywords) ||
			!g.Received.Equal(w.Received) || g.Size != int64(len(destBodies[i])) || g.GUID == "" || g.ModSeq == 0 {
			t.Errorf("message %d = %+v, want %+v (uid %d, size %d)", i, g, w, predicted[i], len(destBodies[i]))
		}
		if b := readBody(t, mb, g.UID); b != destBodies[i] {
			t.Errorf("uid %d body = %q, want %q", g.UID, b, destBodies[i])
		}
	}
	// Flags, keywords and expunges in one transaction.
	tx, _ = mb.Begin(ctx)
	tx.SetFlags(got[0].UID, formats.FlagFlagged, []string{"new", "$Label2"})
	tx.SetFlags(got[3].UID, 0, nil)
	tx.SetFlags(got[2].UID, 0, nil)
	tx.Expunge(got[1].UID)
	tx.Expunge(got[2].UID)
	tx.SetUIDNext(1000)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	after := collect(t, mb, 1)
	if len(after) != 2 || after[0].UID != got[0].UID || after[1].UID != got[3].UID {
		t.Fatalf("after expunge: %v", after)
	}
	if after[0].Flags != formats.FlagFlagged || fmt.Sprint(after[0].Keywords) != "[$Label2 new]" || after[1].Flags != 0 || after[1].Keywords != nil {
		t.Errorf("flags after SetFlags: %+v", after)
	}
	if after[0].ModSeq <= got[0].ModSeq {
		t.Errorf("modseq did not grow: %d -> %d", got[0].ModSeq, after[0].ModSeq)
	}
	if err := mb.Body(ctx, got[1].UID, func(formats.Body) error { return nil }); formats.KindOf(err) != formats.KindExpunged {
		t.Errorf("Body(expunged) = %v, want Expunged", err)
	}
	// Messages(from) and a Body call inside the loop with one connection.
	one := execSettings(t, d)
	one.Connections = 1
	st1 := openStore(t, one, formats.OpenOptions{})
	mb1, err := st1.Open(ctx, "Entwürfe/Sub")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m, err := range mb1.Messages(ctx, got[3].UID) {
		if err != nil {
			t.Fatal(err)
		}
		if b := readBody(t, mb1, m.UID); b != destBodies[3] {
			t.Errorf("Body inside Messages = %q", b)
		}
		n++
	}
	if n != 1 {
		t.Errorf("Messages(from %d) gave %d messages, want 1", got[3].UID, n)
	}
	// Bodies: the pipelined bulk fetch.
	var order []formats.UID
	err = mb.(*Mailbox).Bodies(ctx, []formats.UID{got[3].UID, got[1].UID, got[0].UID}, func(uid formats.UID, b formats.Body) error {
		data, err := io.ReadAll(b)
		if err == nil && int64(len(data)) != b.Size() {
			err = fmt.Errorf("size %d, read %d", b.Size(), len(data))
		}
		order = append(order, uid)
		return err
	})
	if err != nil || fmt.Sprint(order) != fmt.Sprint([]formats.UID{got[0].UID, got[3].UID}) {
		t.Errorf("Bodies = %v, %v", order, err)
	}
	// An error from the callback stops Bodies and is returned as is.
	stop := errors.New("stop")
	if err := mb.(*Mailbox).Bodies(ctx, []formats.UID{got[0].UID, got[3].UID}, func(formats.UID, formats.Body) error { return stop }); err != stop {
		t.Errorf("Bodies(fn fails) = %v, want the callback's error", err)
	}
	// The connection is still in sync after the callback gave up early.
	if b := readBody(t, mb, got[3].UID); b != destBodies[3] {
		t.Errorf("body after an aborted fetch = %q", b)
	}

	// Subscriptions, delete with children, read-only.
	if err := st.SetSubscribed(ctx, "Work", true); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, "Work/Child", formats.GUID{}, 0); err != nil {
		t.Fatal(err)
	}
	boxes := list(t, st)
	if !boxes["Work"].Subscribed || boxes["Entwürfe"].GUID != (formats.GUID{}) || !boxes["Entwürfe"].NoSelect {
		t.Errorf("tree = %+v", boxes)
	}
	if err := st.Delete(ctx, "Entwürfe"); formats.KindOf(err) != formats.KindNotPossible {
		t.Errorf("Delete(container with children) = %v, want NotPossible", err)
	}
	if err := st.Delete(ctx, "Missing"); formats.KindOf(err) != formats.KindNotFound {
		t.Errorf("Delete(missing) = %v, want NotFound", err)
	}
	if err := st.Delete(ctx, "Entwürfe/Sub"); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if _, err := st.Open(ctx, "Entwürfe/Sub"); formats.KindOf(err) != formats.KindNotFound {
		t.Errorf("Open(deleted) = %v, want NotFound", err)
	}
	ro := openStore(t, execSettings(t, d), formats.OpenOptions{ReadOnly: true})
	if err := ro.Create(ctx, "X", formats.GUID{}, 0); formats.KindOf(err) != formats.KindPerm {
		t.Errorf("read-only Create = %v", err)
	}
	rmb, _ := ro.Open(ctx, "INBOX")
	if _, err := rmb.Begin(ctx); formats.KindOf(err) != formats.KindPerm {
		t.Errorf("read-only Begin = %v", err)
	}
	// What Dovecot itself sees.
	snap := d.Snapshot(t)
	if b := snap.Lookup("Work"); b == nil || !b.Subscribed {
		t.Errorf("doveadm does not see Work subscribed:\n%s", snap)
	}
	if snap.Lookup("Entwürfe/Sub") != nil {
		t.Errorf("doveadm still sees the deleted mailbox:\n%s", snap)
	}
	// Deleting a mailbox with children keeps the children.
	saveOne(t, st, "Work", []byte("Subject: w\r\n\r\nw\r\n"))
	if err := st.Delete(ctx, "Work"); err != nil {
		t.Fatalf("Delete(Work with a child) = %v", err)
	}
	boxes = list(t, st)
	// QUIRK (Dovecot 2.3 Maildir++): LIST may still show the deleted
	// parent without \Noselect (doveadm mailbox status then fails on it
	// too), so only Open is checked.
	if c, ok := boxes["Work/Child"]; !ok || c.NoSelect {
		t.Errorf("Work/Child lost with its parent: %+v", boxes)
	}
	if _, err := st.Open(ctx, "Work"); formats.KindOf(err) != formats.KindNotFound {
		t.Errorf("Open(deleted parent) = %v, want NotFound", err)
	}
	if err := st.Delete(ctx, "Work"); formats.KindOf(err) != formats.KindNotPossible {
		t.Errorf("Delete(container with children) = %v, want NotPossible", err)
	}
}

func collect(t *testing.T, mb formats.Mailbox, from formats.UID) []formats.Message {
	t.Helper()
	var out []formats.Message
	for m, err := range mb.Messages(context.Background(), from) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func readBody(t *testing.T, mb formats.Mailbox, uid formats.UID) string {
	t.Helper()
	var out []byte
	err := mb.Body(context.Background(), uid, func(b formats.Body) error {
		var err error
		out, err = io.ReadAll(b)
		if err == nil && int64(len(out)) != b.Size() {
			err = fmt.Errorf("Size() = %d, read %d", b.Size(), len(out))
		}
		return err
	})
	if err != nil {
		t.Fatalf("Body(%d) = %v", uid, err)
	}
	return string(out)
}

func list(t *testing.T, st formats.Store) map[string]formats.MailboxInfo {
	t.Helper()
	boxes, err := st.Mailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]formats.MailboxInfo{}
	for _, b := range boxes {
		out[b.Name] = b
	}
	return out
}

// A pooled connection that died is replaced, and the read is retried.
func TestReconnect(t *testing.T) {
	ctx := context.Background()
	d, st := newStore(t)
	imapScript(t, d, sourceScript())
	mb, err := st.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	want := collect(t, mb, 1)
	for round := 0; round < 3; round++ {
		st.pool.mu.Lock()
		for _, c := range st.pool.idle {
			c.raw.Conn.Close() // the server or network dropped it
		}
		st.pool.mu.Unlock()
		if got := collect(t, mb, 1); len(got) != len(want) {
			t.Fatalf("after reconnect: %d messages, want %d", len(got), len(want))
		}
		if b := readBody(t, mb, want[0].UID); len(b) == 0 {
			t.Fatal("empty body after reconnect")
		}
		if _, err := st.Mailboxes(ctx); err != nil {
			t.Fatalf("Mailboxes after reconnect = %v", err)
		}
	}
	// A canceled context ends a command without leaking the connection.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := mb.Status(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Status(canceled) = %v", err)
	}
	if _, err := mb.Status(ctx); err != nil {
		t.Errorf("Status after a canceled call = %v", err)
	}
}

// Many connections work in parallel on one store.
func TestParallel(t *testing.T) {
	ctx := context.Background()
	d, st := newStore(t)
	imapScript(t, d, sourceScript())
	mb, err := st.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	want := collect(t, mb, 1)
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			for _, m := range want {
				err := mb.Body(ctx, m.UID, func(b formats.Body) error {
					n, err := io.Copy(io.Discard, b)
					if err == nil && n != m.Size {
						err = fmt.Errorf("uid %d: %d bytes, want %d", m.UID, n, m.Size)
					}
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	st.pool.mu.Lock()
	n := len(st.pool.idle)
	st.pool.mu.Unlock()
	if n > st.s.Connections {
		t.Errorf("%d idle connections, limit %d", n, st.s.Connections)
	}
}
