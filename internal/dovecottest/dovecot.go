package dovecottest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// DefaultLocation is the mail_location New uses for "". "~" is Dovecot's:
// it expands to [Dovecot.Home].
const DefaultLocation = "maildir:~/Maildir"

// userName is the USER doveadm sees; it only shows up in log prefixes.
const userName = "dovecottest"

// Require skips the test when doveadm is not installed, except on CI (env CI
// set and not "false" or "0"), where it fails: CI has Dovecot, so interop
// tests never skip there. New calls it.
func Require(t testing.TB) {
	t.Helper()
	_, err := exec.LookPath("doveadm")
	if err == nil {
		return
	}
	if ciRequiresDovecot() {
		t.Fatalf("dovecottest: %v; CI has Dovecot, so interop tests never skip there", err)
	} else {
		t.Skipf("dovecottest: %v; install dovecot-core to run interop tests", err)
	}
}

// ciRequiresDovecot tells whether this is a CI run, where interop tests
// must fail rather than skip.
func ciRequiresDovecot() bool {
	ci := os.Getenv("CI")
	return ci != "" && ci != "false" && ci != "0"
}

// Dovecot is one private Dovecot configuration for one mail user, living in
// its own t.TempDir(). Methods may be called from subtests; they are not
// meant to run concurrently on one Dovecot.
type Dovecot struct {
	dir      string   // immutable: the temp dir holding everything below
	home     string   // immutable: DIR/home, the user's $HOME
	conf     string   // immutable: DIR/dovecot.conf
	logPath  string   // immutable: DIR/dovecot.log
	location string   // immutable: mail_location as configured ("~" unexpanded)
	root     string   // immutable: the location's path, "~" expanded
	uid, gid int      // immutable: mail_uid/mail_gid, -1 when not running as root
	log      *os.File // immutable: logPath opened for appending; closed by t.Cleanup
}

// New writes a dovecot.conf for mailLocation (DefaultLocation if "") into a
// new t.TempDir() and returns a handle for running doveadm with it. Each
// extraConf string is appended to the file verbatim, e.g.
// "mail_save_crlf = yes" or a "protocol imap { … }" block; it must not
// change the namespace separator (see the package documentation).
func New(t testing.TB, mailLocation string, extraConf ...string) *Dovecot {
	t.Helper()
	Require(t)
	if mailLocation == "" {
		mailLocation = DefaultLocation
	}
	for _, c := range extraConf {
		if strings.Contains(c, "separator") {
			t.Fatalf("dovecottest: extraConf %q changes the namespace separator, but Snapshot needs '/'", c)
		}
	}
	dir := t.TempDir()
	d := &Dovecot{
		dir:      dir,
		home:     filepath.Join(dir, "home"),
		conf:     filepath.Join(dir, "dovecot.conf"),
		logPath:  filepath.Join(dir, "dovecot.log"),
		location: mailLocation,
		uid:      -1,
		gid:      -1,
	}
	root, err := locationRoot(mailLocation, d.home)
	if err != nil {
		t.Fatal(err)
	}
	d.root = root
	if os.Geteuid() == 0 {
		o, err := mailOwner()
		if err != nil {
			t.Fatal(err)
		}
		d.uid, d.gid = o.uid, o.gid
	}
	for _, sub := range []string{"home", "run", "state"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(d.conf, []byte(d.config(extraConf)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.log, err = os.OpenFile(d.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.log.Close() })
	if d.uid >= 0 {
		if err := traversable(d.home, d.uid); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// config renders dovecot.conf. See the package documentation for why each
// line is there.
func (d *Dovecot) config(extra []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by dovecottest\n")
	fmt.Fprintf(&b, "base_dir = %s\n", filepath.Join(d.dir, "run"))
	fmt.Fprintf(&b, "state_dir = %s\n", filepath.Join(d.dir, "state"))
	fmt.Fprintf(&b, "log_path = %s\n", d.logPath)
	fmt.Fprintf(&b, "ssl = no\n")
	fmt.Fprintf(&b, "first_valid_uid = 1\n")
	fmt.Fprintf(&b, "first_valid_gid = 1\n")
	if d.uid >= 0 {
		fmt.Fprintf(&b, "mail_uid = %d\n", d.uid)
		fmt.Fprintf(&b, "mail_gid = %d\n", d.gid)
	}
	fmt.Fprintf(&b, "mail_location = %s\n", d.location)
	fmt.Fprintf(&b, "namespace inbox {\n  inbox = yes\n  separator = /\n}\n")
	for _, e := range extra {
		b.WriteString(e)
		b.WriteString("\n")
	}
	return b.String()
}

// MailOwner is mail_uid and mail_gid, or -1, -1 when not running as root
// (then Dovecot runs as the current user).
func (d *Dovecot) MailOwner() (uid, gid int) { return d.uid, d.gid }

// Dir is the temp dir holding the configuration, the log and Home.
func (d *Dovecot) Dir() string { return d.dir }

// Home is the mail user's home directory ("~" in locations).
func (d *Dovecot) Home() string { return d.home }

// Config is the path of the generated dovecot.conf (doveadm -c).
func (d *Dovecot) Config() string { return d.conf }

// Location is the configured mail_location, "~" unexpanded.
func (d *Dovecot) Location() string { return d.location }

// Root is the mail root directory: the path part of the mail location with
// "~" expanded, e.g. DIR/home/Maildir. Dovecot creates it on first use.
func (d *Dovecot) Root() string { return d.root }

// Cmd returns `doveadm -c CONFIG ARGS` ready to run, with the clean
// environment and, as root, the files under Dir handed to mail_uid. Stderr
// goes to the log; set Stdin, Stdout (and Stderr) as needed. Use it for what
// Doveadm cannot do, e.g. `doveadm exec imap` over pipes.
func (d *Dovecot) Cmd(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	if err := d.prepare(); err != nil {
		t.Fatal(err)
	}
	return d.command(args)
}

// Doveadm runs `doveadm -c CONFIG ARGS` and returns its stdout. A failure
// (doveadm exits non-zero) is an error that includes doveadm's stderr.
func (d *Dovecot) Doveadm(args ...string) (stdout string, err error) {
	return d.run(nil, args)
}

// MustDoveadm is Doveadm that fails the test on error.
func (d *Dovecot) MustDoveadm(t testing.TB, args ...string) string {
	t.Helper()
	out, err := d.Doveadm(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Save appends msg to mailbox with `doveadm save -m MAILBOX`. Dovecot's save
// path rewrites line endings (see the package documentation), so the stored
// bytes are not necessarily msg.
func (d *Dovecot) Save(t testing.TB, mailbox string, msg []byte) {
	t.Helper()
	if _, err := d.run(bytes.NewReader(msg), []string{"save", "-m", mailbox}); err != nil {
		t.Fatal(err)
	}
}

// Chown hands path (recursively) to mail_uid/mail_gid and makes the
// directories above it traversable, so Dovecot can use a store that Go code
// wrote outside Dir. Files under Dir need no call: they are handed over
// before every doveadm run. Chown is a no-op unless running as root.
func (d *Dovecot) Chown(t testing.TB, path string) {
	t.Helper()
	if d.uid < 0 {
		return
	}
	if err := traversable(path, d.uid); err != nil {
		t.Fatal(err)
	}
	if err := chownTree(path, d.uid, d.gid); err != nil {
		t.Fatal(err)
	}
}

// logHeader starts each command's section in the log; CheckLogClean skips
// these lines, since arguments may contain any word.
const logHeader = "# dovecottest: "

// Log returns everything Dovecot logged so far: the stderr of every command,
// each after a "# dovecottest: doveadm ARGS" line.
func (d *Dovecot) Log() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return fmt.Sprintf("dovecottest: reading log: %v", err)
	}
	return string(b)
}

// logProblems are the log fragments that mean Dovecot found something wrong
// in a store: Dovecot reports repairs as "Error:" or "Warning:" lines
// ("Expunged message reappeared", "Duplicate file entry") and its index and
// dbox code talk of corrupted files, log inconsistencies, fsck and rebuilds.
var (
	logProblems    = []string{"Panic:", "Fatal:", "Error:", "Warning:"}
	logProblemsAny = []string{"corrupt", "inconsisten", "rebuild", "fsck"} // any case
)

// CheckLogClean reports (t.Errorf) every log line that shows Dovecot found a
// problem; see logProblems.
func (d *Dovecot) CheckLogClean(t testing.TB) {
	t.Helper()
	if bad := problems(d.Log()); len(bad) > 0 {
		t.Errorf("dovecottest: Dovecot's log shows problems:\n%s", strings.Join(bad, "\n"))
	}
}

// CheckLogCleanExcept is CheckLogClean that accepts lines containing one
// of expected, e.g. "Killed with signal 15" after a doveadm kick.
func (d *Dovecot) CheckLogCleanExcept(t testing.TB, expected ...string) {
	t.Helper()
	var bad []string
	for _, line := range problems(d.Log()) {
		ok := false
		for _, e := range expected {
			ok = ok || strings.Contains(line, e)
		}
		if !ok {
			bad = append(bad, line)
		}
	}
	if len(bad) > 0 {
		t.Errorf("dovecottest: Dovecot's log shows problems:\n%s", strings.Join(bad, "\n"))
	}
}

// problems returns the lines of log that contain a logProblems fragment.
func problems(log string) []string {
	var bad []string
	for line := range strings.Lines(log) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, logHeader) {
			continue
		}
		lower := strings.ToLower(line)
		hit := false
		for _, p := range logProblems {
			hit = hit || strings.Contains(line, p)
		}
		for _, p := range logProblemsAny {
			hit = hit || strings.Contains(lower, p)
		}
		if hit {
			bad = append(bad, line)
		}
	}
	return bad
}

// run runs doveadm with stdin and collects stdout; stderr goes both to the
// log and into the error.
func (d *Dovecot) run(stdin io.Reader, args []string) (string, error) {
	if err := d.prepare(); err != nil {
		return "", err
	}
	cmd := d.command(args)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, d.log)
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("dovecottest: doveadm %s: %w\n%s", quoteArgs(args), err, stderr.Bytes())
	}
	return stdout.String(), nil
}

// command builds the doveadm command and writes its log header.
func (d *Dovecot) command(args []string) *exec.Cmd {
	fmt.Fprintf(d.log, "%sdoveadm %s\n", logHeader, quoteArgs(args))
	cmd := exec.Command("doveadm", append([]string{"-c", d.conf}, args...)...)
	// No -u: without it doveadm skips userdb and auth and takes the user and
	// home from the environment. Nothing else may leak in ($MAIL would
	// override mail_location).
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"USER=" + userName,
		"HOME=" + d.home,
	}
	cmd.Dir = d.dir
	cmd.Stderr = d.log
	return cmd
}

// prepare hands everything under Dir to mail_uid when running as root.
func (d *Dovecot) prepare() error {
	if d.uid < 0 {
		return nil
	}
	return chownTree(d.dir, d.uid, d.gid)
}

// quoteArgs renders args for logs and errors, quoting where a shell would
// need it.
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$*?&;|<>()") || !strconv.CanBackquote(a) {
			a = strconv.Quote(a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// locationRoot extracts the path of a mail_location "driver:path[:KEY=VAL…]"
// and expands a leading "~" to home.
func locationRoot(location, home string) (string, error) {
	_, rest, ok := strings.Cut(location, ":")
	if !ok {
		return "", fmt.Errorf("dovecottest: mail location %q: want driver:path", location)
	}
	path, _, _ := strings.Cut(rest, ":")
	switch {
	case path == "~":
		path = home
	case strings.HasPrefix(path, "~/"):
		path = filepath.Join(home, path[2:])
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("dovecottest: mail location %q: path must be absolute or start with ~/", location)
	}
	return path, nil
}

type owner struct{ uid, gid int }

// mailOwner is user nobody and its primary group: base-passwd creates them
// on every Debian, and unlike dovenull they may own mail.
var mailOwner = sync.OnceValues(func() (owner, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return owner{}, fmt.Errorf("dovecottest: running as root needs a non-root mail_uid: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return owner{}, fmt.Errorf("dovecottest: user nobody: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return owner{}, fmt.Errorf("dovecottest: user nobody: gid %q: %w", u.Gid, err)
	}
	return owner{uid, gid}, nil
})

// chownTree gives every file under root that is not yet owned by uid:gid to
// it. Files already owned keep their ctime: maildir reports ctime as the
// saved date.
func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if path != root && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
			return nil
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // renamed away meanwhile (a writer's temp file)
			}
			return fmt.Errorf("dovecottest: %w", err)
		}
		return nil
	})
}

// traversable makes sure uid can reach path: every directory above it must
// be owned by uid or searchable by others. Directories inside os.TempDir()
// (t.TempDir() makes a 0700 parent) get o+x and g+x; anything else is left
// alone and reported.
func traversable(path string, uid int) error {
	tmp := filepath.Clean(os.TempDir())
	path, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("dovecottest: %w", err)
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("dovecottest: %w", err)
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		ownedByUID := st != nil && int(st.Uid) == uid
		if !ownedByUID && fi.Mode().Perm()&0o001 == 0 {
			if !strings.HasPrefix(dir, tmp+string(filepath.Separator)) {
				return fmt.Errorf("dovecottest: %s (mode %v) is not searchable by mail uid %d; use a TMPDIR everyone can traverse", dir, fi.Mode().Perm(), uid)
			}
			if err := os.Chmod(dir, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("dovecottest: %w", err)
			}
		}
		if parent := filepath.Dir(dir); parent == dir {
			return nil
		}
	}
}
