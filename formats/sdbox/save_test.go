package sdbox_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/sdbox"
)

// saveWays are the two ways Save keeps a file until Commit: unnamed
// (O_TMPFILE) and, where that is not available, a .temp.* file.
var saveWays = []struct {
	name string
	temp bool
}{{"unnamed", false}, {"temp file", true}}

// fileBody is a body that is a whole file (formats.FileSection), as a
// plain Maildir file is. Its Read fails the test when forbidRead is set:
// the kernel copy must not read through memory.
type fileBody struct {
	t          *testing.T
	f          *os.File
	forbidRead bool
}

func (b *fileBody) Read(p []byte) (int, error) {
	if b.forbidRead {
		b.t.Error("the body was read through memory, not copied in the kernel")
	}
	return b.f.Read(p)
}

func (b *fileBody) FileSection() (*os.File, int64, bool) { return b.f, 0, true }

// bodyFile writes data into a file and opens it.
func bodyFile(t *testing.T, data []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// dirNames lists dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// vsize is the virtual size of b: every LF not after a CR counts two.
func vsize(b []byte) int64 {
	n := int64(len(b))
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			n++
		}
	}
	return n
}

// TestSaveWays saves streamed bodies and bodies copied in the kernel
// (file sections with the source's sizes), both ways of keeping the file
// until Commit: nothing shows in dbox-Mails before Commit but a .temp.*
// file (none at all when unnamed), Commit leaves exactly the u.<uid>
// files, and the real Dovecot reads every message as we do (GUIDs,
// dates, sizes, virtual sizes, flags, bytes).
func TestSaveWays(t *testing.T) {
	ctx := context.Background()
	bodies := [][]byte{
		[]byte("Subject: lf\n\nline\n"),
		[]byte("Subject: crlf\r\n\r\nline\r\n"),
		[]byte("Subject: mixed\r\n\nno newline"),
		bytes.Repeat([]byte("Subject: big\n\n0123456789abcdef\n"), 5000), // > the 64 KiB buffer
	}
	for _, way := range saveWays {
		t.Run(way.name, func(t *testing.T) {
			d, loc := interop(t, "")
			store := openStore(t, loc, formats.OpenOptions{Create: true})
			if way.temp {
				sdbox.SaveThroughTemp(store.(*sdbox.Store))
			}
			if err := store.Create(ctx, "INBOX", formats.NewGUID(), 1234567890); err != nil {
				t.Fatal(err)
			}
			mails := filepath.Join(d.Root(), "mailboxes", "INBOX", "dbox-Mails")
			before := dirNames(t, mails)
			mb, err := store.Open(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			defer mb.Close()
			tx, err := mb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			base := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
			for i, b := range bodies {
				for _, kernel := range []bool{false, true} {
					m := formats.Message{Flags: formats.FlagSeen, Received: base.Add(time.Duration(i) * time.Hour), Size: int64(len(b))}
					var r io.Reader = bytes.NewReader(b)
					if kernel {
						m.VSize = vsize(b)
						r = &fileBody{t: t, f: bodyFile(t, b), forbidRead: true}
					}
					if _, err := tx.Save(ctx, m, r); err != nil {
						t.Fatal(err)
					}
				}
			}
			var temps int
			for _, n := range dirNames(t, mails) {
				switch {
				case strings.HasPrefix(n, ".temp."):
					temps++
				case !slices.Contains(before, n):
					t.Errorf("before Commit dbox-Mails has %q", n)
				}
			}
			if want := map[bool]int{false: 0, true: 2 * len(bodies)}[way.temp]; temps != want {
				t.Errorf("before Commit dbox-Mails has %d .temp.* files, want %d", temps, want)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			for _, n := range dirNames(t, mails) {
				if strings.HasPrefix(n, ".temp.") {
					t.Errorf("after Commit dbox-Mails has %q", n)
				}
			}
			for uid := 1; uid <= 2*len(bodies); uid++ {
				want := bodies[(uid-1)/2]
				var got []byte
				if err := mb.Body(ctx, formats.UID(uid), func(b formats.Body) error {
					got, err = io.ReadAll(b)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("UID %d reads %d bytes, saved %d", uid, len(got), len(want))
				}
			}
			// compare checks that Dovecot reads what we read; this, that
			// we read what was saved
			n := 0
			for m, err := range mb.Messages(ctx, 1) {
				if err != nil {
					t.Fatal(err)
				}
				b := bodies[(m.UID-1)/2]
				wantRecv := base.Add(time.Duration((m.UID-1)/2) * time.Hour)
				if m.Size != int64(len(b)) || m.VSize != vsize(b) || !m.Received.Equal(wantRecv) || m.Flags != formats.FlagSeen {
					t.Errorf("UID %d: size %d vsize %d received %v flags %v, want %d %d %v %v",
						m.UID, m.Size, m.VSize, m.Received, m.Flags, len(b), vsize(b), wantRecv, formats.FlagSeen)
				}
				n++
			}
			if n != 2*len(bodies) {
				t.Errorf("%d messages, want %d", n, 2*len(bodies))
			}
			compare(t, d, store)
		})
	}
}

// TestSaveRollback: a rolled back transaction, and Saves that fail (a
// body shorter than its size, streamed and copied in the kernel), leave
// dbox-Mails as it was, either way of keeping the files.
func TestSaveRollback(t *testing.T) {
	ctx := context.Background()
	body := []byte("Subject: x\n\nbody\n")
	for _, way := range saveWays {
		t.Run(way.name, func(t *testing.T) {
			dir := t.TempDir()
			loc, err := formats.ParseLocation("sdbox:"+dir, formats.Vars{})
			if err != nil {
				t.Fatal(err)
			}
			store, err := sdbox.Driver{}.Open(ctx, loc, formats.OpenOptions{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			if way.temp {
				sdbox.SaveThroughTemp(store.(*sdbox.Store))
			}
			if err := store.Create(ctx, "INBOX", formats.NewGUID(), 1); err != nil {
				t.Fatal(err)
			}
			mails := filepath.Join(dir, "mailboxes", "INBOX", "dbox-Mails")
			before := dirNames(t, mails)
			mb, err := store.Open(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			defer mb.Close()
			tx, err := mb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			m := formats.Message{Size: int64(len(body)), VSize: vsize(body)}
			if _, err := tx.Save(ctx, m, bytes.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Save(ctx, m, &fileBody{t: t, f: bodyFile(t, body), forbidRead: true}); err != nil {
				t.Fatal(err)
			}
			short := m
			short.Size, short.VSize = m.Size+10, m.VSize+10
			if _, err := tx.Save(ctx, short, bytes.NewReader(body)); formats.KindOf(err) != formats.KindInvalidData {
				t.Errorf("Save of a short streamed body = %v, want KindInvalidData", err)
			}
			if _, err := tx.Save(ctx, short, &fileBody{t: t, f: bodyFile(t, body)}); formats.KindOf(err) != formats.KindInvalidData {
				t.Errorf("Save of a short file section = %v, want KindInvalidData", err)
			}
			if err := tx.Expunge(1); err != nil {
				t.Fatal(err)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			if got := dirNames(t, mails); !slices.Equal(got, before) {
				t.Errorf("after Rollback dbox-Mails holds %q, before %q", got, before)
			}
			n := 0
			for _, err := range mb.Messages(ctx, 1) {
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			if n != 0 {
				t.Errorf("after Rollback the mailbox has %d messages", n)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Errorf("Commit after Rollback = %v, want nothing done", err)
			}
			if got := dirNames(t, mails); !slices.Equal(got, before) {
				t.Errorf("after Commit of a rolled back transaction dbox-Mails holds %q, before %q", got, before)
			}
		})
	}
}
