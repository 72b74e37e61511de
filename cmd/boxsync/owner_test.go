package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/boxsync/boxsync/internal/dovecottest"
)

// ownerEnv is a dovecot.conf with a passwd-file userdb of users with
// their own uids, each with a Maildir the user owns, for tests that run
// as root.
type ownerEnv struct {
	conf  string
	homes map[string]string // user → home
	uids  map[string]int
}

// newOwnerEnv writes the config and fills each user's Maildir (the
// mailboxes of boxes), owned by the user. Users: jane (nobody's uid, so
// dovecottest's Dovecot, running as nobody, can read her mail), bob (uid
// 4242) and low (uid 5, below first_valid_uid).
func newOwnerEnv(t *testing.T, boxes map[string]int, extraConf string) *ownerEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("ownership needs root (CI runs as root)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	nuid, _ := strconv.Atoi(nobody.Uid)
	base := t.TempDir()
	searchable(t, base)
	e := &ownerEnv{conf: filepath.Join(base, "dovecot.conf"), homes: map[string]string{},
		uids: map[string]int{"jane": nuid, "bob": 4242, "low": 5}}
	var passwd strings.Builder
	for _, name := range []string{"jane", "bob", "low"} {
		home := filepath.Join(base, "home", name)
		e.homes[name] = home
		uid := e.uids[name]
		fmt.Fprintf(&passwd, "%s:{PLAIN}x:%d:%d::%s::\n", name, uid, uid, home)
		fill(t, "maildir:"+filepath.Join(home, "Maildir"), boxes)
		if err := os.Chmod(filepath.Dir(home), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := filepath.WalkDir(home, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, uid)
		}); err != nil {
			t.Fatal(err)
		}
	}
	users := filepath.Join(base, "users")
	if err := os.WriteFile(users, []byte(passwd.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := "mail_location = maildir:~/Maildir\n" +
		"namespace inbox {\n  inbox = yes\n  separator = /\n}\n" +
		"userdb {\n  driver = passwd-file\n  args = " + users + "\n}\n" + extraConf
	if err := os.WriteFile(e.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// searchable gives o+x to dir and every directory above it inside the
// temp dir (t.TempDir's parents are 0700), so users can reach their homes.
func searchable(t *testing.T, dir string) {
	t.Helper()
	tmp := filepath.Clean(os.TempDir())
	for d := dir; strings.HasPrefix(d, tmp+string(filepath.Separator)); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *ownerEnv) run(t *testing.T, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	en := systemEnv()
	en.configPath = e.conf
	code := runEnv(context.Background(), en, append([]string{"boxsync"}, args...), strings.NewReader(""), &stdout, &stderr)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// treeModes walks root and returns "dir 0700 uid:gid"-style lines, one
// per distinct kind/mode/owner, with a count.
func treeModes(t *testing.T, root string, owners bool) []string {
	t.Helper()
	count := map[string]int{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), "dovecot-uidvalidity.") {
			// Dovecot's 0444 UIDVALIDITY marker
			// (mailbox-uidvalidity.c): a file boxsync doesn't write.
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		kind := "file"
		if fi.IsDir() {
			kind = "dir"
		}
		k := fmt.Sprintf("%s %04o", kind, uint32(fi.Mode().Perm())|uint32(fi.Mode()&fs.ModeSetgid>>12))
		if owners {
			k += fmt.Sprintf(" %d:%d", st.Uid, st.Gid)
		}
		count[k]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range count {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestBackupOwner runs boxsync as root for passwd-file users with their
// own uids (-A, two workers): everything written, lock file included, is
// the user's, with the modes Dovecot's own `doveadm backup` gives a new
// destination; the real Dovecot, running with the user's uid, reads it
// back equal to the source; a uid below first_valid_uid is refused with
// Dovecot's message while the others go on.
func TestBackupOwner(t *testing.T) {
	dovecottest.Require(t)
	boxes := map[string]int{"INBOX": 3, "Sent": 2, "Work/Projects": 1}
	e := newOwnerEnv(t, boxes, "")

	for _, tc := range []struct {
		format   string
		rootMode os.FileMode // an existing destination root's; 0 = none
	}{{"mdbox", 0}, {"sdbox", 0}, {"maildir", 0}, {"mdbox", 0o750}, {"sdbox", 0o750}, {"maildir", 0o750}} {
		format := tc.format
		name := format
		if tc.rootMode != 0 {
			name = fmt.Sprintf("%s in a %04o root", format, tc.rootMode)
		}
		t.Run(name, func(t *testing.T) {
			// An existing root: its mode is the model for everything
			// inside, with Dovecot as with boxsync.
			mkRoot := func(path string, uid int) {
				t.Helper()
				if tc.rootMode == 0 {
					return
				}
				os.RemoveAll(path)
				if err := os.Mkdir(path, tc.rootMode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tc.rootMode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(path, uid, uid); err != nil {
					t.Fatal(err)
				}
			}
			for _, u := range []string{"jane", "bob"} {
				p := filepath.Join(e.homes[u], "backup-"+format)
				os.RemoveAll(p)
				mkRoot(p, e.uids[u])
			}
			dest := format + ":~/backup-" + format
			report := filepath.Join(t.TempDir(), "report.json")
			// Two workers, two uids: each user in a child process.
			args := []string{"-D", "-c", e.conf, "backup", "-A", "--workers", "2", "-l", "10", "--report", report, dest}
			r := e.run(t, args...)
			r.expect(t, args, 75, "boxsync(low): Error: Mail access for users with UID 5 not permitted (see first_valid_uid in config file, uid from userdb lookup).",
				"boxsync(jane): Debug: running in child process", "boxsync(bob): Debug: running in child process")
			doc := readReport(t, report)
			for _, u := range doc.Users {
				if want := map[string]int{"low": 75}[u.User]; u.ExitCode != want {
					t.Errorf("report: %s exited %d, want %d", u.User, u.ExitCode, want)
				}
			}
			if len(doc.Users) != 3 {
				t.Errorf("report has %d users, want 3", len(doc.Users))
			}
			if fi, err := os.Stat(report); err != nil {
				t.Error(err)
			} else if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 {
				t.Errorf("the report, written as root, is owned by %d", st.Uid)
			}
			if strings.Contains(r.stderr, "boxsync(jane): Error") || strings.Contains(r.stderr, "boxsync(bob): Error") {
				t.Fatalf("jane or bob failed:\n%s", r.stderr)
			}
			if _, err := os.Stat(filepath.Join(e.homes["low"], "backup-"+format)); err == nil {
				t.Errorf("low's backup was written")
			}

			// What Dovecot itself creates for a new backup destination.
			d := dovecottest.New(t, "maildir:~/Maildir")
			fill(t, "maildir:"+d.Root(), boxes)
			if err := os.MkdirAll(d.Home(), 0o755); err != nil {
				t.Fatal(err)
			}
			mkRoot(filepath.Join(d.Home(), "backup"), e.uids["jane"]) // nobody, Dovecot's mail_uid
			d.MustDoveadm(t, "backup", format+":"+filepath.Join(d.Home(), "backup"))
			want := treeModes(t, filepath.Join(d.Home(), "backup"), false)

			for _, name := range []string{"jane", "bob"} {
				uid := e.uids[name]
				root := filepath.Join(e.homes[name], "backup-"+format)
				got := treeModes(t, root, true)
				var modes []string
				for _, k := range got {
					f := strings.Fields(k)
					modes = append(modes, f[0]+" "+f[1])
					if f[2] != fmt.Sprintf("%d:%d", uid, uid) {
						t.Errorf("%s: %s owned by %s, want %d:%d (all: %q)", name, f[0]+" "+f[1], f[2], uid, uid, got)
					}
				}
				if strings.Join(modes, ",") != strings.Join(want, ",") {

					t.Errorf("%s: modes %q, Dovecot's doveadm backup makes %q", name, modes, want)
				}
			}

			// Dovecot with jane's uid (nobody) reads her backup as
			// it reads her mail.
			src := dovecottest.New(t, "maildir:"+filepath.Join(e.homes["jane"], "Maildir"))
			bak := dovecottest.New(t, format+":"+filepath.Join(e.homes["jane"], "backup-"+format))
			// Saved dates: a Maildir's is the file's ctime, which
			// the chown in newOwnerEnv moved.
			if diff := dovecottest.Diff(src.Snapshot(t), bak.Snapshot(t), dovecottest.Saved); diff != "" {
				t.Errorf("Dovecot reads jane's backup differently from her mail:\n%s", diff)
			}
			bak.CheckLogClean(t)
		})
	}
}

// TestLockOwner: the dsync lock (-l) taken for a user is created with the
// user's uid, so a killed run leaves nothing root-owned in the home.
func TestLockOwner(t *testing.T) {
	e := newOwnerEnv(t, map[string]int{"INBOX": 1}, "")
	a := &app{env: systemEnv(), log: &logger{w: os.Stderr}, creds: processCreds}
	u := mailUser{name: "bob", home: filepath.Join(e.homes["bob"], "new-home"), creds: mailCreds{uid: 4242, gid: 4242}}
	err := a.asUser(u, func() error {
		unlock, err := lockUser(context.Background(), u.home, 0)
		if err != nil {
			return err
		}
		defer unlock()
		for _, p := range []string{u.home, filepath.Join(u.home, syncLockName)} {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != 4242 || st.Gid != 4242 {
				t.Errorf("%s owned by %d:%d, want 4242:4242", p, st.Uid, st.Gid)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 || os.Getegid() != 0 {
		t.Errorf("credentials not restored: euid %d egid %d", os.Geteuid(), os.Getegid())
	}
}

// Without -u (no userdb lookup), mail_uid/mail_gid apply as root, as
// doveadm does; a mail_uid below first_valid_uid is refused with
// Dovecot's message.
func TestMailUIDOwner(t *testing.T) {
	e := newOwnerEnv(t, map[string]int{"INBOX": 2, "Sent": 1}, "")
	en := systemEnv()
	en.configPath = e.conf
	vars := map[string]string{"USER": "bob", "HOME": e.homes["bob"]}
	en.getenv = func(k string) string { return vars[k] }
	run := func(args ...string) cliResult {
		var stdout, stderr bytes.Buffer
		code := runEnv(context.Background(), en, append([]string{"boxsync"}, args...), strings.NewReader(""), &stdout, &stderr)
		return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}
	args := []string{"-c", e.conf, "-o", "mail_uid=4242", "-o", "mail_gid=4242", "backup", "mdbox:~/bak"}
	run(args...).expect(t, args, 0)
	for _, k := range treeModes(t, filepath.Join(e.homes["bob"], "bak"), true) {
		if !strings.HasSuffix(k, " 4242:4242") {
			t.Errorf("%s: want 4242:4242", k)
		}
	}
	args = []string{"-c", e.conf, "-o", "mail_uid=5", "backup", "mdbox:~/bak2"}
	run(args...).expect(t, args, 75, "boxsync(bob): Error: Mail access for users with UID 5 not permitted (see first_valid_uid in config file, uid from mail_uid setting).")
}

// A two-way sync as root writes both sides as the user.
func TestSyncOwner(t *testing.T) {
	e := newOwnerEnv(t, map[string]int{"INBOX": 2, "Work": 1}, "")
	uid := e.uids["bob"]
	fill(t, "mdbox:"+filepath.Join(e.homes["bob"], "other"), map[string]int{"Other": 2})
	if err := filepath.WalkDir(filepath.Join(e.homes["bob"], "other"), func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	}); err != nil {
		t.Fatal(err)
	}
	args := []string{"-c", e.conf, "sync", "-u", "bob", "-l", "5", "mdbox:~/other"}
	e.run(t, args...).expect(t, args, 0)
	for _, side := range []string{"Maildir", "other"} {
		got := treeModes(t, filepath.Join(e.homes["bob"], side), true)
		for _, k := range got {
			if !strings.HasSuffix(k, fmt.Sprintf(" %d:%d", uid, uid)) {
				t.Errorf("%s: %s, want owner %d", side, k, uid)
			}
		}
	}
	// The sync wrote to both sides: each has the other's mailbox.
	for _, side := range []string{"maildir:" + filepath.Join(e.homes["bob"], "Maildir"), "mdbox:" + filepath.Join(e.homes["bob"], "other")} {
		if d := dump(t, side); !strings.Contains(d, `mailbox "Other"`) || !strings.Contains(d, `mailbox "Work"`) {
			t.Errorf("%s after sync:\n%s", side, d)
		}
	}
}

// Users of different uids with several workers run in child processes:
// one's failure leaves the other's backup complete, the exit code is the
// failure's, every log line is whole and names its user; one worker
// needs no child.
func TestChildRuns(t *testing.T) {
	e := newOwnerEnv(t, map[string]int{"INBOX": 3, "Sent": 1}, "")
	if err := os.RemoveAll(filepath.Join(e.homes["bob"], "Maildir")); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(list, []byte("jane\nbob\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-D", "-v", "-c", e.conf, "backup", "-F", list, "--workers", "2", "--dry-run", "mdbox:~/x"}
	r := e.run(t, args...)
	r.expect(t, args, 68, "boxsync(jane): Debug: running in child process", "boxsync(bob): Error: ")
	if !strings.Contains(r.stdout, `dry-run(jane): destination: create mailbox "INBOX" (3 messages`) {
		t.Errorf("the child's plan is not on stdout:\n%s", r.stdout)
	}
	line := regexp.MustCompile(`^boxsync(\([a-z]+\))?: (Debug|Info|Warning|Error|Fatal): \S`)
	for l := range strings.Lines(r.stderr) {
		if !line.MatchString(l) {
			t.Errorf("log line not whole or without its user: %q", l)
		}
	}
	args = []string{"-D", "-c", e.conf, "backup", "-F", list, "mdbox:~/y"}
	r = e.run(t, args...)
	r.expect(t, args, 68, "boxsync(bob): Error: ")
	if strings.Contains(r.stderr, "child process") {
		t.Errorf("one worker used a child process:\n%s", r.stderr)
	}
	if d := dump(t, "mdbox:"+filepath.Join(e.homes["jane"], "y")); !strings.Contains(d, `mailbox "Sent"`) {
		t.Errorf("jane's backup:\n%s", d)
	}
}
