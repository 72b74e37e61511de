package formats

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Separator is the hierarchy separator of mailbox names in the contract.
const Separator = '/'

// ValidateName checks a contract mailbox name: valid UTF-8, no empty
// level, no "." or ".." level (which would escape the store's root on
// disk), no control characters. Drivers check their own extra limits
// (Maildir++ cannot store '.' in a name).
func ValidateName(name string) error {
	bad := func(why string) error {
		return &Error{Kind: KindParams, Mailbox: name, Err: fmt.Errorf("invalid mailbox name: %s", why)}
	}
	if name == "" {
		return bad("empty")
	}
	if !utf8.ValidString(name) {
		return bad("not UTF-8")
	}
	for _, level := range strings.Split(name, string(Separator)) {
		switch level {
		case "":
			return bad("empty hierarchy level")
		case ".", "..":
			return bad(fmt.Sprintf("level %q would escape the mail root", level))
		}
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return bad("control character")
		}
	}
	return nil
}

// IsInbox tells whether name is the INBOX (case-insensitive, as IMAP says).
func IsInbox(name string) bool { return strings.EqualFold(name, "INBOX") }

// Parent returns the parent of a '/'-separated name, or "" at the top.
func Parent(name string) string {
	if i := strings.LastIndexByte(name, Separator); i >= 0 {
		return name[:i]
	}
	return ""
}
