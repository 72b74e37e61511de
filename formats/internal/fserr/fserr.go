// Package fserr turns errors from the OS into *formats.Error the way the
// file-based drivers (maildir, sdbox, mdbox) report them.
package fserr

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/boxsync/boxsync/formats"
)

// KindOf classifies an error from the OS.
func KindOf(err error) formats.Kind {
	var fe *formats.Error
	switch {
	case errors.As(err, &fe) && fe.Kind != 0:
		return fe.Kind
	case errors.Is(err, fs.ErrNotExist):
		return formats.KindNotFound
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return formats.KindPerm
	case errors.Is(err, fs.ErrExist):
		return formats.KindExists
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return formats.KindNoQuota
	case errors.Is(err, syscall.ENAMETOOLONG):
		return formats.KindNotPossible
	}
	// Lock timeouts, cancellation and the rest: doveadm's tempfail.
	return formats.KindTemp
}

// Wrap makes err a *formats.Error with op "<driver>: <op>" and what is
// known, classifying OS errors (fs.ErrNotExist → NotFound,
// fs.ErrPermission → Perm, ...). A top-level *fs.PathError gives its path
// to the Error, so that it is printed once. A nil err stays nil.
func Wrap(err error, driver, op, mailbox string, uid formats.UID, path string) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && pe == err && (path == "" || path == pe.Path) {
		path = pe.Path
		err = &opError{op: pe.Op, err: pe.Err}
	}
	return formats.Wrap(err, KindOf(err), driver+": "+op, mailbox, uid, path)
}

// Fail makes a new error of kind k with op "<driver>: <op>".
func Fail(k formats.Kind, driver, op, mailbox string, uid formats.UID, path string, err error) error {
	return &formats.Error{Kind: k, Op: driver + ": " + op, Mailbox: mailbox, UID: uid, Path: path, Err: err}
}

// opError is a syscall error without its path: "open: no such file or
// directory".
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }
