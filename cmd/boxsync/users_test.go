package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/doveconf"
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

func TestCredsFor(t *testing.T) {
	te := newTestEnv(t)
	a := &app{env: te.env, log: &logger{w: io.Discard}, creds: processCreds}
	tests := []struct {
		conf     string
		uid, gid int // the userdb's; -1 = none
		want     mailCreds
		err      string
	}{
		{"", -1, -1, self, ""},
		{"", 1000, 1000, mailCreds{1000, 1000}, ""},
		{"mail_uid = 5000\nmail_gid = 5001\n", -1, -1, mailCreds{5000, 5001}, ""},
		{"mail_uid = 5000\nmail_gid = 5001\n", 1000, -1, mailCreds{1000, 5001}, ""},
		{"mail_uid = 5000\nmail_gid = root\n", -1, -1, mailCreds{5000, 0}, "GID 0 not permitted (see first_valid_gid in config file, gid from mail_gid setting)"},
		{"", 499, 499, self, "Mail access for users with UID 499 not permitted (see first_valid_uid in config file, uid from userdb lookup)."},
		{"first_valid_uid = 100\nlast_valid_uid = 200\n", 201, 201, self, "UID 201 not permitted"},
		{"first_valid_uid = 100\nlast_valid_uid = 200\n", 150, 150, mailCreds{150, 150}, ""},
		{"mail_uid = nosuchuser\n", -1, -1, self, "Unknown mail_uid user: nosuchuser"},
		{"mail_gid = nosuchgroup\n", -1, -1, self, "Unknown mail_gid group: nosuchgroup"},
		{"first_valid_uid = x\n", -1, -1, self, "first_valid_uid=\"x\": want a number"},
	}
	for _, tc := range tests {
		path := filepath.Join(t.TempDir(), "dovecot.conf")
		if err := os.WriteFile(path, []byte(tc.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := doveconf.ParseFile(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		us, err := a.newUsers(cfg)
		var got mailCreds
		if err == nil {
			got, err = us.credsFor(tc.uid, tc.gid)
		}
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q uid %d gid %d: error %v, want %q", tc.conf, tc.uid, tc.gid, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%q uid %d gid %d = %v, %v; want %v", tc.conf, tc.uid, tc.gid, got, err, tc.want)
		}
	}
}
