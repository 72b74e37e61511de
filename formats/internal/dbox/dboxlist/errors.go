package dboxlist

import (
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/fserr"
)

// KindOf classifies an error from the OS the way the drivers report it.
func KindOf(err error) formats.Kind { return fserr.KindOf(err) }

// Wrap makes err a *formats.Error with op "<driver>: <op>" and what is
// known, classifying OS errors (see fserr.Wrap). A nil err stays nil.
func Wrap(err error, driver, op, mailbox string, uid formats.UID, path string) error {
	return fserr.Wrap(err, driver, op, mailbox, uid, path)
}

// Fail makes a new error of kind k.
func Fail(k formats.Kind, driver, op, mailbox string, uid formats.UID, path string, err error) error {
	return fserr.Fail(k, driver, op, mailbox, uid, path, err)
}
