package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/boxsync/boxsync/formats"
)

// Exit codes, doveadm's (sysexits.h and doveadm.h), plus 130 for an
// interrupted run (restic's convention; doveadm just stops).
const (
	exitOK          = 0
	exitDesync      = 2   // finished, but changes happened during the run: run again
	exitUsage       = 64  // EX_USAGE: bad command line, MAIL_ERROR_PARAMS
	exitDataErr     = 65  // DOVEADM_EX_NOTPOSSIBLE (EX_DATAERR)
	exitNoUser      = 67  // EX_NOUSER
	exitNotFound    = 68  // DOVEADM_EX_NOTFOUND (EX_NOHOST)
	exitCantCreat   = 73  // EX_CANTCREAT: over quota
	exitTempFail    = 75  // EX_TEMPFAIL: the default; overrides every other failure
	exitNoPerm      = 77  // EX_NOPERM
	exitConfig      = 78  // EX_CONFIG: bad location or configuration
	exitInterrupted = 130 // SIGINT/SIGTERM
)

// usageError is a malformed command line (exit 64). With usage set, the
// command's synopsis is printed after the message.
type usageError struct {
	msg   string
	usage string // "" = print no synopsis
}

func (e *usageError) Error() string { return e.msg }

// fatalError is an option value doveadm rejects with i_fatal() while
// parsing (`-g 1234`, `-l x`).
//
// QUIRK: doveadm exits 75 for these, not 64 [observed, dsync.md §1.7];
// scripts that retry on 75 will retry them, as they do with doveadm.
type fatalError struct{ msg string }

func (e *fatalError) Error() string { return e.msg }

func fatalf(format string, args ...any) error {
	return &fatalError{msg: fmt.Sprintf(format, args...)}
}

// noUserError is a user the userdb (here: the passwd database) doesn't
// know (exit 67).
type noUserError struct{ user string }

func (e *noUserError) Error() string { return "User doesn't exist" }

// notImplemented is a doveadm option or destination boxsync accepts on the
// command line but cannot honour yet: a Params error, so exit 64.
func notImplemented(what string) error {
	return formats.Errorf(formats.KindParams, "%s is not implemented yet", what)
}

// exitCode is THE map from an error to doveadm's exit code (style.md,
// "Errors and exit codes"; doveadm-mail.c doveadm_mail_failed_error).
// Errors of the storage layer are mapped by their formats.Kind; anything
// unclassified is a temporary failure, as in doveadm.
func exitCode(err error) int {
	var (
		usage  *usageError
		fatal  *fatalError
		noUser *noUserError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &usage):
		return exitUsage
	case errors.As(err, &fatal):
		return exitTempFail
	case errors.As(err, &noUser):
		return exitNoUser
	}
	switch formats.KindOf(err) {
	case formats.KindParams:
		return exitUsage
	case formats.KindNotPossible, formats.KindExists, formats.KindConversion,
		formats.KindInvalidData, formats.KindInUse, formats.KindLimit:
		return exitDataErr
	case formats.KindNotFound:
		return exitNotFound
	case formats.KindNoQuota:
		return exitCantCreat
	case formats.KindPerm:
		return exitNoPerm
	case formats.KindConfig:
		return exitConfig
	default: // KindTemp, KindUnavailable, KindExpunged, unknown kinds
		return exitTempFail
	}
}

// status accumulates the exit code of a whole run (several users, several
// errors each) as doveadm does: the first failure wins, except that 75
// overrides every other failure; a desync (2) is replaced by any failure.
// An interruption (130) overrides everything.
// It is safe for concurrent use (users run in parallel).
type status struct {
	mu   sync.Mutex
	code int // guarded by mu
}

func (s *status) fail(err error) { s.set(exitCode(err)) }

func (s *status) desync() { s.set(exitDesync) }

// get returns the exit code so far.
func (s *status) get() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code
}

func (s *status) set(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case code == exitOK || s.code == exitInterrupted:
	case code == exitInterrupted, code == exitTempFail:
		s.code = code
	case s.code == exitOK:
		s.code = code
	case s.code == exitDesync && code != exitDesync:
		s.code = code
	}
}
