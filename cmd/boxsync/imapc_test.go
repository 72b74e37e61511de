package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestMigrateFromIMAP is issue 7's migration through the CLI: a real
// Dovecot IMAP server on loopback is the source (mail_location = imapc:),
// a Maildir the destination. The real Dovecot then reads the destination
// with the source's mailboxes, UIDs, UIDVALIDITY, GUIDs, flags, keywords,
// dates and bytes. A rerun after the server's mail changed moves just the
// changes and duplicates nothing (real doveadm fails that rerun with exit
// 75 "UID already exists locally for a different mail").
func TestMigrateFromIMAP(t *testing.T) {
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
	dst := dovecottest.New(t, "maildir:~/Maildir")
	args := func(pass string) []string {
		return []string{"-o", "mail_location=imapc:", "-o", "imapc_host=127.0.0.1",
			"-o", fmt.Sprint("imapc_port=", srv.Port), "-o", "imapc_user=" + dovecottest.IMAPUser,
			"-o", "imapc_password_file=" + pass, "backup", "maildir:" + dst.Root()}
	}
	notCarried := []dovecottest.Field{dovecottest.Saved, dovecottest.ModSeq, dovecottest.HighestModSeq}
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
