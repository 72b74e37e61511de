package dboxtest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// RecentAsDovecot checks that Message.Recent is what Dovecot reports as
// \Recent (doveadm fetch flags, which claims nothing): mail Dovecot
// saved, none after an IMAP SELECT claimed it, new mail after that, and
// mail we save, with or without Recent: Dovecot's dbox save leaves
// first_recent_uid alone, so every saved message is \Recent
// (Caps.SaveRecent false), ours included; then our raise of
// first_recent_uid, which Dovecot honours, and a delivery after it.
func (x Interop) RecentAsDovecot(t *testing.T) {
	ctx := context.Background()
	d, loc := x.Dovecot(t, "")
	check := func(when string, want ...formats.UID) {
		t.Helper()
		theirs := dovecottest.RecentUIDs[formats.UID](t, d, "INBOX")
		s := x.OpenStore(t, loc, formats.OpenOptions{ReadOnly: true})
		mb, err := s.Open(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		var ours []formats.UID
		for m, err := range mb.Messages(ctx, 1) {
			if err != nil {
				t.Fatal(err)
			}
			if m.Recent {
				ours = append(ours, m.UID)
			}
		}
		mb.Close()
		s.Close()
		if fmt.Sprint(theirs) != fmt.Sprint(want) || fmt.Sprint(ours) != fmt.Sprint(want) {
			t.Errorf("%s: \\Recent UIDs: Dovecot %v, ours %v, want %v", when, theirs, ours, want)
		}
	}
	d.Save(t, "INBOX", []byte("Subject: one\n\nbody\n"))
	d.Save(t, "INBOX", []byte("Subject: two\n\nbody\n"))
	check("saved by Dovecot", 1, 2)
	c := d.Cmd(t, "exec", "imap")
	c.Stdin = strings.NewReader("a select INBOX\r\nb logout\r\n")
	if out, err := c.Output(); err != nil || !strings.Contains(string(out), "a OK") {
		t.Fatalf("imap select: %v\n%s", err, out)
	}
	check("after SELECT")
	d.Save(t, "INBOX", []byte("Subject: three\n\nbody\n"))
	check("a new delivery", 3)
	s := x.OpenStore(t, loc, formats.OpenOptions{})
	SaveAll(t, s, "INBOX", []formats.Message{{Flags: formats.FlagSeen}, {Recent: true}}, 0)
	s.Close()
	check("after our saves", 3, 4, 5)

	// first_recent_uid raised (formats.FirstRecentRaiser), as dsync's
	// finish does; a lower raise changes nothing.
	for _, uid := range []formats.UID{5, 4} {
		s := x.OpenStore(t, loc, formats.OpenOptions{})
		mb, err := s.Open(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		tx, err := mb.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.(formats.FirstRecentRaiser).RaiseFirstRecentUID(uid); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := mb.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.FirstRecentUID != 5 {
			t.Errorf("raised to %d: Status().FirstRecentUID = %d, want 5", uid, st.FirstRecentUID)
		}
		mb.Close()
		s.Close()
		check(fmt.Sprintf("raised to %d", uid), 5)
	}
	d.Save(t, "INBOX", []byte("Subject: six\n\nbody\n"))
	check("a delivery after the raise", 5, 6)
	d.CheckLogClean(t)
}
