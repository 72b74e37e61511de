package convert_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestInteropSyncExpungeAfterCommon: a mail expunged on one side after the
// last UID both sides still have (so no common UID follows it) is
// expunged on the other side too, as doveadm sync decides from the
// expunging side's dovecot.index.log, in every format with such a log;
// and the same when boxsync made the expunge (its EXPUNGE_GUID records
// carry Dovecot's 128-bit GUIDs).
func TestInteropSyncExpungeAfterCommon(t *testing.T) {
	for _, f := range []string{"maildir", "sdbox", "mdbox"} {
		for _, who := range []string{"doveadm", "boxsync"} {
			t.Run(f+"/expunged by "+who, func(t *testing.T) {
				d := dovecottest.New(t, f+":~/A")
				for _, s := range []string{"one", "two", "three"} {
					d.Save(t, "INBOX", []byte("Subject: "+s+"\nMessage-ID: <"+s+"@x>\n\nbody "+s+"\n"))
				}
				d.MustDoveadm(t, "backup", f+":~/B")
				on := func(store string, args ...string) {
					d.MustDoveadm(t, append([]string{"-o", "mail_location=" + f + ":~/" + store}, args...)...)
				}
				if who == "doveadm" {
					on("A", "expunge", "mailbox", "INBOX", "uid", "3")
				} else {
					a := openLoc(t, f+":"+filepath.Join(d.Home(), "A"), formats.OpenOptions{})
					mb, err := a.Open(context.Background(), "INBOX")
					if err != nil {
						t.Fatal(err)
					}
					tx, err := mb.Begin(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if err := tx.Expunge(3); err != nil {
						t.Fatal(err)
					}
					if err := tx.Commit(context.Background()); err != nil {
						t.Fatal(err)
					}
					mb.Close()
					a.Close()
					d.Chown(t, filepath.Join(d.Home(), "A"))
				}
				// New mail on both sides: UID 4 on each, a conflict.
				for _, p := range [][2]string{{"A", "new on A"}, {"B", "new on B"}} {
					c := d.Cmd(t, "-o", "mail_location="+f+":~/"+p[0], "save", "-m", "INBOX")
					c.Stdin = strings.NewReader("Subject: " + p[1] + "\n\n" + p[1] + "\n")
					if err := c.Run(); err != nil {
						t.Fatalf("doveadm save: %v\n%s", err, d.Log())
					}
				}
				copyStores(t, d, [2]string{"A", "A2"}, [2]string{"B", "B2"})
				doveadmSync(t, d, f, "A", "B")
				a := openLoc(t, f+":"+filepath.Join(d.Home(), "A2"), formats.OpenOptions{})
				b := openLoc(t, f+":"+filepath.Join(d.Home(), "B2"), formats.OpenOptions{})
				run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Full})
				for _, p := range [][2]string{{"A", "A2"}, {"B", "B2"}} {
					theirs, ours := treeDump(t, f, filepath.Join(d.Home(), p[0])), treeDump(t, f, filepath.Join(d.Home(), p[1]))
					if diff := formatstest.Diff(theirs, ours); diff != "" {
						t.Errorf("%s: doveadm sync (-) and boxsync (+) differ:\n%s\ndoveadm:\n%s", p[0], diff, theirs)
					}
					if !strings.Contains(ours, "messages=4\n") {
						t.Errorf("%s: want 4 mails (1, 2 and both new ones):\n%s", p[1], ours)
					}
				}
			})
		}
	}
}
