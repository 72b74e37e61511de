package convert_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestInteropSyncDifferential runs doveadm sync (and sync -1) and boxsync
// on identical copies of a Maildir pair that was backed up and then used
// on both sides (new mail on both, a UID conflict, flag changes,
// expunges), and compares the results: mailboxes, UIDs, GUIDs, flags,
// keywords, UIDNEXT and bytes.
func TestInteropSyncDifferential(t *testing.T) {
	for _, tc := range []struct {
		name        string
		oneway      bool
		expungeLast bool // the source expunges the highest common UID
	}{{"sync", false, false}, {"sync -1", true, false}, {"sync expunge last", false, true}} {
		name, oneway := tc.name, tc.oneway
		t.Run(name, func(t *testing.T) {
			d := dovecottest.New(t, "maildir:~/Maildir")
			d.MustDoveadm(t, "mailbox", "create", "-s", "Work")
			for _, s := range []string{"one", "two", "three", "four", "five"} {
				d.Save(t, "INBOX", []byte("Subject: "+s+"\nMessage-ID: <"+s+"@x>\n\nbody "+s+"\n"))
			}
			d.Save(t, "Work", []byte("Subject: w\n\nw\n"))
			d.MustDoveadm(t, "backup", "maildir:~/Replica")

			save := func(loc, box, msg string) {
				c := d.Cmd(t, "-o", "mail_location="+loc, "save", "-m", box)
				c.Stdin = strings.NewReader(msg)
				if err := c.Run(); err != nil {
					t.Fatalf("doveadm save: %v\n%s", err, d.Log())
				}
			}
			on := func(loc string, args ...string) {
				d.MustDoveadm(t, append([]string{"-o", "mail_location=" + loc}, args...)...)
			}
			if tc.expungeLast {
				// No state: the UID is below the replica's UIDNEXT
				// and no common UID follows it; only the expunge
				// record in dovecot.index.log tells it was there.
				on("maildir:~/Maildir", "expunge", "mailbox", "INBOX", "uid", "5")
			}
			// Source: two new mails, a flag, an expunge.
			save("maildir:~/Maildir", "INBOX", "Subject: src new 1\n\nA1\n")
			save("maildir:~/Maildir", "INBOX", "Subject: src new 2\n\nA2\n")
			on("maildir:~/Maildir", "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "1")
			on("maildir:~/Maildir", "expunge", "mailbox", "INBOX", "uid", "2")
			// Replica: one new mail (UID 6 on both sides), a keyword,
			// an expunge, a new mailbox.
			save("maildir:~/Replica", "INBOX", "Subject: dst new 1\n\nB1\n")
			on("maildir:~/Replica", "flags", "add", `\Flagged Important`, "mailbox", "INBOX", "uid", "3")
			on("maildir:~/Replica", "expunge", "mailbox", "INBOX", "uid", "4")
			on("maildir:~/Replica", "mailbox", "create", "ReplicaOnly")
			save("maildir:~/Replica", "ReplicaOnly", "Subject: r\n\nr\n")

			home := d.Home()
			for _, p := range [][2]string{{"Maildir", "Maildir2"}, {"Replica", "Replica2"}} {
				if out, err := exec.Command("cp", "-a", filepath.Join(home, p[0]), filepath.Join(home, p[1])).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v\n%s", err, out)
				}
			}

			args := []string{"sync", "-f"}
			if tc.expungeLast {
				name = "sync"
			}
			mode := convert.Sync
			if oneway {
				args, mode = append(args, "-1"), convert.OneWay
			}
			d.MustDoveadm(t, append(args, "maildir:~/Replica")...)

			a := openMaildir(t, filepath.Join(home, "Maildir2"), formats.OpenOptions{ReadOnly: oneway})
			b := openMaildir(t, filepath.Join(home, "Replica2"), formats.OpenOptions{Create: true})
			res, err := convert.Run(context.Background(), a, b, convert.Options{Mode: mode, Algorithm: convert.Full})
			if err != nil || len(res.Errors) > 0 {
				t.Fatalf("Run = %v %v", err, res.Errors)
			}
			sameMaildirs(t, home, "doveadm "+name, formatstest.FieldsBackup&^formatstest.FieldVSize)
		})
	}
}

// sameMaildirs compares doveadm's result in home's Maildir and Replica
// with boxsync's in Maildir2 and Replica2 (run on identical copies).
func sameMaildirs(t *testing.T, home, what string, fields formatstest.Field) {
	t.Helper()
	for _, p := range [][2]string{{"Maildir", "Maildir2"}, {"Replica", "Replica2"}} {
		theirs, err := formatstest.Dump(context.Background(), openMaildir(t, filepath.Join(home, p[0]), formats.OpenOptions{ReadOnly: true}), fields)
		if err != nil {
			t.Fatal(err)
		}
		ours, err := formatstest.Dump(context.Background(), openMaildir(t, filepath.Join(home, p[1]), formats.OpenOptions{ReadOnly: true}), fields)
		if err != nil {
			t.Fatal(err)
		}
		if diff := formatstest.Diff(theirs, ours); diff != "" {
			t.Errorf("%s: %s (-) and boxsync (+) differ:\n%s\ndoveadm:\n%s", p[0], what, diff, theirs)
		}
	}
}
