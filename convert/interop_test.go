package convert_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/fixtures"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/maildir"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// Everything is carried but the save date (a Maildir's is the file's ctime,
// which nobody can set).
var notCarried = []dovecottest.Field{dovecottest.Saved}

// modSeqsKept checks the rule for modseqs across a conversion (issue 3):
// each message's modseq and each mailbox's HIGHESTMODSEQ in the copy are
// never lower than the source's, so a CONDSTORE client that cached the
// old values misses no change. (Equal where the log allows: a source whose
// modseqs are below what any log can reproduce ends higher.)
func modSeqsKept(t *testing.T, src, dst dovecottest.Tree) {
	t.Helper()
	for _, sb := range src.Mailboxes {
		db := dst.Lookup(sb.Name)
		if db == nil {
			continue
		}
		if db.HighestModSeq < sb.HighestModSeq {
			t.Errorf("%q: HIGHESTMODSEQ %d below the source's %d", sb.Name, db.HighestModSeq, sb.HighestModSeq)
		}
		for _, sm := range sb.Messages {
			if dm := db.Lookup(sm.UID); dm != nil && dm.ModSeq < sm.ModSeq {
				t.Errorf("%q uid %d: modseq %d below the source's %d", sb.Name, sm.UID, dm.ModSeq, sm.ModSeq)
			}
		}
	}
}

func openMaildir(t *testing.T, root string, opt formats.OpenOptions) formats.Store {
	t.Helper()
	loc, err := formats.ParseLocation("maildir:"+root, formats.Vars{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := maildir.Driver{}.Open(context.Background(), loc, opt)
	if err != nil {
		t.Fatalf("open %s: %v", loc, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// dovecotSource has the real Dovecot build a Maildir with every feature the
// skeleton must carry: nested, non-ASCII and container-only names,
// subscriptions, all system flags, keywords, an expunge, and CRLF and
// no-trailing-newline files that Dovecot finds in cur/ and new/ (doveadm
// save would strip the CRs).
func dovecotSource(t *testing.T) *dovecottest.Dovecot {
	t.Helper()
	d := dovecottest.New(t, "maildir:~/Maildir")
	for _, n := range []string{"Entwürfe", "日本語", "Work/Projects 2024", "R&D", "Lists/dovecot"} {
		d.MustDoveadm(t, "mailbox", "create", "-s", n)
	}
	d.MustDoveadm(t, "mailbox", "unsubscribe", "R&D")
	d.Save(t, "INBOX", []byte("From: a@example.com\nSubject: one\nMessage-ID: <1@x>\n\nFrom the start\n>From quoted\n"))
	d.Save(t, "INBOX", []byte("Subject: two\n\nbody two\n"))
	d.Save(t, "INBOX", []byte("Subject: three\n\nbody three\n"))
	d.Save(t, "INBOX", []byte{})
	d.Save(t, "Entwürfe", []byte("Subject: =?utf-8?q?Entw=C3=BCrfe?=\n\n\xc3\xa4\n"))
	d.Save(t, "Work/Projects 2024", []byte("Subject: w\n\nw\n"))
	d.MustDoveadm(t, "flags", "add", `\Seen $Forwarded Important`, "mailbox", "INBOX", "uid", "1")
	d.MustDoveadm(t, "flags", "add", `\Answered \Flagged \Draft \Deleted work`, "mailbox", "INBOX", "uid", "2")
	d.MustDoveadm(t, "flags", "add", `$Label1`, "mailbox", "Entwürfe", "all")
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "3")
	// Files a delivery agent left: CRLF in cur/ with flags, no trailing
	// newline in new/.
	root := d.Root()
	write := func(rel, data string, mtime time.Time) {
		p := filepath.Join(root, rel)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mtime, mtime)
	}
	write("cur/1600000000.M1P1.mx:2,S", "Subject: crlf\r\n\r\nline\r\nline\r\n", time.Unix(1600000000, 0))
	write("new/1600000001.M2P2.mx", "Subject: no newline\n\nlast", time.Unix(1600000001, 0))
	return d
}

// TestInteropBackupMaildir: what boxsync writes from a Dovecot-made Maildir,
// the real Dovecot reads with the same mailboxes, UIDs, UIDVALIDITY,
// UIDNEXT, GUIDs, flags, keywords, dates, sizes and bytes; and boxsync
// reads Dovecot's Maildir exactly as Dovecot reports it.
func TestInteropBackupMaildir(t *testing.T) {
	ctx := context.Background()
	src := dovecotSource(t)
	want := src.Snapshot(t)

	srcStore := openMaildir(t, src.Root(), formats.OpenOptions{ReadOnly: true})
	ours, err := formatstest.DovecotTree(ctx, srcStore)
	if err != nil {
		t.Fatal(err)
	}
	if d := dovecottest.Diff(want, ours, dovecottest.ModSeq, dovecottest.HighestModSeq, dovecottest.Saved); d != "" {
		t.Errorf("boxsync reads Dovecot's Maildir differently (a=Dovecot b=boxsync):\n%s", d)
	}

	dst := dovecottest.New(t, "maildir:~/Maildir")
	dstStore := openMaildir(t, dst.Root(), formats.OpenOptions{Create: true})
	res := backup(t, srcStore, dstStore, convert.Options{})
	if res.Messages.Saved == 0 {
		t.Fatalf("nothing saved: %+v", res)
	}
	got := dst.Snapshot(t)
	if d := dovecottest.Diff(want, got, notCarried...); d != "" {
		t.Errorf("Dovecot sees the backup differently (a=source b=backup):\n%s\nsource:\n%s\nbackup:\n%s", d, want, got)
	}
	dst.CheckLogClean(t)
	src.CheckLogClean(t)

	// A second run is a no-op; then Dovecot changes the backup and the
	// next run reverts it.
	if res := backup(t, srcStore, dstStore, convert.Options{}); res.Messages.Saved+res.Messages.Expunged+res.Messages.FlagsChanged != 0 {
		t.Errorf("second backup not a no-op: %+v", res)
	}
	dst.MustDoveadm(t, "flags", "replace", `\Deleted local`, "mailbox", "INBOX", "all")
	dst.Save(t, "Entwürfe", []byte("Subject: local\n\nlocal\n"))
	dst.MustDoveadm(t, "mailbox", "create", "LocalOnly")
	backup(t, srcStore, openMaildir(t, dst.Root(), formats.OpenOptions{Create: true}), convert.Options{})
	// Dovecot's changes raised the copy's modseqs, which never go down.
	reverted := dst.Snapshot(t)
	if d := dovecottest.Diff(want, reverted, dovecottest.Saved, dovecottest.ModSeq, dovecottest.HighestModSeq); d != "" {
		t.Errorf("backup did not revert destination changes:\n%s", d)
	}
	modSeqsKept(t, want, reverted)
	dst.CheckLogClean(t)
}

// TestInteropCorpus: the generated corpus (every shape of mail the
// generator knows) backed up into a Maildir reads back through the real
// Dovecot equal to the source in every field the skeleton carries.
func TestInteropCorpus(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	if _, err := fixtures.Populate(ctx, src, 1, fixtures.Small); err != nil {
		t.Fatal(err)
	}
	want, err := formatstest.DovecotTree(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	dst := dovecottest.New(t, "maildir:~/Maildir")
	backup(t, src, openMaildir(t, dst.Root(), formats.OpenOptions{Create: true}), convert.Options{})
	got := dst.Snapshot(t)
	// The in-memory source's modseqs are lower than a transaction log can
	// reproduce (every keyword record counts): they must not be lower.
	if d := dovecottest.Diff(want, got, dovecottest.Saved, dovecottest.ModSeq, dovecottest.HighestModSeq); d != "" {
		t.Errorf("Dovecot sees the backup differently (a=source b=backup):\n%s", d)
	}
	modSeqsKept(t, want, got)
	dst.CheckLogClean(t)
}

// TestInteropBackupIntoDbox: the Dovecot-made Maildir backed up into sdbox
// and mdbox reads back through the real Dovecot equal in every field but
// the save date; modseqs and HIGHESTMODSEQ included (the source's last
// change is an expunge, so its HIGHESTMODSEQ is above every message's).
func TestInteropBackupIntoDbox(t *testing.T) {
	src := dovecotSource(t)
	// Make the last change an expunge of the newest message, so that
	// HIGHESTMODSEQ is above every remaining message's modseq.
	inbox := src.Snapshot(t).Lookup("INBOX")
	newest := inbox.Messages[0]
	for _, m := range inbox.Messages {
		if m.ModSeq > newest.ModSeq {
			newest = m
		}
	}
	src.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", fmt.Sprint(newest.UID))
	want := src.Snapshot(t)
	if hms, top := want.Lookup("INBOX").HighestModSeq, newest.ModSeq; hms <= top {
		t.Fatalf("source HIGHESTMODSEQ %d not above the remaining messages' (%d)", hms, top)
	}
	srcStore := openMaildir(t, src.Root(), formats.OpenOptions{ReadOnly: true})
	for _, format := range []string{"sdbox", "mdbox"} {
		t.Run(format, func(t *testing.T) {
			dst := dovecottest.New(t, format+":~/"+format)
			dstStore := openLoc(t, format+":"+dst.Root(), formats.OpenOptions{Create: true})
			backup(t, srcStore, dstStore, convert.Options{})
			got := dst.Snapshot(t)
			if d := dovecottest.Diff(want, got, dovecottest.Saved); d != "" {
				t.Errorf("Dovecot sees the %s backup differently (a=source b=backup):\n%s", format, d)
			}
			modSeqsKept(t, want, got)
			dst.CheckLogClean(t)
			if res := backup(t, srcStore, dstStore, convert.Options{}); res.Messages.Saved+res.Messages.Expunged+res.Messages.FlagsChanged != 0 {
				t.Errorf("second backup into %s not a no-op: %+v", format, res)
			}
		})
	}
}
