package maildir

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/boxsync/boxsync/formats"
)

// kindOf classifies an error from the OS.
func kindOf(err error) formats.Kind {
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

// wrap makes err a *formats.Error with op "maildir: <op>" and what is
// known, classifying OS errors (os.ErrNotExist → NotFound, os.ErrPermission
// → Perm, ...). A nil err stays nil.
func wrap(err error, op, mailbox string, uid formats.UID, path string) error {
	if err == nil {
		return nil
	}
	// Move a top-level *fs.PathError's path into the Error, so that it
	// is printed once.
	var pe *fs.PathError
	if errors.As(err, &pe) && pe == err {
		if path == "" || path == pe.Path {
			path = pe.Path
			err = &opError{op: pe.Op, err: pe.Err}
		}
	}
	return formats.Wrap(err, kindOf(err), "maildir: "+op, mailbox, uid, path)
}

// fail makes a new error of kind k.
func fail(k formats.Kind, op, mailbox string, uid formats.UID, path string, err error) error {
	return &formats.Error{Kind: k, Op: "maildir: " + op, Mailbox: mailbox, UID: uid, Path: path, Err: err}
}

// opError is a syscall error without its path: "open: no such file or
// directory".
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }
