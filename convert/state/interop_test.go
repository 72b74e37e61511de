package state

import (
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestDoveadmState decodes a state the real `doveadm sync -s` printed and
// checks it names the mailbox's GUID, UIDVALIDITY and last common UID.
func TestDoveadmState(t *testing.T) {
	d := dovecottest.New(t, "maildir:~/Maildir")
	d.Save(t, "INBOX", []byte("Subject: a\n\na\n"))
	d.Save(t, "INBOX", []byte("Subject: b\n\nb\n"))
	out := d.MustDoveadm(t, "sync", "-f", "-s", "", "maildir:~/Replica")
	line := strings.TrimSpace(out)
	s, err := Decode(line)
	if err != nil {
		t.Fatalf("Decode(%q) = %v", line, err)
	}
	st := d.Snapshot(t).Lookup("INBOX")
	g, err := formats.ParseGUID(st.GUID)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := s[g]
	if !ok {
		t.Fatalf("state %q lacks INBOX %s: %v", line, g, s)
	}
	if m.UIDValidity != st.UIDValidity || m.LastCommonUID != 2 || m.MessagesCount != 2 {
		t.Errorf("state for INBOX = %+v, want UIDVALIDITY %d, last common UID 2, 2 messages", m, st.UIDValidity)
	}
	// And boxsync's encoding of it is one doveadm accepts: a stateful
	// rerun with it prints a state again and exits 0.
	if _, err := d.Doveadm("sync", "-s", Encode(s), "maildir:~/Replica"); err != nil {
		t.Errorf("doveadm rejected boxsync's state: %v", err)
	}
	d.CheckLogClean(t)
}
