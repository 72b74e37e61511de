package sdbox_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/sdbox"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// The interop tests run the real Dovecot 2.3.19 (internal/dovecottest:
// skipped without doveadm, except on CI) on the same store as our driver
// and diff what each sees, field by field: mailboxes, GUIDs, UIDVALIDITY,
// UIDNEXT, HIGHESTMODSEQ, and per message UID, GUID, flags, keywords,
// dates, sizes, modseq and a hash of the bytes. The save date is the
// file's ctime for both of us (Dovecot caches the one it saw; nothing
// else can set it) and is compared too: files are only chowned before
// Dovecot first reads them, and we read after it.

var interopLayouts = []struct{ name, opts string }{
	{"default", ""},
	{"index", ":INDEX=~/idx"},
	{"utf8+control", ":UTF-8:CONTROL=~/ctl"},
}

// interop returns a Dovecot for layout and our view of the same location.
func interop(t *testing.T, opts string) (*dovecottest.Dovecot, formats.Location) {
	t.Helper()
	d := dovecottest.New(t, "sdbox:~/sdbox"+opts)
	loc, err := formats.ParseLocation(d.Location(), formats.Vars{User: "dovecottest", Home: d.Home()})
	if err != nil {
		t.Fatal(err)
	}
	return d, loc
}

func openStore(t *testing.T, loc formats.Location, opt formats.OpenOptions) formats.Store {
	t.Helper()
	s, err := sdbox.Driver{}.Open(context.Background(), loc, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// compare diffs Dovecot's view with ours (read after Dovecot's, so that
// both see the same files) and checks Dovecot's log.
func compare(t *testing.T, d *dovecottest.Dovecot, s formats.Store, ignore ...dovecottest.Field) {
	t.Helper()
	theirs := d.Snapshot(t)
	ours, err := formatstest.DovecotTree(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := dovecottest.Diff(theirs, ours, ignore...); diff != "" {
		t.Errorf("Dovecot (a) and we (b) differ:\n%s\nDovecot:\n%s\nours:\n%s", diff, theirs, ours)
	}
	d.CheckLogClean(t)
	if c, ok := s.(formats.Checker); ok {
		if err := c.Check(context.Background()); err != nil {
			t.Errorf("Check() = %v", err)
		}
	}
}

var interopBodies = [][]byte{
	[]byte("Subject: lf\nMessage-ID: <lf@x>\n\nline\nFrom here\n"),
	[]byte("Subject: crlf\r\n\r\nline\r\n"),
	[]byte("Subject: mixed\r\n\nno newline"),
	[]byte("Subject: \xe4 8bit\n\n\x00\x01binary\xff\n"),
	{},
	[]byte("Subject: six\n\n6\n"),
}

// interopMessages have every kind of metadata: UIDs with gaps, all flags,
// keywords, received dates after 2038, 32-hex and other
// GUIDs, POP3 UIDLs and orders, unknown metadata, and modseqs.
func interopMessages() []formats.Message {
	base := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	return []formats.Message{
		{UID: 1, Flags: formats.FlagSeen, Keywords: []string{"$Label1", "Junk"}, GUID: "0123456789abcdef0123456789abcdef",
			Ext: map[byte]string{'P': "uidl-one", 'O': "1"}, Received: base, ModSeq: 40},
		{UID: 5, Flags: formats.FlagDraft | formats.FlagFlagged | formats.FlagAnswered | formats.FlagDeleted,
			Received: time.Date(1999, 7, 20, 20, 17, 0, 0, time.UTC)},
		// A Maildir base name as GUID: kept as is in G.
		{UID: 7, GUID: "1600000000.M1P2.other,S=26,W=27", Keywords: []string{"$Forwarded"}, Received: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
			Ext: map[byte]string{'P': "uidl-seven", 'Y': "unknown metadata"}, ModSeq: 45},
		{UID: 9, Keywords: []string{"Junk", "work"}, Received: base.Add(time.Hour), ModSeq: 7},
		{UID: 12, Received: base.Add(2 * time.Hour), Ext: map[byte]string{'O': "12"}},
		{UID: 13, Received: base.Add(3 * time.Hour), ModSeq: 44},
	}
}

// saveAll saves msgs with interopBodies into mailbox name.
func saveAll(t *testing.T, store formats.Store, name string, msgs []formats.Message, uidNext formats.UID) {
	t.Helper()
	ctx := context.Background()
	mb, err := store.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for i, m := range msgs {
		body := interopBodies[i%len(interopBodies)]
		m.Size = int64(len(body))
		uid, err := tx.Save(ctx, m, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if m.UID != 0 && uid != m.UID {
			t.Fatalf("Save(uid %d) = uid %d", m.UID, uid)
		}
	}
	if uidNext > 0 {
		if err := tx.SetUIDNext(uidNext); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

var interopNames = []string{"INBOX", "Entwürfe/Sub", "R&D", "日本語", "With Space"}

// TestDovecotReadsOurs writes a store with every kind of metadata and
// checks that Dovecot reads back the same, without complaint.
func TestDovecotReadsOurs(t *testing.T) {
	ctx := context.Background()
	for _, lay := range interopLayouts {
		t.Run(lay.name, func(t *testing.T) {
			d, loc := interop(t, lay.opts)
			store := openStore(t, loc, formats.OpenOptions{Create: true})
			for i, name := range interopNames {
				if err := store.Create(ctx, name, formats.NewGUID(), uint32(1234567890+i)); err != nil {
					t.Fatal(err)
				}
				saveAll(t, store, name, interopMessages(), 20)
			}
			// A second transaction: flag and keyword changes, an expunge.
			mb, err := store.Open(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			tx, _ := mb.Begin(ctx)
			for _, err := range []error{
				tx.SetFlags(1, formats.FlagFlagged, []string{"Junk", "new-kw"}),
				tx.SetFlags(9, 0, nil),
				tx.Expunge(5),
				tx.Commit(ctx),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			mb.Close()
			for _, name := range []string{"INBOX", "Entwürfe/Sub", "R&D", "Gone/Away"} {
				if err := store.SetSubscribed(ctx, name, true); err != nil {
					t.Fatal(err)
				}
			}
			compare(t, d, store)
			checkPOP3(t, d)
			// Modseqs we were given survive where the log's own count
			// stays below them.
			out := d.MustDoveadm(t, "-f", "tab", "fetch", "uid modseq", "mailbox", "R&D", "uid", "1,7,13")
			if want := "uid\tmodseq\n1\t40\n7\t45\n13\t44\n"; out != want {
				t.Errorf("doveadm fetch modseq = %q, want %q", out, want)
			}
		})
	}
}

// checkPOP3 checks that Dovecot honours the POP3 metadata we wrote
// (dbox-hdr flags and hdr-pop3-uidl) and shows a non-hex GUID as it is.
func checkPOP3(t *testing.T, d *dovecottest.Dovecot) {
	t.Helper()
	out := d.MustDoveadm(t, "-f", "tab", "fetch", "uid guid pop3.uidl pop3.order", "mailbox", "R&D")
	want := "uid\tguid\tpop3.uidl\tpop3.order\n" +
		"1\t0123456789abcdef0123456789abcdef\tuidl-one\t1\n" +
		"5\t"
	if !strings.HasPrefix(out, want) || !strings.Contains(out, "\n7\t1600000000.M1P2.other,S=26,W=27\tuidl-seven\t\n") ||
		!strings.Contains(out, "\t12\n") {
		t.Errorf("doveadm fetch pop3 fields =\n%s", out)
	}
}

// dovecotWrites has Dovecot build a store: mailboxes, saves, flags,
// keywords, an expunge, subscriptions, and a `doveadm backup` of a
// Maildir with every flag.
func dovecotWrites(t *testing.T, d *dovecottest.Dovecot) {
	t.Helper()
	for _, name := range []string{"Entwürfe/Sub", "R&D", "Work"} {
		d.MustDoveadm(t, "mailbox", "create", name)
	}
	for _, body := range []string{"Subject: one\n\nbody\n", "Subject: two\r\n\r\ncrlf\r\n", "Subject: three\n\nx", "Subject: gone\n\n", ""} {
		d.Save(t, "INBOX", []byte(body))
		d.Save(t, "Entwürfe/Sub", []byte(body))
	}
	d.MustDoveadm(t, "flags", "add", `\Seen $Label1 Junk`, "mailbox", "INBOX", "uid", "2")
	d.MustDoveadm(t, "flags", "add", `\Draft \Flagged \Answered \Deleted`, "mailbox", "INBOX", "uid", "3")
	d.MustDoveadm(t, "flags", "add", `Junk`, "mailbox", "Entwürfe/Sub", "uid", "1")
	d.MustDoveadm(t, "flags", "remove", `Junk`, "mailbox", "INBOX", "uid", "2")
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "4")
	d.MustDoveadm(t, "mailbox", "subscribe", "INBOX", "Entwürfe/Sub", "Gone")
}

// TestWeReadDovecots lets Dovecot write a store and reads it.
func TestWeReadDovecots(t *testing.T) {
	for _, lay := range interopLayouts {
		t.Run(lay.name, func(t *testing.T) {
			d, loc := interop(t, lay.opts)
			dovecotWrites(t, d)
			compare(t, d, openStore(t, loc, formats.OpenOptions{ReadOnly: true}))
		})
	}
}

// TestWeReadDovecotBackup has `doveadm backup` convert a Maildir (with
// modseqs in its index) into sdbox and reads the result.
func TestWeReadDovecotBackup(t *testing.T) {
	src := dovecottest.New(t, "maildir:~/Maildir")
	src.MustDoveadm(t, "mailbox", "create", "-s", "Work/Projects")
	for i, body := range []string{"Subject: one\n\nbody\n", "Subject: two\n\nbody two\n", "Subject: three\n\n3\n"} {
		src.Save(t, "INBOX", []byte(body))
		src.Save(t, "Work/Projects", []byte(fmt.Sprintf("Subject: w%d\n\n", i)))
	}
	src.MustDoveadm(t, "flags", "add", `\Seen $Forwarded Important`, "mailbox", "INBOX", "uid", "1")
	src.MustDoveadm(t, "flags", "add", `\Answered \Flagged \Draft \Deleted work`, "mailbox", "INBOX", "uid", "2")
	src.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "3")
	d, loc := interop(t, "")
	d.Chown(t, src.Root())
	d.MustDoveadm(t, "backup", "-R", "maildir:"+src.Root())
	compare(t, d, openStore(t, loc, formats.OpenOptions{ReadOnly: true}))
}

// TestDovecotKeepsUsingOurs writes a store, lets Dovecot save into it,
// change flags and expunge, and reads the result; then writes into what
// Dovecot changed and has Dovecot read that.
func TestDovecotKeepsUsingOurs(t *testing.T) {
	ctx := context.Background()
	for _, lay := range interopLayouts {
		t.Run(lay.name, func(t *testing.T) {
			d, loc := interop(t, lay.opts)
			store := openStore(t, loc, formats.OpenOptions{Create: true})
			for _, name := range []string{"INBOX", "Work"} {
				if err := store.Create(ctx, name, formats.GUID{}, 0); err != nil {
					t.Fatal(err)
				}
				saveAll(t, store, name, interopMessages(), 0)
			}
			d.Save(t, "INBOX", []byte("Subject: by dovecot\n\nhello\n"))
			d.Save(t, "Work", []byte("Subject: by dovecot\n\nhello\n"))
			d.MustDoveadm(t, "flags", "replace", `\Answered Later`, "mailbox", "INBOX", "uid", "1,9")
			d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "5,14")
			d.MustDoveadm(t, "mailbox", "create", "ByDovecot", "EmptyByDovecot")
			d.Save(t, "ByDovecot", []byte("Subject: x\n\n"))
			if _, err := os.Stat(filepath.Join(d.Root(), "mailboxes", "INBOX", "dbox-Mails", "u.5")); err == nil {
				t.Errorf("doveadm expunge left u.5")
			}
			compare(t, d, store)

			// and once more from our side
			saveAll(t, store, "INBOX", []formats.Message{{Keywords: []string{"ours"}}}, 0)
			saveAll(t, store, "ByDovecot", []formats.Message{{UID: 7, Flags: formats.FlagSeen}}, 0)
			saveAll(t, store, "EmptyByDovecot", interopMessages(), 0)
			mb, err := store.Open(ctx, "Work")
			if err != nil {
				t.Fatal(err)
			}
			tx, _ := mb.Begin(ctx)
			for _, err := range []error{tx.Expunge(14), tx.SetFlags(1, formats.FlagSeen, []string{"Later", "$Label1"}), tx.Commit(ctx)} {
				if err != nil {
					t.Fatal(err)
				}
			}
			mb.Close()
			// mailboxes come and go behind Dovecot's list index
			if err := store.Create(ctx, "Later/Child", formats.GUID{}, 0); err != nil {
				t.Fatal(err)
			}
			saveAll(t, store, "Later/Child", interopMessages()[:2], 0)
			if err := store.Delete(ctx, "ByDovecot"); err != nil {
				t.Fatal(err)
			}
			compare(t, d, store)
		})
	}
}
