package formats

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies an error the way Dovecot's enum mail_error does
// (dovecot 2.3.19 mail-error.h), so exit codes can be doveadm's.
type Kind int

const (
	KindTemp        Kind = iota + 1 // MAIL_ERROR_TEMP: I/O, locks, corruption
	KindUnavailable                 // MAIL_ERROR_UNAVAILABLE
	KindNotPossible                 // MAIL_ERROR_NOTPOSSIBLE
	KindParams                      // MAIL_ERROR_PARAMS: bad arguments
	KindPerm                        // MAIL_ERROR_PERM
	KindNoQuota                     // MAIL_ERROR_NOQUOTA
	KindNotFound                    // MAIL_ERROR_NOTFOUND
	KindExists                      // MAIL_ERROR_EXISTS
	KindExpunged                    // MAIL_ERROR_EXPUNGED
	KindInUse                       // MAIL_ERROR_INUSE
	KindConversion                  // MAIL_ERROR_CONVERSION
	KindInvalidData                 // MAIL_ERROR_INVALIDDATA: corrupt or unparsable input
	KindLimit                       // MAIL_ERROR_LIMIT
	KindConfig                      // not in Dovecot: bad location or config (doveadm exits 78)
)

var kindNames = map[Kind]string{
	KindTemp: "temporary failure", KindUnavailable: "unavailable",
	KindNotPossible: "not possible", KindParams: "invalid parameters",
	KindPerm: "permission denied", KindNoQuota: "over quota",
	KindNotFound: "not found", KindExists: "already exists",
	KindExpunged: "expunged", KindInUse: "in use",
	KindConversion: "conversion failed", KindInvalidData: "invalid data",
	KindLimit: "limit exceeded", KindConfig: "configuration error",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is the error type every driver returns. Fields that are unknown
// stay empty; Error() prints only what is set, so a message names the file,
// mailbox and UID wherever they are known.
type Error struct {
	Kind    Kind
	Op      string // "maildir: save", "backup"
	Mailbox string
	UID     UID
	Path    string
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
	}
	add := func(s string) {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(s)
	}
	if e.Mailbox != "" {
		add(fmt.Sprintf("mailbox %q", e.Mailbox))
		if e.UID != 0 {
			fmt.Fprintf(&b, " uid %d", e.UID)
		}
	} else if e.UID != 0 {
		add(fmt.Sprintf("uid %d", e.UID))
	}
	if e.Path != "" {
		add(e.Path)
	}
	if e.Err != nil {
		add(e.Err.Error())
	} else {
		add(e.Kind.String())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is(err, ErrNotFound) match any *Error of that Kind.
func (e *Error) Is(target error) bool {
	var k kindSentinel
	if errors.As(target, &k) {
		return e.Kind == Kind(k)
	}
	return false
}

type kindSentinel Kind

func (k kindSentinel) Error() string { return Kind(k).String() }

// Sentinels for errors.Is.
var (
	ErrNotFound    error = kindSentinel(KindNotFound)
	ErrExists      error = kindSentinel(KindExists)
	ErrInvalidData error = kindSentinel(KindInvalidData)
	ErrPerm        error = kindSentinel(KindPerm)
	ErrParams      error = kindSentinel(KindParams)
	ErrConfig      error = kindSentinel(KindConfig)
	ErrNotPossible error = kindSentinel(KindNotPossible)
	ErrInUse       error = kindSentinel(KindInUse)
)

// Errorf makes an *Error of kind k with a formatted cause.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Err: fmt.Errorf(format, args...)}
}

// KindOf returns the Kind of the first *Error in err's chain, or KindTemp
// for anything unclassified (doveadm treats unknown failures as tempfail).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) && e.Kind != 0 {
		return e.Kind
	}
	var k kindSentinel
	if errors.As(err, &k) {
		return Kind(k)
	}
	return KindTemp
}

// Wrap annotates err with op, mailbox, uid and path, keeping the innermost
// Kind. Fields already set deeper in the chain are not repeated. A nil err
// stays nil.
func Wrap(err error, k Kind, op, mailbox string, uid UID, path string) error {
	if err == nil {
		return nil
	}
	var inner *Error
	if errors.As(err, &inner) {
		// Keep the deeper classification and context; add only what
		// is missing.
		if inner.Kind != 0 {
			k = inner.Kind
		}
		if inner.Mailbox != "" {
			mailbox = ""
		}
		if inner.UID != 0 {
			uid = 0
		}
		if inner.Path != "" {
			path = ""
		}
	}
	if mailbox == "" && uid == 0 && path == "" && inner != nil && op == "" {
		return err
	}
	return &Error{Kind: k, Op: op, Mailbox: mailbox, UID: uid, Path: path, Err: err}
}
