package dbox

import (
	"errors"
	"fmt"

	"github.com/boxsync/boxsync/formats"
)

// ErrCorrupt matches every *CorruptError with errors.Is.
var ErrCorrupt = errors.New("dbox: corrupted")

// CorruptError reports a dbox file that Dovecot itself would call corrupted
// ("Corrupted dbox file %s (around offset=%d): %s", dovecot 2.3.19.1
// dbox-file.c dbox_file_set_corrupted): it names the file and the byte
// offset where reading stopped. Its Kind is formats.KindTemp, as in Dovecot,
// which marks the mailbox for a rebuild and fails the operation; an
// administrator runs `doveadm force-resync` (or `boxsync force-resync`).
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupted dbox file %s at offset %d: %s (run `boxsync force-resync` or `doveadm force-resync` on the mailbox)",
		e.File, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap exposes the classification: a *formats.Error of KindTemp, so that
// formats.KindOf and the exit codes work without knowing this type.
func (e *CorruptError) Unwrap() error {
	return &formats.Error{Kind: formats.KindTemp, Op: "dbox", Path: e.File, Err: errors.New(e.Reason)}
}

func corruptf(file string, off int64, format string, args ...any) *CorruptError {
	return &CorruptError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// ErrExternalAttachments is returned (wrapped in a *formats.Error of
// KindNotPossible) for a message whose metadata has an 'X' line: its
// attachments live outside the dbox file (Dovecot's single-instance
// attachment storage, mail_attachment_dir), so the file alone does not hold
// the message and boxsync cannot read it.
var ErrExternalAttachments = errors.New("message stores attachments outside the dbox file ('X' metadata, mail_attachment_dir); boxsync cannot read it")
