package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/internal/dovecottest"
)

// newConvertEnvAt is a Dovecot serving users from oldLoc (ServeUsers'
// passwd-file, userdb_mail=oldLoc), each filled with msgs messages over
// INBOX and Work at the path root (relative to the user's home), and a
// boxsync binary.
func newConvertEnvAt(t *testing.T, users []string, oldLoc, root string, msgs int) *convertEnv {
	t.Helper()
	srv := dovecottest.ServeUsers(t, users, oldLoc)
	e := &convertEnv{srv: srv, users: users, journal: filepath.Join(srv.Dir(), "journal", "convert.journal")}
	driver, _, _ := strings.Cut(oldLoc, ":")
	for _, u := range users {
		fillUserAt(t, driver+":"+filepath.Join(srv.UserHome(u), root), msgs)
		srv.Chown(t, srv.UserHome(u))
	}
	var err error
	if e.passwd, err = os.ReadFile(srv.Passwd); err != nil {
		t.Fatal(err)
	}
	e.bin = filepath.Join(srv.Dir(), "boxsync")
	buildBinary(t, e.bin)
	srv.Chown(t, srv.Dir())
	return e
}

// TestConvertLossOnNew: between the switch and the verification, the user
// changes the new location through Dovecot (a flag, an expunge), and one
// message's file is deleted from the new Maildir behind Dovecot's back.
// Verification tells the two apart from the new location's transaction
// log: the expunge is the user's (Dovecot logged its request with the
// mail's GUID), the deleted file is a loss (Dovecot logged it with a zero
// GUID only, on noticing it gone); the user fails verification and
// --remove-old keeps the old location.
func TestConvertLossOnNew(t *testing.T) {
	e := newConvertEnvAt(t, []string{"liz"}, "mdbox:~/mdbox", "mdbox", 40)
	newRoot := filepath.Join(e.srv.UserHome("liz"), "Maildir")
	// INBOX holds "INBOX 0", "INBOX 2", ... at UIDs 1, 2, ...: "INBOX 10"
	// is UID 6. Its file goes first; then Dovecot flags UID 3 and
	// expunges UID 8, syncing the Maildir (and noticing UID 6 gone).
	damage := e.srv.DoveadmCommand() + ` kick "$BOXSYNC_USER" >/dev/null || [ $? = 68 ]
set -e
f=$(grep -l '^Subject: INBOX 10.$' ` + newRoot + `/cur/* ` + newRoot + `/new/* 2>/dev/null || true)
[ -n "$f" ]
rm -- $f
` + e.srv.DoveadmCommand() + ` flags add -u "$BOXSYNC_USER" '\Flagged' mailbox INBOX uid 3
` + e.srv.DoveadmCommand() + ` expunge -u "$BOXSYNC_USER" mailbox INBOX uid 8
`
	report := filepath.Join(e.srv.Dir(), "report.json")
	cmd := e.command("-u", "liz", "--remove-old", "--kick-cmd", damage, "--report", report, "maildir:~/Maildir")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != exitDataErr {
		t.Fatalf("convert: exit %d (%v), want %d\n%s", code, err, exitDataErr, out)
	}
	t.Logf("convert:\n%s", out)
	for _, want := range []string{"liz: failed", "INBOX UID 6", "Dovecot dropped it without a client's expunge"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(string(out), "UID 8 ") || strings.Contains(string(out), "UID 3:") {
		t.Errorf("the user's own expunge or flag change was reported")
	}
	var rep struct {
		Users []struct {
			Status string
			Verify struct {
				ExpungedOnNew    int `json:"expunged_on_new"`
				ExpungesUnproven int `json:"expunges_unproven"`
				ChangedOnNew     int `json:"changed_on_new"`
			}
		}
	}
	data, _ := os.ReadFile(report)
	if err := json.Unmarshal(data, &rep); err != nil || len(rep.Users) != 1 {
		t.Fatalf("report: %v\n%s", err, data)
	}
	if v := rep.Users[0].Verify; rep.Users[0].Status != "failed" || v.ExpungedOnNew != 1 || v.ExpungesUnproven != 0 || v.ChangedOnNew != 1 {
		t.Errorf("report: %s", data)
	}
	if _, err := os.Stat(filepath.Join(e.srv.UserHome("liz"), "mdbox", "storage")); err != nil {
		t.Errorf("the old mdbox is gone after a failed verification: %v", err)
	}
	// What Dovecot's log says (doveadm dump): UID 8 expunged with its
	// GUID, UID 6 with none.
	dumped := e.srv.MustDoveadm(t, "dump", filepath.Join(newRoot, "dovecot.index.log"))
	zero, guid := regexp.MustCompile(`uid=6 \(guid 0{32}\)`), regexp.MustCompile(`uid=(\d+) \(guid (0*[1-9a-f][0-9a-f]*)\)`)
	var withGUID []string
	for _, m := range guid.FindAllStringSubmatch(dumped, -1) {
		withGUID = append(withGUID, m[1])
	}
	if !zero.MatchString(dumped) || !slices.Equal(withGUID, []string{"8"}) {
		t.Errorf("Dovecot's log: UIDs expunged with a GUID %v, want [8]; UID 6 with a zero GUID: %v\n%s",
			withGUID, zero.MatchString(dumped), grepLines(dumped, "expunge", "(guid"))
	}
	// A rerun refuses the same way and still keeps the old location.
	cmd = e.command("-u", "liz", "--remove-old", "maildir:~/Maildir")
	if out, _ := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != exitDataErr || !strings.Contains(string(out), "INBOX UID 6") {
		t.Errorf("rerun: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
	if _, err := os.Stat(filepath.Join(e.srv.UserHome("liz"), "mdbox", "storage")); err != nil {
		t.Errorf("the old mdbox is gone after a rerun: %v", err)
	}
	e.srv.CheckLogCleanExcept(t, "Killed with signal 15")
}

// grepLines keeps the lines of s containing one of subs (lower case).
func grepLines(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(strings.ToLower(l), sub) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
