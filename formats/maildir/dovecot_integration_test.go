//go:build integration

package maildir_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/maildir"
)

// doveadm runs the real Dovecot 2.3.19 against a store in a temporary
// directory. As root, Dovecot drops to nobody (it refuses root), so the
// tree is handed to uid 65534 before each run.
type doveadm struct {
	t    *testing.T
	dir  string
	conf string
	uid  int
}

func newDoveadm(t *testing.T) *doveadm {
	t.Helper()
	if _, err := exec.LookPath("doveadm"); err != nil {
		t.Fatalf("doveadm not found (apt-get install dovecot-core dovecot-imapd): %v", err)
	}
	d := &doveadm{t: t, dir: t.TempDir(), uid: os.Getuid()}
	if d.uid == 0 {
		d.uid = 65534
		// Let nobody reach the temporary directory.
		for p := d.dir; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
			os.Chmod(p, 0o755)
		}
	}
	for _, sub := range []string{"run", "state", "home"} {
		os.Mkdir(filepath.Join(d.dir, sub), 0o755)
	}
	d.conf = filepath.Join(d.dir, "dovecot.conf")
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
ssl = no
first_valid_uid = 1
first_valid_gid = 1
mail_uid = %[2]d
mail_gid = %[2]d
namespace inbox {
  inbox = yes
  separator = /
}
`, d.dir, d.uid)
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// checkLog fails the test if Dovecot logged a warning or an error (a
// "Broken file", a "Corrupted" index, a rebuild).
func (d *doveadm) checkLog() {
	d.t.Helper()
	data, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "Error") || strings.Contains(l, "Warning") || strings.Contains(l, "Panic") {
			d.t.Errorf("dovecot.log: %s", l)
		}
	}
	if testing.Verbose() {
		d.t.Logf("dovecot.log:\n%s", data)
	}
}

// give hands a tree to the mail user.
func (d *doveadm) give(root string) {
	if os.Getuid() != 0 {
		return
	}
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Lchown(p, d.uid, d.uid)
		}
		return nil
	})
}

// run runs doveadm on location loc and fails the test on any error output.
func (d *doveadm) run(loc formats.Location, stdin []byte, args ...string) string {
	d.t.Helper()
	full := append([]string{"-c", d.conf, "-o", "mail_location=" + loc.String()}, args...)
	cmd := exec.Command("doveadm", full...)
	cmd.Env = append(os.Environ(), "USER=boxsync", "HOME="+filepath.Join(d.dir, "home"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	if err != nil || stderr.Len() > 0 {
		d.t.Fatalf("doveadm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// table parses "-f tab" output into rows of column → value.
func table(out string) []map[string]string {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 0 || lines[0] == "" {
		return nil
	}
	head := strings.Split(lines[0], "\t")
	var rows []map[string]string
	for _, l := range lines[1:] {
		row := map[string]string{}
		for i, v := range strings.Split(l, "\t") {
			if i < len(head) {
				row[head[i]] = v
			}
		}
		rows = append(rows, row)
	}
	return rows
}

var layouts = []struct {
	name string
	loc  func(root string) formats.Location
}{
	{"maildir++", func(root string) formats.Location { return formats.Location{Driver: "maildir", Path: root} }},
	{"fs", func(root string) formats.Location {
		return formats.Location{Driver: "maildir", Path: root, Layout: "fs"}
	}},
	{"utf8", func(root string) formats.Location { return formats.Location{Driver: "maildir", Path: root, UTF8: true} }},
	{"control", func(root string) formats.Location {
		return formats.Location{Driver: "maildir", Path: root, Control: root + "-control"}
	}},
}

// dovecotView is what doveadm reports about a mailbox's messages.
type dovecotMsg struct {
	UID      formats.UID
	GUID     string
	Flags    []string // system flags and keywords, \Recent dropped, sorted
	Received int64
	Size     int64
	VSize    int64
	UIDL     string
	Body     []byte
}

func (d *doveadm) messages(loc formats.Location, mailbox string) []dovecotMsg {
	d.t.Helper()
	rows := table(d.run(loc, nil, "-f", "tab", "fetch",
		"uid guid flags date.received.unixtime size.physical size.virtual pop3.uidl", "mailbox", mailbox, "all"))
	var out []dovecotMsg
	for _, r := range rows {
		uid, _ := strconv.Atoi(r["uid"])
		m := dovecotMsg{UID: formats.UID(uid), GUID: r["guid"], UIDL: r["pop3.uidl"]}
		m.Received, _ = strconv.ParseInt(r["date.received.unixtime"], 10, 64)
		m.Size, _ = strconv.ParseInt(r["size.physical"], 10, 64)
		m.VSize, _ = strconv.ParseInt(r["size.virtual"], 10, 64)
		for _, f := range strings.Fields(r["flags"]) {
			if f != `\Recent` {
				m.Flags = append(m.Flags, f)
			}
		}
		slices.Sort(m.Flags)
		text := d.run(loc, nil, "-f", "pager", "fetch", "text", "mailbox", mailbox, "uid", r["uid"])
		m.Body = []byte(strings.TrimPrefix(text, "text:\n"))
		out = append(out, m)
	}
	return out
}

// ours reads the same through our driver.
func ours(t *testing.T, ctx context.Context, store formats.Store, mailbox string) []dovecotMsg {
	t.Helper()
	mb, err := store.Open(ctx, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	var out []dovecotMsg
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		dm := dovecotMsg{UID: m.UID, GUID: m.GUID, Received: m.Received.Unix(), Size: m.Size, VSize: m.VSize, UIDL: m.Ext['P']}
		dm.Flags = append(m.Flags.Names(), m.Keywords...)
		slices.Sort(dm.Flags)
		if err := mb.Body(ctx, m.UID, func(b formats.Body) error {
			dm.Body, err = io.ReadAll(b)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		out = append(out, dm)
	}
	return out
}

func diffMessages(t *testing.T, what string, got, want []dovecotMsg) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d messages, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.VSize < 0 {
			g.VSize = w.VSize // unknown to us; Dovecot computes it
		}
		gb, wb := g.Body, w.Body
		g.Body, w.Body = nil, nil
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("%s message %d:\n got %+v\nwant %+v", what, i, g, w)
		}
		if !bytes.Equal(gb, wb) {
			t.Errorf("%s uid %d: body %q, want %q", what, w.UID, gb, wb)
		}
	}
}

type status struct {
	GUID              string
	UIDValidity, Next uint32
	Messages          int
}

func (d *doveadm) status(loc formats.Location) map[string]status {
	d.t.Helper()
	out := map[string]status{}
	for _, r := range table(d.run(loc, nil, "-f", "tab", "mailbox", "status", "guid uidvalidity uidnext messages", "*")) {
		v, _ := strconv.ParseUint(r["uidvalidity"], 10, 32)
		n, _ := strconv.ParseUint(r["uidnext"], 10, 32)
		c, _ := strconv.Atoi(r["messages"])
		out[r["mailbox"]] = status{r["guid"], uint32(v), uint32(n), c}
	}
	return out
}

func ourStatus(t *testing.T, ctx context.Context, store formats.Store) map[string]status {
	t.Helper()
	boxes, err := store.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]status{}
	for _, b := range boxes {
		if b.NoSelect {
			continue
		}
		mb, err := store.Open(ctx, b.Name)
		if err != nil {
			t.Fatal(err)
		}
		st, err := mb.Status(ctx)
		mb.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[b.Name] = status{st.GUID.String(), st.UIDValidity, uint32(st.UIDNext), st.Messages}
	}
	return out
}

func (d *doveadm) subscribed(loc formats.Location) []string {
	out := strings.Fields(d.run(loc, nil, "mailbox", "list", "-s"))
	slices.Sort(out)
	return out
}

func ourSubscribed(t *testing.T, ctx context.Context, store formats.Store) []string {
	boxes, err := store.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range boxes {
		if b.Subscribed {
			out = append(out, b.Name)
		}
	}
	slices.Sort(out)
	return out
}

// TestDovecotReadsOurs writes a store with every kind of metadata and
// checks that Dovecot 2.3.19 reads back the same UIDs, UIDVALIDITY, GUIDs,
// flags, keywords, dates, sizes, POP3 UIDLs, bytes and subscriptions.
func TestDovecotReadsOurs(t *testing.T) {
	ctx := context.Background()
	for _, lay := range layouts {
		t.Run(lay.name, func(t *testing.T) {
			d := newDoveadm(t)
			loc := lay.loc(filepath.Join(d.dir, "Maildir"))
			store, err := maildir.Driver{}.Open(ctx, loc, formats.OpenOptions{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			base := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
			bodies := [][]byte{
				[]byte("Subject: lf\n\nline\n"),
				[]byte("Subject: crlf\r\n\r\nline\r\n"),
				[]byte("Subject: mixed\r\n\nno newline"),
				[]byte("Subject: \xe4 8bit\n\n\x01binary\xff\n"),
			}
			msgs := []formats.Message{
				{UID: 1, Flags: formats.FlagSeen, Keywords: []string{"$Label1", "Junk"}, GUID: "0123456789abcdef0123456789abcdef",
					Ext: map[byte]string{'P': "uidl-one", 'O': "1"}},
				{UID: 5, Flags: formats.FlagDraft | formats.FlagFlagged | formats.FlagAnswered | formats.FlagDeleted},
				// A GUID that is a maildir base name with the right
				// sizes becomes the file name.
				{UID: 7, GUID: fmt.Sprintf("1600000000.M1P2.other,S=%d,W=%d", len(bodies[2]), len(bodies[2])+1), Keywords: []string{"$Forwarded"}},
				{UID: 9, Keywords: []string{"Junk", "work"}},
			}
			for _, name := range []string{"INBOX", "Entwürfe/Sub", "R&D", "日本語"} {
				if err := store.Create(ctx, name, formats.NewGUID(), 1234567890); err != nil {
					t.Fatal(err)
				}
				mb, err := store.Open(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				tx, err := mb.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for i, m := range msgs {
					m.Received = base.Add(time.Duration(i) * time.Hour)
					m.Size = int64(len(bodies[i]))
					if _, err := tx.Save(ctx, m, bytes.NewReader(bodies[i])); err != nil {
						t.Fatal(err)
					}
				}
				if err := tx.SetUIDNext(20); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				mb.Close()
			}
			for _, name := range []string{"INBOX", "Entwürfe/Sub", "R&D"} {
				if err := store.SetSubscribed(ctx, name, true); err != nil {
					t.Fatal(err)
				}
			}
			d.give(d.dir)

			want := ourStatus(t, ctx, store)
			if got := d.status(loc); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("doveadm mailbox status:\n got %v\nwant %v", got, want)
			}
			for name := range want {
				diffMessages(t, name, d.messages(loc, name), ours(t, ctx, store, name))
			}
			if got, want := d.subscribed(loc), ourSubscribed(t, ctx, store); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("subscriptions: doveadm %q, ours %q", got, want)
			}
			if testing.Verbose() {
				t.Logf("status %v", want)
				t.Logf("INBOX %+v", d.messages(loc, "INBOX"))
			}
			d.checkLog()
		})
	}
}

// TestWeReadDovecots lets Dovecot write a store (mailboxes, saves, flags,
// keywords, subscriptions, a mail delivered to new/ behind its back) and
// checks that we read what doveadm reads, and that the UIDs we record
// for the new mail are the ones Dovecot then shows.
func TestWeReadDovecots(t *testing.T) {
	ctx := context.Background()
	for _, lay := range layouts {
		t.Run(lay.name, func(t *testing.T) {
			d := newDoveadm(t)
			root := filepath.Join(d.dir, "Maildir")
			loc := lay.loc(root)
			os.MkdirAll(root, 0o700)
			if loc.Control != "" {
				os.MkdirAll(loc.Control, 0o700)
			}
			d.give(d.dir)
			for _, name := range []string{"Entwürfe/Sub", "R&D", "Work"} {
				d.run(loc, nil, "mailbox", "create", name)
			}
			for i, body := range []string{"Subject: one\n\nbody\n", "Subject: two\r\n\r\ncrlf\r\n", "Subject: three\n\nx"} {
				d.run(loc, []byte(body), "save", "-m", "INBOX")
				d.run(loc, []byte(body), "save", "-m", "Entwürfe/Sub")
				_ = i
			}
			d.run(loc, nil, "flags", "add", `\Seen $Label1 Junk`, "mailbox", "INBOX", "uid", "2")
			d.run(loc, nil, "flags", "add", `\Draft \Flagged \Answered \Deleted`, "mailbox", "INBOX", "uid", "3")
			d.run(loc, nil, "flags", "add", `Junk`, "mailbox", "Entwürfe/Sub", "uid", "1")
			d.run(loc, nil, "mailbox", "subscribe", "INBOX", "Entwürfe/Sub", "Gone")

			// Mail delivered behind Dovecot's back: we pick it up and
			// record UIDs in Dovecot's order.
			inboxDir := root
			if err := os.WriteFile(filepath.Join(inboxDir, "new", "1700000002.M5P9.mx"), []byte("Subject: late\n\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(inboxDir, "cur", "1700000001.M7P9.mx:2,S"), []byte("Subject: early\n\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			d.give(d.dir)
			store, err := maildir.Driver{}.Open(ctx, loc, formats.OpenOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			got := ours(t, ctx, store, "INBOX")
			if n := len(got); n < 2 || got[n-2].Body == nil || !strings.Contains(string(got[n-2].Body), "early") || !strings.Contains(string(got[n-1].Body), "late") {
				t.Errorf("new mail not assigned UIDs in Dovecot's order: %+v", got)
			}
			d.give(d.dir)
			if got, want := ourStatus(t, ctx, store), d.status(loc); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("status:\n ours %v\n dovecot %v", got, want)
			}
			for _, name := range []string{"INBOX", "Entwürfe/Sub"} {
				diffMessages(t, name, ours(t, ctx, store, name), d.messages(loc, name))
			}
			if got, want := ourSubscribed(t, ctx, store), d.subscribed(loc); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("subscriptions: ours %q, doveadm %q", got, want)
			}
			if testing.Verbose() {
				t.Logf("INBOX %+v", got)
			}
			d.checkLog()
		})
	}
}

// TestDovecotSeesOurChanges changes a store Dovecot wrote and indexed
// (flags, a new keyword, an expunge, saves with kept UIDs) and checks
// that Dovecot's next look agrees with ours: its index follows the file
// names, dovecot-keywords and dovecot-uidlist we rewrote.
func TestDovecotSeesOurChanges(t *testing.T) {
	ctx := context.Background()
	for _, lay := range layouts {
		t.Run(lay.name, func(t *testing.T) {
			d := newDoveadm(t)
			root := filepath.Join(d.dir, "Maildir")
			loc := lay.loc(root)
			os.MkdirAll(root, 0o700)
			if loc.Control != "" {
				os.MkdirAll(loc.Control, 0o700)
			}
			d.give(d.dir)
			for _, body := range []string{"Subject: one\n\nbody\n", "Subject: two\n\nbody\n", "Subject: three\n\nx"} {
				d.run(loc, []byte(body), "save", "-m", "INBOX")
			}
			d.run(loc, nil, "flags", "add", `\Seen $Label1 Junk`, "mailbox", "INBOX", "uid", "1:2")
			d.run(loc, nil, "mailbox", "status", "all", "INBOX") // let Dovecot index it all

			store, err := maildir.Driver{}.Open(ctx, loc, formats.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			mb, err := store.Open(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			defer mb.Close()
			tx, err := mb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			steps := []error{
				tx.SetFlags(1, formats.FlagFlagged, []string{"Junk", "work"}),
				tx.Expunge(2),
				tx.SetFlags(3, formats.FlagSeen|formats.FlagAnswered, []string{"$Label1"}),
			}
			body := []byte("Subject: ours\n\nsaved by boxsync\n")
			_, err = tx.Save(ctx, formats.Message{UID: 10, Size: int64(len(body)), Keywords: []string{"new-kw"}, Received: time.Unix(1500000000, 0)}, bytes.NewReader(body))
			steps = append(steps, err, tx.Commit(ctx))
			for _, err := range steps {
				if err != nil {
					t.Fatal(err)
				}
			}
			d.give(d.dir)
			diffMessages(t, "INBOX", d.messages(loc, "INBOX"), ours(t, ctx, store, "INBOX"))
			if got, want := d.status(loc), ourStatus(t, ctx, store); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("status:\n doveadm %v\n ours %v", got, want)
			}
			d.checkLog()
		})
	}
}
