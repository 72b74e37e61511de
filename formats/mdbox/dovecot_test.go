package mdbox_test

import (
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtest"
	"github.com/boxsync/boxsync/formats/mdbox"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// The interop tests (dboxtest) run the real Dovecot 2.3.19 on the same
// mdbox store as our driver and diff what each sees, field by field.
var dt = dboxtest.Interop{Format: "mdbox", Driver: mdbox.Driver{}}

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
func TestDovecotKeepsUsingOurs(t *testing.T) { dt.DovecotKeepsUsingOurs(t, nil, true) }

// TestWeReadAlt: mail Dovecot moved to ALT storage (alt/storage/m.*)
// reads as Dovecot sees it and backs up into a Maildir.
func TestWeReadAlt(t *testing.T) { dt.WeReadAlt(t) }

// TestRecentAsDovecot: Message.Recent is what Dovecot reports \Recent.
func TestRecentAsDovecot(t *testing.T) { dt.RecentAsDovecot(t) }
