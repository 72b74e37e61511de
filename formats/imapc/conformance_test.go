package imapc

import (
	"context"
	"net"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestConformance runs formatstest.Run against imapc (Dovecot Maildir
// behind exec imap). What IMAP can't do (choose a mailbox GUID or
// UIDVALIDITY, raise UIDNEXT, keep bytes exactly, save an empty message,
// keep POP3 fields, subscribe a missing name) is absent from Caps, and the
// suite checks the IMAP behaviour instead.
func TestConformance(t *testing.T) {
	dovecottest.Require(t)
	runSuite(t)
}

func runSuite(t *testing.T) {
	var cur *dovecottest.Dovecot
	s := Defaults()
	s.Dial = func(ctx context.Context) (net.Conn, error) { return execDialer(t, cur)(ctx) }
	formatstest.Run(t, formatstest.Harness{
		Driver: Driver{Settings: s},
		NewLocation: func(t *testing.T) formats.Location {
			cur = dovecottest.New(t, "", "mail_save_crlf = yes")
			return formats.Location{Driver: "imapc", Path: cur.Dir()}
		},
	})
}
