package unnamed

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestLink names an unnamed file both ways Link can (the descriptor
// itself, its /proc/self/fd entry) and refuses an existing name; the
// directory shows nothing before the link.
func TestLink(t *testing.T) {
	for _, tc := range []struct {
		name      string
		procEntry bool
	}{{"AT_EMPTY_PATH", false}, {"/proc/self/fd", true}} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(v bool) { noEmptyPathLink.Store(v) }(noEmptyPathLink.Load())
			noEmptyPathLink.Store(tc.procEntry)
			dir := t.TempDir()
			f, err := Open(dir, 0o600)
			if errors.Is(err, ErrUnsupported) {
				t.Skip("no unnamed files here (O_TMPFILE)")
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString("body\n"); err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("before the link the directory holds %d entries", len(ents))
			}
			path := filepath.Join(dir, "named")
			if err := Link(f, path); err != nil {
				t.Fatal(err)
			}
			if data, err := os.ReadFile(path); err != nil || string(data) != "body\n" {
				t.Errorf("linked file = %q, %v", data, err)
			}
			if err := Link(f, path); !errors.Is(err, fs.ErrExist) {
				t.Errorf("second link to the same name = %v, want ErrExist", err)
			}
		})
	}
}

// TestOpenClosed: a missing directory fails, and a
// closed unnamed file leaves nothing behind.
func TestOpenClosed(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(dir, 0o600)
	if errors.Is(err, ErrUnsupported) {
		t.Skip("no unnamed files here (O_TMPFILE)")
	}
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("x")
	f.Close()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a closed unnamed file left %d entries", len(ents))
	}
	if _, err := Open(filepath.Join(dir, "missing"), 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing dir) = %v, want ErrNotExist", err)
	}
}

// TestReserve: reservations stop at the limit and Release gives them
// back.
func TestReserve(t *testing.T) {
	lim := limit()
	if lim <= 0 {
		t.Skip("no descriptor limit known")
	}
	base := held.Load()
	n := int64(0)
	for Reserve() {
		n++
		if n > lim {
			t.Fatalf("more than %d reservations", lim)
		}
	}
	if base+n != lim {
		t.Errorf("%d reservations (after %d held), want up to %d", n, base, lim)
	}
	Release()
	if !Reserve() {
		t.Error("Reserve after Release failed")
	}
	for range n {
		Release()
	}
	if got := held.Load(); got != base {
		t.Errorf("held = %d after releasing all, want %d", got, base)
	}
}
