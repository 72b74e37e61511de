package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// convertSetup writes a dovecot.conf with a passwd-file userdb of jane and
// bob (mail_location maildir:~/Maildir; bob has his own userdb_mail).
func convertSetup(t *testing.T, te *testEnv) (conf, passwd string) {
	t.Helper()
	dir := t.TempDir()
	passwd = filepath.Join(dir, "users")
	lines := "# users\n" +
		"jane:{PLAIN}x::::" + te.users["jane"] + "::\n" +
		"bob:{PLAIN}x::::" + te.users["bob"] + "::userdb_mail=maildir:~/Mail\n"
	if err := os.WriteFile(passwd, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	conf = filepath.Join(dir, "dovecot.conf")
	c := "mail_location = maildir:~/Maildir\nstate_dir = " + filepath.Join(dir, "state") + "\n" +
		"userdb {\n  driver = passwd-file\n  args = " + passwd + "\n}\n"
	if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf, passwd
}

// TestConvertCommandLine: usage errors, --dry-run's plan (nothing
// changes), unknown users, and a real run's report and exit code.
func TestConvertCommandLine(t *testing.T) {
	te := newTestEnv(t)
	conf, passwd := convertSetup(t, te)
	fillSized(t, "maildir:"+filepath.Join(te.users["jane"], "Maildir"), 30)
	fillSized(t, "maildir:"+filepath.Join(te.users["bob"], "Mail"), 10)
	before, _ := os.ReadFile(passwd)
	common := []string{"-c", conf, "convert", "--flush-cmd", "", "--kick-cmd", "", "--wait", "0s"}
	usage := []struct {
		args []string
		want string
	}{
		{[]string{"-c", conf, "convert", "-A"}, "missing the new location"},
		{[]string{"-c", conf, "convert", "mdbox:~/m"}, "name the users"},
		{[]string{"-c", conf, "convert", "-A", "a:b", "c"}, "one new location"},
		{[]string{"-c", conf, "convert", "--rollback", "jane", "-A"}, "--rollback names its one user"},
		{[]string{"-c", conf, "convert", "-A", "--workers", "0", "mdbox:~/m"}, "at least 1"},
	}
	for _, u := range usage {
		te.run(t, u.args...).expect(t, u.args, exitUsage, u.want)
	}

	args := append(common, "-A", "--dry-run", "mdbox:~/mdbox")
	r := te.run(t, args...)
	r.expect(t, args, exitOK)
	for _, want := range []string{"jane: planned: maildir:~/Maildir -> mdbox:~/mdbox", "bob: planned: maildir:~/Mail -> mdbox:~/mdbox",
		"switch: userdb_mail=mdbox:~/mdbox in " + passwd, "2 users: 2 planned"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--dry-run output lacks %q:\n%s", want, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(te.users["jane"], "mdbox")); err == nil {
		t.Error("--dry-run wrote mail")
	}

	args = append(common, "-u", "jane", "-u", "nobody-here", "mdbox:~/mdbox")
	te.run(t, args...).expect(t, args, exitNoUser)

	report := filepath.Join(t.TempDir(), "r.json")
	args = append(append([]string{"-v"}, common...), "-u", "b*", "-u", "jane", "--report", report, "mdbox:~/mdbox")
	r = te.run(t, args...)
	for _, want := range []string{"boxsync: Info: 1/2 users done", "2/2 users done", "ETA", "boxsync(bob): Info: pass 1:"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("-v: stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	r.expect(t, args, exitOK)
	var rep struct {
		Users []struct {
			User, Status string
			Saved        int
		}
		Counts map[string]int
	}
	data, _ := os.ReadFile(report)
	if err := json.Unmarshal(data, &rep); err != nil || rep.Counts["converted"] != 1 || rep.Counts["skipped"] != 1 {
		// jane was converted by the run above (-u jane, nobody-here).
		t.Fatalf("report %v:\n%s\nstdout:\n%s", err, data, r.stdout)
	}
	after, _ := os.ReadFile(passwd)
	want := strings.Replace(strings.Replace(string(before), te.users["jane"]+"::", te.users["jane"]+"::userdb_mail=mdbox:~/mdbox", 1),
		"userdb_mail=maildir:~/Mail", "userdb_mail=mdbox:~/mdbox", 1)
	if string(after) != want {
		t.Errorf("passwd-file:\n%s\nwant\n%s", after, want)
	}
	if d := diffLines(dump(t, "maildir:"+filepath.Join(te.users["bob"], "Mail")), dump(t, "mdbox:"+filepath.Join(te.users["bob"], "mdbox"))); d != "" {
		t.Errorf("bob's mdbox:\n%s", d)
	}

	// --remove-old on a rerun: jane (converted) loses her Maildir, after
	// verifying again; her mdbox stays.
	janeOld := dump(t, "maildir:"+filepath.Join(te.users["jane"], "Maildir"))
	args = append(common, "-u", "jane", "--remove-old", "mdbox:~/mdbox")
	te.run(t, args...).expect(t, args, exitOK)
	if _, err := os.Stat(filepath.Join(te.users["jane"], "Maildir")); !os.IsNotExist(err) {
		t.Errorf("--remove-old left the Maildir: %v", err)
	}
	if d := diffLines(janeOld, dump(t, "mdbox:"+filepath.Join(te.users["jane"], "mdbox"))); d != "" {
		t.Errorf("jane's mdbox after --remove-old:\n%s", d)
	}
	args = append(common, "--rollback", "jane")
	te.run(t, args...).expect(t, args, exitDataErr, "was removed")

	// Rollback: what bob got on mdbox goes back to his Maildir, and the
	// passwd-file line is as it was.
	appendTo(t, "mdbox:"+filepath.Join(te.users["bob"], "mdbox"), "INBOX", "Subject: after the switch\r\n\r\nhi\r\n")
	args = append(common, "--rollback", "bob", "--dry-run")
	if r := te.run(t, args...); r.code != 0 || !strings.Contains(r.stdout, "bob: planned") {
		t.Errorf("rollback --dry-run: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	args = append(common, "--rollback", "bob")
	r = te.run(t, args...)
	r.expect(t, args, exitOK)
	if !strings.Contains(r.stdout, "bob: rolled-back") {
		t.Errorf("rollback: %s", r.stdout)
	}
	after, _ = os.ReadFile(passwd)
	if want := strings.Replace(string(before), te.users["jane"]+"::", te.users["jane"]+"::userdb_mail=mdbox:~/mdbox", 1); string(after) != want {
		t.Errorf("passwd-file after the rollback:\n%s\nwant\n%s", after, want)
	}
	if d := diffLines(dump(t, "mdbox:"+filepath.Join(te.users["bob"], "mdbox")), dump(t, "maildir:"+filepath.Join(te.users["bob"], "Mail"))); d != "" {
		t.Errorf("bob's Maildir after the rollback:\n%s", d)
	}
}

// appendTo saves one message into mailbox of the store at loc.
func appendTo(t *testing.T, loc, mailbox, msg string) {
	t.Helper()
	ctx := context.Background()
	d, l := driverFor(t, loc)
	st, err := d.Open(ctx, l, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mb, err := st.Open(ctx, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Save(ctx, formats.Message{Size: int64(len(msg)), Received: time.Unix(1.7e9, 0)}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
