package userdb

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fakeGetent puts a getent(1) on PATH (first, before the real one) that
// answers from dbs (database name → its lines, as the other NSS sources
// would give them) with getent's exit codes: 2 for an unknown key, 1 and a
// message for an unknown database, 3 when enumerating a database listed in
// noEnum. It returns the file that logs each call's arguments.
func fakeGetent(t *testing.T, dbs map[string]string, noEnum ...string) (log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "calls")
	for name, lines := range dbs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(lines), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range noEnum {
		os.WriteFile(filepath.Join(dir, name+".noenum"), nil, 0o644)
	}
	script := `#!/bin/sh
echo "$*" >>` + log + `
db=$1; shift
[ "$1" = "--" ] && shift
f=` + dir + `/$db
[ -f "$f" ] || { echo "Unknown database: $db" >&2; exit 1; }
if [ $# -eq 0 ]; then
	[ -f "$f.noenum" ] && exit 3
	cat "$f"; exit 0
fi
grep "^$1:" "$f" || exit 2
`
	if err := os.WriteFile(filepath.Join(dir, "getent"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(filepath.ListSeparator)+os.Getenv("PATH"))
	return log
}

func calls(t *testing.T, log string) []string {
	data, err := os.ReadFile(log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// sysFiles writes a passwd and a group file and returns a System reading
// them (and getent, for what they lack).
func sysFiles(t *testing.T) System {
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	group := filepath.Join(dir, "group")
	os.WriteFile(passwd, []byte("root:x:0:0:root:/root:/bin/bash\n"+
		"# a comment:x:1:1::/:\n"+
		"+nisuser::::::\n"+
		"badid:x:abc:1::/bad:/bin/sh\n"+
		"jane:x:1000:1000:Jane Doe,Room 1,,:/home/jane:/bin/bash\n"+
		"vmail:x:5000:5000::/var/vmail:/usr/sbin/nologin\r\n"), 0o644)
	os.WriteFile(group, []byte("root:x:0:\nvmail:x:5000:jane,bob\n"), 0o644)
	return System{PasswdPath: passwd, GroupPath: group}.withDefaults()
}

func TestSystemLookup(t *testing.T) {
	log := fakeGetent(t, map[string]string{
		"passwd": "ldapu:*:2000:2100:LDAP User:/home/ldapu:/bin/bash\n" +
			"jane:x:1:1::/wrong:/bin/sh\n" + // shadowed by the file, as files come first in nsswitch.conf
			"4242:x:4343:1::/num:/bin/sh\n",
		"group": "ldapg:*:2100:ldapu\n",
	})
	sys := sysFiles(t)
	for _, tc := range []struct {
		name, want string // "uid gid home gecos" or "unknown"
		getent     bool   // getent asked
	}{
		{"jane", "1000 1000 /home/jane Jane Doe", false},
		{"vmail", "5000 5000 /var/vmail ", false},
		{"ldapu", "2000 2100 /home/ldapu LDAP User", true},
		{"nobody-at-all", "unknown", true},
		{"badid", "unknown", true}, // a bad line is no entry
		{"4242", "4343 1 /num ", true},
	} {
		before := len(calls(t, log))
		u, err := sys.LookupUser(tc.name)
		got := "unknown"
		if err == nil {
			got = strings.Join([]string{u.Uid, u.Gid, u.HomeDir, u.Name}, " ")
		} else if !errors.As(err, new(user.UnknownUserError)) {
			t.Errorf("LookupUser(%s): %v", tc.name, err)
			continue
		}
		if got != tc.want {
			t.Errorf("LookupUser(%s) = %q, want %q", tc.name, got, tc.want)
		}
		if asked := len(calls(t, log)) > before; asked != tc.getent {
			t.Errorf("LookupUser(%s): getent asked = %v, want %v", tc.name, asked, tc.getent)
		}
	}
	if got := calls(t, log); !slices.Contains(got, "passwd -- ldapu") {
		t.Errorf("getent calls %q", got)
	}
	for name, want := range map[string]string{"vmail": "5000", "ldapg": "2100", "root": "0"} {
		g, err := sys.LookupGroup(name)
		if err != nil || g.Gid != want {
			t.Errorf("LookupGroup(%s) = %+v, %v; want gid %s", name, g, err, want)
		}
	}
	if _, err := sys.LookupGroup("nogroup-at-all"); !errors.As(err, new(user.UnknownGroupError)) {
		t.Errorf("LookupGroup(nogroup-at-all) = %v, want UnknownGroupError", err)
	}
}

// A getent that fails, or none at all, is an error that names getent and
// says why; it is never taken for an unknown user.
func TestSystemLookupGetentErrors(t *testing.T) {
	sys := sysFiles(t)
	fakeGetent(t, map[string]string{"passwd": ""}) // no group database: exit 1
	_, err := sys.LookupGroup("ldapg")
	if err == nil || errors.As(err, new(user.UnknownGroupError)) ||
		!strings.Contains(err.Error(), "getent group ldapg: exit status 1: Unknown database: group") {
		t.Errorf("LookupGroup with a failing getent: %v", err)
	}
	if _, err := sys.LookupUser("jane"); err != nil {
		t.Errorf("a user of the file needs no getent: %v", err)
	}

	t.Setenv("PATH", t.TempDir())
	_, err = sys.LookupUser("ldapu")
	if err == nil || errors.As(err, new(user.UnknownUserError)) ||
		!strings.Contains(err.Error(), `getent passwd ldapu: exec: "getent": executable file not found in $PATH`) ||
		!strings.Contains(err.Error(), "libc-bin") {
		t.Errorf("LookupUser without getent: %v", err)
	}
	db, _ := New(nil, sys)
	if _, err := db.Users(); err == nil || !strings.Contains(err.Error(), "getent passwd: exec") {
		t.Errorf("Users() without getent: %v", err)
	}
}

// The passwd userdb lists /etc/passwd's users and then those getent
// enumerates (LDAP, sssd), each once, within first_valid_uid and
// last_valid_uid, and looks a getent user up with getent's home and uid.
func TestPasswdUserdbWithGetent(t *testing.T) {
	fakeGetent(t, map[string]string{
		"passwd": "root:x:0:0:root:/root:/bin/bash\n" + // the files again, as getent passwd lists them
			"jane:x:1000:1000::/home/jane:/bin/bash\n" +
			"ldapu:*:2000:2100:LDAP User:/home/ldapu:/bin/bash\n" +
			"ldapsys:*:300:300::/:/bin/false\n" + // below first_valid_uid
			"ldaphigh:*:70000:70000::/:/bin/false\n", // above last_valid_uid
	})
	sys := sysFiles(t)
	db, err := New(nil, sys)
	if err != nil {
		t.Fatal(err)
	}
	db.lastUID = 60000
	names, err := db.Users()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, " "); got != "jane vmail ldapu" {
		t.Errorf("Users() = %q, want %q", got, "jane vmail ldapu")
	}
	u, err := db.Lookup("ldapu")
	if err != nil || u.UID != 2000 || u.GID != 2100 || u.Home != "/home/ldapu" || u.Source != "passwd" {
		t.Errorf("Lookup(ldapu) = %+v, %v", u, err)
	}

	// A source that can't be enumerated (exit 3, sssd's default) adds
	// no one and is no error.
	fakeGetent(t, map[string]string{"passwd": "ldapu:*:2000:2100::/home/ldapu:/bin/bash\n"}, "passwd")
	names, err = db.Users()
	if got := strings.Join(names, " "); err != nil || got != "jane vmail" {
		t.Errorf("Users() without enumeration = %q, %v", got, err)
	}
}

func TestParseSysLines(t *testing.T) {
	for _, tc := range []struct {
		line   string
		passwd string // "name uid gid gecos home" or "" = no entry
		group  string // "name gid" or ""
	}{
		// A group line's member list is the rest of the line (glibc's
		// files parser): any passwd line passes as a group line.
		{"jane:x:1000:100:Jane,1,2:/home/jane:/bin/sh", "jane 1000 100 Jane /home/jane", "jane 1000"},
		{"grp:x:100:a,b", "", "grp 100"},
		{"grp:x:100:", "", "grp 100"},
		{"a:x:4294967295:0::/:", "a 4294967295 0  /", "a 4294967295"},
		{"a:x:4294967296:0::/:", "", ""},
		{"a:x:-1:0::/:", "", ""},
		{"a:x:1:2::/h", "", "a 1"}, // six fields: no passwd line
		{"#c:x:1:2::/h:", "", ""},
		{"+:x:1:2::/h:", "", ""},
		{"-x:x:1:2::/h:", "", ""},
		{" a:x:1:2::/h:", "", ""},
		{"", "", ""},
	} {
		got := ""
		if e, ok := parseSysPasswd(tc.line); ok {
			got = strings.Join([]string{e.name, strconv.Itoa(e.id), strconv.Itoa(e.gid), e.gecos, e.home}, " ")
		}
		if got != tc.passwd {
			t.Errorf("parseSysPasswd(%q) = %q, want %q", tc.line, got, tc.passwd)
		}
		got = ""
		if e, ok := parseSysGroup(tc.line); ok {
			got = e.name + " " + strconv.Itoa(e.id)
		}
		if got != tc.group {
			t.Errorf("parseSysGroup(%q) = %q, want %q", tc.line, got, tc.group)
		}
	}
}

// FuzzParseSysLine: whatever a line holds, an entry's fields are the
// line's own fields, unchanged.
func FuzzParseSysLine(f *testing.F) {
	f.Add("jane:x:1000:100:Jane,1,2:/home/jane:/bin/sh")
	f.Add("grp:x:100:a,b")
	f.Add("a:x:4294967296:0::/:\r")
	f.Fuzz(func(t *testing.T, line string) {
		if strings.Contains(line, "\n") {
			return // lines come from a bufio.Scanner
		}
		fields := strings.Split(strings.TrimSuffix(line, "\r"), ":")
		if e, ok := parseSysPasswd(line); ok {
			gecos, _, _ := strings.Cut(fields[4], ",")
			if e.name != fields[0] || strconv.Itoa(e.id) != strings.TrimLeft(fields[2], "0")+zeroIf(fields[2]) ||
				e.gecos != gecos || e.home != fields[5] || e.id < 0 || e.gid < 0 || e.id > 1<<32-1 {
				t.Fatalf("parseSysPasswd(%q) = %+v", line, e)
			}
		}
		if e, ok := parseSysGroup(line); ok {
			if e.id < 0 || e.id > 1<<32-1 || e.name != fields[0] {
				t.Fatalf("parseSysGroup(%q) = %+v", line, e)
			}
		}
	})
}

// zeroIf is "0" for a number written as zeros only, whose leading zeros
// trimmed leave nothing.
func zeroIf(s string) string {
	if strings.Trim(s, "0") == "" {
		return "0"
	}
	return ""
}
