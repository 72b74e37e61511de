package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
)

// mailUser is one user a command runs for.
type mailUser struct {
	name string
	home string // "" = none
}

// lookupUser finds a user as Dovecot's passwd userdb does: the home
// directory from the passwd database.
func (a *app) lookupUser(name string) (mailUser, error) {
	u, err := a.env.lookupUser(name)
	var unknown user.UnknownUserError
	switch {
	case errors.As(err, &unknown):
		return mailUser{}, &noUserError{user: name}
	case err != nil:
		return mailUser{}, fmt.Errorf("User lookup failed: %w", err)
	}
	return mailUser{name: name, home: u.HomeDir}, nil
}

// forEachUser calls fn for each user of the command line, as doveadm
// selects them (dsync.md §1.4; doveadm-mail.c):
//
//   - -F FILE: one user per line. A user that doesn't exist is skipped
//     with an Info line and doesn't change the exit code; a failed lookup
//     stops the iteration with exit 75 ("Failed to iterate through some
//     users"); one user's failed run doesn't stop the others.
//   - -u USER: a passwd lookup; an unknown user exits 67.
//   - neither: $USER and $HOME, with no lookup (doveadm's default).
func (a *app) forEachUser(ctx context.Context, o *dsyncOpts, fn func(mailUser)) {
	switch {
	case o.userFile != "":
		a.forEachUserInFile(ctx, o.userFile, fn)
	case o.user != "":
		u, err := a.lookupUser(o.user)
		if err != nil {
			a.report(o.user, err)
			return
		}
		fn(u)
	default:
		name := a.env.getenv("USER")
		if name == "" {
			a.report("", &usageError{msg: "USER environment is missing and -u option not used"})
			return
		}
		fn(mailUser{name: name, home: a.env.getenv("HOME")})
	}
}

func (a *app) forEachUserInFile(ctx context.Context, path string, fn func(mailUser)) {
	iterFailed := func(user string, err error) {
		a.log.errorf(user, "%s", err)
		a.log.errorf("", "Failed to iterate through some users")
		a.status.set(exitTempFail)
	}
	var r io.Reader = a.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			iterFailed("", err)
			return
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// QUIRK: doveadm looks up an empty line as the user ""; we skip it.
		name := strings.TrimSuffix(sc.Text(), "\r")
		if name == "" {
			continue
		}
		u, err := a.lookupUser(name)
		var noUser *noUserError
		switch {
		case errors.As(err, &noUser):
			a.log.infof(name, "User no longer exists, skipping")
			continue
		case err != nil:
			iterFailed(name, err)
			return
		}
		fn(u)
		if ctx.Err() != nil {
			return
		}
	}
	if err := sc.Err(); err != nil {
		iterFailed("", fmt.Errorf("read(%s) failed: %w", path, err))
	}
}
