package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats/formatstest"
)

// userdbEnv is a testEnv with a dovecot.conf whose passwd-file userdb
// lists jane, joe, bob and ann (no uids: nothing to switch to). jane's
// userdb mail field points elsewhere than mail_location.
func userdbEnv(t *testing.T) (te *testEnv, root string) {
	t.Helper()
	te = newTestEnv(t)
	dir := t.TempDir()
	root = filepath.Join(dir, "mail")
	users := "jane:x::::" + filepath.Join(dir, "jane") + "::userdb_mail=mem:" + root + "/own/%u\n" +
		"joe:x::::" + filepath.Join(dir, "joe") + "::\n" +
		"bob:x::::" + filepath.Join(dir, "bob") + "::\n" +
		"ann:x::::" + filepath.Join(dir, "ann") + "::\n"
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := "mail_location = mem:" + root + "/%u\n" +
		"userdb {\n  driver = passwd-file\n  args = " + filepath.Join(dir, "users") + "\n}\n"
	te.configPath = filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(te.configPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	fill(t, "mem:"+root+"/own/jane", map[string]int{"INBOX": 2, "Own": 1})
	fill(t, "mem:"+root+"/jane", map[string]int{"INBOX": 5}) // not jane's: her userdb says own/jane
	fill(t, "mem:"+root+"/joe", map[string]int{"INBOX": 1})
	fill(t, "mem:"+root+"/bob", map[string]int{"INBOX": 3, "Sent": 1})
	// ann has no mail: her run fails (68), the others go on.
	return te, root
}

// backedUp returns the users whose backup under dst (a mem: prefix)
// exists.
func backedUp(t *testing.T, dst string) []string {
	var got []string
	for _, u := range []string{"jane", "joe", "bob", "ann"} {
		if dump(t, dst+"/"+u) != "" {
			got = append(got, u)
		}
	}
	sort.Strings(got)
	return got
}

func TestUserSelection(t *testing.T) {
	tests := []struct {
		name   string
		args   []string // before the destination
		code   int
		want   []string // users backed up
		stderr []string
	}{
		{"one user", []string{"-u", "bob"}, 0, []string{"bob"}, nil},
		{"mask *", []string{"-u", "j*"}, 0, []string{"jane", "joe"}, nil},
		{"mask ?", []string{"-u", "?o?"}, 0, []string{"bob", "joe"}, nil},
		{"mask is case-sensitive", []string{"-u", "J*"}, 0, nil, nil},
		{"mask matching no one", []string{"-u", "zz*"}, 0, nil, nil},
		{"all users, one failing", []string{"-A"}, 68, []string{"bob", "jane", "joe"}, []string{"boxsync(ann): Error: mem: open"}},
		{"all users in parallel", []string{"-A", "--workers", "3"}, 68, []string{"bob", "jane", "joe"}, []string{"boxsync(ann): Error: mem: open"}},
		{"a user listed twice runs once", []string{"-F", "-", "--workers", "2"}, 0, []string{"bob", "joe"}, []string{"boxsync(bob): Debug: listed again, skipping"}},
		{"unknown user", []string{"-u", "carl"}, 67, nil, []string{"boxsync(carl): Error: User doesn't exist"}},
		{"-A and -u", []string{"-A", "-u", "bob"}, 64, nil, []string{"-A can't be used with -u or -F"}},
		{"no workers", []string{"-A", "--workers", "0"}, 64, nil, []string{"--workers 0: want at least 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te, root := userdbEnv(t)
			te.stdin = "bob\njoe\nbob\n"
			dst := memPath(t, "backup")
			args := append(append([]string{"-D", "backup"}, tc.args...), dst+"/%u")
			te.run(t, args...).expect(t, args, tc.code, tc.stderr...)
			if got := backedUp(t, dst); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("backed up %q, want %q", got, tc.want)
			}
			for _, u := range tc.want {
				src := "mem:" + root + "/" + u
				if u == "jane" {
					src = "mem:" + root + "/own/jane" // userdb_mail
				}
				if diff := formatstest.Diff(dump(t, src), dump(t, dst+"/"+u)); diff != "" {
					t.Errorf("%s's backup differs from %s:\n%s", u, src, diff)
				}
			}
		})
	}
}

// -o mail_location wins over the userdb's mail field, --source over both.
func TestUserdbMailPrecedence(t *testing.T) {
	te, root := userdbEnv(t)
	dst := memPath(t, "backup")
	args := []string{"-o", "mail_location=mem:" + root + "/%u", "backup", "-u", "jane", dst}
	te.run(t, args...).expect(t, args, 0)
	if diff := formatstest.Diff(dump(t, "mem:"+root+"/jane"), dump(t, dst)); diff != "" {
		t.Errorf("-o mail_location did not win:\n%s", diff)
	}
	dst2 := memPath(t, "backup2")
	args = []string{"backup", "-u", "jane", "--source", "mem:" + root + "/bob", dst2}
	te.run(t, args...).expect(t, args, 0)
	if diff := formatstest.Diff(dump(t, "mem:"+root+"/bob"), dump(t, dst2)); diff != "" {
		t.Errorf("--source did not win:\n%s", diff)
	}
}

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		s, mask string
		want    bool
	}{
		{"jane", "jane", true},
		{"jane", "j*", true},
		{"jane", "*", true},
		{"", "*", true},
		{"", "?", false},
		{"jane", "j?ne", true},
		{"jane", "j?n", false},
		{"jane@example.com", "*@example.com", true},
		{"jane@example.org", "*@example.com", false},
		{"jane", "*a*e", true},
		{"jane", "*x*", false},
		{"a*b", "a[*]b", false}, // no character classes
		{"Jane", "j*", false},
	}
	for _, tc := range tests {
		if got := wildcardMatch(tc.s, tc.mask); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tc.s, tc.mask, got, tc.want)
		}
	}
}

// Users in parallel: every log line is whole and names its user; each
// user's summary is there; one user's failure (ann) leaves the others'
// backups complete, and the exit code is ann's.
func TestParallelLogLines(t *testing.T) {
	te, _ := userdbEnv(t)
	dst := memPath(t, "backup")
	args := []string{"-v", "backup", "-A", "--workers", "4", dst + "/%u"}
	r := te.run(t, args...)
	r.expect(t, args, 68, "boxsync(ann): Error: mem: open")
	line := regexp.MustCompile(`^boxsync(\([a-z]+\))?: (Debug|Info|Warning|Error|Fatal): \S`)
	for l := range strings.Lines(r.stderr) {
		if !line.MatchString(l) || !strings.HasSuffix(l, "\n") {
			t.Errorf("log line not whole or without its user: %q", l)
		}
	}
	for _, u := range []string{"jane", "joe", "bob"} {
		if !strings.Contains(r.stderr, "boxsync("+u+"): Info: mailboxes: ") {
			t.Errorf("no summary for %s:\n%s", u, r.stderr)
		}
	}
	if got := backedUp(t, dst); strings.Join(got, " ") != "bob jane joe" {
		t.Errorf("backed up %q", got)
	}
}
