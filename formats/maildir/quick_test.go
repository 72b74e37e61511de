package maildir

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// age sets the mtimes of a mailbox's cur/, new/ and dovecot-uidlist back,
// as if it had not changed for a while.
func age(t *testing.T, root string) {
	t.Helper()
	old := time.Now().Add(-time.Minute)
	for _, p := range []string{"cur", "new", uidlistName} {
		if err := os.Chtimes(filepath.Join(root, p), old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// TestQuickStatus: once a full read found the index agreeing with an
// unchanged Maildir, Status answers from the index (the "maildir" header,
// as Dovecot's quick check does), with the same values; any change to
// cur/, new/ or the uidlist sends it back to reading the Maildir; and
// Dovecot, which trusts the same header, sees what we see.
func TestQuickStatus(t *testing.T) {
	ctx := context.Background()
	d := dovecottest.New(t, "maildir:~/Maildir")
	root := d.Root()
	loc := formats.Location{Path: root}
	_, mb := newInbox(t, loc)
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range []formats.Flags{0, formats.FlagSeen, formats.FlagFlagged} {
		save(t, tx, formats.Message{Flags: f, Keywords: []string{"kw"}[:i%2]}, "Subject: "+sized(i+1)+"\n\nbody\n")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	fresh := func() *mailbox { return openBox(t, openStore(t, loc, formats.OpenOptions{}), "INBOX") }
	if _, ok := fresh().quickStatus(); ok {
		t.Fatal("quickStatus trusted a Maildir changed just now")
	}
	age(t, root)
	slow, err := fresh().Status(ctx) // reads the Maildir, records the header
	if err != nil {
		t.Fatal(err)
	}
	quick, ok := fresh().quickStatus()
	if !ok {
		t.Fatal("quickStatus did not trust an unchanged Maildir after a full read")
	}
	if quick != slow {
		t.Fatalf("quickStatus = %+v, a full read %+v", quick, slow)
	}
	// Dovecot agrees with the header: same count and HIGHESTMODSEQ.
	out := d.MustDoveadm(t, "mailbox", "status", "messages highestmodseq uidnext", "INBOX")
	for _, want := range []string{"messages=3", "highestmodseq=" + strconv.FormatUint(uint64(slow.HighestModSeq), 10), "uidnext=4"} {
		if !strings.Contains(out, want) {
			t.Errorf("doveadm mailbox status = %q, want %q", out, want)
		}
	}

	// A mail client sets \Seen on the first message: cur/ changes.
	ents, err := os.ReadDir(filepath.Join(root, "cur"))
	if err != nil {
		t.Fatal(err)
	}
	var renamed bool
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ":2,") {
			if err := os.Rename(filepath.Join(root, "cur", e.Name()), filepath.Join(root, "cur", e.Name()+"S")); err != nil {
				t.Fatal(err)
			}
			renamed = true
			break
		}
	}
	if !renamed {
		t.Fatal("no unflagged message file")
	}
	if _, ok := fresh().quickStatus(); ok {
		t.Fatal("quickStatus trusted the index after a rename in cur/")
	}
	after, err := fresh().Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.HighestModSeq <= slow.HighestModSeq {
		t.Errorf("HIGHESTMODSEQ %d after a flag change, was %d", after.HighestModSeq, slow.HighestModSeq)
	}
	if out := d.MustDoveadm(t, "fetch", "flags", "mailbox", "INBOX", "uid", "1"); !strings.Contains(out, `\Seen`) {
		t.Errorf("doveadm missed the renamed file's flag: %q", out)
	}

	// A delivery into new/.
	age(t, root)
	fresh().Status(ctx)
	if _, ok := fresh().quickStatus(); !ok {
		t.Fatal("quickStatus did not trust the Maildir Dovecot and we last read")
	}
	if err := os.WriteFile(filepath.Join(root, "new", "1700000000.M1P1.host"), []byte("Subject: new\n\nnew\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := fresh().quickStatus(); ok {
		t.Fatal("quickStatus trusted the index after a delivery into new/")
	}
	if st, err := fresh().Status(ctx); err != nil || st.Messages != 4 {
		t.Errorf("Status after a delivery = %+v, %v; want 4 messages", st, err)
	}
	d.CheckLogClean(t)
}
