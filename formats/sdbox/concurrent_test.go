package sdbox_test

import (
	"testing"

	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtest"
)

// TestConcurrentMailboxes uses one Store from several goroutines, each on
// its own mailbox (the engine's pattern), under the race detector.
func TestConcurrentMailboxes(t *testing.T) {
	store, _ := newStore(t)
	dboxtest.ConcurrentMailboxes(t, store)
}

// TestConcurrentWithDovecot has Dovecot deliver into the INBOX while we
// save into it: every message must arrive once, with no rebuild.
func TestConcurrentWithDovecot(t *testing.T) { dt.ConcurrentWithDovecot(t, false) }
