package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestConvertSwitchCmd: a userdb that is no passwd-file boxsync could
// rewrite. Dovecot's passwd-file is only the passdb (lines without userdb
// fields); the userdb is a static one (mail=maildir:~/Maildir) behind a
// second passwd-file of moved users, which the admin's --switch-cmd
// maintains. The hook gets BOXSYNC_USER, BOXSYNC_OLD_LOCATION and
// BOXSYNC_NEW_LOCATION, and on its first run kills boxsync (SIGKILL to its
// parent) right after switching, before the journal records it. Mail
// delivered then still reaches the old location (the auth cache was not
// flushed). The rerun runs the hook again, which must (and does) leave one
// line for the user, then converts: Dovecot serves the user from mdbox
// with every message. A --rollback runs the hook the other way round.
func TestConvertSwitchCmd(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	homes := filepath.Join(dir, "homes")
	overlay := filepath.Join(dir, "moved-users")
	hookLog := filepath.Join(dir, "hook.log")
	killMark := filepath.Join(dir, "killed-once")
	if err := os.WriteFile(overlay, []byte("# users moved to a new mail location\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := dovecottest.ServeUsers(t, []string{"sam"}, "maildir:~/Maildir",
		"userdb {\n  driver = passwd-file\n  args = "+overlay+"\n}",
		"userdb {\n  driver = static\n  args = home="+homes+"/%u mail=maildir:~/Maildir allow_all_users=yes\n}")
	// The passdb only: no uid, gid or home, so the passwd-file userdb
	// passes the user on to the next userdb.
	if err := os.WriteFile(srv.Passwd, []byte("sam:{PLAIN}"+dovecottest.UserPassword+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fillUser(t, filepath.Join(homes, "sam", "Maildir"), 40)
	srv.Chown(t, homes)
	e := &convertEnv{srv: srv, users: []string{"sam"}, journal: filepath.Join(dir, "journal")}
	e.bin = filepath.Join(dir, "boxsync")
	buildBinary(t, e.bin)
	if m := userMail(t, srv, "sam"); m != "maildir:~/Maildir" {
		t.Fatalf("before: mail=%s\n%s", m, srv.Log())
	}
	orig := imapState(t, srv, "sam") // also caches sam's userdb entry

	// The hook: replace the user's line (write a new file, rename it),
	// log the environment, and kill boxsync the first time.
	hook := `set -e
f=` + overlay + `
grep -v "^$BOXSYNC_USER:" "$f" > "$f.tmp" || true
printf '%s:::::%s::userdb_mail=%s\n' "$BOXSYNC_USER" "` + homes + `/$BOXSYNC_USER" "$BOXSYNC_NEW_LOCATION" >> "$f.tmp"
mv "$f.tmp" "$f"
echo "$BOXSYNC_USER|$BOXSYNC_OLD_LOCATION|$BOXSYNC_NEW_LOCATION" >> ` + hookLog + `
if [ ! -e ` + killMark + ` ]; then touch ` + killMark + `; kill -9 $PPID; fi`
	args := []string{"-u", "sam", "--switch-cmd", hook, "--threshold", "1", "mdbox:~/mdbox"}

	// --dry-run names the hook.
	if out, err := e.command(append([]string{"--dry-run"}, args...)...).CombinedOutput(); err != nil || !strings.Contains(string(out), "switch: set -e") {
		t.Fatalf("--dry-run: %v\n%s", err, out)
	}
	cmd := e.command(args...)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("first run was not killed by its hook: %v\n%s", err, out)
	}
	if got := readLines(t, hookLog); len(got) != 1 || got[0] != "sam|maildir:~/Maildir|mdbox:~/mdbox" {
		t.Fatalf("hook environment: %q", got)
	}
	if j, _ := os.ReadFile(e.journal); !bytes.Contains(j, []byte(`"step":"switching"`)) || bytes.Contains(j, []byte(`"step":"switched"`)) {
		t.Fatalf("journal after the kill:\n%s", j)
	}
	// Dovecot's cache still has the old location: this lands in the Maildir.
	if err := srv.Deliver("sam", "INBOX", []byte("Subject: between the hook and the journal\n\nx\n")); err != nil {
		t.Fatal(err)
	}
	if hit, _ := exec.Command("grep", "-rl", "between the hook", filepath.Join(homes, "sam", "Maildir")).Output(); len(hit) == 0 {
		t.Fatal("the delivery after the kill did not reach the Maildir")
	}

	out, err = e.command(args...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sam: converted") {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	if got := readLines(t, hookLog); len(got) != 2 || got[1] != got[0] {
		t.Errorf("hook runs: %q, want the same environment twice", got)
	}
	wantOverlay := "# users moved to a new mail location\nsam:::::" + homes + "/sam::userdb_mail=mdbox:~/mdbox\n"
	if got, _ := os.ReadFile(overlay); string(got) != wantOverlay {
		t.Errorf("moved-users after the rerun:\n%s\nwant\n%s", got, wantOverlay)
	}
	if m := userMail(t, srv, "sam"); m != "mdbox:~/mdbox" {
		t.Fatalf("after the rerun Dovecot's userdb says mail=%s", m)
	}
	onNew := imapState(t, srv, "sam")
	var late []string
	for uid, m := range onNew["INBOX"].msgs {
		if _, old := orig["INBOX"].msgs[uid]; !old {
			late = append(late, m)
			delete(onNew["INBOX"].msgs, uid)
		}
	}
	if len(late) != 1 || !strings.HasPrefix(late[0], "between the hook and the journal") {
		t.Errorf("mail new on mdbox: %q, want the delivery between the hook and the journal", late)
	}
	if d := diffIMAPStates(onNew, orig); d != "" {
		t.Errorf("IMAP on mdbox:\n%s", d)
	}
	if _, err := os.Stat(filepath.Join(homes, "sam", "mdbox", "storage")); err != nil {
		t.Errorf("no mdbox: %v", err)
	}

	// Back: the hook runs with the locations the other way round.
	out, err = e.command("--switch-cmd", hook, "--rollback", "sam").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sam: rolled-back") {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	if got := readLines(t, hookLog); len(got) != 3 || got[2] != "sam|mdbox:~/mdbox|maildir:~/Maildir" {
		t.Errorf("hook runs: %q", got)
	}
	if m := userMail(t, srv, "sam"); m != "maildir:~/Maildir" {
		t.Errorf("after the rollback Dovecot's userdb says mail=%s", m)
	}
	srv.CheckLogCleanExcept(t, "Killed with signal 15")
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}
