package maildir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/unnamed"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func openStore(t *testing.T, loc formats.Location, opt formats.OpenOptions) *Store {
	t.Helper()
	if loc.Driver == "" {
		loc.Driver = "maildir"
	}
	s, err := Driver{}.Open(context.Background(), loc, opt)
	if err != nil {
		t.Fatalf("Open(%s) = %v", loc, err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*Store)
}

func openBox(t *testing.T, s *Store, name string) *mailbox {
	t.Helper()
	mb, err := s.Open(context.Background(), name)
	if err != nil {
		t.Fatalf("Open(%q) = %v", name, err)
	}
	t.Cleanup(func() { mb.Close() })
	return mb.(*mailbox)
}

func list(t *testing.T, mb formats.Mailbox) []formats.Message {
	t.Helper()
	var out []formats.Message
	for m, err := range mb.Messages(context.Background(), 1) {
		if err != nil {
			t.Fatalf("Messages = %v", err)
		}
		out = append(out, m)
	}
	return out
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func sized(n int) string { return strings.Repeat("x", n) }

// TestReadA4 reads the Dovecot-written files of dovecot-storage.md
// Appendix A.4 and changes nothing while doing so.
func TestReadA4(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"dovecot-uidlist":  a4Uidlist,
		"dovecot-keywords": "0 $Label1\n1 Junk\n",
		"subscriptions":    "V\t2\n\nWork\tSub\nINBOX\nEntw&APw-rfe\n",
		"new/1795938769.M323004P10720.vm,S=101,W=107:2,Sab": sized(101),
		"new/1795938769.M342772P10721.vm,S=53,W=58:2,DFRT":  sized(53),
		"cur/.keep": "",
		"tmp/.keep": "",
	})
	before := snapshot(t, root)
	s := openStore(t, formats.Location{Path: root}, formats.OpenOptions{ReadOnly: true})
	boxes, err := s.Mailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Subscribed names that do not exist are NoSelect nodes (without
	// their parents, as in the mem driver).
	if got := fmt.Sprint(boxes); got != "[{Entwürfe 00000000000000000000000000000000 true true} "+
		"{INBOX 20074113d1d90b6be029000083ecc375 false true} "+
		"{Work/Sub 00000000000000000000000000000000 true true}]" {
		t.Errorf("Mailboxes = %v", got)
	}
	mb := openBox(t, s, "INBOX")
	st, err := mb.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.UIDValidity != 1795938769 || st.UIDNext != 3 || st.Messages != 2 || st.GUID.String() != "20074113d1d90b6be029000083ecc375" {
		t.Errorf("Status = %+v", st)
	}
	msgs := list(t, mb)
	want := []string{
		`1 1795938769.M323004P10720.vm,S=101,W=107 \Seen [$Label1 Junk] 101 107`,
		`2 1795938769.M342772P10721.vm,S=53,W=58 \Answered \Flagged \Deleted \Draft [] 53 58`,
	}
	for i, m := range msgs {
		if got := fmt.Sprintf("%d %s %s %v %d %d", m.UID, m.GUID, m.Flags, m.Keywords, m.Size, m.VSize); i >= len(want) || got != want[i] {
			t.Errorf("message %d = %s", i, got)
		}
	}
	if after := snapshot(t, root); after != before {
		t.Errorf("reading changed the store:\n%s\nthen\n%s", before, after)
	}
}

// snapshot lists a tree's files with their sizes.
func snapshot(t *testing.T, root string) string {
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			fmt.Fprintf(&b, "%s %d\n", strings.TrimPrefix(p, root), fi.Size())
		}
		return nil
	})
	return b.String()
}

// TestNewMailPickup: files that are not in dovecot-uidlist get UIDs in
// Dovecot's order (seconds, then microseconds, then the name; new/ and
// cur/ alike), the uidlist is updated even through a read-only store, and
// flags of a name without ":2," read as none.
func TestNewMailPickup(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"dovecot-uidlist":                 "3 V1 N2 G0123456789abcdef0123456789abcdef\n1 :1600000000.M1P1.a\n",
		"cur/1600000000.M1P1.a:2,S":       "old",
		"new/1700000000.M20P1.a":          "third",
		"new/1700000000.M3P1.a":           "second",
		"cur/1690000000.M999999P1.a:2,FS": "first",
		"new/1800000000.P7Q1.a":           "fifth",
		"new/1800000000.P6Q1.a":           "fourth",
		"new/.hidden":                     "skipped",
		"tmp/1900000000.M1P1.a":           "not yet delivered",
	})
	s := openStore(t, formats.Location{Path: root}, formats.OpenOptions{ReadOnly: true})
	mb := openBox(t, s, "INBOX")
	var got []string
	for _, m := range list(t, mb) {
		var body bytes.Buffer
		if err := mb.Body(context.Background(), m.UID, func(b formats.Body) error { _, err := body.ReadFrom(b); return err }); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%s:%s", m.UID, body.String(), m.Flags))
	}
	want := []string{`1:old:\Seen`, `2:first:\Flagged \Seen`, `3:second:`, `4:third:`, `5:fourth:`, `6:fifth:`}
	if !slices.Equal(got, want) {
		t.Errorf("messages = %q\nwant %q", got, want)
	}
	data, _ := os.ReadFile(filepath.Join(root, "dovecot-uidlist"))
	wantList := "3 V1 N7 G0123456789abcdef0123456789abcdef\n1 :1600000000.M1P1.a\n2 :1690000000.M999999P1.a\n" +
		"3 :1700000000.M3P1.a\n4 :1700000000.M20P1.a\n5 :1800000000.P6Q1.a\n6 :1800000000.P7Q1.a\n"
	if string(data) != wantList {
		t.Errorf("dovecot-uidlist = %q\nwant %q", data, wantList)
	}
	if _, err := os.Stat(filepath.Join(root, "dovecot-uidlist.lock")); err == nil {
		t.Errorf("lock left behind")
	}
}

// TestNoUidlist: a maildir without dovecot-uidlist gets one with a new
// UIDVALIDITY (the current time) and mailbox GUID on first access.
func TestNoUidlist(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"cur/1.M1P1.a:2,": "a", "new/2.M1P1.a": "b", "tmp/.keep": ""})
	start := uint32(time.Now().Unix())
	s := openStore(t, formats.Location{Path: root}, formats.OpenOptions{})
	st, err := openBox(t, s, "INBOX").Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.UIDValidity < start || st.UIDNext != 3 || st.Messages != 2 || st.GUID.IsZero() {
		t.Errorf("Status = %+v", st)
	}
	h, _, _, err := (&mailbox{s: s, b: &box{name: "INBOX", ctl: root}}).readUidlist()
	if err != nil || h.GUID != st.GUID || h.UIDValidity != st.UIDValidity {
		t.Errorf("dovecot-uidlist header = %+v, %v", h, err)
	}
}

func TestBrokenUidlistLine(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"dovecot-uidlist": "3 V1 N9 G0123456789abcdef0123456789abcdef\n1 :a\nthis is not a record\n",
		"cur/a:2,":        "x",
	})
	s := openStore(t, formats.Location{Path: root}, formats.OpenOptions{})
	_, err := openBox(t, s, "INBOX").Status(context.Background())
	var fe *formats.Error
	if !errors.As(err, &fe) || fe.Kind != formats.KindInvalidData || fe.Mailbox != "INBOX" ||
		fe.Path != filepath.Join(root, "dovecot-uidlist") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("Status with a broken uidlist = %v, want InvalidData naming the path and line 3", err)
	}
	if _, err := os.Stat(filepath.Join(root, "dovecot-uidlist")); err != nil {
		t.Errorf("broken uidlist removed: %v", err)
	}
}

func TestFlagsOnNameWithoutInfo(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"cur/1600000000.M1P1.a": "x", "new/.keep": "", "tmp/.keep": ""})
	s := openStore(t, formats.Location{Path: root}, formats.OpenOptions{})
	mb := openBox(t, s, "INBOX")
	msgs := list(t, mb)
	if len(msgs) != 1 || msgs[0].Flags != 0 || msgs[0].GUID != "1600000000.M1P1.a" {
		t.Fatalf("messages = %+v", msgs)
	}
	tx, err := mb.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.SetFlags(msgs[0].UID, formats.FlagSeen, []string{"kw"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, filepath.Join(root, "cur")); !slices.Equal(got, []string{"1600000000.M1P1.a:2,Sa"}) {
		t.Errorf("cur/ = %q", got)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "dovecot-keywords")); string(data) != "0 kw\n" {
		t.Errorf("dovecot-keywords = %q", data)
	}
}

func TestNames(t *testing.T) {
	ctx := context.Background()
	pp := openStore(t, formats.Location{Path: t.TempDir()}, formats.OpenOptions{})
	fsl := openStore(t, formats.Location{Path: t.TempDir(), Layout: "fs"}, formats.OpenOptions{})
	tests := []struct {
		s    *Store
		name string
		kind formats.Kind
	}{
		{pp, "../x", formats.KindParams},
		{fsl, "../x", formats.KindParams},
		{pp, "a/../../b", formats.KindParams},
		{pp, "v1.2", formats.KindNotPossible}, // Maildir++ separator
		{fsl, "Work/cur", formats.KindNotPossible},
		{fsl, "tmp", formats.KindNotPossible},
	}
	for _, tc := range tests {
		if err := tc.s.Create(ctx, tc.name, formats.GUID{}, 0); formats.KindOf(err) != tc.kind {
			t.Errorf("Create(%q) = %v, want kind %s", tc.name, err, tc.kind)
		}
	}
	// Names on disk.
	for _, tc := range []struct {
		s        *Store
		name, at string
	}{
		{pp, "Entwürfe/R&D", ".Entw&APw-rfe.R&-D"},
		{fsl, "Entwürfe/R&D", "Entw&APw-rfe/R&-D"},
		{fsl, "v1.2", "v1.2"},
		{pp, "inbox/x", ".INBOX.x"},
	} {
		if err := tc.s.Create(ctx, tc.name, formats.GUID{}, 0); err != nil {
			t.Fatalf("Create(%q) = %v", tc.name, err)
		}
		if fi, err := os.Stat(filepath.Join(tc.s.root, tc.at, "cur")); err != nil || !fi.IsDir() {
			t.Errorf("Create(%q): no %s/cur: %v", tc.name, tc.at, err)
		}
	}
	u := openStore(t, formats.Location{Path: t.TempDir(), UTF8: true}, formats.OpenOptions{})
	if err := u.Create(ctx, "Entwürfe", formats.GUID{}, 0); err != nil {
		t.Fatal(err)
	}
	if !isDir(filepath.Join(u.root, ".Entwürfe", "cur")) {
		t.Errorf("UTF-8 location did not store the name as UTF-8")
	}
	// Directories that do not map back to a name are skipped.
	os.Mkdir(filepath.Join(pp.root, ".bad&utf7"), 0o700)
	os.Mkdir(filepath.Join(pp.root, ".a..b"), 0o700)
	os.Mkdir(filepath.Join(pp.root, trashName), 0o700)
	boxes, err := pp.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Name)
	}
	if want := []string{"Entwürfe", "Entwürfe/R&D", "INBOX", "INBOX/x"}; !slices.Equal(names, want) {
		t.Errorf("Mailboxes = %q, want %q", names, want)
	}
}

func TestLocationRefused(t *testing.T) {
	for _, tc := range []struct {
		loc  formats.Location
		want string
	}{
		{formats.Location{Driver: "maildir", Path: "/x", Other: map[string]string{"DIRNAME": "d"}}, "DIRNAME"},
		{formats.Location{Driver: "maildir", Path: "/x", Layout: "index"}, "LAYOUT=index"},
		{formats.Location{Driver: "maildir", Path: "/x", Alt: "/alt"}, "ALT"},
		{formats.Location{Driver: "maildir", Path: "rel"}, "absolute"},
	} {
		_, err := Driver{}.Open(context.Background(), tc.loc, formats.OpenOptions{})
		if formats.KindOf(err) != formats.KindConfig || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s) = %v, want a config error naming %s", tc.loc, err, tc.want)
		}
	}
	_, err := Driver{}.Open(context.Background(), formats.Location{Path: filepath.Join(t.TempDir(), "missing")}, formats.OpenOptions{})
	if formats.KindOf(err) != formats.KindNotFound {
		t.Errorf("Open(missing root) = %v, want NotFound", err)
	}
}

func newInbox(t *testing.T, loc formats.Location) (*Store, *mailbox) {
	t.Helper()
	s := openStore(t, loc, formats.OpenOptions{Create: true})
	if err := s.Create(context.Background(), "INBOX", formats.GUID{}, 0); err != nil {
		t.Fatal(err)
	}
	return s, openBox(t, s, "INBOX")
}

func save(t *testing.T, tx formats.Tx, m formats.Message, body string) formats.UID {
	t.Helper()
	m.Size = int64(len(body))
	uid, err := tx.Save(context.Background(), m, strings.NewReader(body))
	if err != nil {
		t.Fatalf("Save = %v", err)
	}
	return uid
}

// TestRollbackLeavesNothing saves two messages, unnamed (O_TMPFILE) and
// through tmp/, and rolls back: nothing may show before, nothing remain
// after.
func TestRollbackLeavesNothing(t *testing.T) {
	for _, tc := range []struct {
		name         string
		throughTmp   bool
		tmp, unnamed int // files in tmp/ and unnamed files open while saving
	}{
		{"unnamed", false, 0, 2},
		{"tmp", true, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "Maildir")
			s, mb := newInbox(t, formats.Location{Path: root})
			s.noUnnamed.Store(tc.throughTmp)
			open0 := unnamed.Held()
			tx, err := mb.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			save(t, tx, formats.Message{Flags: formats.FlagSeen, Keywords: []string{"kw"}}, "a")
			save(t, tx, formats.Message{UID: 7}, "b")
			if n := len(dirNames(t, filepath.Join(root, "tmp"))); n != tc.tmp {
				t.Errorf("tmp/ holds %d files while saving, want %d", n, tc.tmp)
			}
			if n := unnamed.Held() - open0; n != int64(tc.unnamed) {
				t.Errorf("%d unnamed files open while saving, want %d", n, tc.unnamed)
			}
			if got := dirNames(t, filepath.Join(root, "cur")); len(got) != 0 {
				t.Errorf("cur/ while saving = %q", got)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			for _, sub := range []string{"cur", "new", "tmp"} {
				if got := dirNames(t, filepath.Join(root, sub)); len(got) != 0 {
					t.Errorf("%s/ after Rollback = %q", sub, got)
				}
			}
			if n := unnamed.Held() - open0; n != 0 {
				t.Errorf("%d unnamed files still open after Rollback", n)
			}
			if _, err := os.Stat(filepath.Join(root, "dovecot-keywords")); err == nil {
				t.Errorf("Rollback left dovecot-keywords")
			}
		})
	}
}

// TestSaveBeyondUnnamedLimit: once the process holds unnamed.Limit
// unnamed files, saves go through tmp/; a transaction mixing both commits
// every message with its body and date, and an expunge in the
// transaction drops either kind.
func TestSaveBeyondUnnamedLimit(t *testing.T) {
	if unnamed.Limit() < 2 {
		t.Skip("no unnamed files here (O_TMPFILE)")
	}
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "Maildir")
	_, mb := newInbox(t, formats.Location{Path: root})
	// Leave room for two unnamed files.
	for unnamed.Held() < unnamed.Limit()-2 {
		if !unnamed.Reserve() {
			t.Fatal("unnamed.Reserve refused below the limit")
		}
		defer unnamed.Release()
	}
	open0 := unnamed.Held()

	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	date := func(i int) time.Time { return time.Date(2021, 3, 4, 5, 6, i, 0, time.UTC) }
	var uids []formats.UID
	for i := range 5 {
		uids = append(uids, save(t, tx, formats.Message{Received: date(i)}, fmt.Sprintf("Subject: %d\n\nbody %d\n", i, i)))
	}
	if n := len(dirNames(t, filepath.Join(root, "tmp"))); n != 3 {
		t.Errorf("tmp/ holds %d files, want 3 (the saves beyond the limit)", n)
	}
	// Drop one of each kind.
	for _, i := range []int{1, 3} {
		if err := tx.Expunge(uids[i]); err != nil {
			t.Fatal(err)
		}
	}
	if n := unnamed.Held() - open0; n != 1 {
		t.Errorf("%d unnamed files open after expunging one of two, want 1", n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := unnamed.Held() - open0; n != 0 {
		t.Errorf("%d unnamed files open after Commit", n)
	}
	if got := dirNames(t, filepath.Join(root, "tmp")); len(got) != 0 {
		t.Errorf("tmp/ after Commit = %q", got)
	}
	var got []string
	for m, err := range mb.Messages(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		var body []byte
		if err := mb.Body(ctx, m.UID, func(b formats.Body) (err error) {
			body, err = io.ReadAll(b)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s %q", m.UID, m.Received.UTC().Format(time.RFC3339), body))
	}
	var want []string
	for _, i := range []int{0, 2, 4} {
		want = append(want, fmt.Sprintf("%d %s %q", uids[i], date(i).Format(time.RFC3339), fmt.Sprintf("Subject: %d\n\nbody %d\n", i, i)))
	}
	if !slices.Equal(got, want) {
		t.Errorf("after Commit:\n got %q\nwant %q", got, want)
	}
}

// TestInterruptedCommit: a run that died left tmp/ files; the next
// transaction removes ours (named by a dead process of this host) and
// Dovecot's 36-hour-old ones, and works.
func TestInterruptedCommit(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	_, mb := newInbox(t, formats.Location{Path: root})
	dead := fmt.Sprintf("1700000000.M1P%d.%s", 1<<30-1, genHost) // no such pid
	foreignOld := "1600000000.M1P1.elsewhere"
	foreignNew := "1700000000.M2P1.elsewhere"
	writeFiles(t, root, map[string]string{"tmp/" + dead: "lost", "tmp/" + foreignOld: "old", "tmp/" + foreignNew: "in flight"})
	old := time.Now().Add(-37 * time.Hour)
	os.Chtimes(filepath.Join(root, "tmp", foreignOld), old, old)

	tx, err := mb.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	uid := save(t, tx, formats.Message{}, "new body")
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, filepath.Join(root, "tmp")); !slices.Equal(got, []string{foreignNew}) {
		t.Errorf("tmp/ = %q, want only %q", got, foreignNew)
	}
	msgs := list(t, mb)
	if len(msgs) != 1 || msgs[0].UID != uid {
		t.Errorf("messages = %+v", msgs)
	}
}

// TestUnknownKeywordLetter: a letter dovecot-keywords does not name reads
// as "unknown-<n>", and the next commit that adds a keyword writes that
// name down and takes another letter, as Dovecot does.
func TestUnknownKeywordLetter(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"dovecot-uidlist":  "3 V1 N2 G0123456789abcdef0123456789abcdef\n1 :a\n",
		"dovecot-keywords": "0 $Label1\n",
		"cur/a:2,Sac":      "x",
		"new/.keep":        "", "tmp/.keep": "",
	})
	s := openStore(t, formats.Location{Path: root}, formats.OpenOptions{})
	mb := openBox(t, s, "INBOX")
	if msgs := list(t, mb); len(msgs) != 1 || fmt.Sprint(msgs[0].Keywords) != "[$Label1 unknown-2]" {
		t.Fatalf("messages = %+v", msgs)
	}
	tx, _ := mb.Begin(context.Background())
	save(t, tx, formats.Message{Keywords: []string{"fresh"}}, "y")
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(root, "dovecot-keywords"))
	if string(data) != "0 $Label1\n1 fresh\n2 unknown-2\n" {
		t.Errorf("dovecot-keywords = %q", data)
	}
}

// TestGUIDAsBaseName: a GUID that is a fitting maildir base name (right
// ,S= and ,W=) names the file; any other GUID goes to the G field.
func TestGUIDAsBaseName(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	_, mb := newInbox(t, formats.Location{Path: root})
	tx, _ := mb.Begin(context.Background())
	body := "a\nb\n"
	save(t, tx, formats.Message{UID: 1, GUID: "1600000000.M1P2.src,S=4,W=6"}, body)
	save(t, tx, formats.Message{UID: 2, GUID: "1600000000.M1P3.src,S=4,W=5"}, body) // wrong W
	save(t, tx, formats.Message{UID: 3, GUID: "0123456789abcdef0123456789abcdef", Ext: map[byte]string{'P': "u3", 'O': "7"}}, body)
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	cur := dirNames(t, filepath.Join(root, "cur"))
	if !slices.Contains(cur, "1600000000.M1P2.src,S=4,W=6:2,") {
		t.Errorf("cur/ = %q, want the GUID as a file name", cur)
	}
	data, _ := os.ReadFile(filepath.Join(root, "dovecot-uidlist"))
	lines := strings.Split(string(data), "\n")
	if lines[1] != "1 :1600000000.M1P2.src,S=4,W=6" || !strings.HasPrefix(lines[2], "2 G1600000000.M1P3.src,S=4,W=5 :") ||
		!strings.HasPrefix(lines[3], "3 G0123456789abcdef0123456789abcdef Pu3 O7 :") {
		t.Errorf("dovecot-uidlist = %q", data)
	}
	for i, m := range list(t, mb) {
		want := []string{"1600000000.M1P2.src,S=4,W=6", "1600000000.M1P3.src,S=4,W=5", "0123456789abcdef0123456789abcdef"}[i]
		if m.GUID != want || m.Size != 4 || m.VSize != 6 {
			t.Errorf("uid %d: GUID %q size %d vsize %d, want %q 4 6", m.UID, m.GUID, m.Size, m.VSize, want)
		}
	}
}

// TestDuplicateBaseName: a second file with a base name already used is
// renamed to a new name in new/ and becomes a new message
// (maildir_fix_duplicate).
func TestDuplicateBaseName(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"dovecot-uidlist":               "3 V1 N2 G0123456789abcdef0123456789abcdef\n1 :1600000000.M1P1.a,S=1\n",
		"cur/1600000000.M1P1.a,S=1:2,S": "x",
		"cur/1600000000.M1P1.a,S=1:2,F": "y",
		"new/.keep":                     "", "tmp/.keep": "",
	})
	s := openStore(t, formats.Location{Path: root}, formats.OpenOptions{})
	msgs := list(t, openBox(t, s, "INBOX"))
	if len(msgs) != 2 || msgs[1].UID != 2 || !strings.HasSuffix(msgs[1].GUID, ",S=1") || msgs[1].GUID == msgs[0].GUID {
		t.Errorf("messages = %+v", msgs)
	}
	if n := len(dirNames(t, filepath.Join(root, "new"))); n != 2 {
		t.Errorf("new/ has %d entries, want the renamed duplicate and .keep", n)
	}
}

// TestLocks: a live lock holder makes a commit wait (and give up with
// the context), a lock whose owner is dead is taken over.
func TestLocks(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	_, mb := newInbox(t, formats.Location{Path: root})
	lock := filepath.Join(root, "dovecot-uidlist.lock")
	old := time.Now().Add(-10 * time.Second)

	// Held by a live process of this host (our parent).
	writeFiles(t, root, map[string]string{"dovecot-uidlist.lock": fmt.Sprintf("%d:%s", os.Getppid(), hostname())})
	os.Chtimes(lock, old, old)
	tx, _ := mb.Begin(context.Background())
	save(t, tx, formats.Message{}, "x")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := tx.Commit(ctx); err == nil || formats.KindOf(err) != formats.KindTemp {
		t.Errorf("Commit with the lock held = %v, want a Temp error", err)
	}
	if len(dirNames(t, filepath.Join(root, "cur"))) != 0 || len(dirNames(t, filepath.Join(root, "tmp"))) != 0 {
		t.Errorf("failed commit left files")
	}

	// Held by a process that is gone.
	writeFiles(t, root, map[string]string{"dovecot-uidlist.lock": fmt.Sprintf("%d:%s", 1<<30-1, hostname())})
	os.Chtimes(lock, old, old)
	tx, _ = mb.Begin(context.Background())
	save(t, tx, formats.Message{}, "x")
	if err := tx.Commit(context.Background()); err != nil {
		t.Errorf("Commit with a stale lock = %v", err)
	}
	if _, err := os.Stat(lock); err == nil {
		t.Errorf("lock left behind")
	}
}

func TestCheck(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	s, mb := newInbox(t, formats.Location{Path: root})
	tx, _ := mb.Begin(context.Background())
	save(t, tx, formats.Message{}, "x")
	save(t, tx, formats.Message{}, "y")
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(context.Background()); err != nil {
		t.Fatalf("Check = %v", err)
	}
	cur := dirNames(t, filepath.Join(root, "cur"))
	os.Remove(filepath.Join(root, "cur", cur[0]))
	if err := s.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "no file") {
		t.Errorf("Check with a missing file = %v", err)
	}
}

// TestMemory: a 50,000-message mailbox costs a few MB once synced.
func TestMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 50,000 files")
	}
	const n = 50000
	root := t.TempDir()
	var ul strings.Builder
	fmt.Fprintf(&ul, "3 V1 N%d G0123456789abcdef0123456789abcdef\n", n+1)
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.Mkdir(filepath.Join(root, sub), 0o700)
	}
	for i := 1; i <= n; i++ {
		base := fmt.Sprintf("17%08d.M%06dP%d.mail.example.org,S=1234,W=1260", i, i%1000000, 10000+i)
		fmt.Fprintf(&ul, "%d :%s\n", i, base)
		if err := os.WriteFile(filepath.Join(root, "cur", base+":2,S"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, root, map[string]string{"dovecot-uidlist": ul.String()})
	s := openStore(t, formats.Location{Path: root}, formats.OpenOptions{ReadOnly: true})
	mb := openBox(t, s, "INBOX")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st, err := mb.Status(context.Background())
	if err != nil || st.Messages != n {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	kept := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d messages: %.1f MB kept, %d bytes/message", n, float64(kept)/1e6, kept/n)
	if kept > 8<<20 {
		t.Errorf("a synced %d-message mailbox keeps %d bytes", n, kept)
	}
	runtime.KeepAlive(mb)
}

// TestFsyncModes: every mail_fsync mode commits readable mail.
func TestFsyncModes(t *testing.T) {
	for _, mode := range []formats.FsyncMode{formats.FsyncOptimized, formats.FsyncAlways, formats.FsyncNever} {
		root := filepath.Join(t.TempDir(), "Maildir")
		s := openStore(t, formats.Location{Path: root}, formats.OpenOptions{Create: true, Fsync: mode})
		if err := s.Create(context.Background(), "INBOX", formats.GUID{}, 0); err != nil {
			t.Fatal(err)
		}
		mb := openBox(t, s, "INBOX")
		tx, _ := mb.Begin(context.Background())
		save(t, tx, formats.Message{Keywords: []string{"k"}}, "a")
		save(t, tx, formats.Message{}, "b")
		if err := tx.Commit(context.Background()); err != nil {
			t.Fatalf("mode %d: Commit = %v", mode, err)
		}
		if err := s.SetSubscribed(context.Background(), "INBOX", true); err != nil {
			t.Fatalf("mode %d: SetSubscribed = %v", mode, err)
		}
		if n := len(list(t, mb)); n != 2 {
			t.Errorf("mode %d: %d messages", mode, n)
		}
	}
}

// TestConcurrentRename: a file a concurrent Dovecot renamed (a flag
// change) is found again by Body, and a commit changing it works on its
// new name.
func TestConcurrentRename(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	_, mb := newInbox(t, formats.Location{Path: root})
	tx, _ := mb.Begin(context.Background())
	uid := save(t, tx, formats.Message{}, "body")
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	rename := func(flags string) {
		cur := dirNames(t, filepath.Join(root, "cur"))
		if len(cur) != 1 {
			t.Fatalf("cur/ = %q", cur)
		}
		to := baseOf(cur[0]) + ":2," + flags
		if err := os.Rename(filepath.Join(root, "cur", cur[0]), filepath.Join(root, "cur", to)); err != nil {
			t.Fatal(err)
		}
	}
	list(t, mb)
	rename("S")
	var got bytes.Buffer
	if err := mb.Body(context.Background(), uid, func(b formats.Body) error { _, err := got.ReadFrom(b); return err }); err != nil || got.String() != "body" {
		t.Errorf("Body after a rename = %q, %v", got.String(), err)
	}
	tx, _ = mb.Begin(context.Background())
	if err := tx.SetFlags(uid, formats.FlagFlagged, nil); err != nil {
		t.Fatal(err)
	}
	rename("RS")
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if msgs := list(t, mb); len(msgs) != 1 || msgs[0].Flags != formats.FlagFlagged {
		t.Errorf("messages = %+v", msgs)
	}
	if cur := dirNames(t, filepath.Join(root, "cur")); len(cur) != 1 || !strings.HasSuffix(cur[0], ":2,F") {
		t.Errorf("cur/ = %q", cur)
	}
}

// TestParallelWriters: handles of one store committing to the same and to
// other mailboxes at once serialise on dovecot-uidlist.lock; no UID is
// given twice and nothing is lost.
func TestParallelWriters(t *testing.T) {
	ctx := context.Background()
	s, _ := newInbox(t, formats.Location{Path: filepath.Join(t.TempDir(), "Maildir")})
	if err := s.Create(ctx, "Other", formats.GUID{}, 0); err != nil {
		t.Fatal(err)
	}
	const writers, commits, per = 4, 5, 10
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			errs <- func() error {
				name := []string{"INBOX", "Other"}[w%2]
				mb, err := s.Open(ctx, name)
				if err != nil {
					return err
				}
				defer mb.Close()
				for c := 0; c < commits; c++ {
					tx, err := mb.Begin(ctx)
					if err != nil {
						return err
					}
					for i := 0; i < per; i++ {
						body := fmt.Sprintf("Subject: %d/%d/%d\n\n", w, c, i)
						if _, err := tx.Save(ctx, formats.Message{Size: int64(len(body)), Keywords: []string{fmt.Sprintf("w%d", w)}}, strings.NewReader(body)); err != nil {
							return err
						}
					}
					if err := tx.Commit(ctx); err != nil {
						return err
					}
				}
				return nil
			}()
		}()
	}
	for w := 0; w < writers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"INBOX", "Other"} {
		msgs := list(t, openBox(t, s, name))
		if len(msgs) != writers/2*commits*per {
			t.Errorf("%s: %d messages, want %d", name, len(msgs), writers/2*commits*per)
		}
		for i := 1; i < len(msgs); i++ {
			if msgs[i].UID <= msgs[i-1].UID {
				t.Fatalf("%s: UIDs not ascending at %d", name, i)
			}
		}
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check = %v", err)
	}
}
