package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

// storageSize is the size of an mdbox's storage/m.* files.
func storageSize(t *testing.T, root string) int64 {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "storage", "m.*"))
	var n int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// expungeFirst expunges a mailbox's first n messages.
func expungeFirst(t *testing.T, loc, box string, n int) {
	t.Helper()
	ctx := context.Background()
	d, l := driverFor(t, loc)
	st, err := d.Open(ctx, l, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mb, err := st.Open(ctx, box)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	tx, _ := mb.Begin(ctx)
	defer tx.Rollback()
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if err := tx.Expunge(m.UID); err != nil {
			t.Fatal(err)
		}
		n--
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// checkStore runs the driver's own invariant check on the store at loc.
func checkStore(t *testing.T, loc string) {
	t.Helper()
	d, l := driverFor(t, loc)
	st, err := d.Open(context.Background(), l, formats.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.(formats.Checker).Check(context.Background()); err != nil {
		t.Errorf("Check(%s) = %v", loc, err)
	}
}

// TestPurgeOption: backup -P purges an mdbox destination after the run,
// so mail the source expunged leaves the storage files; without -P it
// stays there unreferenced. `boxsync purge` does the same on its own,
// and is a no-op for formats with nothing to purge.
func TestPurgeOption(t *testing.T) {
	te := newTestEnv(t)
	src := "maildir:" + filepath.Join(te.home, "Maildir")
	root := filepath.Join(te.home, "mdbox")
	dst := "mdbox:" + root
	fill(t, src, map[string]int{"INBOX": 10, "Sent": 3})
	te.run(t, "backup", "--source", src, dst).expect(t, nil, 0)
	full := storageSize(t, root)

	expungeFirst(t, src, "INBOX", 4)
	te.run(t, "backup", "--source", src, dst).expect(t, nil, 0)
	if n := storageSize(t, root); n != full {
		t.Fatalf("storage %d bytes after a backup without -P, want %d (nothing purged)", n, full)
	}
	te.run(t, "-v", "backup", "-P", "--source", src, dst).expect(t, nil, 0, "purge: ", "4 messages dropped")
	purged := storageSize(t, root)
	if purged >= full {
		t.Errorf("storage %d bytes after backup -P, want less than %d", purged, full)
	}
	if a, b := messageIDs(t, src, "INBOX"), messageIDs(t, dst, "INBOX"); len(a) != 6 || !equalIDs(a, b) {
		t.Errorf("after backup -P: destination %v, source %v", b, a)
	}
	checkStore(t, dst)

	// boxsync purge: nothing left, then what an expunge left
	te.run(t, "purge", "--source", dst).expect(t, nil, 0)
	if n := storageSize(t, root); n != purged {
		t.Errorf("storage %d bytes after a purge with nothing to do, want %d", n, purged)
	}
	expungeFirst(t, dst, "Sent", 2)
	te.run(t, "-v", "purge", "--source", dst).expect(t, nil, 0, "2 messages dropped")
	if n := storageSize(t, root); n >= purged {
		t.Errorf("storage %d bytes after purge, want less than %d", n, purged)
	}
	checkStore(t, dst)

	// formats without purge: a no-op, as doveadm's purge for maildir
	te.run(t, "purge", "--source", src).expect(t, nil, 0)
	te.run(t, "backup", "-P", "--source", dst, "sdbox:"+filepath.Join(te.home, "sdbox")).expect(t, nil, 0)
	te.run(t, "purge", "--source", dst, "extra").expect(t, nil, 64, "no arguments")
}
