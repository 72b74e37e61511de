package maildir

import (
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/fserr"
)

// kindOf classifies an error from the OS.
func kindOf(err error) formats.Kind { return fserr.KindOf(err) }

// wrap makes err a *formats.Error with op "maildir: <op>" and what is
// known, classifying OS errors (os.ErrNotExist → NotFound, os.ErrPermission
// → Perm, ...). A nil err stays nil.
func wrap(err error, op, mailbox string, uid formats.UID, path string) error {
	return fserr.Wrap(err, "maildir", op, mailbox, uid, path)
}

// fail makes a new error of kind k.
func fail(k formats.Kind, op, mailbox string, uid formats.UID, path string, err error) error {
	return fserr.Fail(k, "maildir", op, mailbox, uid, path, err)
}
