package maildir

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// TestCommitSyncsCurBeforeUidlist: Commit fsyncs cur/ while it writes
// dovecot-uidlist.tmp, but the uidlist is renamed into place only once
// cur/ is durable, however slow that fsync is: no uidlist names mail whose
// directory entry could still be lost.
func TestCommitSyncsCurBeforeUidlist(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "Maildir")
	s := openStore(t, formats.Location{Path: root}, formats.OpenOptions{Create: true})
	if err := s.Create(ctx, "INBOX", formats.GUID{}, 0); err != nil {
		t.Fatal(err)
	}
	mb := openBox(t, s, "INBOX")
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	save(t, tx, formats.Message{}, "Subject: one\n\nx\n")

	var mu sync.Mutex
	var events []string
	durableHook = func(event string) {
		if event == filepath.Join(root, "cur") {
			time.Sleep(100 * time.Millisecond) // a slow fsync
		}
		mu.Lock()
		events = append(events, event)
		mu.Unlock()
	}
	defer func() { durableHook = nil }()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	cur, rename := slices.Index(events, filepath.Join(root, "cur")), slices.Index(events, "rename "+filepath.Join(root, uidlistName))
	if cur < 0 || rename < 0 || cur > rename {
		t.Errorf("events %q: want cur/ durable before the uidlist rename", events)
	}
}
