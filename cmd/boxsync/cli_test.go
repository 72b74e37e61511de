package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/all"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/userdb"
)

// cliResult is one in-process run of the command line.
type cliResult struct {
	code           int
	stdout, stderr string
}

// testEnv is a system with no dovecot.conf, $USER=jane with a home in a
// temporary directory, and a passwd database of jane and bob.
type testEnv struct {
	env
	home  string
	vars  map[string]string
	users map[string]string // name → home
	stdin string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	dir := t.TempDir()
	te := &testEnv{
		home:  filepath.Join(dir, "jane"),
		users: map[string]string{"jane": filepath.Join(dir, "jane"), "bob": filepath.Join(dir, "bob")},
	}
	te.vars = map[string]string{"USER": "jane", "HOME": te.home}
	te.env = env{
		configPath: filepath.Join(dir, "no-dovecot.conf"),
		getenv:     func(k string) string { return te.vars[k] },
		lookupUser: func(name string) (*user.User, error) {
			if name == "broken" {
				return nil, fmt.Errorf("passwd database unavailable")
			}
			home, ok := te.users[name]
			if !ok {
				return nil, user.UnknownUserError(name)
			}
			return &user.User{Username: name, HomeDir: home}, nil
		},
		lookupGroup: userdb.LookupGroup,
	}
	return te
}

func (te *testEnv) run(t *testing.T, args ...string) cliResult {
	t.Helper()
	return te.runCtx(t, context.Background(), args...)
}

func (te *testEnv) runCtx(t *testing.T, ctx context.Context, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runEnv(ctx, te.env, append([]string{"boxsync"}, args...), strings.NewReader(te.stdin), &stdout, &stderr)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// expect checks the exit code and that stderr contains each of want.
func (r cliResult) expect(t *testing.T, args []string, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("boxsync %q exited %d, want %d\nstderr:\n%s", args, r.code, code, r.stderr)
		return
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("boxsync %q: stderr lacks %q:\n%s", args, w, r.stderr)
		}
	}
}

// memPath returns a mem: location unique to the test (mem stores are
// process-wide, keyed by path).
func memPath(t *testing.T, name string) string {
	return "mem:" + filepath.Join(t.TempDir(), name)
}

const validGUIDArg = "0123456789abcdef0123456789abcdef"

func TestNotImplemented(t *testing.T) {
	dest := "mem:/nowhere"
	tests := []struct {
		args []string
		want string // must name the option
	}{
		{[]string{"backup", "-g", "", dest}, "-g '' (the mailbox tree without mail)"},
		{[]string{"backup", "-D", dest}, "-D after the command"},
		{[]string{"backup", "-S", "/run/dovecot/doveadm-server", dest}, "-S (running through a doveadm server)"},
		{[]string{"backup", "-m", "", dest}, "-m '' (the mailbox tree without mail)"},
		{[]string{"backup", "-m", `\Sent`, dest}, `-m \Flag`},
		{[]string{"backup", "-x", "Spam", "-x", `\Trash`, dest}, `-x \Flag`},
		{[]string{"backup", "tcp:imap.example.com"}, "a remote destination (doveadm protocol to tcp:imap.example.com)"},
		{[]string{"backup", "tcps:imap.example.com:12345"}, "a remote destination (doveadm protocol"},
		{[]string{"backup", "remote:imap.example.com"}, "a remote destination (ssh via dsync_remote_cmd"},
		{[]string{"backup", "remoteprefix:vmail@imap.example.com"}, "a remote destination (ssh"},
		{[]string{"backup", "imap.example.com"}, "a remote destination (ssh to [user@]host imap.example.com)"},
		{[]string{"backup", "jane@imap.example.com"}, "a remote destination (ssh to [user@]host"},
		{[]string{"backup", "ssh", "host", "doveadm"}, "a remote destination (running the command ssh host doveadm)"},
		{[]string{"backup", "ssh host doveadm"}, "a remote destination (running the command"},
		{[]string{"backup", "/usr/local/bin/dsync-wrapper"}, "a remote destination (running the command"},
		{[]string{"backup", "-N", "imap.example.com"}, "-N (all visible namespaces)"},
		{[]string{"backup", dest, "-f"}, "a remote destination (running the command"}, // getopt stops at the operand
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			te := newTestEnv(t)
			te.run(t, tc.args...).expect(t, tc.args, 64, tc.want, "is not implemented yet")
		})
	}
}

// All unimplemented options of one command line are reported, each on a
// line of its own.
func TestNotImplementedAll(t *testing.T) {
	te := newTestEnv(t)
	args := []string{"sync", "-D", "-N", "tcp:host"}
	r := te.run(t, args...)
	r.expect(t, args, 64, "-D after", "-N (", "tcp:host")
	if n := strings.Count(r.stderr, "boxsync: Error: "); n != 3 {
		t.Errorf("%d error lines, want 3:\n%s", n, r.stderr)
	}
}

func TestFatalOptions(t *testing.T) {
	dest := "mem:/nowhere"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"backup", "-g", "1234", dest}, "Fatal: Invalid -g parameter: 1234"},
		{[]string{"backup", "-g", strings.Repeat("0", 32), dest}, "Invalid -g parameter"},
		{[]string{"backup", "-g", strings.Repeat("x", 32), dest}, "Invalid -g parameter"},
		{[]string{"backup", "-l", "abc", dest}, "Fatal: Invalid -l parameter: abc"},
		{[]string{"backup", "-l", "-1", dest}, "Invalid -l parameter: -1"},
		{[]string{"backup", "-T", "1m", dest}, "Fatal: Invalid -T parameter: 1m"},
		{[]string{"backup", "-t", "yesterday", dest}, "Fatal: Invalid -t parameter: yesterday"},
		{[]string{"backup", "-e", "2024-13-45", dest}, "Fatal: Invalid -e parameter: 2024-13-45"},
		{[]string{"backup", "-t", "2030-01-01", "-e", "2020-01-01", dest}, "Fatal: start date is later than end date"},
		{[]string{"backup", "-I", "10Q", dest}, "Fatal: Invalid -I parameter '10Q': Invalid size: 10Q"},
		{[]string{"backup", "-I", "big", dest}, "Invalid -I parameter 'big': Invalid size: big"},
		{[]string{"backup", "-O", `\Bogus`, dest}, `Fatal: Invalid system flag given for -O parameter: '\Bogus'`},
		{[]string{"backup", "-O", "$Junk $Spam", dest}, "-O parameter doesn't support multiple flags currently"},
		{[]string{"backup", "-O", `\Seen \Flagged`, dest}, "-O parameter doesn't support multiple flags currently"},
		{[]string{"backup", "-N", dest}, "Fatal: -N parameter requires syncing with remote host"},
		{[]string{"sync", "-N", dest}, "-N parameter requires syncing with remote host"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			te := newTestEnv(t)
			te.run(t, tc.args...).expect(t, tc.args, 75, tc.want)
		})
	}
}

func TestUsage(t *testing.T) {
	dest := "mem:/nowhere"
	tests := []struct {
		args []string
		env  map[string]string // replaces the environment
		want string
	}{
		{args: nil, want: "missing command"},
		{args: []string{"mirror", dest}, want: "Unknown command mirror"},
		{args: []string{"backup"}, want: "missing destination"},
		{args: []string{"backup", "-f"}, want: "usage: boxsync backup"},
		{args: []string{"sync"}, want: "usage: boxsync sync"},
		{args: []string{"backup", "-q", dest}, want: "Unknown option -q"},
		{args: []string{"backup", "--no-such-option", dest}, want: "Unknown option -no-such-option"},
		{args: []string{"-q", "backup", dest}, want: "Unknown option -q"},
		{args: []string{"backup", "-v", dest}, want: "Unknown option -v"}, // -v is global, as in doveadm
		{args: []string{"backup", "-m"}, want: "Option -m needs a value"},
		{args: []string{"backup", "-1", dest}, want: "Unknown option -1"}, // sync only
		{args: []string{"backup", "-m", "a", "--mailbox", "b", dest}, want: "two forms"},
		{args: []string{"-o", "mail_location", "backup", dest}, want: "-o parameter doesn't contain '='"},
		{args: []string{"backup", "-u", "jane", "-F", "users.txt", dest}, want: "-u and -F can't be used together"},
		{args: []string{"backup", ""}, want: "empty destination"},
		{args: []string{"backup", dest}, env: map[string]string{}, want: "USER environment is missing and -u option not used"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			te := newTestEnv(t)
			if tc.env != nil {
				te.vars = tc.env
			}
			te.run(t, tc.args...).expect(t, tc.args, 64, tc.want)
		})
	}
}

func TestHelp(t *testing.T) {
	te := newTestEnv(t)
	for _, args := range [][]string{{"--help"}, {"backup", "--help"}, {"sync", "-h"}} {
		r := te.run(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "USAGE:") {
			t.Errorf("boxsync %q = %d, stdout %q; want 0 and help", args, r.code, r.stdout)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	broken := write("broken.conf", "mail_location = mem:/x\nnamespace inbox {\n  separator = /\n")
	syntax := write("syntax.conf", "# ok\nmail_location mem:/x\n")
	noLoc := write("noloc.conf", "mail_plugins = zlib\n")
	unreadable := write("unreadable.conf", "mail_location = <"+filepath.Join(dir, "missing.txt")+"\n")
	dest := "mem:" + filepath.Join(dir, "dest")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"backup", dest}, "mail_location not set: use -o mail_location=… or --source"},
		{[]string{"-c", noLoc, "backup", dest}, "mail_location not set"},
		{[]string{"-c", filepath.Join(dir, "nope.conf"), "backup", dest}, "nope.conf"},
		{[]string{"-c", broken, "backup", dest}, broken + ":2: Missing '}'"},
		{[]string{"-c", syntax, "backup", dest}, syntax + ":2: Expecting '='"},
		{[]string{"-c", unreadable, "backup", dest}, unreadable + ":1: mail_location"},
		{[]string{"-o", "mail_location=foo:/x", "backup", dest}, `unknown mail storage format "foo"`},
		{[]string{"-o", "mail_location=maildir:~/Maildir", "backup", "-u", "nohome", dest}, "no home"},
		{[]string{"-o", "mail_location=maildir:%h/Maildir", "-o", "x=y", "backup", "-u", "nohome", dest}, ""},
		{[]string{"backup", "--source", "mem:~/mail", "maildir:"}, "no path given"},
		{[]string{"backup", "--source", "mem:/x", "mem:/y:LAYOUT=flat"}, "unknown LAYOUT"},
		{[]string{"-o", "mail_location=mem:/x", "-o", "mail_fsync=sometimes", "backup", dest}, "mail_fsync"},
		{[]string{"-o", "mail_location=mem:/x", "-o", "dsync_commit_msgs_interval=lots", "backup", dest}, "dsync_commit_msgs_interval"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			te := newTestEnv(t)
			te.users["nohome"] = ""
			te.run(t, tc.args...).expect(t, tc.args, 78, tc.want)
		})
	}
}

// driverFor parses loc and finds its driver.
func driverFor(t *testing.T, loc string) (formats.Driver, formats.Location) {
	t.Helper()
	l, err := formats.ParseLocation(loc, formats.Vars{})
	if err != nil {
		t.Fatal(err)
	}
	d, ok := all.Lookup(l.Driver)
	if !ok {
		t.Fatalf("no %s driver in formats/all", l.Driver)
	}
	return d, l
}

// fill creates a store at loc with the given mailboxes and messages
// (one body per message, bodies numbered to differ).
func fill(t *testing.T, loc string, boxes map[string]int) {
	t.Helper()
	ctx := context.Background()
	d, l := driverFor(t, loc)
	st, err := d.Open(ctx, l, formats.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for name, n := range boxes {
		if err := st.Create(ctx, name, formats.GUID{}, 0); err != nil {
			t.Fatal(err)
		}
		mb, err := st.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := mb.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			body := fmt.Sprintf("From: a@example.com\nSubject: %s %d\n\nbody %d\n", name, i, i)
			m := formats.Message{Flags: formats.FlagSeen, Received: time.Unix(1700000000+int64(i), 0), Size: int64(len(body))}
			if _, err := tx.Save(ctx, m, strings.NewReader(body)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		mb.Close()
	}
}

// dump returns the canonical dump of the store at loc, or "" when it
// can't be opened (there is none).
func dump(t *testing.T, loc string) string {
	t.Helper()
	ctx := context.Background()
	d, l := driverFor(t, loc)
	st, err := d.Open(ctx, l, formats.OpenOptions{ReadOnly: true})
	if err != nil {
		return ""
	}
	defer st.Close()
	out, err := formatstest.Dump(ctx, st, formatstest.FieldsBackup)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dumpNames is the mailbox and container names of a dump, one per line
// and quoted as the dump quotes them: a check for a name must not match
// a GUID, a date or a message line that happens to contain it.
func dumpNames(dump string) string {
	var b strings.Builder
	for _, l := range strings.Split(dump, "\n") {
		for _, kind := range []string{"mailbox ", "container "} {
			if rest, ok := strings.CutPrefix(l, kind); ok {
				if name, err := strconv.QuotedPrefix(rest); err == nil {
					b.WriteString(name + "\n")
				}
			}
		}
	}
	return b.String()
}

func TestBackupMem(t *testing.T) {
	te := newTestEnv(t)
	src, dst := memPath(t, "src"), memPath(t, "dst")
	fill(t, src, map[string]int{"INBOX": 3, "Work": 2, "Work/Projects": 1, "Spam": 2})

	args := []string{"-v", "-o", "mail_location=" + src, "backup", dst}
	r := te.run(t, args...)
	r.expect(t, args, 0, "boxsync(jane): Info: backup "+src+" -> "+dst, "8 saved")
	if diff := formatstest.Diff(dump(t, src), dump(t, dst)); diff != "" {
		t.Fatalf("destination differs from the source:\n%s", diff)
	}
	// A second run is a no-op.
	r = te.run(t, args...)
	r.expect(t, args, 0, "0 saved", "0 expunged", "0 flag changes")
	// -f compares everything, and finds nothing to do either.
	args = []string{"-v", "-o", "mail_location=" + src, "backup", "-f", dst}
	te.run(t, args...).expect(t, args, 0, "0 saved")
	// Without -v, a successful run prints nothing.
	args = []string{"-o", "mail_location=" + src, "backup", dst}
	if r := te.run(t, args...); r.code != 0 || r.stderr != "" || r.stdout != "" {
		t.Errorf("boxsync %q = %d, stdout %q, stderr %q; want 0 and silence", args, r.code, r.stdout, r.stderr)
	}
}

func TestBackupSelection(t *testing.T) {
	te := newTestEnv(t)
	src := memPath(t, "src")
	fill(t, src, map[string]int{"INBOX": 1, "Work": 1, "Spam": 1, "Trash": 1})
	names := func(loc string) string {
		var out []string
		for _, line := range strings.Split(dump(t, loc), "\n") {
			if strings.HasPrefix(line, "mailbox ") {
				out = append(out, strings.Fields(line)[1])
			}
		}
		return strings.Join(out, " ")
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-x", "Spam", "-x", "T*"}, `"INBOX" "Work"`},
		{[]string{"-xSpam"}, `"INBOX" "Trash" "Work"`},
		{[]string{"-m", "Work"}, `"Work"`},
		{[]string{"--mailbox", "INBOX"}, `"INBOX"`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			dst := memPath(t, "dst")
			args := append(append([]string{"backup", "--source", src}, tc.args...), dst)
			te.run(t, args...).expect(t, args, 0)
			if got := names(dst); got != tc.want {
				t.Errorf("destination mailboxes = %s, want %s\n%s", got, tc.want, dump(t, dst))
			}
		})
	}
}

func TestBackupReverse(t *testing.T) {
	te := newTestEnv(t)
	mine, other := memPath(t, "mine"), memPath(t, "other")
	fill(t, other, map[string]int{"INBOX": 2, "Archive": 1})
	args := []string{"-o", "mail_location=" + mine, "backup", "-R", other}
	te.run(t, args...).expect(t, args, 0)
	if diff := formatstest.Diff(dump(t, other), dump(t, mine)); diff != "" {
		t.Fatalf("-R: the user's store differs from the destination:\n%s", diff)
	}
}

func TestBackupLocationVars(t *testing.T) {
	te := newTestEnv(t)
	home := te.users["bob"]
	fill(t, "mem:"+home+"/mail", map[string]int{"INBOX": 1})
	dst := memPath(t, "backups") + "/%u"
	args := []string{"-o", "mail_location=mem:~/mail", "backup", "-u", "bob", dst}
	te.run(t, args...).expect(t, args, 0)
	want := strings.ReplaceAll(dst, "%u", "bob")
	if dump(t, want) == "" {
		t.Errorf("no store at %s after backup to %s", want, dst)
	}
	// Without -u, $USER and $HOME expand.
	fill(t, "mem:"+te.home+"/mail", map[string]int{"INBOX": 2})
	args = []string{"-o", "mail_location=mem:%h/mail", "backup", dst}
	te.run(t, args...).expect(t, args, 0)
	if dump(t, strings.ReplaceAll(dst, "%u", "jane")) == "" {
		t.Errorf("no store for jane")
	}
}

func TestBackupConfigFile(t *testing.T) {
	te := newTestEnv(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "mail")
	fill(t, "mem:"+root+"/jane", map[string]int{"INBOX": 2, "Sent": 1})
	files := map[string]string{
		"dovecot.conf": "!include conf.d/*.conf\n!include_try local.conf\n",
		"conf.d/10-mail.conf": "mail_root = " + root + "\n" +
			"mail_location = mem:/wrong\n" +
			"namespace inbox {\n  separator = /\n  inbox = yes\n}\n",
		"conf.d/20-doveadm.conf": "protocol doveadm {\n  mail_location = <location.txt\n}\n",
		"conf.d/location.txt":    "mem:" + root + "/%u\n",
		"conf.d/30-ssl.conf":     "ssl_key = </nonexistent/private/key.pem\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := memPath(t, "dst")
	args := []string{"-D", "-c", filepath.Join(dir, "dovecot.conf"), "backup", dst}
	te.run(t, args...).expect(t, args, 0, "Debug: read configuration from", "(from mail_location at "+filepath.Join(dir, "conf.d/20-doveadm.conf")+":2)")
	if diff := formatstest.Diff(dump(t, "mem:"+root+"/jane"), dump(t, dst)); diff != "" {
		t.Fatalf("destination differs:\n%s", diff)
	}
	// The default config file is read when it exists; -o still wins.
	te.configPath = filepath.Join(dir, "dovecot.conf")
	other := memPath(t, "other")
	fill(t, other, map[string]int{"INBOX": 1})
	args = []string{"-o", "mail_location=" + other, "backup", dst}
	te.run(t, args...).expect(t, args, 0)
	if diff := formatstest.Diff(dump(t, other), dump(t, dst)); diff != "" {
		t.Fatalf("-o mail_location did not win:\n%s", diff)
	}
}

func TestBackupFailures(t *testing.T) {
	te := newTestEnv(t)
	src := memPath(t, "src")
	fill(t, src, map[string]int{"INBOX": 1})
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"backup", "--source", memPath(t, "missing"), memPath(t, "d")}, 68, "boxsync(jane): Error: mem: open"},
		{[]string{"backup", "--source", src, src}, 75, "Both source and destination mail_location points to same directory"},
		{[]string{"backup", "--source", src, "-R", src}, 75, "same directory"},
		{[]string{"backup", "-u", "nobody", "--source", src, memPath(t, "d")}, 67, "boxsync(nobody): Error: User doesn't exist"},
		{[]string{"backup", "-u", "broken", "--source", src, memPath(t, "d")}, 75, "User lookup failed: passwd lookup of broken: passwd database unavailable"},
		{[]string{"backup", "--source", "imapc:", memPath(t, "d")}, 78, "imapc: settings: imapc_host is not set"},
		{[]string{"backup", "--source", "sdbox:" + memPath(t, "s")[4:], memPath(t, "d")}, 68, "sdbox: open: "},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			te.run(t, tc.args...).expect(t, tc.args, tc.code, tc.want)
		})
	}
}

func TestUserFile(t *testing.T) {
	te := newTestEnv(t)
	te.users["carol"] = filepath.Join(t.TempDir(), "carol")
	root := filepath.Join(t.TempDir(), "mail")
	fill(t, "mem:"+root+"/jane", map[string]int{"INBOX": 1})
	fill(t, "mem:"+root+"/carol", map[string]int{"INBOX": 2})
	// bob has no store: his run fails (68), the others go on.
	users := filepath.Join(t.TempDir(), "users.txt")
	if err := os.WriteFile(users, []byte("jane\nnobody\n\nbob\ncarol\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := memPath(t, "backup") + "/%u"
	args := []string{"-o", "mail_location=mem:" + root + "/%u", "backup", "-F", users, dst}
	r := te.run(t, args...)
	r.expect(t, args, 68, "boxsync(nobody): Info: User no longer exists, skipping", "boxsync(bob): Error: mem: open")
	for _, u := range []string{"jane", "carol"} {
		if diff := formatstest.Diff(dump(t, "mem:"+root+"/"+u), dump(t, strings.ReplaceAll(dst, "%u", u))); diff != "" {
			t.Errorf("%s's backup differs:\n%s", u, diff)
		}
	}

	// All good, from stdin, an unknown user doesn't change the exit code.
	te.stdin = "jane\nnobody\ncarol\n"
	args = []string{"-o", "mail_location=mem:" + root + "/%u", "backup", "--user-file", "-", dst}
	te.run(t, args...).expect(t, args, 0, "nobody")

	// A failed lookup stops the iteration with 75.
	te.stdin = "jane\nbroken\ncarol\n"
	dst2 := memPath(t, "backup2") + "/%u"
	args = []string{"-o", "mail_location=mem:" + root + "/%u", "backup", "-F", "-", dst2}
	te.run(t, args...).expect(t, args, 75, "boxsync(broken): Error: User lookup failed", "Failed to iterate through some users")
	if dump(t, strings.ReplaceAll(dst2, "%u", "carol")) != "" {
		t.Errorf("carol was backed up after the iteration failed")
	}

	// A missing file is an iteration failure too.
	args = []string{"-o", "mail_location=mem:/x", "backup", "-F", filepath.Join(t.TempDir(), "none"), dst}
	te.run(t, args...).expect(t, args, 75, "Failed to iterate through some users")
}

func TestInterrupted(t *testing.T) {
	te := newTestEnv(t)
	src := memPath(t, "src")
	fill(t, src, map[string]int{"INBOX": 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	args := []string{"backup", "--source", src, memPath(t, "dst")}
	if r := te.runCtx(t, ctx, args...); r.code != 130 {
		t.Errorf("interrupted run exited %d, want 130\n%s", r.code, r.stderr)
	}
}

// TestBackupMaildir backs up a Maildir into another through the real
// driver: via -o mail_location and via a configuration file, then again
// as a no-op.
func TestBackupMaildir(t *testing.T) {
	if _, ok := all.Lookup("maildir"); !ok {
		t.Fatal("the maildir driver is not in formats/all")
	}
	te := newTestEnv(t)
	src := "maildir:" + filepath.Join(te.home, "Maildir")
	fill(t, src, map[string]int{"INBOX": 3, "Sent": 2, "Archive": 0, "Archive/2023": 2})

	check := func(dst string, args []string) {
		t.Helper()
		r := te.run(t, args...)
		r.expect(t, args, 0, "7 saved")
		if diff := formatstest.Diff(dump(t, src), dump(t, dst)); diff != "" {
			t.Fatalf("boxsync %q: destination differs from the source:\n%s", args, diff)
		}
		// A second run is a no-op, and -f finds nothing to do either.
		te.run(t, args...).expect(t, args, 0, "0 saved", "0 expunged", "0 flag changes")
		full := append(append([]string{}, args[:len(args)-1]...), "-f", args[len(args)-1])
		te.run(t, full...).expect(t, full, 0, "0 saved", "0 expunged", "0 flag changes")
		if diff := formatstest.Diff(dump(t, src), dump(t, dst)); diff != "" {
			t.Fatalf("boxsync %q changed the destination on a second run:\n%s", args, diff)
		}
	}

	// -o mail_location, ~ from $HOME.
	check("maildir:"+filepath.Join(te.home, "backup1"),
		[]string{"-v", "-o", "mail_location=maildir:~/Maildir", "backup", "maildir:~/backup1"})

	// A configuration file, the user from -u, %u and %h.
	conf := filepath.Join(t.TempDir(), "dovecot.conf")
	if err := os.WriteFile(conf, []byte("mail_location = maildir:%h/Maildir\nnamespace inbox {\n  inbox = yes\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "backups")
	check("maildir:"+filepath.Join(dst, "jane"),
		[]string{"-v", "-c", conf, "backup", "-u", "jane", "maildir:" + dst + "/%u"})
}
