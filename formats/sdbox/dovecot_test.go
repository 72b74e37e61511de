package sdbox_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtest"
	"github.com/boxsync/boxsync/formats/sdbox"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// The interop tests (dboxtest) run the real Dovecot 2.3.19 on the same
// sdbox store as our driver and diff what each sees, field by field.
var dt = dboxtest.Interop{Format: "sdbox", Driver: sdbox.Driver{}}

// interop returns a Dovecot for layout and our view of the same location.
func interop(t *testing.T, opts string) (*dovecottest.Dovecot, formats.Location) {
	t.Helper()
	return dt.Dovecot(t, opts)
}

func openStore(t *testing.T, loc formats.Location, opt formats.OpenOptions) formats.Store {
	t.Helper()
	return dt.OpenStore(t, loc, opt)
}

// compare diffs Dovecot's view with ours and checks Dovecot's log.
func compare(t *testing.T, d *dovecottest.Dovecot, s formats.Store, ignore ...dovecottest.Field) {
	t.Helper()
	dboxtest.Compare(t, d, s, ignore...)
}

func interopMessages() []formats.Message { return dboxtest.Messages() }

func saveAll(t *testing.T, store formats.Store, name string, msgs []formats.Message, uidNext formats.UID) {
	t.Helper()
	dboxtest.SaveAll(t, store, name, msgs, uidNext)
}

func dovecotWrites(t *testing.T, d *dovecottest.Dovecot) {
	t.Helper()
	dboxtest.DovecotWrites(t, d)
}

func TestDovecotReadsOurs(t *testing.T)      { dt.DovecotReadsOurs(t) }
func TestWeReadDovecots(t *testing.T)        { dt.WeReadDovecots(t) }
func TestWeReadDovecotBackup(t *testing.T)   { dt.WeReadDovecotBackup(t) }
func TestDovecotKeepsUsingOurs(t *testing.T) { dt.DovecotKeepsUsingOurs(t, expungeRemovedFile, false) }

// expungeRemovedFile checks that Dovecot's expunge of UID 5 removed its file.
func expungeRemovedFile(t *testing.T, d *dovecottest.Dovecot) {
	if _, err := os.Stat(filepath.Join(d.Root(), "mailboxes", "INBOX", "dbox-Mails", "u.5")); err == nil {
		t.Errorf("doveadm expunge left u.5")
	}
}

// TestWeReadAlt: mail Dovecot moved to ALT storage reads as Dovecot sees
// it, backs up into a Maildir, and our expunge removes its ALT file.
func TestWeReadAlt(t *testing.T) { dt.WeReadAlt(t) }

// TestRebuildAlt: Rebuild counts the u.<uid> files in ALT storage: after
// the index is rebuilt, Dovecot and we see the same messages as before.
func TestRebuildAlt(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, ":ALT=~/alt")
	dovecotWrites(t, d)
	d.MustDoveadm(t, "altmove", "mailbox", "INBOX", "uid", "1,3")
	before := d.Snapshot(t)
	store := openStore(t, loc, formats.OpenOptions{})
	if err := store.(sdbox.Rebuilder).Rebuild(ctx, "INBOX"); err != nil {
		t.Fatalf("Rebuild() = %v", err)
	}
	// the old index survives: only its rebuild count and modseqs move
	if diff := dovecottest.Diff(before, d.Snapshot(t), dovecottest.ModSeq, dovecottest.HighestModSeq); diff != "" {
		t.Errorf("Dovecot sees the rebuilt mailbox differently (a=before b=after):\n%s", diff)
	}
	compare(t, d, store)
}

// TestRecentAsDovecot: Message.Recent is what Dovecot reports \Recent.
func TestRecentAsDovecot(t *testing.T) { dt.RecentAsDovecot(t) }
