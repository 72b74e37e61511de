package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestMigrateFromIMAP is issue 7's migration through the CLI: a real
// Dovecot IMAP server on loopback is the source (mail_location = imapc:),
// a Maildir or an mdbox the destination. The real Dovecot then reads the destination
// with the source's mailboxes, UIDs, UIDVALIDITY, GUIDs, flags, keywords,
// dates and bytes. A rerun after the server's mail changed moves just the
// changes and duplicates nothing (real doveadm fails that rerun with exit
// 75 "UID already exists locally for a different mail").
func TestMigrateFromIMAP(t *testing.T) {
	for _, format := range []string{"maildir", "mdbox"} {
		t.Run(format, func(t *testing.T) { migrateFromIMAP(t, format) })
	}
}

func migrateFromIMAP(t *testing.T, format string) {
	srv := dovecottest.ServeIMAP(t, false)
	for _, n := range []string{"Entwürfe", "Work/Projects 2024", "R&D"} {
		srv.MustDoveadm(t, "mailbox", "create", "-s", n)
	}
	for i := range 6 {
		srv.Save(t, "INBOX", fmt.Appendf(nil, "Subject: in %d\nMessage-ID: <%d@x>\n\nbody %d\n", i, i, i))
	}
	srv.Save(t, "Entwürfe", []byte("Subject: draft\n\n\xc3\xa4\n"))
	srv.Save(t, "Work/Projects 2024", []byte("Subject: w\n\nw\n"))
	srv.MustDoveadm(t, "flags", "add", `\Seen $Forwarded Important`, "mailbox", "INBOX", "uid", "1:3")
	srv.MustDoveadm(t, "flags", "add", `\Flagged \Answered`, "mailbox", "INBOX", "uid", "2")
	srv.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "4")

	te := newTestEnv(t)
	passFile := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(passFile, []byte(dovecottest.IMAPPassword+"\n"), 0o600)
	dst := dovecottest.New(t, format+":~/mail")
	args := func(pass string) []string {
		return []string{"-o", "mail_location=imapc:", "-o", "imapc_host=127.0.0.1",
			"-o", fmt.Sprint("imapc_port=", srv.Port), "-o", "imapc_user=" + dovecottest.IMAPUser,
			"-o", "imapc_password_file=" + pass, "backup", format + ":" + dst.Root()}
	}
	notCarried := []dovecottest.Field{dovecottest.Saved, dovecottest.ModSeq, dovecottest.HighestModSeq}
	if format == "mdbox" {
		// mdbox keeps the server's CONDSTORE modseqs and save dates too.
		notCarried = nil
	}
	check := func(what string) {
		t.Helper()
		te.run(t, args(passFile)...).expect(t, args(passFile), 0)
		want, got := srv.Snapshot(t), dst.Snapshot(t)
		if d := dovecottest.Diff(want, got, notCarried...); d != "" {
			t.Fatalf("%s: Dovecot sees the migrated store differently (a=server b=migrated):\n%s", what, d)
		}
		dst.CheckLogClean(t)
	}
	check("first migration")

	// The server's mail changes; the rerun mirrors just that.
	srv.Save(t, "INBOX", []byte("Subject: new\n\nnew\n"))
	srv.MustDoveadm(t, "flags", "replace", `\Deleted work`, "mailbox", "INBOX", "uid", "1")
	srv.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "5")
	srv.MustDoveadm(t, "mailbox", "create", "Later")
	srv.Save(t, "Later", []byte("Subject: later\n\nlater\n"))
	check("rerun after changes")

	// A wrong password: a permission error (exit 77), and the password
	// given is nowhere in what boxsync prints.
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("wrong-PASSWORD-zork\n"), 0o600)
	r := te.run(t, args(bad)...)
	r.expect(t, args(bad), 77)
	if strings.Contains(r.stderr+r.stdout, "wrong-PASSWORD-zork") || strings.Contains(r.stderr, dovecottest.IMAPPassword) {
		t.Errorf("a password appears in the output:\n%s", r.stderr)
	}
}

// TestBackupToIMAP is issue 7's "as a destination (beyond dsync, which
// cannot)": a Maildir backed up into a real Dovecot over IMAP (APPEND with
// flags, keywords and INTERNALDATE). A rerun changes nothing; after the
// source changes, a rerun moves just that, with no duplicates.
func TestBackupToIMAP(t *testing.T) {
	srv := dovecottest.ServeIMAP(t, false)
	te := newTestEnv(t)
	src := "maildir:" + filepath.Join(te.home, "Maildir")
	fill(t, src, map[string]int{"INBOX": 4, "Sent": 2, "Archive/2024": 3})
	passFile := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(passFile, []byte(dovecottest.IMAPPassword+"\n"), 0o600)
	// The IMAP server is the destination: mail_location = imapc: names
	// the user's store, and -R backs up in the other direction.
	args := []string{"-v", "-o", "mail_location=imapc:", "-o", "imapc_host=127.0.0.1",
		"-o", fmt.Sprint("imapc_port=", srv.Port), "-o", "imapc_user=" + dovecottest.IMAPUser,
		"-o", "imapc_password_file=" + passFile, "backup", "-R", src}
	counts := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, b := range srv.Snapshot(t).Mailboxes {
			var flags []string
			for _, m := range b.Messages {
				flags = append(flags, strings.Join(append(append([]string{}, m.Flags...), m.Keywords...), ","))
			}
			out[b.Name] = fmt.Sprint(len(b.Messages), flags)
		}
		return out
	}
	te.run(t, args...).expect(t, args, 0)
	first := counts()
	if first["INBOX"] == "" || !strings.HasPrefix(first["INBOX"], "4 ") || !strings.HasPrefix(first["Archive/2024"], "3 ") {
		t.Fatalf("after the first backup the server has %v", first)
	}
	r := te.run(t, args...)
	r.expect(t, args, 0, "0 created, 0 deleted", "messages: 0 saved (0 bytes), 0 expunged, 0 flag changes")
	if again := counts(); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("a rerun changed the server: %v, was %v", again, first)
	}
	// Change the source: one more message, flags on another; the rerun
	// mirrors it without duplicating anything.
	fill(t, src, map[string]int{"Later": 1})
	d, l := driverFor(t, src)
	st, err := d.Open(context.Background(), l, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := st.Open(context.Background(), "INBOX")
	tx, _ := mb.Begin(context.Background())
	tx.SetFlags(1, formats.FlagFlagged, []string{"work"})
	tx.Expunge(2)
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	mb.Close()
	st.Close()
	te.run(t, args...).expect(t, args, 0)
	after := counts()
	if !strings.HasPrefix(after["INBOX"], "3 ") || !strings.HasPrefix(after["Later"], "1 ") || !strings.Contains(after["INBOX"], `\Flagged,work`) {
		t.Fatalf("after changing the source the server has %v", after)
	}
	if after["Sent"] != first["Sent"] {
		t.Errorf("Sent changed: %v -> %v", first["Sent"], after["Sent"])
	}
}
