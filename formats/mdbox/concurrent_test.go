package mdbox_test

import (
	"testing"

	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtest"
	"github.com/boxsync/boxsync/formats/mdbox"
)

// TestConcurrentMailboxes uses one Store from several goroutines, each on
// its own mailbox (the engine's pattern), under the race detector.
func TestConcurrentMailboxes(t *testing.T) {
	store, _ := newStore(t, mdbox.Driver{RotateSize: 4096})
	dboxtest.ConcurrentMailboxes(t, store)
}

// TestConcurrentWithDovecot has Dovecot deliver into the INBOX while we
// save into it: every message must arrive once, with no rebuild. Dovecot
// appends to our m.* files, so they are made with umask 0.
func TestConcurrentWithDovecot(t *testing.T) { dt.ConcurrentWithDovecot(t, true) }
