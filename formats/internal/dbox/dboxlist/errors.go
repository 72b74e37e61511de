package dboxlist

import (
	"errors"

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

// WrapIndex is Wrap for the error of an index update: errors the update
// made itself (already a *formats.Error) are returned as they are.
func WrapIndex(err error, driver, op, mailbox, path string) error {
	var fe *formats.Error
	if errors.As(err, &fe) {
		return err
	}
	return Wrap(err, driver, op, mailbox, 0, path)
}
