package maildir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestLinkUnnamed names an unnamed file both ways linkUnnamed can (the
// descriptor itself, its /proc/self/fd entry) and refuses an existing
// name.
func TestLinkUnnamed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		procEntry bool
	}{{"AT_EMPTY_PATH", false}, {"/proc/self/fd", true}} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(v bool) { noEmptyPathLink.Store(v) }(noEmptyPathLink.Load())
			noEmptyPathLink.Store(tc.procEntry)
			dir := t.TempDir()
			f, err := openUnnamed(dir, 0o600)
			if errors.Is(err, errUnnamedUnsupported) {
				t.Skip("no unnamed files here (O_TMPFILE)")
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString("body\n"); err != nil {
				t.Fatal(err)
			}
			if got := dirNames(t, dir); len(got) != 0 {
				t.Errorf("before the link the directory holds %q", got)
			}
			path := filepath.Join(dir, "named")
			if err := linkUnnamed(f, path); err != nil {
				t.Fatal(err)
			}
			if data, err := os.ReadFile(path); err != nil || string(data) != "body\n" {
				t.Errorf("linked file = %q, %v", data, err)
			}
			if err := linkUnnamed(f, path); !errors.Is(err, fs.ErrExist) {
				t.Errorf("second link to the same name = %v, want ErrExist", err)
			}
		})
	}
}
