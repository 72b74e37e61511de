package mbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// TestDotlock: a commit waits for another process's "<file>.lock" and
// overrides one whose process is gone.
func TestDotlock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	loc := formats.Location{Driver: "mbox", Path: dir, Inbox: filepath.Join(dir, "inbox")}
	s := newStore(t, loc, formats.OpenOptions{Create: true})
	if err := s.Create(ctx, "INBOX", formats.GUID{}, 7); err != nil {
		t.Fatal(err)
	}
	mb, err := s.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	host, _ := os.Hostname()
	lock := filepath.Join(dir, "inbox.lock")
	save := func(ctx context.Context) error {
		tx, err := mb.Begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.Save(ctx, formats.Message{}, strings.NewReader("Subject: x\n\nx\n")); err != nil {
			t.Fatal(err)
		}
		return tx.Commit(ctx)
	}
	// Held by a live process (pid 1).
	os.WriteFile(lock, []byte("1:"+host), 0o600)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := save(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Commit with the lock held = %v, want a deadline error", err)
	}
	// Held by a process that is gone.
	os.WriteFile(lock, []byte("999999999:"+host), 0o600)
	old := time.Now().Add(-10 * time.Second)
	os.Chtimes(lock, old, old)
	if err := save(ctx); err != nil {
		t.Fatalf("Commit over a stale lock = %v", err)
	}
	if _, err := os.Stat(lock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left behind: %v", err)
	}
	if st, _ := mb.Status(ctx); st.Messages != 1 {
		t.Errorf("%d messages", st.Messages)
	}
}
