package maildir_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/maildir"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// The interop tests run the real Dovecot 2.3.19 (internal/dovecottest:
// skipped without doveadm, except on CI) on the same store as our driver
// and diff what each sees, modseqs too once Dovecot has indexed every
// mailbox (before that we have no index to read). Save dates are not
// compared: ours is the file's ctime, which a chown or a flag
// change (a rename) moves, while Dovecot keeps the first one it saw in its
// index cache (Caps.SaveDate is false).

var interopLayouts = []struct{ name, opts string }{
	{"maildir++", ""},
	{"fs", ":LAYOUT=fs"},
	{"utf8", ":UTF-8"},
	{"control", ":CONTROL=~/control"},
}

// interop returns a Dovecot for layout and our view of the same location.
func interop(t *testing.T, opts string) (*dovecottest.Dovecot, formats.Location) {
	t.Helper()
	d := dovecottest.New(t, "maildir:~/Maildir"+opts)
	loc, err := formats.ParseLocation(d.Location(), formats.Vars{User: "dovecottest", Home: d.Home()})
	if err != nil {
		t.Fatal(err)
	}
	return d, loc
}

func openStore(t *testing.T, loc formats.Location, opt formats.OpenOptions) formats.Store {
	t.Helper()
	s, err := maildir.Driver{}.Open(context.Background(), loc, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// compare diffs Dovecot's view with ours.
func compare(t *testing.T, d *dovecottest.Dovecot, s formats.Store) {
	t.Helper()
	ours, err := formatstest.DovecotTree(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	theirs := d.Snapshot(t)
	if diff := dovecottest.Diff(theirs, ours, dovecottest.HighestModSeq, dovecottest.ModSeq, dovecottest.Saved); diff != "" {
		t.Errorf("Dovecot (a) and we (b) differ:\n%s\nDovecot:\n%s\nours:\n%s", diff, theirs, ours)
	}
	// Once Dovecot has indexed every mailbox, we read its modseqs.
	ours, err = formatstest.DovecotTree(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := dovecottest.Diff(theirs, ours, dovecottest.Saved); diff != "" {
		t.Errorf("after Dovecot's sync, Dovecot (a) and we (b) differ:\n%s\nDovecot:\n%s\nours:\n%s", diff, theirs, ours)
	}
	d.CheckLogClean(t)
}

// TestDovecotReadsOurs writes a store with every kind of metadata and
// checks that Dovecot reads back the same UIDs, UIDVALIDITY, mailbox and
// message GUIDs, flags, keywords, dates, sizes, bytes and subscriptions.
// Bodies are saved as unnamed files (O_TMPFILE) linked into cur/ at
// Commit, and in the last case through tmp/ and renamed, as where the
// system has no unnamed files.
func TestDovecotReadsOurs(t *testing.T) {
	ctx := context.Background()
	type layout struct {
		name, opts string
		throughTmp bool
	}
	var layouts []layout
	for _, lay := range interopLayouts {
		layouts = append(layouts, layout{lay.name, lay.opts, false})
	}
	layouts = append(layouts, layout{"maildir++/tmp", "", true})
	for _, lay := range layouts {
		t.Run(lay.name, func(t *testing.T) {
			d, loc := interop(t, lay.opts)
			store := openStore(t, loc, formats.OpenOptions{Create: true})
			if lay.throughTmp {
				maildir.SaveThroughTmp(store.(*maildir.Store))
			}
			base := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
			bodies := [][]byte{
				[]byte("Subject: lf\n\nline\n"),
				[]byte("Subject: crlf\r\n\r\nline\r\n"),
				[]byte("Subject: mixed\r\n\nno newline"),
				[]byte("Subject: \xe4 8bit\n\n\x01binary\xff\n"),
				{},
			}
			msgs := []formats.Message{
				{UID: 1, Flags: formats.FlagSeen, Keywords: []string{"$Label1", "Junk"}, GUID: "0123456789abcdef0123456789abcdef",
					Ext: map[byte]string{'P': "uidl-one", 'O': "1"}},
				{UID: 5, Flags: formats.FlagDraft | formats.FlagFlagged | formats.FlagAnswered | formats.FlagDeleted},
				// A GUID that is a maildir base name with the right
				// sizes becomes the file name.
				{UID: 7, GUID: fmt.Sprintf("1600000000.M1P2.other,S=%d,W=%d", len(bodies[2]), len(bodies[2])+1), Keywords: []string{"$Forwarded"}},
				{UID: 9, Keywords: []string{"Junk", "work"}},
				{UID: 12},
			}
			for _, name := range []string{"INBOX", "Entwürfe/Sub", "R&D", "日本語", "With Space"} {
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
			for _, name := range []string{"INBOX", "Entwürfe/Sub", "R&D", "Gone/Away"} {
				if err := store.SetSubscribed(ctx, name, true); err != nil {
					t.Fatal(err)
				}
			}
			compare(t, d, store)
		})
	}
}

// TestWeReadDovecots lets Dovecot write a store (mailboxes, saves, flags,
// keywords, an expunge, subscriptions) plus mail delivered behind its back,
// which we pick up first: Dovecot must then show the UIDs we recorded.
func TestWeReadDovecots(t *testing.T) {
	for _, lay := range interopLayouts {
		t.Run(lay.name, func(t *testing.T) {
			d, loc := interop(t, lay.opts)
			for _, name := range []string{"Entwürfe/Sub", "R&D", "Work"} {
				d.MustDoveadm(t, "mailbox", "create", name)
			}
			for _, body := range []string{"Subject: one\n\nbody\n", "Subject: two\r\n\r\ncrlf\r\n", "Subject: three\n\nx", "Subject: gone\n\n"} {
				d.Save(t, "INBOX", []byte(body))
				d.Save(t, "Entwürfe/Sub", []byte(body))
			}
			d.MustDoveadm(t, "flags", "add", `\Seen $Label1 Junk`, "mailbox", "INBOX", "uid", "2")
			d.MustDoveadm(t, "flags", "add", `\Draft \Flagged \Answered \Deleted`, "mailbox", "INBOX", "uid", "3")
			d.MustDoveadm(t, "flags", "add", `Junk`, "mailbox", "Entwürfe/Sub", "uid", "1")
			d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "4")
			d.MustDoveadm(t, "mailbox", "subscribe", "INBOX", "Entwürfe/Sub", "Gone")
			for name, body := range map[string]string{
				"new/1700000002.M5P9.mx":     "Subject: late\n\n",
				"cur/1700000001.M7P9.mx:2,S": "Subject: early\n\n",
			} {
				if err := os.WriteFile(filepath.Join(d.Root(), name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			store := openStore(t, loc, formats.OpenOptions{ReadOnly: true})
			compare(t, d, store)
		})
	}
}

// TestDovecotSeesOurChanges changes a store Dovecot wrote and indexed
// (flags, a new keyword, an expunge, a save with a kept UID) and checks
// that Dovecot's next look agrees: its index follows the file names,
// dovecot-keywords and dovecot-uidlist we rewrote.
func TestDovecotSeesOurChanges(t *testing.T) {
	ctx := context.Background()
	for _, lay := range interopLayouts {
		t.Run(lay.name, func(t *testing.T) {
			d, loc := interop(t, lay.opts)
			for _, body := range []string{"Subject: one\n\nbody\n", "Subject: two\n\nbody\n", "Subject: three\n\nx"} {
				d.Save(t, "INBOX", []byte(body))
			}
			d.MustDoveadm(t, "flags", "add", `\Seen $Label1 Junk`, "mailbox", "INBOX", "uid", "1:2")
			d.Snapshot(t) // let Dovecot index it all

			store := openStore(t, loc, formats.OpenOptions{})
			mb, err := store.Open(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			defer mb.Close()
			tx, err := mb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			body := []byte("Subject: ours\n\nsaved by boxsync\n")
			_, err = tx.Save(ctx, formats.Message{UID: 10, Size: int64(len(body)), Keywords: []string{"new-kw"}, Received: time.Unix(1500000000, 0)}, bytes.NewReader(body))
			for _, err := range []error{
				err,
				tx.SetFlags(1, formats.FlagFlagged, []string{"Junk", "work"}),
				tx.Expunge(2),
				tx.SetFlags(3, formats.FlagSeen|formats.FlagAnswered, []string{"$Label1"}),
				tx.Commit(ctx),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			compare(t, d, store)
		})
	}
}

// TestDovecotWritesBetweenOurCommits: a mailbox handle keeps the
// dovecot-uidlist it last wrote and reuses it while the file is unchanged
// (state.list); mail Dovecot delivers between two of our commits (Dovecot
// appends to the uidlist, or recreates it when its index wants) must be
// seen, keep its UIDs, and push our next save above them.
func TestDovecotWritesBetweenOurCommits(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, "")
	d.Save(t, "INBOX", []byte("Subject: first\n\nby Dovecot\n"))
	store := openStore(t, loc, formats.OpenOptions{})
	mb, err := store.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	saveOurs := func(subject string, uid formats.UID) formats.UID {
		t.Helper()
		tx, err := mb.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		body := []byte("Subject: " + subject + "\n\nsaved by boxsync\n")
		got, err := tx.Save(ctx, formats.Message{UID: uid, Size: int64(len(body)), Received: time.Unix(1500000000, 0)}, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return got
	}
	saveOurs("ours 1", 2)
	for round := range 3 {
		// Dovecot delivers twice (the uidlist grows in place), then
		// flags one of ours (a rename, the uidlist unchanged), after
		// our handle last read the mailbox.
		st, err := mb.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		d.Save(t, "INBOX", []byte(fmt.Sprintf("Subject: dovecot %d a\n\nx\n", round)))
		d.Save(t, "INBOX", []byte(fmt.Sprintf("Subject: dovecot %d b\n\nx\n", round)))
		d.MustDoveadm(t, "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "2")
		// Dovecot expunges the first of its two: the second keeps
		// its UID, which a stale uidlist would hand out again.
		d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", fmt.Sprint(st.UIDNext))
		// We ask for the UID our last state calls next, which Dovecot
		// has used meanwhile: the commit must move ours above
		// Dovecot's two, not reuse it.
		if uid := saveOurs(fmt.Sprintf("ours %d", round+2), st.UIDNext); uid < st.UIDNext+2 {
			t.Errorf("round %d: our save got UID %d, but Dovecot's mail goes up to %d", round, uid, st.UIDNext+1)
		}
	}
	compare(t, d, store)
	var n int
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		_ = m
	}
	if n != 1+1+3*2 {
		t.Errorf("%d messages, want %d", n, 1+1+3*2)
	}
}
