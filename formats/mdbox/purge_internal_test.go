package mdbox

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

// TestPurgeStaleView: a batch's map view that predates an append to the
// file (made before the purge took the file's lock) is read again
// instead of reporting the file as damaged, and the appended message is
// kept.
func TestPurgeStaleView(t *testing.T) {
	ctx := context.Background()
	loc := formats.Location{Driver: driverName, Path: filepath.Join(t.TempDir(), "mdbox")}
	st, err := Driver{}.Open(ctx, loc, formats.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*Store)
	s.Create(ctx, "INBOX", formats.GUID{}, 0)
	save := func(bodies ...string) {
		mb, err := s.Open(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		defer mb.Close()
		tx, _ := mb.Begin(ctx)
		for _, b := range bodies {
			if _, err := tx.Save(ctx, formats.Message{Size: int64(len(b))}, bytes.NewReader([]byte(b))); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	save("Subject: 1\n\none\n", "Subject: 2\n\ntwo\n")
	mb, _ := s.Open(ctx, "INBOX")
	tx, _ := mb.Begin(ctx)
	tx.Expunge(1)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	mb.Close()
	stale, err := s.mapView("test")
	if err != nil {
		t.Fatal(err)
	}
	save("Subject: 3\n\nthree\n") // appended to the same m.1
	if n := len(fileMsgs(stale, 1)); n != 2 {
		t.Fatalf("stale view: %d records of m.1, want 2", n)
	}

	var stats formats.PurgeStats
	p := &purger{s: s, st: &stats, view: stale}
	defer p.abort()
	if err := p.add(1); err != nil {
		t.Fatalf("add(m.1) with a stale view = %v", err)
	}
	if err := p.commit(ctx); err != nil {
		t.Fatal(err)
	}
	if stats.Messages != 1 || stats.Copied != 2 {
		t.Errorf("purge %+v, want 1 dropped and 2 copied", stats)
	}
	if err := s.Check(ctx); err != nil {
		t.Error(err)
	}
	mb, _ = s.Open(ctx, "INBOX")
	defer mb.Close()
	n := 0
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		if err := mb.Body(ctx, m.UID, func(formats.Body) error { return nil }); err != nil {
			t.Errorf("uid %d: %v", m.UID, err)
		}
		n++
	}
	if n != 2 {
		t.Errorf("%d messages after the purge, want 2", n)
	}
}
