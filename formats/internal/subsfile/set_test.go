package subsfile

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestSet(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "missing-dir", "subscriptions")
	opt := SetOptions{FileMode: 0o600, DirMode: 0o700, Sync: true}
	steps := []struct {
		levels []string
		sub    bool
		want   string
	}{
		{[]string{"Work", "Sub"}, true, Header + "Work\tSub\n"},
		{[]string{"inbox"}, true, Header + "Work\tSub\nINBOX\n"},
		{[]string{"Work", "Sub"}, true, Header + "Work\tSub\nINBOX\n"}, // no change
		{[]string{"Work", "Sub"}, false, Header + "INBOX\n"},
	}
	for i, st := range steps {
		if err := Set(ctx, path, '/', st.levels, st.sub, opt); err != nil {
			t.Fatalf("step %d: Set = %v", i, err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != st.want {
			t.Errorf("step %d: file = %q, want %q", i, got, st.want)
		}
		if _, err := os.Stat(path + ".lock"); !os.IsNotExist(err) {
			t.Errorf("step %d: lock file left behind (%v)", i, err)
		}
	}
}
