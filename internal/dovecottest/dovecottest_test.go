package dovecottest

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// vsize is the size with every bare LF counted as CRLF, as Dovecot counts.
func vsize(b []byte) int64 {
	n := int64(len(b))
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			n++
		}
	}
	return n
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestSnapshotMaildir has Dovecot build a Maildir++ store and checks that
// Snapshot reports what was done to it.
func TestSnapshotMaildir(t *testing.T) {
	d := New(t, "")
	start := time.Now().Unix()

	for _, name := range []string{"Entwürfe", "Tëst & Co", "日本語/Sub dir"} {
		d.MustDoveadm(t, "mailbox", "create", name)
	}
	d.MustDoveadm(t, "mailbox", "subscribe", "Entwürfe", "Ghost")

	msgs := []struct{ saved, stored string }{
		{"Subject: lf\nFrom: a@b\n\nbody line\n", ""},
		// doveadm save drops the CR of CRLF (mail_save_crlf = no).
		{"Subject: crlf\r\nFrom: a@b\r\n\r\nbody\r\n", "Subject: crlf\nFrom: a@b\n\nbody\n"},
		{"Subject: no newline\n\nlast line", ""},
		{"", ""},
		{"Subject: expunged\n\nx\n", ""},
		// The pager output must not be split at a \f\n inside a message.
		{"Subject: framing\n\nx\f\n\f\nmailbox-guid: 0\nuid: 9\ntext:\n\x00\rend", ""},
	}
	for _, m := range msgs {
		d.Save(t, "INBOX", []byte(m.saved))
	}
	d.Save(t, "日本語/Sub dir", []byte("Subject: deep\n\nx\n"))
	d.MustDoveadm(t, "flags", "add", `\Seen $Label1`, "mailbox", "INBOX", "uid", "1")
	d.MustDoveadm(t, "flags", "add", `\Answered \Flagged Zzz`, "mailbox", "INBOX", "uid", "2")
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "5")

	tree := d.Snapshot(t)
	t.Logf("snapshot:\n%s", tree)

	var names []string
	for _, m := range tree.Mailboxes {
		names = append(names, m.Name)
	}
	// "日本語" is listed although Maildir++ has no directory for it.
	wantNames := []string{"Entwürfe", "Ghost", "INBOX", "Tëst & Co", "日本語", "日本語/Sub dir"}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("mailboxes = %q, want %q", names, wantNames)
	}
	for _, m := range tree.Mailboxes {
		wantSub := m.Name == "Entwürfe" || m.Name == "Ghost"
		if m.Subscribed != wantSub {
			t.Errorf("%q: Subscribed = %t, want %t", m.Name, m.Subscribed, wantSub)
		}
		selectable := m.Name != "Ghost" && m.Name != "日本語"
		if selectable != hex32.MatchString(m.GUID) || !selectable && m.GUID != "" {
			t.Errorf("%q: GUID = %q", m.Name, m.GUID)
		}
		if selectable && (m.UIDValidity == 0 || m.UIDNext == 0 || m.HighestModSeq == 0) {
			t.Errorf("%q: uidvalidity %d uidnext %d highestmodseq %d, want non-zero", m.Name, m.UIDValidity, m.UIDNext, m.HighestModSeq)
		}
	}
	if deep := tree.Lookup("日本語/Sub dir"); len(deep.Messages) != 1 || deep.UIDNext != 2 {
		t.Errorf("日本語/Sub dir: %d messages, uidnext %d; want 1, 2", len(deep.Messages), deep.UIDNext)
	}

	inbox := tree.Lookup("INBOX")
	if inbox.UIDNext != 7 {
		t.Errorf("INBOX UIDNext = %d, want 7", inbox.UIDNext)
	}
	var uids []uint32
	for _, m := range inbox.Messages {
		uids = append(uids, m.UID)
	}
	if want := []uint32{1, 2, 3, 4, 6}; !slices.Equal(uids, want) {
		t.Fatalf("INBOX UIDs = %v, want %v", uids, want)
	}
	for _, m := range inbox.Messages {
		stored := msgs[m.UID-1].stored
		if stored == "" {
			stored = msgs[m.UID-1].saved
		}
		if m.SHA256 != sha([]byte(stored)) {
			t.Errorf("uid %d: SHA256 = %s, want that of %q", m.UID, m.SHA256, stored)
		}
		if m.Size != int64(len(stored)) || m.VSize != vsize([]byte(stored)) {
			t.Errorf("uid %d: Size, VSize = %d, %d, want %d, %d", m.UID, m.Size, m.VSize, len(stored), vsize([]byte(stored)))
		}
		if m.Received < start-1 || m.Saved < start-1 || m.Received > start+60 || m.Saved > start+60 {
			t.Errorf("uid %d: Received, Saved = %d, %d, want about %d", m.UID, m.Received, m.Saved, start)
		}
		if m.ModSeq == 0 || m.ModSeq > inbox.HighestModSeq {
			t.Errorf("uid %d: ModSeq = %d, HighestModSeq %d", m.UID, m.ModSeq, inbox.HighestModSeq)
		}
		if m.GUID == "" {
			t.Errorf("uid %d: empty GUID", m.UID)
		}
	}
	flags := map[uint32][2][]string{
		1: {{`\Seen`}, {"$Label1"}},
		2: {{`\Answered`, `\Flagged`}, {"Zzz"}},
		3: {nil, nil},
	}
	for uid, want := range flags {
		m := inbox.Lookup(uid)
		if !slices.Equal(m.Flags, want[0]) || !slices.Equal(m.Keywords, want[1]) {
			t.Errorf("uid %d: Flags, Keywords = %q, %q, want %q, %q", uid, m.Flags, m.Keywords, want[0], want[1])
		}
	}
	d.CheckLogClean(t)
}

// TestSaveLineEndings pins what doveadm save does to bytes: Dovecot's save
// path converts line endings according to mail_save_crlf.
func TestSaveLineEndings(t *testing.T) {
	tests := []struct{ in, lf, crlf string }{
		{"a\r\nb\r\n", "a\nb\n", "a\r\nb\r\n"},
		{"a\nb\n", "a\nb\n", "a\r\nb\r\n"},
		{"bare\rcr\n", "bare\rcr\n", "bare\rcr\r\n"},
		{"a\r\r\nb\r\r\n\rc\n\r\n", "a\r\nb\r\n\rc\n\n", "a\r\r\nb\r\r\n\rc\r\n\r\n"},
		{"no newline", "no newline", "no newline"},
		{"nul\x00\n", "nul\x00\n", "nul\x00\r\n"},
		{"", "", ""},
	}
	for _, crlf := range []bool{false, true} {
		t.Run(fmt.Sprintf("mail_save_crlf=%t", crlf), func(t *testing.T) {
			d := New(t, "", fmt.Sprintf("mail_save_crlf = %s", map[bool]string{false: "no", true: "yes"}[crlf]))
			for _, tc := range tests {
				d.Save(t, "INBOX", []byte(tc.in))
			}
			inbox := d.Snapshot(t).Lookup("INBOX")
			for i, tc := range tests {
				want := tc.lf
				if crlf {
					want = tc.crlf
				}
				if got := inbox.Messages[i].SHA256; got != sha([]byte(want)) {
					t.Errorf("save %q: stored bytes are not %q", tc.in, want)
				}
			}
			d.CheckLogClean(t)
		})
	}
}

// writeMaildir writes messages into root the way our Go code would: as the
// current user (root on CI), no dovecot-uidlist, no index.
func writeMaildir(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestForeignMaildir checks that Snapshot reads files Dovecot did not write
// byte for byte (CRLF included) and that ownership is handed over.
func TestForeignMaildir(t *testing.T) {
	d := New(t, "")
	crlf := "Subject: go\r\n\r\nline\r\n"
	nonl := "Subject: go2\r\n\r\nno newline\r"
	writeMaildir(t, d.Root(), map[string]string{
		fmt.Sprintf("cur/1700000000.M1P1.go,S=%d:2,FS", len(crlf)): crlf,
		"new/1700000001.M2P1.go":                                   nonl,
	})
	// Received is the file's mtime.
	if err := os.Chtimes(filepath.Join(d.Root(), "new/1700000001.M2P1.go"), time.Time{}, time.Unix(1700000001, 0)); err != nil {
		t.Fatal(err)
	}
	inbox := d.Snapshot(t).Lookup("INBOX")
	if len(inbox.Messages) != 2 {
		t.Fatalf("INBOX has %d messages, want 2", len(inbox.Messages))
	}
	for i, want := range []string{crlf, nonl} {
		m := inbox.Messages[i]
		if m.SHA256 != sha([]byte(want)) || m.Size != int64(len(want)) || m.VSize != vsize([]byte(want)) {
			t.Errorf("uid %d: SHA256, Size, VSize = %s, %d, %d, want %s, %d, %d",
				m.UID, m.SHA256, m.Size, m.VSize, sha([]byte(want)), len(want), vsize([]byte(want)))
		}
	}
	if m := inbox.Messages[0]; m.GUID != fmt.Sprintf("1700000000.M1P1.go,S=%d", len(crlf)) || !slices.Equal(m.Flags, []string{`\Flagged`, `\Seen`}) {
		t.Errorf("uid 1: GUID, Flags = %q, %q", m.GUID, m.Flags)
	}
	if m := inbox.Messages[1]; m.GUID != "1700000001.M2P1.go" || m.Received != 1700000001 {
		t.Errorf("uid 2: GUID, Received = %q, %d", m.GUID, m.Received)
	}
	d.CheckLogClean(t)
}

// TestChownOutsideDir has Dovecot read a store that Go code wrote into a
// t.TempDir() of its own: as root that needs Chown.
func TestChownOutsideDir(t *testing.T) {
	d := New(t, "")
	src := filepath.Join(t.TempDir(), "Maildir")
	body := "Subject: outside\r\n\r\nx\r\n"
	writeMaildir(t, src, map[string]string{"cur/1700000000.M1P1.go:2,S": body})
	if os.Geteuid() == 0 {
		if _, err := d.Doveadm("backup", "-R", "maildir:"+src); err == nil {
			t.Error("doveadm read a root-owned store before Chown")
		}
	}
	d.Chown(t, src)
	d.MustDoveadm(t, "backup", "-R", "maildir:"+src)
	// maildir to maildir: dsync copies the file, CRLF and all.
	inbox := d.Snapshot(t).Lookup("INBOX")
	if len(inbox.Messages) != 1 || inbox.Messages[0].SHA256 != sha([]byte(body)) {
		t.Errorf("INBOX after backup: %+v, want the CRLF message unchanged", inbox.Messages)
	}
}

// TestBrokenSize: a maildir file whose S= lies makes Snapshot fail, and the
// log says why.
func TestBrokenSize(t *testing.T) {
	d := New(t, "")
	writeMaildir(t, d.Root(), map[string]string{"cur/1700000000.M1P1.go,S=99:2,": "Subject: short\n\n"})
	if _, err := d.snapshot(); err == nil || !strings.Contains(err.Error(), "Cached message size larger than expected") {
		t.Errorf("snapshot() error = %v, want Dovecot's size complaint", err)
	}
	if bad := problems(d.Log()); len(bad) == 0 {
		t.Errorf("log shows no problems:\n%s", d.Log())
	}
}

// TestBackupToSdbox has Dovecot copy a maildir into sdbox and compares the
// snapshots: Diff's intended use, and Unicode names through the fs layout.
func TestBackupToSdbox(t *testing.T) {
	a := New(t, "")
	for _, name := range []string{"Entwürfe", "A & B/日本語"} {
		a.MustDoveadm(t, "mailbox", "create", name)
		a.MustDoveadm(t, "mailbox", "subscribe", name)
		a.Save(t, name, []byte("Subject: "+name+"\n\nbody\n"))
	}
	a.Save(t, "INBOX", []byte("Subject: one\n\n1\n"))
	a.Save(t, "INBOX", []byte("Subject: two\n\n2"))
	a.MustDoveadm(t, "flags", "add", `\Seen $Junk`, "mailbox", "INBOX", "uid", "2")

	b := New(t, "sdbox:~/sdbox")
	// -R: copy the argument into b's store. Without it b's (empty) store
	// would be copied over a's, deleting everything in a.
	b.MustDoveadm(t, "backup", "-R", "maildir:"+a.Root())

	ta, tb := a.Snapshot(t), b.Snapshot(t)
	// dsync keeps GUIDs, UIDs, dates received, modseqs and HIGHESTMODSEQ,
	// but the sdbox saved date is the time of the backup. The sdbox "A & B"
	// is a \NoSelect directory, the Maildir++ one \NonExistent: both list it
	// without a GUID.
	if diff := Diff(ta, tb, Saved); diff != "" {
		t.Errorf("maildir and its sdbox backup differ:\n%s\na:\n%s\nb:\n%s", diff, ta, tb)
	}
	a.CheckLogClean(t)
	b.CheckLogClean(t)
}

// TestSnapshot100 logs how long a Snapshot of 100 messages takes.
func TestSnapshot100(t *testing.T) {
	d := New(t, "")
	files := make(map[string]string)
	for i := range 100 {
		body := fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", 4000))
		files[fmt.Sprintf("cur/%d.M%dP1.go,S=%d:2,S", 1700000000+i, i, len(body))] = body
	}
	writeMaildir(t, d.Root(), files)
	for _, pass := range []string{"first (Dovecot indexes)", "second"} {
		start := time.Now()
		tree := d.Snapshot(t)
		t.Logf("%s Snapshot of %d messages: %v", pass, len(tree.Lookup("INBOX").Messages), time.Since(start))
	}
	d.CheckLogClean(t)
}

// fakeTB records Skipf and Fatalf instead of ending the test.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper()                       {}
func (f *fakeTB) Skipf(format string, a ...any) { f.skipped = fmt.Sprintf(format, a...) }
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.fatal = fmt.Sprintf(format, a...)
}

func TestRequire(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no doveadm
	for _, tc := range []struct {
		ci   string
		skip bool
	}{{"", true}, {"false", true}, {"true", false}, {"1", false}} {
		t.Setenv("CI", tc.ci)
		f := &fakeTB{TB: t}
		Require(f)
		if (f.skipped != "") != tc.skip || (f.fatal != "") == tc.skip {
			t.Errorf("CI=%q: skipped %q, fatal %q", tc.ci, f.skipped, f.fatal)
		}
		if f.fatal != "" && !strings.Contains(f.fatal, "never skip") {
			t.Errorf("CI=%q: fatal %q does not explain", tc.ci, f.fatal)
		}
	}
}

func TestParseFetch(t *testing.T) {
	rec := func(box string, uid int, flags, text string) string {
		return fmt.Sprintf("mailbox-guid: %s\nuid: %d\nguid: g%d\nflags: %s\ndate.received.unixtime: 10\n"+
			"date.saved.unixtime: 20\nsize.physical: %d\nsize.virtual: 99\nmodseq: 3\ntext:\n%s",
			box, uid, uid, flags, len(text), text)
	}
	tricky := "x\f\n\f\nmailbox-guid: b\nuid: 7\ntext:\n"
	out := rec("a", 2, `\Seen \Recent $Label1 \Answered`, tricky) + "\f\n" +
		rec("a", 1, "", "") + "\f\n" +
		rec("b", 5, `\Recent`, "last\r")
	got, err := parseFetch(bufioReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]Message{
		"a": {
			{UID: 1, GUID: "g1", Received: 10, Saved: 20, VSize: 99, ModSeq: 3, SHA256: sha(nil)},
			{UID: 2, GUID: "g2", Flags: []string{`\Answered`, `\Seen`}, Keywords: []string{"$Label1"},
				Received: 10, Saved: 20, Size: int64(len(tricky)), VSize: 99, ModSeq: 3, SHA256: sha([]byte(tricky))},
		},
		"b": {{UID: 5, GUID: "g5", Received: 10, Saved: 20, Size: 5, VSize: 99, ModSeq: 3, SHA256: sha([]byte("last\r"))}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseFetch = %v, want %v", got, want)
	}

	if got, err := parseFetch(bufioReader("")); err != nil || len(got) != 0 {
		t.Errorf("parseFetch(\"\") = %v, %v; want empty", got, err)
	}
	for _, bad := range []string{
		rec("a", 1, "", "abc")[:len(rec("a", 1, "", "abc"))-1], // text shorter than size.physical
		rec("a", 1, "", "abc") + "d",                           // longer
		rec("a", 1, "", "abc") + "\f\n",                        // separator without a record
		"uid: 1\nmailbox-guid: a\nsize.physical: 0\ntext:\n",   // out of order
		"mailbox-guid: a\nuid: 1\ntext:\n",                     // no size
		"mailbox-guid: a\nuid: x\nsize.physical: 0\ntext:\n",   // bad number
		"mailbox-guid: a\nuid: 1\nsize.physical: 0\n",          // no text
	} {
		if _, err := parseFetch(bufioReader(bad)); err == nil {
			t.Errorf("parseFetch(%q) succeeded, want error", bad)
		}
	}
}

func TestBuildTree(t *testing.T) {
	status := "mailbox\tguid\tuidvalidity\tuidnext\thighestmodseq\tmessages\n" +
		"INBOX\t00112233445566778899aabbccddeeff\t7\t3\t5\t1\n"
	msgs := map[string][]Message{"00112233445566778899aabbccddeeff": {{UID: 2}}}
	tree, err := buildTree("INBOX\nNo select \n", "Ghost\nINBOX\n", status, msgs)
	if err != nil {
		t.Fatal(err)
	}
	want := Tree{Mailboxes: []Mailbox{
		{Name: "Ghost", Subscribed: true},
		{Name: "INBOX", Subscribed: true, GUID: "00112233445566778899aabbccddeeff", UIDValidity: 7, UIDNext: 3, HighestModSeq: 5, Messages: []Message{{UID: 2}}},
		{Name: "No select "},
	}}
	if tree.String() != want.String() {
		t.Errorf("buildTree =\n%s\nwant\n%s", tree, want)
	}
	msgs = map[string][]Message{}
	if _, err := buildTree("INBOX\n", "", status, msgs); err == nil {
		t.Error("buildTree with a message count mismatch succeeded")
	}
}

func TestDiff(t *testing.T) {
	a := Tree{Mailboxes: []Mailbox{
		{Name: "INBOX", GUID: "g", UIDNext: 3, Messages: []Message{
			{UID: 1, Flags: []string{`\Seen`}, Saved: 1, SHA256: "x"},
			{UID: 2},
		}},
		{Name: "Only A"},
	}}
	b := Tree{Mailboxes: []Mailbox{
		{Name: "INBOX", GUID: "g", UIDNext: 4, Messages: []Message{
			{UID: 1, Flags: []string{`\Seen`}, Saved: 2, SHA256: "y"},
			{UID: 3},
		}},
		{Name: "Only B"},
	}}
	if d := Diff(a, a); d != "" {
		t.Errorf("Diff(a, a) = %q, want empty", d)
	}
	want := `"INBOX": uidnext: a=3 b=4
"INBOX" uid 1: sha256: a=x b=y
"INBOX" uid 2: only in a
"INBOX" uid 3: only in b
"Only A": only in a
"Only B": only in b
`
	if d := Diff(a, b, Saved); d != want {
		t.Errorf("Diff(a, b, Saved) =\n%s\nwant\n%s", d, want)
	}
	if d := Diff(a, b); !strings.Contains(d, `"INBOX" uid 1: saved: a=1 b=2`) {
		t.Errorf("Diff(a, b) does not report Saved:\n%s", d)
	}
}

func TestProblems(t *testing.T) {
	log := logHeader + "doveadm mailbox create rebuild-corrupt\n" +
		"doveadm(x): Info: fine\n" +
		"doveadm(x): Error: Mailbox INBOX: Broken physical size\n" +
		"doveadm(x): Warning: Maildir /m: Expunged message reappeared, giving a new UID\n" +
		"sdbox: Rebuilding index\n" +
		"Transaction log file /x: Index Corrupted\n"
	bad := problems(log)
	if len(bad) != 4 || strings.Contains(strings.Join(bad, "\n"), "fine") || strings.Contains(strings.Join(bad, "\n"), logHeader) {
		t.Errorf("problems found %q", bad)
	}
}

func TestLocationRoot(t *testing.T) {
	for _, tc := range []struct{ loc, want string }{
		{"maildir:~/Maildir", "/h/Maildir"},
		{"maildir:~/Maildir:LAYOUT=fs", "/h/Maildir"},
		{"sdbox:/srv/mail:INDEX=/x", "/srv/mail"},
		{"mbox:~", "/h"},
	} {
		if got, err := locationRoot(tc.loc, "/h"); got != tc.want || err != nil {
			t.Errorf("locationRoot(%q) = %q, %v, want %q", tc.loc, got, err, tc.want)
		}
	}
	for _, bad := range []string{"Maildir", "maildir:rel/path"} {
		if _, err := locationRoot(bad, "/h"); err == nil {
			t.Errorf("locationRoot(%q) succeeded", bad)
		}
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// TestDeliverLDA: a message handed to dovecot-lda lands in the user's
// INBOX with its body intact; an unknown user is refused.
func TestDeliverLDA(t *testing.T) {
	s := ServeUsers(t, []string{"lu"}, "maildir:~/Maildir")
	if err := s.DeliverLDA("lu", []byte("Subject: over lda\n\n.dot line\nend\n")); err != nil {
		t.Fatalf("%v\n%s", err, s.Log())
	}
	out := s.MustDoveadm(t, "fetch", "-u", "lu", "body", "mailbox", "INBOX", "subject", "over lda")
	if !strings.Contains(out, ".dot line\r\nend") { // mail_save_crlf = yes
		t.Errorf("delivered body: %q", out)
	}
	if err := s.DeliverLDA("nobody-here", []byte("Subject: x\n\nx\n")); err == nil {
		t.Error("an unknown user was accepted")
	}
	s.CheckLogCleanExcept(t, "nobody-here")
}
