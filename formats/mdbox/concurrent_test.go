package mdbox_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/mdbox"
)

// TestConcurrentMailboxes uses one Store from several goroutines, each on
// its own mailbox (the engine's pattern), under the race detector.
func TestConcurrentMailboxes(t *testing.T) {
	ctx := context.Background()
	store, _ := newStore(t, mdbox.Driver{RotateSize: 4096})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("Box%d", g)
			if err := store.Create(ctx, name, formats.GUID{}, 0); err != nil {
				t.Error(err)
				return
			}
			for round := range 5 {
				mb, err := store.Open(ctx, name)
				if err != nil {
					t.Error(err)
					return
				}
				tx, _ := mb.Begin(ctx)
				for i := range 10 {
					body := fmt.Appendf(nil, "Subject: %d %d\n\nbody\n", round, i)
					if _, err := tx.Save(ctx, formats.Message{Keywords: []string{fmt.Sprint("k", i%3)}}, bytes.NewReader(body)); err != nil {
						t.Error(err)
					}
				}
				if err := tx.Commit(ctx); err != nil {
					t.Error(err)
				}
				mb.Close()
			}
			if _, err := store.Mailboxes(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for g := range 4 {
		if n := countMessages(t, store, fmt.Sprintf("Box%d", g)); n != 50 {
			t.Errorf("Box%d has %d messages, want 50", g, n)
		}
	}
	if err := store.(formats.Checker).Check(ctx); err != nil {
		t.Error(err)
	}
}

// TestConcurrentWithDovecot has Dovecot deliver into the INBOX while we
// save into it: every message must arrive once, with no rebuild.
func TestConcurrentWithDovecot(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	ctx := context.Background()
	d, loc := interop(t, "")
	store := openStore(t, loc, formats.OpenOptions{Create: true})
	store.Create(ctx, "INBOX", formats.GUID{}, 0)
	d.Snapshot(t) // hand the tree to Dovecot's uid
	// As root, let Dovecot (user nobody) use the files we make meanwhile:
	// it appends to our m.* files.
	if err := os.Chmod(loc.Path, 0o777); err != nil {
		t.Fatal(err)
	}
	defer syscall.Umask(syscall.Umask(0))
	store = openStore(t, loc, formats.OpenOptions{})
	const n = 40
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			if _, err := d.Doveadm("save", "-m", "INBOX"); err != nil {
				_ = i
			}
		}
	}()
	mb, err := store.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		tx, _ := mb.Begin(ctx)
		body := fmt.Appendf(nil, "Subject: ours %d\n\n", i)
		if _, err := tx.Save(ctx, formats.Message{}, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	mb.Close()
	compare(t, d, store)
}

func countMessages(t *testing.T, s formats.Store, name string) int {
	t.Helper()
	mb, err := s.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	n := 0
	for _, err := range mb.Messages(context.Background(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}
