package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/doveconf"
	"github.com/boxsync/boxsync/internal/userdb"
)

// mailUser is one user a command runs for.
type mailUser struct {
	name  string
	home  string    // "" = none
	mail  string    // the userdb's mail field: overrides mail_location; "" = none
	creds mailCreds // who the user's mail is accessed as
	// replica is the userdb's mail_replica field (-d).
	replica string
	source  string // which userdb answered, for -D; "" = no lookup
}

// userSelection is how a command line picks users (dsync.md §1.4).
type userSelection struct {
	user     string // -u: a name, or a mask with * and ?
	userFile string // -F
	all      bool   // -A
	workers  int    // --workers; < 1 = 1
}

// users resolves users against the configuration: the userdbs of cfg
// (internal/userdb; the system passwd without any), mail_uid/mail_gid and
// first_valid_uid.
type users struct {
	db  *userdb.DB
	cfg *doveconf.Config

	// Settings of the config, read once.
	mailUID, mailGID       string
	firstUID, lastUID      int
	firstGID, lastGID      int
	uidResolve, gidResolve func(string) (int, error)
	lookupMu               sync.Mutex // serialises userdb lookups (passwd-file rereads)
	creds                  *credSwitch
}

// newUsers reads the userdb chain and the uid settings of cfg.
func (a *app) newUsers(cfg *doveconf.Config) (*users, error) {
	sys := userdb.System{LookupUser: a.env.lookupUser, LookupGroup: a.env.lookupGroup}
	db, err := userdb.New(cfg, sys)
	if err != nil {
		return nil, &formats.Error{Kind: formats.KindConfig, Err: err}
	}
	u := &users{db: db, cfg: cfg, creds: a.creds,
		firstUID: 500, firstGID: 1} // Dovecot 2.3's defaults
	get := func(key string) (string, error) { return setting(cfg, key) }
	if u.mailUID, err = get("mail_uid"); err != nil {
		return nil, err
	}
	if u.mailGID, err = get("mail_gid"); err != nil {
		return nil, err
	}
	for _, s := range []struct {
		key string
		dst *int
	}{{"first_valid_uid", &u.firstUID}, {"last_valid_uid", &u.lastUID},
		{"first_valid_gid", &u.firstGID}, {"last_valid_gid", &u.lastGID}} {
		v, err := get(s.key)
		if err != nil {
			return nil, err
		}
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, formats.Errorf(formats.KindConfig, "%s=%q: want a number", s.key, v)
		}
		*s.dst = n
	}
	u.uidResolve = func(s string) (int, error) {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			return n, nil
		}
		pw, err := a.env.lookupUser(s)
		if errors.As(err, new(user.UnknownUserError)) {
			return -1, fmt.Errorf("Unknown mail_uid user: %s", s)
		}
		if err != nil {
			return -1, fmt.Errorf("mail_uid user %s: %w", s, err)
		}
		return strconv.Atoi(pw.Uid)
	}
	u.gidResolve = func(s string) (int, error) {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			return n, nil
		}
		g, err := a.env.lookupGroup(s)
		if errors.As(err, new(user.UnknownGroupError)) {
			return -1, fmt.Errorf("Unknown mail_gid group: %s", s)
		}
		if err != nil {
			return -1, fmt.Errorf("mail_gid group %s: %w", s, err)
		}
		return strconv.Atoi(g.Gid)
	}
	return u, nil
}

// credsFor decides who a user's mail is accessed as: the userdb's uid/gid,
// else mail_uid/mail_gid, checked against first_valid_uid..last_valid_uid
// with Dovecot's message (mail-storage-service.c service_drop_privileges;
// exit 75 as doveadm's failed user init).
func (us *users) credsFor(uid, gid int) (mailCreds, error) {
	c := self
	uidFrom, gidFrom := "userdb lookup", "userdb lookup"
	if uid < 0 && us.mailUID != "" {
		n, err := us.uidResolve(us.mailUID)
		if err != nil {
			return c, err
		}
		uid, uidFrom = n, "mail_uid setting"
	}
	if gid < 0 && us.mailGID != "" {
		n, err := us.gidResolve(us.mailGID)
		if err != nil {
			return c, err
		}
		gid, gidFrom = n, "mail_gid setting"
	}
	if uid >= 0 && (uid < us.firstUID || (us.lastUID != 0 && uid > us.lastUID)) {
		return c, fmt.Errorf("Mail access for users with UID %d not permitted (see first_valid_uid in config file, uid from %s).", uid, uidFrom)
	}
	if gid >= 0 && (gid < us.firstGID || (us.lastGID != 0 && gid > us.lastGID)) {
		return c, fmt.Errorf("Mail access for users with GID %d not permitted (see first_valid_gid in config file, gid from %s).", gid, gidFrom)
	}
	c.uid, c.gid = uid, gid
	return c, nil
}

// lookup finds a user in the userdbs (as ourselves: a passwd-file is
// often root's alone). An unknown user is a *noUserError.
func (us *users) lookup(name string) (mailUser, error) {
	var u userdb.User
	err := us.creds.do(self, func() error {
		us.lookupMu.Lock()
		defer us.lookupMu.Unlock()
		var err error
		u, err = us.db.Lookup(name)
		return err
	})
	switch {
	case errors.Is(err, userdb.ErrUnknownUser):
		return mailUser{}, &noUserError{user: name}
	case err != nil:
		return mailUser{}, &lookupError{err: err}
	}
	c, err := us.credsFor(u.UID, u.GID)
	if err != nil {
		return mailUser{}, err
	}
	return mailUser{name: u.Name, home: u.Home, mail: u.Mail, creds: c,
		replica: u.Fields["mail_replica"], source: u.Source}, nil
}

// list returns every user the userdbs can iterate (-A, -u mask).
func (us *users) list() ([]string, error) {
	var names []string
	err := us.creds.do(self, func() error {
		var err error
		names, err = us.db.Users()
		return err
	})
	return names, err
}

// forEachUser calls fn for each user of the command line, as doveadm
// selects them (dsync.md §1.4; doveadm-mail.c), up to sel.workers users
// at once. fn runs in the caller's credentials; run the user's mail work
// through a.asUser.
//
//   - -F FILE: one user per line. A user that doesn't exist is skipped
//     with an Info line and doesn't change the exit code; a failed lookup
//     stops the iteration with exit 75 ("Failed to iterate through some
//     users"); one user's failed run doesn't stop the others.
//   - -A, or -u with * or ?: every user the userdbs list (passwd-file,
//     the system passwd within first_valid_uid..last_valid_uid), filtered
//     by the mask; users are then handled as with -F. A mask matching no
//     one runs nothing and exits 0, as doveadm does.
//   - -u USER: a userdb lookup; an unknown user exits 67.
//   - none: $USER and $HOME with no lookup (doveadm's default), mail_uid
//     applying when set.
func (a *app) forEachUser(ctx context.Context, cfg *doveconf.Config, sel userSelection, fn func(mailUser)) {
	if u, ok, err := a.childJob(); ok {
		// A child run (child.go): the parent resolved the user.
		if err != nil {
			a.report("", err)
			return
		}
		fn(u)
		return
	}
	us, err := a.newUsers(cfg)
	if err != nil {
		a.report("", err)
		return
	}
	pool := newUserPool(ctx, sel.workers)
	defer pool.wait()
	switch {
	case sel.userFile != "":
		a.forEachUserInFile(ctx, us, sel.userFile, pool, fn)
	case sel.all || strings.ContainsAny(sel.user, "*?"):
		names, err := us.list()
		if err != nil {
			a.iterationFailed("", err)
			return
		}
		var matched []string
		for _, n := range names {
			if sel.all || wildcardMatch(n, sel.user) {
				matched = append(matched, n)
			}
		}
		a.log.debugf("", "%d of %d userdb users selected", len(matched), len(names))
		a.forEachName(ctx, us, slicesSeq(matched), pool, fn)
	case sel.user != "":
		u, err := us.lookup(sel.user)
		if err != nil {
			a.report(sel.user, err)
			return
		}
		a.log.debugf(u.name, "userdb: %s", u.source)
		fn(u)
	default:
		name := a.env.getenv("USER")
		if name == "" {
			a.report("", &usageError{msg: "USER environment is missing and -u option not used"})
			return
		}
		c, err := us.credsFor(-1, -1)
		if err != nil {
			a.report(name, err)
			return
		}
		fn(mailUser{name: name, home: a.env.getenv("HOME"), creds: c})
	}
}

// iterationFailed logs a failed user iteration (doveadm exits 75).
func (a *app) iterationFailed(user string, err error) {
	a.log.errorf(user, "%s", err)
	a.log.errorf("", "Failed to iterate through some users")
	a.status.set(exitTempFail)
}

// forEachName looks each name up, then hands the users to the pool. An
// unknown user is skipped, a user who may not be accessed (uid below
// first_valid_uid) fails alone, a failed lookup ends the iteration (the
// users found before it still run, as in doveadm).
//
// Lookups all come first: they run as ourselves (a passwd-file is often
// root's alone), and credentials are per process, so a lookup between
// two users' work would wait for every running user to finish. With
// several workers, users are grouped by credentials, so that users of one
// uid (the usual single vmail uid) run side by side.
func (a *app) forEachName(ctx context.Context, us *users, names func(yield func(string) bool) error, pool *userPool, fn func(mailUser)) {
	var list []mailUser
	seen := map[string]bool{}
	err := names(func(name string) bool {
		if ctx.Err() != nil {
			return false
		}
		if seen[name] {
			// Run once: two workers on one user would only wait
			// for each other's locks.
			a.log.debugf(name, "listed again, skipping")
			return true
		}
		seen[name] = true
		u, err := us.lookup(name)
		var (
			noUser *noUserError
			lookup *lookupError
		)
		switch {
		case errors.As(err, &noUser):
			a.log.infof(name, "User no longer exists, skipping")
			return true
		case errors.As(err, &lookup):
			a.iterationFailed(name, err)
			return false
		case err != nil:
			// QUIRK: doveadm -A logs a refused uid and exits 0
			// [observed, 2.3.19]; the user's failure counts here.
			a.report(name, err)
			return true
		}
		list = append(list, u)
		return true
	})
	if err != nil {
		a.iterationFailed("", err)
	}
	if cap(pool.sem) > 1 {
		slices.SortStableFunc(list, func(x, y mailUser) int {
			return cmp.Or(cmp.Compare(x.creds.uid, y.creds.uid), cmp.Compare(x.creds.gid, y.creds.gid))
		})
	}
	children := a.needChildren(cap(pool.sem), list)
	for _, u := range list {
		work := func() { fn(u) }
		if children {
			work = func() { a.runChild(ctx, u) }
		}
		if !pool.run(work) {
			return
		}
	}
}

// lookupError is a userdb that failed to answer: it ends an iteration
// (exit 75).
type lookupError struct{ err error }

func (e *lookupError) Error() string { return "User lookup failed: " + e.err.Error() }
func (e *lookupError) Unwrap() error { return e.err }

// userPool runs users' work, at most n at once (--workers); its owner
// waits for all of it.
type userPool struct {
	ctx context.Context
	sem chan struct{}
	wg  sync.WaitGroup
}

func newUserPool(ctx context.Context, n int) *userPool {
	return &userPool{ctx: ctx, sem: make(chan struct{}, max(n, 1))}
}

// run starts fn when a worker is free; false once ctx is done.
func (p *userPool) run(fn func()) bool {
	if p.ctx.Err() != nil {
		return false
	}
	select {
	case p.sem <- struct{}{}:
	case <-p.ctx.Done():
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.sem }()
		fn()
	}()
	return true
}

func (p *userPool) wait() { p.wg.Wait() }

func slicesSeq(names []string) func(yield func(string) bool) error {
	return func(yield func(string) bool) error {
		for _, n := range names {
			if !yield(n) {
				return nil
			}
		}
		return nil
	}
}

func (a *app) forEachUserInFile(ctx context.Context, us *users, path string, pool *userPool, fn func(mailUser)) {
	var r io.Reader = a.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			a.iterationFailed("", err)
			return
		}
		defer f.Close()
		r = f
	}
	a.forEachName(ctx, us, func(yield func(string) bool) error {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			// QUIRK: doveadm looks up an empty line as the user ""; we skip it.
			name := strings.TrimSuffix(sc.Text(), "\r")
			if name == "" {
				continue
			}
			if !yield(name) {
				return nil
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read(%s) failed: %w", path, err)
		}
		return nil
	}, pool, fn)
}

// wildcardMatch is Dovecot's wildcard_match: * matches any run of
// characters, ? any one character, case-sensitively.
func wildcardMatch(s, mask string) bool {
	for len(mask) > 0 {
		switch mask[0] {
		case '*':
			for len(mask) > 0 && mask[0] == '*' {
				mask = mask[1:]
			}
			if mask == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if wildcardMatch(s[i:], mask) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			s, mask = s[1:], mask[1:]
		default:
			if s == "" || s[0] != mask[0] {
				return false
			}
			s, mask = s[1:], mask[1:]
		}
	}
	return s == ""
}

// asUser runs fn with u's credentials (see credSwitch). Everything fn
// creates is the user's.
func (a *app) asUser(u mailUser, fn func() error) error {
	return a.creds.do(u.creds, fn)
}
