package maildir

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// TestScanSharesUnchangedTable: a rescan that finds every file where the
// mailbox's table has it and nothing new returns that table itself (no
// copy: a commit to a large mailbox holds two tables, not three); any
// change on disk gives a new table that shows it, and the old table is
// left as it was.
func TestScanSharesUnchangedTable(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	_, mb := newInbox(t, formats.Location{Path: root})
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		save(t, tx, formats.Message{Flags: formats.FlagSeen}, "Subject: "+string(rune('a'+i))+"\n\nbody\n")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	prev, err := mb.current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := mb.scan(ctx, nil, prev)
	if err != nil {
		t.Fatal(err)
	}
	if st.t != prev.t {
		t.Fatalf("rescan of an unchanged mailbox built a new table")
	}
	if len(st.t.recs) != 5 {
		t.Fatalf("rescan lists %d messages, want 5", len(st.t.recs))
	}

	// A flag change by hand: a new table with the new name, the old
	// one unchanged.
	r := &prev.t.recs[2]
	oldName := prev.t.name(r)
	newName := baseOf(oldName) + ":2,FS"
	if err := os.Rename(filepath.Join(root, "cur", oldName), filepath.Join(root, "cur", newName)); err != nil {
		t.Fatal(err)
	}
	// The directory's mtime may not have moved within its granularity:
	// make the change visible as a later mtime.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(root, "cur"), later, later); err != nil {
		t.Fatal(err)
	}
	st2, _, err := mb.scan(ctx, nil, prev)
	if err != nil {
		t.Fatal(err)
	}
	if st2.t == prev.t {
		t.Fatalf("rescan after a rename shares the old table")
	}
	if got := st2.t.name(&st2.t.recs[2]); got != newName {
		t.Errorf("rescan names UID %d %q, want %q", st2.t.recs[2].uid, got, newName)
	}
	if got := prev.t.name(r); got != oldName {
		t.Errorf("old table changed: %q, want %q", got, oldName)
	}
	// Dropped and added files as well.
	if err := os.Remove(filepath.Join(root, "cur", newName)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "new", "1700000000.M9P9.mua"), []byte("Subject: new\n\nx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	later = later.Add(time.Hour)
	for _, d := range []string{"cur", "new"} {
		if err := os.Chtimes(filepath.Join(root, d), later, later); err != nil {
			t.Fatal(err)
		}
	}
	st3, _, err := mb.scan(ctx, nil, st2)
	if err != nil {
		t.Fatal(err)
	}
	if st3.t == st2.t || len(st3.t.recs) != 5 || st3.t.find(prev.t.recs[2].uid) >= 0 {
		t.Errorf("rescan after a removal and a delivery: %d records (want 5), removed UID listed: %v", len(st3.t.recs), st3.t.find(prev.t.recs[2].uid) >= 0)
	}
}
