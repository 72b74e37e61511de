package index

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/internal/dovecottest"
)

// The golden fixtures in testdata/ are made by the real Dovecot:
//
//	BOXSYNC_REGEN_FIXTURES=1 go test ./index -run TestRegenFixtures
//
// regenerates the index files, the doveadm outputs they are checked
// against and MANIFEST.md (the exact commands). Then `go test ./index
// -update` rewrites the .dump files.

// recorder runs doveadm and remembers the commands for MANIFEST.md.
type recorder struct {
	t    *testing.T
	d    *dovecottest.Dovecot
	cmds []string
	msgs int
}

func (r *recorder) doveadm(args ...string) string {
	r.t.Helper()
	r.cmds = append(r.cmds, "doveadm -c dovecot.conf "+shellQuote(args))
	return r.d.MustDoveadm(r.t, args...)
}

func (r *recorder) save(mailbox string, n int) {
	r.t.Helper()
	for i := 0; i < n; i++ {
		r.msgs++
		msg := fmt.Sprintf("From: sender%d@example.com\nTo: rcpt@example.com\nSubject: message %d\nMessage-ID: <%d@fixture.example>\n\nBody of message %d.\n",
			r.msgs, r.msgs, r.msgs, r.msgs)
		r.cmds = append(r.cmds, fmt.Sprintf("doveadm -c dovecot.conf save -m %s < msg%d   # %q", mailbox, r.msgs, msg))
		r.d.Save(r.t, mailbox, []byte(msg))
	}
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"\\$*?&;|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

type genCase struct {
	name     string
	location string
	conf     []string
	run      func(r *recorder)
	// dirs maps a fixture subdirectory to the index directory under the
	// mail root it is copied from.
	dirs map[string]string
}

var genCases = []genCase{
	{
		name: "sdbox", location: "sdbox:~/mail",
		run: func(r *recorder) {
			r.save("INBOX", 6)
			r.doveadm("flags", "add", `\Seen $Label1`, "mailbox", "INBOX", "uid", "1")
			r.doveadm("flags", "add", `\Flagged \Answered Junk`, "mailbox", "INBOX", "uid", "2:3")
			r.doveadm("fetch", "uid modseq", "mailbox", "INBOX", "all") // enables modseqs
			r.doveadm("flags", "add", `\Deleted Important`, "mailbox", "INBOX", "uid", "4")
			r.doveadm("flags", "remove", `Junk`, "mailbox", "INBOX", "uid", "3")
			r.doveadm("flags", "replace", `\Draft $Label1`, "mailbox", "INBOX", "uid", "5")
			r.doveadm("expunge", "mailbox", "INBOX", "uid", "6")
			r.doveadm("flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "2")
		},
		dirs: map[string]string{"INBOX": "mailboxes/INBOX/dbox-Mails"},
	},
	{
		name: "sdbox-index", location: "sdbox:~/mail",
		// a small rewrite threshold makes Dovecot write dovecot.index
		conf: []string{"mail_index_rewrite_min_log_bytes = 1", "mail_index_rewrite_max_log_bytes = 1"},
		run: func(r *recorder) {
			r.save("INBOX", 4)
			r.doveadm("fetch", "uid modseq", "mailbox", "INBOX", "all")
			r.doveadm("flags", "add", `\Seen Work`, "mailbox", "INBOX", "uid", "1:2")
			r.doveadm("flags", "add", `\Flagged`, "mailbox", "INBOX", "uid", "3")
			r.doveadm("expunge", "mailbox", "INBOX", "uid", "2")
			r.save("INBOX", 1)
			r.doveadm("flags", "add", `Later`, "mailbox", "INBOX", "uid", "5")
		},
		dirs: map[string]string{"INBOX": "mailboxes/INBOX/dbox-Mails"},
	},
	{
		name: "sdbox-rotated", location: "sdbox:~/mail",
		conf: []string{
			"mail_index_log_rotate_min_size = 1k", "mail_index_log_rotate_max_size = 2k",
			"mail_index_log_rotate_min_age = 0", "mail_index_log2_max_age = 1000d",
		},
		run: func(r *recorder) {
			r.save("INBOX", 3)
			r.doveadm("fetch", "uid modseq", "mailbox", "INBOX", "all")
			for i := 0; i < 20; i++ {
				op := "add"
				if i%2 == 1 {
					op = "remove"
				}
				r.doveadm("flags", op, `\Seen $Forwarded`, "mailbox", "INBOX", "uid", fmt.Sprint(1+i%3))
			}
			r.save("INBOX", 1)
			r.doveadm("flags", "add", `\Answered`, "mailbox", "INBOX", "uid", "4")
			r.doveadm("expunge", "mailbox", "INBOX", "uid", "2")
		},
		dirs: map[string]string{"INBOX": "mailboxes/INBOX/dbox-Mails"},
	},
	{
		name: "mdbox", location: "mdbox:~/mail",
		run: func(r *recorder) {
			r.save("INBOX", 4)
			r.doveadm("mailbox", "create", "Archive")
			r.doveadm("copy", "Archive", "mailbox", "INBOX", "uid", "1:2")
			r.doveadm("fetch", "uid modseq", "mailbox", "INBOX", "all")
			r.doveadm("flags", "add", `\Seen Urgent`, "mailbox", "INBOX", "uid", "1")
			r.doveadm("flags", "add", `\Answered`, "mailbox", "Archive", "uid", "2")
			r.doveadm("expunge", "mailbox", "INBOX", "uid", "2")
			r.doveadm("flags", "add", `\Flagged`, "mailbox", "INBOX", "uid", "3:4")
		},
		dirs: map[string]string{
			"INBOX":   "mailboxes/INBOX/dbox-Mails",
			"Archive": "mailboxes/Archive/dbox-Mails",
			"storage": "storage",
		},
	},
	{
		name: "maildir", location: "maildir:~/Maildir",
		run: func(r *recorder) {
			r.save("INBOX", 5)
			r.doveadm("fetch", "uid modseq", "mailbox", "INBOX", "all")
			r.doveadm("flags", "add", `\Seen $Label1 Junk`, "mailbox", "INBOX", "uid", "1")
			r.doveadm("flags", "add", `\Draft \Flagged`, "mailbox", "INBOX", "uid", "2")
			r.doveadm("flags", "add", `\Deleted`, "mailbox", "INBOX", "uid", "3")
			r.doveadm("expunge", "mailbox", "INBOX", "uid", "4")
			r.doveadm("flags", "remove", `Junk`, "mailbox", "INBOX", "uid", "1")
		},
		dirs: map[string]string{"INBOX": "."},
	},
}

func TestRegenFixtures(t *testing.T) {
	if os.Getenv("BOXSYNC_REGEN_FIXTURES") != "1" {
		t.Skip("set BOXSYNC_REGEN_FIXTURES=1 to regenerate the Dovecot-made fixtures")
	}
	version, err := exec.Command("dovecot", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	var man strings.Builder
	fmt.Fprintf(&man, "# index/testdata: fixtures made by Dovecot\n\n")
	fmt.Fprintf(&man, "Made by Dovecot %s with `BOXSYNC_REGEN_FIXTURES=1 go test ./index -run TestRegenFixtures`\n", strings.TrimSpace(string(version)))
	fmt.Fprintf(&man, "(index/fixtures_gen_test.go); `go test ./index -update` then rewrites the `.dump` files.\n\n")
	fmt.Fprintf(&man, "Each case ran doveadm without -u against a private dovecot.conf (internal/dovecottest):\n\n")
	d0 := dovecottest.New(t, "sdbox:~/mail")
	conf, err := os.ReadFile(d0.Config())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&man, "```\n%s```\n\n", strings.ReplaceAll(string(conf), d0.Dir(), "DIR"))
	fmt.Fprintf(&man, "plus the case's extra settings. Every case directory holds the index files\n")
	fmt.Fprintf(&man, "(dovecot.index.cache left out) and `doveadm.txt`: `doveadm fetch 'uid flags modseq'`\n")
	fmt.Fprintf(&man, "and `doveadm mailbox status` for every mailbox, which TestFixtureViews compares\n")
	fmt.Fprintf(&man, "with what this package reads.\n\n")
	for _, c := range genCases {
		t.Run(c.name, func(t *testing.T) {
			d := dovecottest.New(t, c.location, c.conf...)
			r := &recorder{t: t, d: d}
			c.run(r)
			out := filepath.Join("testdata", c.name)
			if err := os.RemoveAll(out); err != nil {
				t.Fatal(err)
			}
			var report strings.Builder
			for _, sub := range sortedKeys(c.dirs) {
				if sub == "storage" {
					continue
				}
				fetch := d.MustDoveadm(t, "fetch", "uid flags modseq", "mailbox", sub, "all")
				status := d.MustDoveadm(t, "mailbox", "status", "uidvalidity uidnext highestmodseq messages", sub)
				fmt.Fprintf(&report, "mailbox %s\n%s%s", sub, status, fetch)
			}
			for _, sub := range sortedKeys(c.dirs) {
				src := filepath.Join(d.Root(), c.dirs[sub])
				dst := filepath.Join(out, sub)
				if err := os.MkdirAll(dst, 0o755); err != nil {
					t.Fatal(err)
				}
				ents, err := os.ReadDir(src)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range ents {
					n := e.Name()
					if !strings.Contains(n, "index") || strings.HasSuffix(n, ".cache") || strings.HasSuffix(n, ".backup") ||
						strings.HasPrefix(n, "dovecot.list.index") {
						continue
					}
					b, err := os.ReadFile(filepath.Join(src, n))
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dst, n), b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := os.WriteFile(filepath.Join(out, "doveadm.txt"), []byte(report.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			d.CheckLogClean(t)
			fmt.Fprintf(&man, "## %s\n\nmail_location = %s\n", c.name, c.location)
			for _, s := range c.conf {
				fmt.Fprintf(&man, "%s\n", s)
			}
			fmt.Fprintf(&man, "\n```\n%s\n```\n\n", strings.Join(r.cmds, "\n"))
		})
	}
	if err := os.WriteFile(filepath.Join("testdata", "MANIFEST.md"), []byte(man.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
