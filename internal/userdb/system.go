package userdb

// The system's users and groups, as getpwnam(3) and getgrnam(3) see them,
// without cgo. boxsync is built static (no libc mapped: less memory), so
// Go's os/user could only read /etc/passwd and /etc/group, and the users
// and groups NSS serves from elsewhere (LDAP, sssd, systemd) would be
// unknown, where Dovecot, which calls libc, sees them. So a name is looked
// up in the file first and, when the file doesn't have it, with getent(1)
// (libc-bin, part of every Debian system), whose output is parsed here;
// listing the passwd userdb's users (-A) adds what `getent passwd`
// enumerates to /etc/passwd's lines, as Dovecot's getpwent loop sees them.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
)

// sysEntry is one line of passwd(5) or group(5).
type sysEntry struct {
	name    string
	id, gid int    // passwd: uid, gid; group: gid, -1
	gecos   string // passwd only
	home    string // passwd only
}

// parseSysPasswd parses a passwd(5) line: name:password:uid:gid:gecos:home:shell.
// Comments, NIS compat lines (+, -) and lines with a bad uid or gid are
// not entries, as for glibc's files module.
func parseSysPasswd(line string) (sysEntry, bool) {
	f := strings.Split(strings.TrimSuffix(line, "\r"), ":")
	if len(f) < 7 || !validSysName(f[0]) {
		return sysEntry{}, false
	}
	uid, err1 := parseSysID(f[2])
	gid, err2 := parseSysID(f[3])
	if err1 != nil || err2 != nil {
		return sysEntry{}, false
	}
	gecos, _, _ := strings.Cut(f[4], ",")
	return sysEntry{name: f[0], id: uid, gid: gid, gecos: gecos, home: f[5]}, true
}

// parseSysGroup parses a group(5) line: name:password:gid:members.
func parseSysGroup(line string) (sysEntry, bool) {
	f := strings.Split(strings.TrimSuffix(line, "\r"), ":")
	if len(f) < 4 || !validSysName(f[0]) {
		return sysEntry{}, false
	}
	gid, err := parseSysID(f[2])
	if err != nil {
		return sysEntry{}, false
	}
	return sysEntry{name: f[0], id: gid, gid: -1}, true
}

func validSysName(s string) bool {
	return s != "" && !strings.ContainsAny(s[:1], "#+-") && strings.TrimSpace(s) == s
}

func parseSysID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return int(n), err
}

// sysDB is one NSS database: passwd or group.
type sysDB struct {
	name  string // "passwd", "group": getent's database
	path  string // its file
	parse func(string) (sysEntry, bool)
}

// find returns the entry of name: from the file, else from getent.
// found=false (err nil) when neither has it.
func (db sysDB) find(name string) (e sysEntry, found bool, err error) {
	err = db.scanFile(func(x sysEntry) bool {
		if x.name == name {
			e, found = x, true
			return false
		}
		return true
	})
	if err != nil || found {
		return e, found, err
	}
	out, err := getent(db.name, name)
	if err != nil || out == nil {
		return sysEntry{}, false, err
	}
	numeric := strings.Trim(name, "0123456789") == ""
	err = scanEntries(bytes.NewReader(out), db.parse, func(x sysEntry) bool {
		// getent takes a number as a uid or gid; we ask for names.
		if !numeric || x.name == name {
			e, found = x, true
		}
		return false
	})
	return e, found, err
}

// list calls fn for every entry of the file, then for each one getent
// enumerates that the file doesn't have.
func (db sysDB) list(fn func(sysEntry)) error {
	seen := map[string]bool{}
	err := db.scanFile(func(x sysEntry) bool {
		seen[x.name] = true
		fn(x)
		return true
	})
	if err != nil {
		return err
	}
	out, err := getent(db.name, "")
	if err != nil {
		return err
	}
	return scanEntries(bytes.NewReader(out), db.parse, func(x sysEntry) bool {
		if !seen[x.name] {
			seen[x.name] = true
			fn(x)
		}
		return true
	})
}

func (db sysDB) scanFile(fn func(sysEntry) bool) error {
	f, err := os.Open(db.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // glibc's files module: no file, no entries
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := scanEntries(f, db.parse, fn); err != nil {
		return fmt.Errorf("%s: %w", db.path, err)
	}
	return nil
}

// scanEntries calls fn for each entry of r until it returns false.
func scanEntries(r io.Reader, parse func(string) (sysEntry, bool), fn func(sysEntry) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20) // a group line lists its members
	for sc.Scan() {
		if e, ok := parse(sc.Text()); ok && !fn(e) {
			return nil
		}
	}
	return sc.Err()
}

// getentCommand is the program asked for NSS's other sources, found in
// PATH.
const getentCommand = "getent"

// getent runs `getent DB KEY` (`getent DB` to enumerate, key "") and
// returns its output; nil output and nil error when the key is not found
// (exit 2) or the database can't be enumerated (exit 3), as getent(1)
// documents its exit codes.
func getent(db, key string) ([]byte, error) {
	args := []string{db}
	what := "getent " + db
	if key != "" {
		args = append(args, "--", key)
		what += " " + key
	}
	cmd := exec.Command(getentCommand, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, exec.ErrNotFound):
		return nil, fmt.Errorf("%s: %w (getent, of libc-bin, asks NSS for the %s entries the file doesn't have: LDAP, sssd, ...)", what, err, db)
	case errors.As(err, &exit) && (exit.ExitCode() == 2 || key == "" && exit.ExitCode() == 3):
		return nil, nil
	case errors.As(err, &exit):
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = "no message"
		}
		return nil, fmt.Errorf("%s: %w: %s", what, err, msg)
	}
	return nil, fmt.Errorf("%s: %w", what, err)
}

// LookupUser finds a system user by name, as getpwnam does: /etc/passwd,
// then getent. An unknown user is a user.UnknownUserError.
func LookupUser(name string) (*user.User, error) {
	return System{}.withDefaults().LookupUser(name)
}

// LookupGroup finds a system group by name, as getgrnam does: /etc/group,
// then getent. An unknown group is a user.UnknownGroupError.
func LookupGroup(name string) (*user.Group, error) {
	return System{}.withDefaults().LookupGroup(name)
}

func (s System) passwdDB() sysDB { return sysDB{"passwd", s.PasswdPath, parseSysPasswd} }
func (s System) groupDB() sysDB  { return sysDB{"group", s.GroupPath, parseSysGroup} }

func (s System) lookupSysUser(name string) (*user.User, error) {
	e, found, err := s.passwdDB().find(name)
	if err != nil {
		return nil, fmt.Errorf("looking up user %s: %w", name, err)
	}
	if !found {
		return nil, user.UnknownUserError(name)
	}
	return &user.User{Username: e.name, Uid: strconv.Itoa(e.id), Gid: strconv.Itoa(e.gid), Name: e.gecos, HomeDir: e.home}, nil
}

func (s System) lookupSysGroup(name string) (*user.Group, error) {
	e, found, err := s.groupDB().find(name)
	if err != nil {
		return nil, fmt.Errorf("looking up group %s: %w", name, err)
	}
	if !found {
		return nil, user.UnknownGroupError(name)
	}
	return &user.Group{Name: e.name, Gid: strconv.Itoa(e.id)}, nil
}
