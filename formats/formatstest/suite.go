package formatstest

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

// Harness tells the suite how to make stores of one driver.
type Harness struct {
	Driver formats.Driver
	// NewLocation returns the location of a fresh, not yet existing store.
	NewLocation func(t *testing.T) formats.Location
}

// Bodies the suite saves: every shape a driver must keep byte for byte.
var Bodies = map[string][]byte{
	"lf":         []byte("From: a@example.com\nSubject: LF\nMessage-ID: <lf@x>\n\nHello\nFrom here\n>From there\n"),
	"crlf":       []byte("From: b@example.com\r\nSubject: CRLF\r\n\r\nLine one\r\nLine two\r\n"),
	"notrailing": []byte("Subject: no newline at the end\n\nlast line"),
	"empty":      {},
	"8bit":       []byte("Subject: \xe4\xf6\xfc caf\xc3\xa9\n\n\x00\x01binary\xff\n"),
	"mixed":      []byte("Subject: mixed\r\n\nCRLF and\nLF\r\n"),
	// headeronly stands in for empty where a store can't save an empty
	// message (Caps.EmptyMessages).
	"headeronly": []byte("Subject: only a header\n"),
}

// wireForm is body as an IMAP server returns it: bare LF as CRLF, NUL as
// 0x80 (Dovecot's imap). Stores without Caps.ExactBytes must return that.
func wireForm(body []byte) []byte {
	out := make([]byte, 0, len(body)+len(body)/16)
	for i, c := range body {
		switch {
		case c == '\n' && (i == 0 || body[i-1] != '\r'):
			out = append(out, '\r', '\n')
		case c == 0:
			out = append(out, 0x80)
		default:
			out = append(out, c)
		}
	}
	return out
}

// want is the body the store must give back for body.
func (e *env) want(body []byte) []byte {
	if e.caps.ExactBytes {
		return body
	}
	return wireForm(body)
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	caps := h.Driver.Caps()
	tests := []struct {
		name string
		need func(formats.Caps) string // "" or the missing Caps field
		fn   func(t *testing.T, e *env)
	}{
		{"Tree", nil, testTree},
		{"CreateExisting", nil, testCreateExisting},
		{"OpenMissing", nil, testOpenMissing},
		{"InvalidNames", nil, testInvalidNames},
		{"SaveKeepsEverything", nil, testSave},
		{"NothingVisibleBeforeCommit", nil, testNothingBeforeCommit},
		{"Rollback", nil, testRollback},
		{"AssignUIDs", nil, testAssignUIDs},
		{"KeepUIDs", needCap("SaveUIDs", func(c formats.Caps) bool { return c.SaveUIDs }), testKeepUIDs},
		{"SetFlags", nil, testSetFlags},
		{"Expunge", nil, testExpunge},
		{"SetUIDNext", needCap("SetUIDNext", func(c formats.Caps) bool { return c.SetUIDNext }), testSetUIDNext},
		{"SizeMismatch", nil, testSizeMismatch},
		{"MessagesFrom", nil, testMessagesFrom},
		{"DeleteMailbox", nil, testDelete},
		{"Subscriptions", nil, testSubscriptions},
		{"Rename", nil, testRename},
		{"MailboxLog", nil, testMailboxLog},
		{"ReadOnly", nil, testReadOnly},
		{"ManyMessages", nil, testMany},
		{"ManyKeywords", needCap("Keywords", func(c formats.Caps) bool { return c.Keywords }), testManyKeywords},
		{"SaveRecent", needCap("SaveRecent", func(c formats.Caps) bool { return c.SaveRecent }), testSaveRecent},
		{"RaiseFirstRecentUID", nil, testRaiseFirstRecent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.need != nil {
				if missing := tc.need(caps); missing != "" {
					t.Skipf("driver %s lacks Caps.%s", h.Driver.Name(), missing)
				}
			}
			e := newEnv(t, h)
			tc.fn(t, e)
			e.check(t)
		})
	}
}

func needCap(name string, has func(formats.Caps) bool) func(formats.Caps) string {
	return func(c formats.Caps) string {
		if has(c) {
			return ""
		}
		return name
	}
}

type env struct {
	h     Harness
	loc   formats.Location
	store formats.Store
	caps  formats.Caps
	ctx   context.Context
}

func newEnv(t *testing.T, h Harness) *env {
	e := &env{h: h, loc: h.NewLocation(t), caps: h.Driver.Caps(), ctx: context.Background()}
	e.store = e.open(t, formats.OpenOptions{Create: true})
	return e
}

func (e *env) open(t *testing.T, opt formats.OpenOptions) formats.Store {
	t.Helper()
	s, err := e.h.Driver.Open(e.ctx, e.loc, opt)
	if err != nil {
		t.Fatalf("Open(%s) = %v", e.loc, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// reopen closes the store and opens it again, so a test sees what was
// persisted rather than what a handle cached.
func (e *env) reopen(t *testing.T) {
	t.Helper()
	if err := e.store.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	e.store = e.open(t, formats.OpenOptions{})
}

func (e *env) check(t *testing.T) {
	t.Helper()
	if c, ok := e.store.(formats.Checker); ok {
		if err := c.Check(e.ctx); err != nil {
			t.Errorf("Check() after test = %v", err)
		}
	}
}

func (e *env) create(t *testing.T, name string) formats.GUID {
	t.Helper()
	g := formats.NewGUID()
	if err := e.store.Create(e.ctx, name, g, 1234567890); err != nil {
		t.Fatalf("Create(%q) = %v", name, err)
	}
	return g
}

func (e *env) mailbox(t *testing.T, name string) formats.Mailbox {
	t.Helper()
	mb, err := e.store.Open(e.ctx, name)
	if err != nil {
		t.Fatalf("Open(%q) = %v", name, err)
	}
	t.Cleanup(func() { mb.Close() })
	return mb
}

func (e *env) begin(t *testing.T, mb formats.Mailbox) formats.Tx {
	t.Helper()
	tx, err := mb.Begin(e.ctx)
	if err != nil {
		t.Fatalf("Begin(%q) = %v", mb.Name(), err)
	}
	t.Cleanup(func() { tx.Rollback() })
	return tx
}

func (e *env) commit(t *testing.T, tx formats.Tx) {
	t.Helper()
	if err := tx.Commit(e.ctx); err != nil {
		t.Fatalf("Commit() = %v", err)
	}
}

func (e *env) save(t *testing.T, tx formats.Tx, m formats.Message, body []byte) formats.UID {
	t.Helper()
	m.Size = int64(len(body))
	uid, err := tx.Save(e.ctx, m, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("Save(uid %d) = %v", m.UID, err)
	}
	return uid
}

func (e *env) messages(t *testing.T, mb formats.Mailbox) []formats.Message {
	t.Helper()
	var out []formats.Message
	for m, err := range mb.Messages(e.ctx, 1) {
		if err != nil {
			t.Fatalf("Messages(%q) = %v", mb.Name(), err)
		}
		out = append(out, m)
	}
	return out
}

func (e *env) body(t *testing.T, mb formats.Mailbox, uid formats.UID) []byte {
	t.Helper()
	var data []byte
	err := mb.Body(e.ctx, uid, func(b formats.Body) error {
		var err error
		data, err = io.ReadAll(b)
		if err == nil && b.Size() != int64(len(data)) {
			err = fmt.Errorf("Size() = %d, read %d bytes", b.Size(), len(data))
		}
		return err
	})
	if err != nil {
		t.Fatalf("Body(%q, %d) = %v", mb.Name(), uid, err)
	}
	return data
}

func (e *env) status(t *testing.T, mb formats.Mailbox) formats.Status {
	t.Helper()
	st, err := mb.Status(e.ctx)
	if err != nil {
		t.Fatalf("Status(%q) = %v", mb.Name(), err)
	}
	return st
}

func (e *env) list(t *testing.T) map[string]formats.MailboxInfo {
	t.Helper()
	boxes, err := e.store.Mailboxes(e.ctx)
	if err != nil {
		t.Fatalf("Mailboxes() = %v", err)
	}
	out := map[string]formats.MailboxInfo{}
	for i, b := range boxes {
		if i > 0 && boxes[i-1].Name >= b.Name {
			t.Errorf("Mailboxes() not sorted: %q before %q", boxes[i-1].Name, b.Name)
		}
		out[b.Name] = b
	}
	return out
}

func wantKind(t *testing.T, what string, err error, k formats.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s = nil, want a %s error", what, k)
	}
	if got := formats.KindOf(err); got != k {
		t.Fatalf("%s = %v (kind %s), want kind %s", what, err, got, k)
	}
}

// Names the suite creates: nested, non-ASCII, spaces, '&' (the mUTF-7
// escape character), and a parent that exists only as a container.
var treeNames = []string{"INBOX", "Entwürfe", "日本語", "R&D", "With Space", "Work/Projects 2024", "Lists/dovecot/announce"}

func testTree(t *testing.T, e *env) {
	guids := map[string]formats.GUID{}
	for _, n := range treeNames {
		guids[n] = e.create(t, n)
	}
	e.reopen(t)
	got := e.list(t)
	for _, n := range treeNames {
		info, ok := got[n]
		if !ok {
			t.Errorf("Mailboxes() lacks %q (have %v)", n, keys(got))
			continue
		}
		if info.NoSelect {
			t.Errorf("%q listed as NoSelect", n)
		}
		st := e.status(t, e.mailbox(t, n))
		if !e.caps.MailboxIdentity {
			// The store chose the identity: it must be there and
			// the same in the listing and the status.
			if info.GUID.IsZero() || st.GUID != info.GUID || st.UIDValidity == 0 || st.UIDNext != 1 || st.Messages != 0 {
				t.Errorf("%q: listed GUID %s, Status %+v; want the same nonzero GUID, a UIDVALIDITY, UIDNEXT 1, empty", n, info.GUID, st)
			}
			continue
		}
		if info.GUID != guids[n] {
			t.Errorf("%q GUID = %s, want %s", n, info.GUID, guids[n])
		}
		if st.GUID != guids[n] || st.UIDValidity != 1234567890 || st.UIDNext != 1 || st.Messages != 0 {
			t.Errorf("Status(%q) = %+v, want GUID %s UIDVALIDITY 1234567890 UIDNEXT 1, empty", n, st, guids[n])
		}
	}
	for _, c := range []string{"Work", "Lists", "Lists/dovecot"} {
		if info, ok := got[c]; !ok || !info.NoSelect || !info.GUID.IsZero() {
			t.Errorf("container %q = %+v (listed %v), want NoSelect with no GUID", c, info, ok)
		}
	}
	if e.caps.MailboxIsFile {
		// A container is a directory and can't become a mailbox file.
		wantKind(t, `Create("Work") over a container`, e.store.Create(e.ctx, "Work", formats.GUID{}, 0), formats.KindNotPossible)
		return
	}
	// A container can become a mailbox.
	e.create(t, "Work")
	if info := e.list(t)["Work"]; info.NoSelect {
		t.Errorf("Work still NoSelect after Create")
	}
}

func keys(m map[string]formats.MailboxInfo) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func testCreateExisting(t *testing.T, e *env) {
	e.create(t, "Box")
	wantKind(t, `Create("Box") again`, e.store.Create(e.ctx, "Box", formats.GUID{}, 0), formats.KindExists)
}

func testOpenMissing(t *testing.T, e *env) {
	_, err := e.store.Open(e.ctx, "Nope")
	wantKind(t, `Open("Nope")`, err, formats.KindNotFound)
	if !errors.Is(err, formats.ErrNotFound) {
		t.Errorf("errors.Is(%v, ErrNotFound) = false", err)
	}
}

func testInvalidNames(t *testing.T, e *env) {
	for _, n := range []string{"", "../x", "a//b", "a/../../b", "/abs", "x/.", "tab\there"} {
		wantKind(t, fmt.Sprintf("Create(%q)", n), e.store.Create(e.ctx, n, formats.GUID{}, 0), formats.KindParams)
		_, err := e.store.Open(e.ctx, n)
		wantKind(t, fmt.Sprintf("Open(%q)", n), err, formats.KindParams)
	}
}

// sample is the message set most tests save: UIDs with gaps, every system
// flag, keywords, and every body shape.
func sample() []formats.Message {
	base := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	return []formats.Message{
		{UID: 1, Flags: formats.FlagSeen, Keywords: []string{"$Forwarded", "Important"}, Received: base},
		{UID: 2, Flags: formats.FlagAnswered | formats.FlagFlagged, Received: base.Add(time.Hour)},
		{UID: 5, Flags: formats.FlagDeleted | formats.FlagDraft, Keywords: []string{"$Junk"}, Received: base.Add(48 * time.Hour)},
		{UID: 6, Received: base.AddDate(-10, 0, 0)},
		{UID: 9, Flags: formats.SystemFlags, Keywords: []string{"work", "$Label1"}, Received: base.AddDate(1, 0, 0)},
		{UID: 10, Received: base.Add(time.Second)},
	}
}

var sampleBodies = []string{"lf", "crlf", "notrailing", "empty", "8bit", "mixed"}

// sampleBody is the body of sample message i for this store.
func (e *env) sampleBody(i int) (name string, body []byte) {
	name = sampleBodies[i]
	if name == "empty" && !e.caps.EmptyMessages {
		name = "headeronly"
	}
	return name, Bodies[name]
}

func (e *env) saveSample(t *testing.T, name string) []formats.Message {
	t.Helper()
	mb := e.mailbox(t, name)
	tx := e.begin(t, mb)
	msgs := sample()
	for i := range msgs {
		// 32 hex digits, as Dovecot generates them: every format can keep it.
		msgs[i].GUID = fmt.Sprintf("%08x%024x", len(name), i+1)
		msgs[i].Ext = map[byte]string{'P': fmt.Sprintf("uidl%d", i), 'O': fmt.Sprint(i + 1)}
		_, body := e.sampleBody(i)
		e.save(t, tx, msgs[i], body)
	}
	e.commit(t, tx)
	return msgs
}

func (e *env) checkSample(t *testing.T, mb formats.Mailbox, want []formats.Message) {
	t.Helper()
	got := e.messages(t, mb)
	if len(got) != len(want) {
		t.Fatalf("Messages(%q) has %d messages, want %d", mb.Name(), len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		name, body := e.sampleBody(i)
		body = e.want(body)
		if e.caps.SaveUIDs && g.UID != w.UID {
			t.Errorf("message %d: UID = %d, want %d", i, g.UID, w.UID)
		}
		if e.caps.SaveGUIDs && g.GUID != w.GUID {
			t.Errorf("uid %d: GUID = %q, want %q", g.UID, g.GUID, w.GUID)
		}
		if g.Flags != w.Flags {
			t.Errorf("uid %d: Flags = %s, want %s", g.UID, g.Flags, w.Flags)
		}
		if e.caps.Keywords && !formats.EqualKeywords(g.Keywords, formats.NormalizeKeywords(append([]string(nil), w.Keywords...))) {
			t.Errorf("uid %d: Keywords = %q, want %q", g.UID, g.Keywords, w.Keywords)
		}
		if !g.Received.Equal(w.Received) {
			t.Errorf("uid %d: Received = %s, want %s", g.UID, g.Received, w.Received)
		}
		if g.Size != int64(len(body)) {
			t.Errorf("uid %d: Size = %d, want %d", g.UID, g.Size, len(body))
		}
		if g.VSize >= 0 && g.VSize != formats.VSize(body) {
			t.Errorf("uid %d: VSize = %d, want %d", g.UID, g.VSize, formats.VSize(body))
		}
		if e.caps.POP3 && (g.Ext['P'] != w.Ext['P'] || g.Ext['O'] != w.Ext['O']) {
			t.Errorf("uid %d: Ext = %q, want POP3 fields %q", g.UID, g.Ext, w.Ext)
		}
		if data := e.body(t, mb, g.UID); !bytes.Equal(data, body) {
			t.Errorf("uid %d (%s): body = %q, want %q", g.UID, name, data, body)
		}
	}
}

func testSave(t *testing.T, e *env) {
	for _, n := range []string{"INBOX", "Entwürfe/Sub"} {
		e.create(t, n)
		want := e.saveSample(t, n)
		e.checkSample(t, e.mailbox(t, n), want)
		e.reopen(t)
		mb := e.mailbox(t, n)
		e.checkSample(t, mb, want)
		st := e.status(t, mb)
		if e.caps.SaveUIDs && st.UIDNext != 11 {
			t.Errorf("Status(%q).UIDNext = %d, want 11", n, st.UIDNext)
		}
		if st.Messages != len(want) {
			t.Errorf("Status(%q).Messages = %d, want %d", n, st.Messages, len(want))
		}
	}
}

func testNothingBeforeCommit(t *testing.T, e *env) {
	e.create(t, "INBOX")
	mb := e.mailbox(t, "INBOX")
	tx := e.begin(t, mb)
	e.save(t, tx, formats.Message{UID: 3}, Bodies["lf"])
	other := e.open(t, formats.OpenOptions{})
	omb, err := other.Open(e.ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer omb.Close()
	if msgs := e.messages(t, omb); len(msgs) != 0 {
		t.Errorf("before Commit another handle sees %d messages", len(msgs))
	}
	e.commit(t, tx)
	if msgs := e.messages(t, e.mailbox(t, "INBOX")); len(msgs) != 1 {
		t.Errorf("after Commit: %d messages, want 1", len(msgs))
	}
}

func testRollback(t *testing.T, e *env) {
	e.create(t, "INBOX")
	mb := e.mailbox(t, "INBOX")
	tx := e.begin(t, mb)
	e.save(t, tx, formats.Message{UID: 1}, Bodies["lf"])
	if err := tx.Rollback(); err != nil {
		t.Fatalf("Rollback() = %v", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatalf("second Rollback() = %v", err)
	}
	e.reopen(t)
	mb = e.mailbox(t, "INBOX")
	if msgs := e.messages(t, mb); len(msgs) != 0 {
		t.Fatalf("after Rollback: %d messages", len(msgs))
	}
	tx = e.begin(t, mb)
	uid := e.save(t, tx, formats.Message{}, Bodies["crlf"])
	e.commit(t, tx)
	if err := tx.Rollback(); err != nil {
		t.Errorf("Rollback() after Commit = %v", err)
	}
	if got := e.body(t, mb, uid); !bytes.Equal(got, Bodies["crlf"]) {
		t.Errorf("body after rollback+save = %q", got)
	}
}

func testAssignUIDs(t *testing.T, e *env) {
	e.create(t, "INBOX")
	mb := e.mailbox(t, "INBOX")
	tx := e.begin(t, mb)
	var uids []formats.UID
	for i := 0; i < 3; i++ {
		uids = append(uids, e.save(t, tx, formats.Message{}, Bodies["lf"]))
	}
	e.commit(t, tx)
	msgs := e.messages(t, mb)
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3", len(msgs))
	}
	for i, m := range msgs {
		if i > 0 && m.UID <= msgs[i-1].UID {
			t.Errorf("UIDs not ascending: %d after %d", m.UID, msgs[i-1].UID)
		}
		if m.UID != uids[i] {
			t.Errorf("Save returned UID %d, message has %d", uids[i], m.UID)
		}
		if e.caps.GUIDs && m.GUID == "" {
			t.Errorf("uid %d has no GUID", m.UID)
		}
	}
	if st := e.status(t, mb); st.UIDNext <= msgs[2].UID {
		t.Errorf("UIDNEXT %d <= last UID %d", st.UIDNext, msgs[2].UID)
	}
}

func testKeepUIDs(t *testing.T, e *env) {
	e.create(t, "INBOX")
	mb := e.mailbox(t, "INBOX")
	tx := e.begin(t, mb)
	e.save(t, tx, formats.Message{UID: 100}, Bodies["lf"])
	e.commit(t, tx)
	tx = e.begin(t, mb)
	// A UID below UIDNEXT cannot be kept: the store assigns a new one.
	uid := e.save(t, tx, formats.Message{UID: 50}, Bodies["lf"])
	e.commit(t, tx)
	if uid < 101 {
		t.Errorf("Save(uid 50) after UIDNEXT 101 returned %d", uid)
	}
	msgs := e.messages(t, mb)
	if len(msgs) != 2 || msgs[0].UID != 100 || msgs[1].UID != uid {
		t.Errorf("messages = %v, want UIDs 100, %d", uidsOf(msgs), uid)
	}
}

func uidsOf(msgs []formats.Message) []formats.UID {
	var out []formats.UID
	for _, m := range msgs {
		out = append(out, m.UID)
	}
	return out
}

func testSetFlags(t *testing.T, e *env) {
	e.create(t, "INBOX")
	want := e.saveSample(t, "INBOX")
	mb := e.mailbox(t, "INBOX")
	tx := e.begin(t, mb)
	msgs := e.messages(t, mb)
	if err := tx.SetFlags(msgs[0].UID, formats.FlagFlagged|formats.FlagDraft, []string{"new", "$Label2"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.SetFlags(msgs[4].UID, 0, nil); err != nil {
		t.Fatal(err)
	}
	e.commit(t, tx)
	want[0].Flags, want[0].Keywords = formats.FlagFlagged|formats.FlagDraft, []string{"$Label2", "new"}
	want[4].Flags, want[4].Keywords = 0, nil
	e.reopen(t)
	e.checkSample(t, e.mailbox(t, "INBOX"), want)
	if e.caps.ModSeqs {
		got := e.messages(t, e.mailbox(t, "INBOX"))
		if got[0].ModSeq <= got[1].ModSeq {
			t.Errorf("changed message modseq %d not above unchanged %d", got[0].ModSeq, got[1].ModSeq)
		}
	}
}

func testExpunge(t *testing.T, e *env) {
	e.create(t, "INBOX")
	want := e.saveSample(t, "INBOX")
	mb := e.mailbox(t, "INBOX")
	before := e.status(t, mb)
	msgs := e.messages(t, mb)
	tx := e.begin(t, mb)
	for _, i := range []int{0, 3} {
		if err := tx.Expunge(msgs[i].UID); err != nil {
			t.Fatal(err)
		}
	}
	e.commit(t, tx)
	e.reopen(t)
	mb = e.mailbox(t, "INBOX")
	got := e.messages(t, mb)
	wantUIDs := []formats.UID{msgs[1].UID, msgs[2].UID, msgs[4].UID, msgs[5].UID}
	if fmt.Sprint(uidsOf(got)) != fmt.Sprint(wantUIDs) {
		t.Errorf("after expunge UIDs = %v, want %v", uidsOf(got), wantUIDs)
	}
	if st := e.status(t, mb); st.UIDNext != before.UIDNext || st.Messages != 4 {
		t.Errorf("after expunge Status = %+v, want UIDNEXT %d, 4 messages", st, before.UIDNext)
	}
	if err := mb.Body(e.ctx, msgs[0].UID, func(formats.Body) error { return nil }); formats.KindOf(err) != formats.KindExpunged && formats.KindOf(err) != formats.KindNotFound {
		t.Errorf("Body(expunged) = %v, want Expunged or NotFound", err)
	}
	_ = want
}

func testSetUIDNext(t *testing.T, e *env) {
	e.create(t, "INBOX")
	mb := e.mailbox(t, "INBOX")
	tx := e.begin(t, mb)
	e.save(t, tx, formats.Message{UID: 3}, Bodies["lf"])
	if err := tx.SetUIDNext(40); err != nil {
		t.Fatal(err)
	}
	e.commit(t, tx)
	e.reopen(t)
	mb = e.mailbox(t, "INBOX")
	if st := e.status(t, mb); st.UIDNext != 40 {
		t.Errorf("UIDNEXT = %d, want 40", st.UIDNext)
	}
	tx = e.begin(t, mb)
	uid := e.save(t, tx, formats.Message{}, Bodies["lf"])
	e.commit(t, tx)
	if uid < 40 {
		t.Errorf("new message after SetUIDNext(40) got UID %d", uid)
	}
}

func testSizeMismatch(t *testing.T, e *env) {
	e.create(t, "INBOX")
	mb := e.mailbox(t, "INBOX")
	tx := e.begin(t, mb)
	_, err := tx.Save(e.ctx, formats.Message{UID: 1, Size: 999}, bytes.NewReader(Bodies["lf"]))
	wantKind(t, "Save(short body)", err, formats.KindInvalidData)
	tx.Rollback()
	if msgs := e.messages(t, mb); len(msgs) != 0 {
		t.Errorf("short body left %d messages", len(msgs))
	}
}

func testMessagesFrom(t *testing.T, e *env) {
	e.create(t, "INBOX")
	e.saveSample(t, "INBOX")
	mb := e.mailbox(t, "INBOX")
	all := e.messages(t, mb)
	var got []formats.UID
	for m, err := range mb.Messages(e.ctx, all[2].UID) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.UID)
	}
	if fmt.Sprint(got) != fmt.Sprint(uidsOf(all[2:])) {
		t.Errorf("Messages(from %d) = %v, want %v", all[2].UID, got, uidsOf(all[2:]))
	}
	// Stopping early must not leak or fail.
	for range mb.Messages(e.ctx, 1) {
		break
	}
}

func testDelete(t *testing.T, e *env) {
	if e.caps.MailboxIsFile {
		e.create(t, "Work")
		wantKind(t, `Create("Work/Sub") under a mailbox file`, e.store.Create(e.ctx, "Work/Sub", formats.GUID{}, 0), formats.KindNotPossible)
		e.saveSample(t, "Work")
		if err := e.store.Delete(e.ctx, "Work"); err != nil {
			t.Fatalf("Delete(Work) = %v", err)
		}
		e.reopen(t)
		if _, ok := e.list(t)["Work"]; ok {
			t.Errorf("Work still listed after Delete")
		}
		wantKind(t, "Delete(missing)", e.store.Delete(e.ctx, "Missing"), formats.KindNotFound)
		return
	}
	e.create(t, "Work")
	e.create(t, "Work/Sub")
	e.saveSample(t, "Work")
	if err := e.store.Delete(e.ctx, "Work"); err != nil {
		t.Fatalf("Delete(Work) = %v", err)
	}
	e.reopen(t)
	got := e.list(t)
	if info, ok := got["Work"]; ok && !info.NoSelect && e.caps.ExactList {
		t.Errorf("Work still selectable after Delete")
	}
	if info, ok := got["Work/Sub"]; !ok || info.NoSelect {
		t.Errorf("child Work/Sub lost by deleting its parent")
	}
	if _, err := e.store.Open(e.ctx, "Work"); formats.KindOf(err) != formats.KindNotFound {
		t.Errorf("Open(deleted) = %v, want NotFound", err)
	}
	wantKind(t, "Delete(missing)", e.store.Delete(e.ctx, "Missing"), formats.KindNotFound)
	// Work is now a container: it can't go while it has a child, and
	// goes with its last child.
	wantKind(t, "Delete(container with children)", e.store.Delete(e.ctx, "Work"), formats.KindNotPossible)
	if err := e.store.Delete(e.ctx, "Work/Sub"); err != nil {
		t.Fatalf("Delete(Work/Sub) = %v", err)
	}
	if err := e.store.Delete(e.ctx, "Work"); err != nil && formats.KindOf(err) != formats.KindNotFound {
		t.Fatalf("Delete(empty container) = %v", err)
	}
	if _, ok := e.list(t)["Work"]; ok {
		t.Errorf("empty container Work still listed")
	}
}

func testSubscriptions(t *testing.T, e *env) {
	e.create(t, "INBOX")
	e.create(t, "Entwürfe")
	names := []string{"INBOX", "Entwürfe"}
	if e.caps.SubscribeMissing {
		names = append(names, "Gone/Away")
	} else {
		// Refused, with a kind (Dovecot's IMAP says NO without a
		// response code: NotPossible).
		err := e.store.SetSubscribed(e.ctx, "Gone/Away", true)
		if k := formats.KindOf(err); err == nil || (k != formats.KindNotFound && k != formats.KindNotPossible) {
			t.Errorf("SetSubscribed(\"Gone/Away\") without the mailbox = %v, want a NotFound or NotPossible error", err)
		}
	}
	for _, n := range names {
		if err := e.store.SetSubscribed(e.ctx, n, true); err != nil {
			t.Fatalf("SetSubscribed(%q) = %v", n, err)
		}
	}
	e.reopen(t)
	got := e.list(t)
	for _, n := range names {
		if !got[n].Subscribed {
			t.Errorf("%q not subscribed after reopen (%+v)", n, got[n])
		}
	}
	if info, ok := got["Gone/Away"]; e.caps.SubscribeMissing && !info.NoSelect {
		t.Errorf("subscribed missing mailbox listed as selectable")
	} else if !e.caps.SubscribeMissing && ok {
		t.Errorf("refused subscription listed: %+v", info)
	}
	if err := e.store.SetSubscribed(e.ctx, "Entwürfe", false); err != nil {
		t.Fatal(err)
	}
	e.reopen(t)
	if e.list(t)["Entwürfe"].Subscribed {
		t.Errorf("Entwürfe still subscribed")
	}
}

func testReadOnly(t *testing.T, e *env) {
	e.create(t, "INBOX")
	e.saveSample(t, "INBOX")
	ro := e.open(t, formats.OpenOptions{ReadOnly: true})
	if err := ro.Create(e.ctx, "New", formats.GUID{}, 0); err == nil {
		t.Errorf("Create on a read-only store succeeded")
	}
	mb, err := ro.Open(e.ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	if tx, err := mb.Begin(e.ctx); err == nil {
		tx.Rollback()
		t.Errorf("Begin on a read-only store succeeded")
	}
	if n := len(e.messages(t, mb)); n != 6 {
		t.Errorf("read-only store lists %d messages, want 6", n)
	}
}

func testMany(t *testing.T, e *env) {
	e.create(t, "INBOX")
	mb := e.mailbox(t, "INBOX")
	const n = 600
	for batch := 0; batch < 3; batch++ {
		tx := e.begin(t, mb)
		for i := 0; i < n/3; i++ {
			body := fmt.Appendf(nil, "Subject: %d\n\nbody %d\n", batch*1000+i, i)
			e.save(t, tx, formats.Message{UID: formats.UID(batch*1000 + i + 1), Received: time.Unix(int64(1e9+i), 0)}, body)
		}
		e.commit(t, tx)
	}
	e.reopen(t)
	mb = e.mailbox(t, "INBOX")
	msgs := e.messages(t, mb)
	if len(msgs) != n {
		t.Fatalf("%d messages, want %d", len(msgs), n)
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].UID <= msgs[i-1].UID {
			t.Fatalf("UIDs not ascending at %d", i)
		}
	}
	want := e.want(fmt.Appendf(nil, "Subject: %d\n\nbody %d\n", 2000+5, 5))
	if got := e.body(t, mb, msgs[2*n/3+5].UID); !bytes.Equal(got, want) {
		t.Errorf("body = %q, want %q", got, want)
	}
}

// manyKeywords is n keyword names, some with a '$', none equal to another
// ignoring case (IMAP keywords are case-insensitive).
func manyKeywords(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
		if i%7 == 3 {
			out[i] = "$" + out[i]
		}
	}
	return out
}

// testManyKeywords: a message keeps 40 keywords and more, through Save and
// SetFlags, across a reopen (Maildir's file names hold only 26: the rest
// must live elsewhere, as Dovecot keeps them in its index).
func testManyKeywords(t *testing.T, e *env) {
	e.create(t, "INBOX")
	mb := e.mailbox(t, "INBOX")
	forty := manyKeywords("kw", 40)
	want := map[formats.UID][]string{}
	tx := e.begin(t, mb)
	for _, kws := range [][]string{forty, {forty[39], forty[2], "other"}, nil} {
		uid := e.save(t, tx, formats.Message{Flags: formats.FlagSeen, Keywords: kws}, []byte("Subject: keywords\n\nbody\n"))
		want[uid] = kws
	}
	e.commit(t, tx)
	check := func(step string) {
		t.Helper()
		e.reopen(t)
		msgs := e.messages(t, e.mailbox(t, "INBOX"))
		if len(msgs) != len(want) {
			t.Fatalf("%s: %d messages, want %d", step, len(msgs), len(want))
		}
		for _, m := range msgs {
			w := formats.NormalizeKeywords(append([]string(nil), want[m.UID]...))
			if !formats.EqualKeywords(m.Keywords, w) {
				t.Errorf("%s: uid %d: %d keywords %q, want %d %q", step, m.UID, len(m.Keywords), m.Keywords, len(w), w)
			}
			if m.Flags != formats.FlagSeen {
				t.Errorf("%s: uid %d: flags %s", step, m.UID, m.Flags)
			}
		}
	}
	check("after Save")

	msgs := e.messages(t, e.mailbox(t, "INBOX"))
	mb = e.mailbox(t, "INBOX")
	tx = e.begin(t, mb)
	// Drop an early and a late one, add two; give the bare message 41.
	first := append(slicesWithout(forty, forty[1], forty[38]), "added1", "$added2")
	last := append(append([]string(nil), forty...), "fortyone")
	for uid, kws := range map[formats.UID][]string{msgs[0].UID: first, msgs[2].UID: last} {
		if err := tx.SetFlags(uid, formats.FlagSeen, kws); err != nil {
			t.Fatal(err)
		}
		want[uid] = kws
	}
	e.commit(t, tx)
	check("after SetFlags")
}

func slicesWithout(s []string, drop ...string) []string {
	var out []string
	for _, x := range s {
		keep := true
		for _, d := range drop {
			if x == d {
				keep = false
			}
		}
		if keep {
			out = append(out, x)
		}
	}
	return out
}

// testRename checks formats.Renamer: a mailbox moves with its children,
// GUIDs, UIDVALIDITY and mail; taken and missing names fail with their
// kinds; a container the rename emptied is gone.
func testRename(t *testing.T, e *env) {
	r, ok := e.store.(formats.Renamer)
	if !ok || e.caps.MailboxIsFile {
		t.Skipf("driver %s has no Rename", e.h.Driver.Name())
	}
	e.create(t, "INBOX")
	g1 := e.create(t, "Work/Projects")
	g2 := e.create(t, "Work/Projects/Sub")
	e.create(t, "Other")
	want := e.saveSample(t, "Work/Projects")
	mb := e.mailbox(t, "Work/Projects")
	before := e.status(t, mb)
	mb.Close()
	wantKind(t, "Rename(to an existing name)", r.Rename(e.ctx, "Work/Projects", "Other"), formats.KindExists)
	wantKind(t, "Rename(missing)", r.Rename(e.ctx, "Missing", "Else"), formats.KindNotFound)
	wantKind(t, "Rename(under itself)", r.Rename(e.ctx, "Work/Projects", "Work/Projects/X"), formats.KindNotPossible)
	if err := r.Rename(e.ctx, "Work/Projects", "Archiv/Entwürfe 2024"); err != nil {
		t.Fatalf("Rename = %v", err)
	}
	e.reopen(t)
	got := e.list(t)
	for _, gone := range []string{"Work", "Work/Projects", "Work/Projects/Sub"} {
		if _, ok := got[gone]; ok {
			t.Errorf("%q still listed after the rename", gone)
		}
	}
	if got["Archiv/Entwürfe 2024"].GUID != g1 || got["Archiv/Entwürfe 2024/Sub"].GUID != g2 || !got["Archiv"].NoSelect {
		t.Errorf("after the rename: %+v", got)
	}
	mb = e.mailbox(t, "Archiv/Entwürfe 2024")
	defer mb.Close()
	after := e.status(t, mb)
	if after.UIDValidity != before.UIDValidity || after.UIDNext != before.UIDNext || after.GUID != before.GUID {
		t.Errorf("status %+v after the rename, was %+v", after, before)
	}
	e.checkSample(t, mb, want)
}

// testMailboxLog checks formats.MailboxLogger: deletes, renames and
// (un)subscriptions are logged the way Dovecot logs them.
func testMailboxLog(t *testing.T, e *env) {
	if _, ok := e.store.(formats.MailboxLogger); !ok {
		t.Skipf("driver %s keeps no mailbox log", e.h.Driver.Name())
	}
	e.create(t, "INBOX")
	g := e.create(t, "Gone")
	if err := e.store.SetSubscribed(e.ctx, "Gone", true); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetSubscribed(e.ctx, "Gone", false); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Delete(e.ctx, "Gone"); err != nil {
		t.Fatal(err)
	}
	want := []formats.MailboxLogRecord{
		{Change: formats.ChangeSubscribe, GUID: formats.MailboxNameHash("Gone")},
		{Change: formats.ChangeUnsubscribe, GUID: formats.MailboxNameHash("Gone")},
		{Change: formats.ChangeDeleteMailbox, GUID: g},
		{Change: formats.ChangeDeleteDir, GUID: formats.MailboxNameHash("Gone")},
	}
	if r, ok := e.store.(formats.Renamer); ok && !e.caps.MailboxIsFile {
		e.create(t, "Old")
		if err := r.Rename(e.ctx, "Old", "New/Name"); err != nil {
			t.Fatal(err)
		}
		want = append(want, formats.MailboxLogRecord{Change: formats.ChangeRename, GUID: formats.MailboxNameHash("New/Name")})
	}
	e.reopen(t)
	got, err := e.store.(formats.MailboxLogger).MailboxLog(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("log %v, want %v", got, want)
	}
	for i := range got {
		if got[i].Change != want[i].Change || got[i].GUID != want[i].GUID || time.Since(got[i].Time) > time.Hour || got[i].Time.After(time.Now().Add(time.Second)) {
			t.Errorf("record %d: %v %s %v, want %v %s now", i, got[i].Change, got[i].GUID, got[i].Time, want[i].Change, want[i].GUID)
		}
	}
}

// testSaveRecent saves mail with and without Message.Recent and reads it
// back: Recent is kept whatever the flags and keywords (Maildir: new/ for
// a flagless one, cur/ and the index for the others), survives a flag
// change (no session claimed it), and is never a flag. Non-Recent mail
// comes first: in Dovecot's formats Recent holds for a suffix of the
// UIDs (formats.Message.Recent).
func testSaveRecent(t *testing.T, e *env) {
	e.create(t, "INBOX")
	mb := e.mailbox(t, "INBOX")
	tx := e.begin(t, mb)
	want := []formats.Message{
		{Flags: formats.FlagSeen},
		{},
		{Flags: formats.FlagSeen},
		{Keywords: []string{"$Label1"}},
		{},
	}
	for i := 1; i < len(want); i++ {
		want[i].Recent = true
	}
	if !e.caps.Keywords {
		want[3].Keywords = nil
	}
	for i, m := range want {
		_, body := e.sampleBody(i)
		e.save(t, tx, m, body)
	}
	e.commit(t, tx)
	e.reopen(t)
	mb = e.mailbox(t, "INBOX")
	check := func(when string) {
		t.Helper()
		got := e.messages(t, mb)
		if len(got) != len(want) {
			t.Fatalf("%s: %d messages, want %d", when, len(got), len(want))
		}
		for i, m := range got {
			if m.Recent != want[i].Recent || m.Flags != want[i].Flags || !formats.EqualKeywords(m.Keywords, want[i].Keywords) {
				t.Errorf("%s: message %d (uid %d): Recent %v flags %q kw %q, want Recent %v flags %q kw %q", when, i, m.UID,
					m.Recent, m.Flags, m.Keywords, want[i].Recent, want[i].Flags, want[i].Keywords)
			}
		}
	}
	check("after save")
	// A flag change claims nothing.
	msgs := e.messages(t, mb)
	tx = e.begin(t, mb)
	if err := tx.SetFlags(msgs[1].UID, formats.FlagFlagged, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.SetFlags(msgs[2].UID, 0, nil); err != nil {
		t.Fatal(err)
	}
	e.commit(t, tx)
	want[1].Flags, want[2].Flags = formats.FlagFlagged, 0
	e.reopen(t)
	mb = e.mailbox(t, "INBOX")
	check("after flag changes")
}

// testRaiseFirstRecent raises first_recent_uid (formats.FirstRecentRaiser)
// as dsync's finish does: mail below it stops being Recent, mail at or
// above it stays so, Status reports it, and it persists. It is never
// lowered, a raise in a transaction with saves applies after them, and a
// raise past UIDNEXT stops at UIDNEXT. A store reports a FirstRecentUID
// exactly when its transactions can raise it, and no message below it is
// Recent.
func testRaiseFirstRecent(t *testing.T, e *env) {
	e.create(t, "INBOX")
	mb := e.mailbox(t, "INBOX")
	tx := e.begin(t, mb)
	// Flagless, with a flag and with a keyword: a Maildir keeps
	// them in new/, cur/ and cur/.
	for i, m := range []formats.Message{{Recent: true}, {Recent: true, Flags: formats.FlagSeen}, {Recent: true, Keywords: []string{"$Label1"}}, {Recent: true}} {
		if !e.caps.Keywords {
			m.Keywords = nil
		}
		_, body := e.sampleBody(i)
		e.save(t, tx, m, body)
	}
	_, isRaiser := tx.(formats.FirstRecentRaiser)
	e.commit(t, tx)
	st := e.status(t, mb)
	if (st.FirstRecentUID != 0) != isRaiser {
		t.Fatalf("Status().FirstRecentUID = %d, but the transaction implements FirstRecentRaiser: %v", st.FirstRecentUID, isRaiser)
	}
	msgs := e.messages(t, mb)
	uids := uidsOf(msgs)
	// check reopens the store and compares Status().FirstRecentUID and
	// which messages are Recent with first.
	check := func(when string, first formats.UID) {
		t.Helper()
		e.reopen(t)
		mb = e.mailbox(t, "INBOX")
		if got := e.status(t, mb).FirstRecentUID; got != first {
			t.Errorf("%s: Status().FirstRecentUID = %d, want %d", when, got, first)
		}
		for _, m := range e.messages(t, mb) {
			// Every message was saved Recent (as a dbox save
			// always is); a store without first_recent_uid has
			// no Recent (imapc).
			if want := first != 0 && m.UID >= first; m.Recent != want {
				t.Errorf("%s: uid %d: Recent %v, want %v (first recent UID %d)", when, m.UID, m.Recent, want, first)
			}
		}
	}
	if !isRaiser {
		check("without first_recent_uid", 0)
		t.Skipf("driver %s keeps no first_recent_uid (Status().FirstRecentUID 0, no FirstRecentRaiser)", e.h.Driver.Name())
	}
	if st.FirstRecentUID > uids[0] {
		t.Errorf("Status().FirstRecentUID = %d after saving Recent mail from uid %d", st.FirstRecentUID, uids[0])
	}
	raise := func(uid formats.UID, save bool) {
		t.Helper()
		tx := e.begin(t, mb)
		if save {
			_, body := e.sampleBody(4)
			e.save(t, tx, formats.Message{Recent: true}, body)
		}
		if err := tx.(formats.FirstRecentRaiser).RaiseFirstRecentUID(uid); err != nil {
			t.Fatalf("RaiseFirstRecentUID(%d) = %v", uid, err)
		}
		e.commit(t, tx)
	}
	raise(uids[2], false)
	check("raised to the third message", uids[2])
	raise(uids[1], false)
	check("raised to a lower UID", uids[2])
	// With a save: the raise applies after it, so the saved message
	// (at UIDNEXT) stays Recent when the raise stops at its UID.
	next := e.status(t, mb).UIDNext
	raise(next, true)
	check("raised to a message saved with it", next)
	raise(next+100, false)
	check("raised past UIDNEXT", e.status(t, mb).UIDNext)
}
