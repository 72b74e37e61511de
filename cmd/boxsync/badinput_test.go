package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInputMaildir is issue 2's list of bad input, through the CLI and
// the real Maildir driver: each case names the path (and mailbox and UID
// where known), exits with doveadm's code, and leaves nothing
// half-written: the destination holds complete mailboxes only, and a
// rerun after the problem is fixed finishes the job.
func TestBadInputMaildir(t *testing.T) {
	type tc struct {
		name   string
		break_ func(t *testing.T, root string) (fix func())
		args   func(src, dst string) []string
		code   int
		want   []string
	}
	tests := []tc{
		{
			name:   "missing source",
			break_: func(t *testing.T, root string) func() { os.RemoveAll(root); return nil },
			code:   68, want: []string{"Maildir"},
		},
		{
			name: "unreadable message file",
			break_: func(t *testing.T, root string) func() {
				// Replace one message file by a directory: as root,
				// permissions stop nothing, but reading a directory
				// fails like an unreadable file.
				f := oneFile(t, filepath.Join(root, ".Sent", "cur"))
				data, _ := os.ReadFile(f)
				os.Remove(f)
				os.Mkdir(f, 0o700)
				return func() { os.Remove(f); os.WriteFile(f, data, 0o600) }
			},
			code: 75, want: []string{`mailbox "Sent"`, "uid ", filepath.Join(".Sent", "cur")},
		},
		{
			name: "broken dovecot-uidlist line",
			break_: func(t *testing.T, root string) func() {
				p := filepath.Join(root, ".Sent", "dovecot-uidlist")
				data, _ := os.ReadFile(p)
				os.WriteFile(p, append(data, []byte("x17 garbage\n")...), 0o600)
				return func() { os.WriteFile(p, data, 0o600) }
			},
			code: 65, want: []string{"dovecot-uidlist", "line", `"Sent"`},
		},
		{
			name: "file name without :2,",
			break_: func(t *testing.T, root string) func() {
				os.WriteFile(filepath.Join(root, "new", "1700000000.M1P1.mx"), []byte("Subject: plain\n\nplain\n"), 0o600)
				return nil
			},
			code: 0,
		},
		{
			name: "mailbox name escaping the root",
			args: func(src, dst string) []string {
				return []string{"backup", "--source", src, "-m", "../x", dst}
			},
			code: 64, want: []string{"../x"},
		},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			te := newTestEnv(t)
			root := filepath.Join(te.home, "Maildir")
			src := "maildir:" + root
			dst := "maildir:" + filepath.Join(te.home, "Backup")
			fill(t, src, map[string]int{"INBOX": 3, "Sent": 4, "Work": 2})
			var fix func()
			if c.break_ != nil {
				fix = c.break_(t, root)
			}
			args := []string{"backup", "--source", src, dst}
			if c.args != nil {
				args = c.args(src, dst)
			}
			r := te.run(t, args...)
			r.expect(t, args, c.code, c.want...)
			if strings.Contains(r.stderr, "panic") {
				t.Fatalf("panic:\n%s", r.stderr)
			}
			if c.code == 0 || fix == nil {
				return
			}
			// Whatever did get written is whole: every mailbox in the
			// destination is one of the source's, with complete mail;
			// and once the input is fixed a rerun finishes the job.
			fix()
			te.run(t, "backup", "--source", src, dst).expect(t, args, 0)
			if d := diffLines(dump(t, src), dump(t, dst)); d != "" {
				t.Fatalf("after fixing the input and rerunning:\n%s", d)
			}
		})
	}
}

func oneFile(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no file in %s: %v", dir, err)
	}
	return filepath.Join(dir, ents[0].Name())
}

func diffLines(a, b string) string {
	if a == b {
		return ""
	}
	return "source:\n" + a + "\ndestination:\n" + b
}
