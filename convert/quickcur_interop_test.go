package convert_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestInteropSyncQuiet: a Maildir pair that stayed quiet after a backup
// (every cur/ older than Dovecot's last sync of it, so both tools trust
// the index's picture of cur/ instead of reading it) then gets mail
// delivered into new/ by an MDA on both sides, mail claimed by an IMAP
// session, and a flag change by Dovecot on one side; doveadm sync and
// boxsync sync (fast and full) on identical copies end with the same
// mailboxes, UIDs, flags, keywords and bytes.
func TestInteropSyncQuiet(t *testing.T) {
	for _, alg := range []convert.Algorithm{convert.Fast, convert.Full} {
		t.Run(fmt.Sprint(alg), func(t *testing.T) {
			d := dovecottest.New(t, "maildir:~/Maildir")
			d.MustDoveadm(t, "mailbox", "create", "-s", "Work")
			for i := range 6 {
				d.Save(t, "INBOX", []byte(fmt.Sprintf("Subject: in %d\nMessage-ID: <in%d@x>\n\nbody %d\n", i, i, i)))
			}
			for i := range 3 {
				d.Save(t, "Work", []byte(fmt.Sprintf("Subject: w %d\n\nw %d\n", i, i)))
			}
			d.MustDoveadm(t, "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "1:3")
			d.MustDoveadm(t, "flags", "add", `\Answered $Label1`, "mailbox", "INBOX", "uid", "2")
			d.MustDoveadm(t, "flags", "add", `\Flagged`, "mailbox", "Work", "uid", "1")
			d.MustDoveadm(t, "backup", "maildir:~/Replica")
			home := d.Home()
			on := func(loc string, args ...string) string {
				return d.MustDoveadm(t, append([]string{"-o", "mail_location=" + loc}, args...)...)
			}

			// A quiet spell: every directory and uidlist a minute old,
			// then Dovecot's sync records that in each index's header.
			old := time.Now().Add(-time.Minute)
			for _, tree := range []string{"Maildir", "Replica"} {
				for _, box := range []string{"", ".Work"} {
					for _, p := range []string{"cur", "new", "dovecot-uidlist"} {
						if err := os.Chtimes(filepath.Join(home, tree, box, p), old, old); err != nil {
							t.Fatal(err)
						}
					}
				}
				on("maildir:~/"+tree, "mailbox", "status", "messages", "INBOX", "Work")
			}

			deliver := func(tree, box, name, body string) {
				dir := filepath.Join(home, tree, box)
				if err := os.WriteFile(filepath.Join(dir, "tmp", name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(filepath.Join(dir, "tmp", name), filepath.Join(dir, "new", name)); err != nil {
					t.Fatal(err)
				}
			}
			deliver("Maildir", "", "1700000001.M1P1.mda", "Subject: to A\n\nA\n")
			deliver("Maildir", "", "1700000002.M2P2.mda", "Subject: to A again\n\nA2\n")
			deliver("Replica", ".Work", "1700000003.M3P3.mda", "Subject: to B\n\nB\n")
			d.Chown(t, home)
			on("maildir:~/Replica", "flags", "add", `\Deleted`, "mailbox", "INBOX", "uid", "4")
			// An IMAP session on the source claims \Recent of its
			// INBOX (moves new/ to cur/).
			d.IMAPSelect(t, "INBOX", "maildir:~/Maildir")
			deliver("Maildir", "", "1700000004.M4P4.mda", "Subject: to A after\n\nA3\n")
			d.Chown(t, home)

			for _, p := range [][2]string{{"Maildir", "Maildir2"}, {"Replica", "Replica2"}} {
				if out, err := exec.Command("cp", "-a", filepath.Join(home, p[0]), filepath.Join(home, p[1])).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v\n%s", err, out)
				}
			}
			args := []string{"sync"}
			if alg == convert.Full {
				args = append(args, "-f")
			}
			d.MustDoveadm(t, append(args, "maildir:~/Replica")...)

			a := openMaildir(t, filepath.Join(home, "Maildir2"), formats.OpenOptions{})
			b := openMaildir(t, filepath.Join(home, "Replica2"), formats.OpenOptions{})
			res, err := convert.Run(context.Background(), a, b, convert.Options{Mode: convert.Sync, Algorithm: alg})
			if err != nil || len(res.Errors) > 0 {
				t.Fatalf("Run = %v %v", err, res.Errors)
			}
			sameMaildirs(t, home, "doveadm sync", formatstest.FieldsBackup&^formatstest.FieldVSize)
			// Each side ends with every message.
			for _, tree := range []string{"Maildir2", "Replica2"} {
				for box, want := range map[string]int{"INBOX": 9, "Work": 4} {
					st, err := openBoxStatus(t, filepath.Join(home, tree), box)
					if err != nil {
						t.Fatal(err)
					}
					if st.Messages != want {
						t.Errorf("%s %s: %d messages, want %d", tree, box, st.Messages, want)
					}
				}
			}
		})
	}
}

func openBoxStatus(t *testing.T, root, box string) (formats.Status, error) {
	t.Helper()
	s := openMaildir(t, root, formats.OpenOptions{ReadOnly: true})
	mb, err := s.Open(context.Background(), box)
	if err != nil {
		return formats.Status{}, err
	}
	defer mb.Close()
	return mb.Status(context.Background())
}
