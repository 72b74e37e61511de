package maildir

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/unnamed"
	"github.com/boxsync/boxsync/formats/internal/zlib"
)

// sectionBody is a body that is a range of a file (formats.FileSection),
// as an uncompressed mdbox message is.
type sectionBody struct {
	*io.SectionReader
	f   *os.File
	off int64
}

func (b sectionBody) FileSection() (*os.File, int64, bool) { return b.f, b.off, true }

// TestSaveFileSections saves bodies that are ranges of a file (copied in
// the kernel), each from a descriptor closed right after its Save,
// expunges two before Commit, and reads back every byte, size and date.
func TestSaveFileSections(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	var src bytes.Buffer
	type part struct{ off, size int64 }
	var parts []part
	for i := range 40 {
		size := 1 + rng.IntN(200<<10)
		if i%7 == 0 {
			size = 1 + rng.IntN(10)
		}
		body := make([]byte, size)
		for j := range body {
			body[j] = "ab\r\n"[rng.IntN(4)]
		}
		body[0] = 'S' // not compressed-looking
		src.WriteString("[header]")
		parts = append(parts, part{int64(src.Len()), int64(size)})
		src.Write(body)
	}
	srcPath := filepath.Join(t.TempDir(), "m.1")
	if err := os.WriteFile(srcPath, src.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	date := func(i int) time.Time {
		return time.Date(2019, 5, 6, 7, 8, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	}
	for _, tc := range []struct {
		name       string
		throughTmp bool
	}{{"unnamed", false}, {"tmp", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			root := filepath.Join(t.TempDir(), "Maildir")
			s, mb := newInbox(t, formats.Location{Path: root})
			s.noUnnamed.Store(tc.throughTmp)
			open0 := unnamed.Held()
			tx, err := mb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var uids []formats.UID
			for i, p := range parts {
				f, err := os.Open(srcPath)
				if err != nil {
					t.Fatal(err)
				}
				body := src.Bytes()[p.off : p.off+p.size]
				var vs formats.VSizeCounter
				vs.Write(body)
				m := formats.Message{Size: p.size, VSize: vs.VSize(), Received: date(i)}
				uid, err := tx.Save(ctx, m, sectionBody{io.NewSectionReader(f, p.off, p.size), f, p.off})
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				uids = append(uids, uid)
			}
			for _, i := range []int{3, 17} {
				if err := tx.Expunge(uids[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if n := unnamed.Held() - open0; n != 0 {
				t.Errorf("%d unnamed files open after Commit", n)
			}
			if got := dirNames(t, filepath.Join(root, "tmp")); len(got) != 0 {
				t.Errorf("tmp/ after Commit = %q", got)
			}
			var got, want []string
			for m, err := range mb.Messages(ctx, 0) {
				if err != nil {
					t.Fatal(err)
				}
				var body []byte
				if err := mb.Body(ctx, m.UID, func(b formats.Body) (err error) {
					body, err = io.ReadAll(b)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%d %s %d %d %x", m.UID, m.Received.UTC().Format(time.RFC3339), m.Size, m.VSize, body))
			}
			for i, p := range parts {
				if i == 3 || i == 17 {
					continue
				}
				body := src.Bytes()[p.off : p.off+p.size]
				var vs formats.VSizeCounter
				vs.Write(body)
				want = append(want, fmt.Sprintf("%d %s %d %d %x", uids[i], date(i).Format(time.RFC3339), p.size, vs.VSize(), body))
			}
			if !slices.Equal(got, want) {
				t.Errorf("after Commit: %d messages, want %d; first difference:", len(got), len(want))
				for i := range min(len(got), len(want)) {
					if got[i] != want[i] {
						t.Errorf(" got %.100s\nwant %.100s", got[i], want[i])
						break
					}
				}
			}
		})
	}
}

// TestSaveFileSectionShort: a body whose file ends before its size fails
// its Save with KindInvalidData and leaves nothing; the others commit.
func TestSaveFileSectionShort(t *testing.T) {
	srcPath := filepath.Join(t.TempDir(), "m.1")
	if err := os.WriteFile(srcPath, []byte("Subject: a\n\nbody\nSubject: short"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(srcPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	good := sectionBody{io.NewSectionReader(f, 0, 17), f, 0}
	short := sectionBody{io.NewSectionReader(f, 17, 100), f, 17} // the file has 15 bytes there
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "Maildir")
	_, mb := newInbox(t, formats.Location{Path: root})
	open0 := unnamed.Held()
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := tx.Save(ctx, formats.Message{Size: 17, VSize: 19}, good); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Save(ctx, formats.Message{Size: 100, VSize: 100}, short); formats.KindOf(err) != formats.KindInvalidData {
		t.Errorf("short body: Save = %v, want KindInvalidData", err)
	}
	if n := unnamed.Held() - open0; n != 3 {
		t.Errorf("%d unnamed files open after the failed Save, want 3", n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, filepath.Join(root, "cur")); len(got) != 3 {
		t.Errorf("cur/ holds %q, want 3 files", got)
	}
	if got := dirNames(t, filepath.Join(root, "tmp")); len(got) != 0 {
		t.Errorf("tmp/ = %q", got)
	}
}

// TestBodyFileSection: the body of a plain message file is the whole file
// as a file range (formats.FileSection), so that a destination copies it
// in the kernel; a compressed file's body is not (it reads decompressed).
func TestBodyFileSection(t *testing.T) {
	dir := t.TempDir()
	plain := []byte("Subject: plain\n\nbody\n")
	var gz bytes.Buffer
	zw, err := zlib.NewWriter(&gz, zlib.Gzip, 6)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(plain)
	zw.Close()
	for _, tc := range []struct {
		name    string
		data    []byte
		section bool
	}{{"plain", plain, true}, {"gzip", gz.Bytes(), false}} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := openRead(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b, _, closeBody, err := openBody(f, int64(len(plain)))
			if err != nil {
				t.Fatal(err)
			}
			defer closeBody()
			sf, off, ok := b.FileSection()
			if ok != tc.section || (ok && (sf != f || off != 0)) {
				t.Errorf("FileSection() = %v, %d, %v; want the file at 0: %v", sf, off, ok, tc.section)
			}
			got, err := io.ReadAll(b)
			if err != nil || !bytes.Equal(got, plain) || b.Size() != int64(len(plain)) {
				t.Errorf("body reads %q (size %d), %v; want %q", got, b.Size(), err, plain)
			}
		})
	}
}
