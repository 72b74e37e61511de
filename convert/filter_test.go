package convert

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/mem"
)

// TestWantNew checks each filter of new mail against dsync's rules:
// received date inclusive at both ends, virtual size (counted from the
// body when the store does not know it) inclusive, one flag or keyword
// (keywords case-insensitive), "-FLAG" for mail without it.
func TestWantNew(t *testing.T) {
	ctx := context.Background()
	s, err := mem.Driver{}.Open(ctx, formats.Location{Driver: "mem", Path: t.TempDir()}, formats.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "INBOX", formats.GUID{}, 1); err != nil {
		t.Fatal(err)
	}
	box, err := s.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := box.Begin(ctx)
	body := []byte("Subject: x\n\n1234\n") // 17 bytes, 20 with CRLF
	day := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	if _, err := tx.Save(ctx, formats.Message{UID: 1, Flags: formats.FlagSeen, Keywords: []string{"Important"}, Received: day, Size: int64(len(body))}, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var msg formats.Message
	for m := range box.Messages(ctx, 1) {
		msg = m
	}
	msg.VSize = -1 // as a store that does not keep it
	for _, tc := range []struct {
		name string
		opt  Options
		want bool
	}{
		{"no filter", Options{}, true},
		{"since before", Options{Since: day.Add(-time.Hour)}, true},
		{"since exactly", Options{Since: day}, true},
		{"since after", Options{Since: day.Add(time.Second)}, false},
		{"until exactly", Options{Until: day}, true},
		{"until before", Options{Until: day.Add(-time.Second)}, false},
		{"max size = vsize", Options{MaxSize: 20}, true},
		{"max size < vsize (physical size fits)", Options{MaxSize: 19}, false},
		{`\Seen`, Options{Flag: `\Seen`}, true},
		{`\seen (case)`, Options{Flag: `\seen`}, true},
		{`\Flagged`, Options{Flag: `\Flagged`}, false},
		{`-\Seen`, Options{Flag: `-\Seen`}, false},
		{`-\Flagged`, Options{Flag: `-\Flagged`}, true},
		{"keyword", Options{Flag: "important"}, true},
		{"-keyword", Options{Flag: "-Important"}, false},
		{"other keyword", Options{Flag: "$Junk"}, false},
		{"-other keyword", Options{Flag: "-$Junk"}, true},
		{"all pass", Options{Since: day, Until: day, MaxSize: 20, Flag: "Important"}, true},
		{"one fails", Options{Since: day, Until: day, MaxSize: 20, Flag: "$Junk"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &run{opt: tc.opt}
			got, err := r.wantNew(ctx, box, msg)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("wantNew = %v, want %v", got, tc.want)
			}
		})
	}
}
