package log

import (
	"errors"
	"fmt"

	"github.com/boxsync/boxsync/formats"
)

// ErrCorrupt matches every *CorruptError with errors.Is.
var ErrCorrupt = errors.New("index: corrupted")

// CorruptError reports a file that Dovecot itself would call corrupted
// (dovecot.index, dovecot.index.log[.2], a map index): it names the file and
// the byte offset where reading stopped. Its Kind is formats.KindTemp, as in
// Dovecot: the storage rebuilds the index and the operation can be retried,
// which is what `doveadm force-resync` does for an administrator.
type CorruptError struct {
	File   string
	Offset int64 // -1 when the problem is not at one place (e.g. indexid mismatch)
	Reason string
}

func (e *CorruptError) Error() string {
	where := e.File
	if e.Offset >= 0 {
		where = fmt.Sprintf("%s at offset %d (0x%x)", e.File, e.Offset, e.Offset)
	}
	return fmt.Sprintf("corrupted index file %s: %s (run `doveadm force-resync` on the mailbox to rebuild it)", where, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap exposes the classification: a *formats.Error of KindTemp, so
// formats.KindOf and doveadm-style exit codes (75) work without knowing
// this type.
func (e *CorruptError) Unwrap() error {
	return &formats.Error{Kind: formats.KindTemp, Op: "index", Path: e.File, Err: errors.New(e.Reason)}
}

func corruptf(file string, off int64, format string, args ...any) *CorruptError {
	return &CorruptError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...)}
}
