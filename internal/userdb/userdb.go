// Package userdb finds mail users as Dovecot 2.3's userdbs do, straight
// from dovecot.conf, with no running auth service (doveadm needs one):
// the userdb { } sections in order (passwd-file, static, passwd), their
// default_fields and override_fields, %-variables in fields, the global
// mail_home, and the iteration doveadm -A does.
//
// System users and groups (the passwd userdb, uid and gid fields by name)
// come from /etc/passwd and /etc/group and, for what NSS serves from
// elsewhere (LDAP, sssd), from getent(1): boxsync is built without cgo,
// so without libc's NSS (system.go).
//
// It also rewrites one user's extra field in a passwd-file (SetPasswdField),
// which is how `boxsync convert` switches a user's mail location, and puts
// the line back as it was (PasswdLine, RestorePasswdLine) for a rollback.
package userdb

import (
	"errors"
	"fmt"
	"os/user"
	"strings"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/doveconf"
)

// User is what a userdb lookup returns, %-variables expanded.
type User struct {
	Name     string
	UID, GID int    // -1 = not given (mail_uid/mail_gid apply)
	Home     string // "" = none
	// Mail is the user's own mail location (the userdb field mail);
	// "" = the global mail_location.
	Mail string
	// Fields are every userdb field (uid, gid, home, mail and extras).
	Fields map[string]string
	// Source says which userdb answered: "passwd-file /etc/dovecot/users:3".
	Source string
}

// ErrUnknownUser is what Lookup wraps when no userdb knows the user.
var ErrUnknownUser = errors.New("unknown user")

// UnknownUserError names the user no userdb knows.
type UnknownUserError struct{ Name string }

func (e *UnknownUserError) Error() string        { return fmt.Sprintf("unknown user %s", e.Name) }
func (e *UnknownUserError) Is(target error) bool { return target == ErrUnknownUser }

// System is the operating system's user database; zero fields mean the
// real one (system.go: the files, then getent).
type System struct {
	LookupUser  func(name string) (*user.User, error)
	LookupGroup func(name string) (*user.Group, error)
	// PasswdPath and GroupPath are the files read before asking getent
	// (/etc/passwd, /etc/group); PasswdPath is also the first part of
	// the passwd userdb's iteration.
	PasswdPath, GroupPath string
}

func (s System) withDefaults() System {
	if s.PasswdPath == "" {
		s.PasswdPath = "/etc/passwd"
	}
	if s.GroupPath == "" {
		s.GroupPath = "/etc/group"
	}
	if s.LookupUser == nil {
		s.LookupUser = s.lookupSysUser
	}
	if s.LookupGroup == nil {
		s.LookupGroup = s.lookupSysGroup
	}
	return s
}

func (s System) uid(name string) (string, error) {
	u, err := s.LookupUser(name)
	if err != nil {
		return "", err
	}
	return u.Uid, nil
}

func (s System) gid(name string) (string, error) {
	g, err := s.LookupGroup(name)
	if err != nil {
		return "", err
	}
	return g.Gid, nil
}

// DB is the configured chain of userdbs.
type DB struct {
	dbs      []*backend
	mailHome string // the global mail_home, unexpanded
	sys      System
	firstUID int // first_valid_uid, for iterating the system passwd
	lastUID  int
}

// backend is one userdb { } section.
type backend struct {
	driver, args   string
	where          string // file:line of the section, for messages
	defaultFields  []string
	overrideFields []string

	// lookup returns the fields the driver itself gives (unexpanded
	// for static, expanded for passwd-file), ok=false if unknown.
	lookup  func(name string) (fields map[string]string, source string, ok bool, err error)
	iterate func() ([]string, error) // nil = can't iterate
}

// New reads the userdbs of cfg. With no userdb section (or no config) the
// system passwd database is used, as doveadm's default does for local users.
func New(cfg *doveconf.Config, sys System) (*DB, error) {
	sys = sys.withDefaults()
	db := &DB{sys: sys, firstUID: 500}
	if cfg != nil {
		db.mailHome, _ = cfg.Get("mail_home")
		if v, ok := cfg.Get("first_valid_uid"); ok {
			fmt.Sscan(v, &db.firstUID)
		}
		if v, ok := cfg.Get("last_valid_uid"); ok {
			fmt.Sscan(v, &db.lastUID)
		}
	}
	var sections []*doveconf.Section
	if cfg != nil && cfg.Root != nil {
		sections = cfg.Root.SectionsOf("userdb")
	}
	for _, sec := range sections {
		b := &backend{where: fmt.Sprintf("%s:%d", sec.File, sec.Line)}
		b.driver, _ = sec.Get("driver")
		b.args, _ = sec.Get("args")
		if v, ok := sec.Get("default_fields"); ok {
			b.defaultFields = strings.Fields(v)
		}
		if v, ok := sec.Get("override_fields"); ok {
			b.overrideFields = strings.Fields(v)
		}
		if err := db.init(b); err != nil {
			return nil, fmt.Errorf("userdb at %s: %w", b.where, err)
		}
		db.dbs = append(db.dbs, b)
	}
	if len(db.dbs) == 0 {
		b := &backend{driver: "passwd", where: "default"}
		if err := db.init(b); err != nil {
			return nil, err
		}
		db.dbs = append(db.dbs, b)
	}
	return db, nil
}

func (db *DB) init(b *backend) error {
	switch b.driver {
	case "passwd-file":
		return db.initPasswdFile(b)
	case "static":
		return db.initStatic(b)
	case "passwd":
		db.initPasswd(b)
		return nil
	case "":
		return errors.New("driver is not set")
	}
	return fmt.Errorf("driver %s is not supported (passwd-file, static and passwd are; give users with -F and locations with --source)", b.driver)
}

// initPasswdFile: args = [username_format=FORMAT] PATH (userdb-passwd-file.c).
func (db *DB) initPasswdFile(b *backend) error {
	args := b.args
	format := "%u"
	if rest, ok := strings.CutPrefix(args, "username_format="); ok {
		format, args, _ = strings.Cut(rest, " ")
	}
	path := strings.TrimSpace(args)
	if path == "" {
		return errors.New("passwd-file: missing args")
	}
	b.lookup = func(name string) (map[string]string, string, bool, error) {
		key, err := formats.ExpandVars(format, formats.Vars{User: name})
		if err != nil {
			return nil, "", false, err
		}
		file, err := formats.ExpandVars(path, formats.Vars{User: name})
		if err != nil {
			return nil, "", false, err
		}
		entries, err := ReadPasswdFile(file)
		if err != nil {
			return nil, "", false, fmt.Errorf("passwd-file %s: %w", file, err)
		}
		for _, e := range entries {
			if e.User != key {
				continue
			}
			if !e.userdbOnly {
				// A passdb-only line: "User %s is missing userdb
				// info", an unknown user for the userdb.
				return nil, "", false, nil
			}
			src := fmt.Sprintf("passwd-file %s:%d", file, e.Line)
			fields := map[string]string{}
			uid, err := parseID(e.UID, db.sys.uid)
			if err != nil {
				return nil, "", false, fmt.Errorf("%s: uid %q: %w", src, e.UID, err)
			}
			gid, err := parseID(e.GID, db.sys.gid)
			if err != nil {
				return nil, "", false, fmt.Errorf("%s: gid %q: %w", src, e.GID, err)
			}
			if uid == 0 {
				// userdb-passwd-file.c: uid 0 is "user unknown".
				return nil, "", false, nil
			}
			if uid >= 0 {
				fields["uid"] = fmt.Sprint(uid)
			}
			if gid >= 0 {
				fields["gid"] = fmt.Sprint(gid)
			}
			if e.Home != "" {
				fields["home"] = e.Home
			}
			// Extra fields are expanded without the home: Dovecot
			// 2.3.19 expands %h there to "" [observed with doveadm
			// user, TestDoveadmUserAgrees].
			v := formats.Vars{User: name, EmptyHome: true}
			for k, val := range e.UserdbFields() {
				x, err := formats.ExpandVars(val, v)
				if err != nil {
					return nil, "", false, fmt.Errorf("%s: userdb_%s: %w", src, k, err)
				}
				fields[k] = x
			}
			return fields, src, true, nil
		}
		return nil, "", false, nil
	}
	if !strings.Contains(path, "%") {
		b.iterate = func() ([]string, error) {
			entries, err := ReadPasswdFile(path)
			if err != nil {
				return nil, fmt.Errorf("passwd-file %s: %w", path, err)
			}
			// Passdb-only lines are listed too when the file is
			// also a passdb, as Dovecot's iteration does [observed:
			// doveadm user '*'].
			var names []string
			for _, e := range entries {
				names = append(names, e.User)
			}
			return names, nil
		}
	}
	return nil
}

// initStatic: args = KEY=VALUE ... (userdb-static.c); every user exists
// (boxsync has no passdb to ask, so allow_all_users is implied).
func (db *DB) initStatic(b *backend) error {
	var fields []string
	for _, f := range strings.Fields(b.args) {
		if strings.HasPrefix(f, "allow_all_users=") {
			continue
		}
		fields = append(fields, f)
	}
	b.lookup = func(name string) (map[string]string, string, bool, error) {
		m := map[string]string{}
		for _, f := range fields {
			k, v, _ := strings.Cut(f, "=")
			m[k] = v
		}
		return m, "static userdb at " + b.where, true, nil
	}
	return nil
}

// initPasswd: the system's getpwnam, iterated as getpwent does (the
// lines of /etc/passwd, then what getent enumerates) within
// first_valid_uid..last_valid_uid (userdb-passwd.c).
func (db *DB) initPasswd(b *backend) {
	b.lookup = func(name string) (map[string]string, string, bool, error) {
		u, err := db.sys.LookupUser(name)
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, "", false, nil
		}
		if err != nil {
			return nil, "", false, fmt.Errorf("passwd lookup of %s: %w", name, err)
		}
		return map[string]string{"uid": u.Uid, "gid": u.Gid, "home": u.HomeDir}, "passwd", true, nil
	}
	b.iterate = func() ([]string, error) {
		var names []string
		err := db.sys.passwdDB().list(func(e sysEntry) {
			if e.id >= db.firstUID && (db.lastUID == 0 || e.id <= db.lastUID) {
				names = append(names, e.name)
			}
		})
		return names, err
	}
}

// Lookup asks the userdbs in order; the first that knows the user
// answers. The error wraps ErrUnknownUser when none does.
func (db *DB) Lookup(name string) (User, error) {
	for _, b := range db.dbs {
		fields, src, ok, err := b.lookup(name)
		if err != nil {
			return User{}, err
		}
		if !ok {
			continue
		}
		return db.finish(b, name, fields, src)
	}
	return User{}, &UnknownUserError{Name: name}
}

// finish applies default_fields and override_fields, expands static
// values, and fills the typed fields.
func (db *DB) finish(b *backend, name string, fields map[string]string, src string) (User, error) {
	all := map[string]string{}
	expand := func(list []string, what string) error {
		// home first, so that %h in the others sees it.
		for pass := 0; pass < 2; pass++ {
			for _, f := range list {
				k, v, _ := strings.Cut(f, "=")
				if (k == "home") != (pass == 0) {
					continue
				}
				x, err := formats.ExpandVars(v, formats.Vars{User: name, Home: all["home"]})
				if err != nil {
					return fmt.Errorf("userdb at %s: %s %s: %w", b.where, what, k, err)
				}
				all[k] = x
			}
		}
		return nil
	}
	if err := expand(b.defaultFields, "default_fields"); err != nil {
		return User{}, err
	}
	if b.driver == "static" {
		var list []string
		for k, v := range fields {
			list = append(list, k+"="+v)
		}
		if err := expand(list, "args"); err != nil {
			return User{}, err
		}
	} else {
		for k, v := range fields {
			all[k] = v
		}
	}
	if err := expand(b.overrideFields, "override_fields"); err != nil {
		return User{}, err
	}
	if all["home"] == "" && db.mailHome != "" {
		h, err := formats.ExpandVars(db.mailHome, formats.Vars{User: name})
		if err != nil {
			return User{}, fmt.Errorf("mail_home: %w", err)
		}
		all["home"] = h
	}
	u := User{Name: name, UID: -1, GID: -1, Home: all["home"], Mail: all["mail"], Fields: all, Source: src}
	if name := all["user"]; name != "" {
		u.Name = name
	}
	var err error
	if u.UID, err = parseID(all["uid"], db.sys.uid); err != nil {
		return User{}, fmt.Errorf("%s: uid %q: %w", src, all["uid"], err)
	}
	if u.GID, err = parseID(all["gid"], db.sys.gid); err != nil {
		return User{}, fmt.Errorf("%s: gid %q: %w", src, all["gid"], err)
	}
	return u, nil
}

// Users lists every user the iterable userdbs know, in userdb order,
// each once (doveadm -A). Userdbs that can't be iterated (static, a
// passwd-file path with %-variables) are skipped, as Dovecot does; if
// none can, that is an error.
func (db *DB) Users() ([]string, error) {
	var names []string
	seen := map[string]bool{}
	iterable := false
	for _, b := range db.dbs {
		if b.iterate == nil {
			continue
		}
		iterable = true
		list, err := b.iterate()
		if err != nil {
			return names, err
		}
		for _, n := range list {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	if !iterable {
		return nil, errors.New("no userdb can list its users (static and passwd-file paths with %variables can't): use -F FILE")
	}
	return names, nil
}

// PasswdFile returns the path of the first passwd-file userdb that knows
// user, "" if the user doesn't come from a passwd-file (then the switch
// needs a hook).
func (db *DB) PasswdFile(name string) (string, error) {
	for _, b := range db.dbs {
		_, src, ok, err := b.lookup(name)
		if err != nil {
			return "", err
		}
		if !ok {
			continue
		}
		if rest, found := strings.CutPrefix(src, "passwd-file "); found {
			return rest[:strings.LastIndexByte(rest, ':')], nil
		}
		return "", nil
	}
	return "", &UnknownUserError{Name: name}
}
