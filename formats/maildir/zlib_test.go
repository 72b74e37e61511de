package maildir_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/internal/zlib"
	"github.com/boxsync/boxsync/formats/maildir"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// zlibBodies are saved compressed: every shape formatstest keeps, and one
// big enough to span several compressed blocks.
func zlibBodies() [][]byte {
	var out [][]byte
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range formatstest.Bodies {
			if !yield(k) {
				return
			}
		}
	}) {
		out = append(out, formatstest.Bodies[k])
	}
	return append(out, []byte("Subject: big\n\n"+strings.Repeat("lorem ipsum dolor sit amet\r\n", 40000)))
}

// zlibDovecot is a Dovecot with the zlib plugin saving in save (none: the
// plugin loaded, saving plain) and our view of its Maildir.
func zlibDovecot(t *testing.T, save string) (*dovecottest.Dovecot, formats.Location) {
	t.Helper()
	conf := []string{"mail_plugins = $mail_plugins zlib"}
	if save != "none" {
		conf = append(conf, "plugin {\n  zlib_save = "+save+"\n  zlib_save_level = 6\n}")
	}
	d := dovecottest.New(t, "maildir:~/Maildir", conf...)
	loc, err := formats.ParseLocation(d.Location(), formats.Vars{User: "dovecottest", Home: d.Home()})
	if err != nil {
		t.Fatal(err)
	}
	return d, loc
}

// compressedFiles returns the formats of the message files under dir.
func compressedFiles(t *testing.T, dir string) map[string]zlib.Format {
	t.Helper()
	out := map[string]zlib.Format{}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			data, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = zlib.Detect(data)
		}
	}
	return out
}

// readAll returns every body of INBOX by SHA-256, with the sizes Messages
// and Body report.
func readAll(t *testing.T, s formats.Store) map[[32]byte]bool {
	t.Helper()
	ctx := context.Background()
	mb, err := s.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	got := map[[32]byte]bool{}
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		err := mb.Body(ctx, m.UID, func(b formats.Body) error {
			data, err := io.ReadAll(b)
			if err != nil {
				return err
			}
			if b.Size() != int64(len(data)) || m.Size != int64(len(data)) {
				t.Errorf("uid %d: Body.Size() = %d, Message.Size = %d, want %d", m.UID, b.Size(), m.Size, len(data))
			}
			got[sha256.Sum256(data)] = true
			return nil
		})
		if err != nil {
			t.Fatalf("Body(%d): %v", m.UID, err)
		}
	}
	return got
}

// TestZlibWeReadDovecots has Dovecot's zlib plugin compress mail into a
// Maildir and reads it back: the same bytes, and the uncompressed sizes
// Dovecot puts in ,S= and ,W=.
func TestZlibWeReadDovecots(t *testing.T) {
	for _, save := range []string{"zstd", "gz", "bz2", "lz4"} {
		t.Run(save, func(t *testing.T) {
			d, loc := zlibDovecot(t, save)
			bodies := zlibBodies()
			for _, b := range bodies {
				d.Save(t, "INBOX", b)
			}
			want, _ := zlib.ParseFormat(save)
			for name, f := range compressedFiles(t, d.Root()) {
				if f != want && !strings.Contains(name, ",S=0,") {
					t.Errorf("Dovecot wrote %s as %s, want %s", name, f, want)
				}
			}
			store := openStore(t, loc, formats.OpenOptions{ReadOnly: true})
			got := readAll(t, store)
			for i, b := range bodies {
				// doveadm save drops the CR of CRLF (dovecottest).
				b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
				if !got[sha256.Sum256(b)] {
					t.Errorf("body %d (%d bytes) not read back", i, len(b))
				}
			}
			compare(t, d, store)
		})
	}
}

// TestZlibNoSizeInName: a compressed file without ,S= (compressed behind
// Dovecot's back) has an unknown Message.Size and the decompressed
// length as Body.Size.
func TestZlibNoSizeInName(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	body := []byte("Subject: z\n\nhello\n")
	var buf bytes.Buffer
	w, err := zlib.NewWriter(&buf, zlib.Gzip, zlib.DefaultLevel)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	w.Close()
	if err := os.WriteFile(filepath.Join(root, "cur", "1700000000.M1P1.host:2,S"), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := openStore(t, formats.Location{Driver: "maildir", Path: root}, formats.OpenOptions{ReadOnly: true})
	mb, err := s.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		if m.Size != -1 {
			t.Errorf("Message.Size = %d, want -1 (unknown)", m.Size)
		}
		err := mb.Body(ctx, m.UID, func(b formats.Body) error {
			data, err := io.ReadAll(b)
			if b.Size() != int64(len(body)) || !bytes.Equal(data, body) {
				t.Errorf("Body = %q (Size %d), want %q", data, b.Size(), body)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestZlibWrongSize: a compressed file whose ,S= is not its decompressed
// size fails to read, as in Dovecot.
func TestZlibWrongSize(t *testing.T) {
	body := []byte("Subject: z\n\nhello\n")
	for _, size := range []int{len(body) - 1, len(body) + 1} {
		root := filepath.Join(t.TempDir(), "Maildir")
		for _, sub := range []string{"new", "cur", "tmp"} {
			if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		w, _ := zlib.NewWriter(&buf, zlib.Zstd, zlib.DefaultLevel)
		w.Write(body)
		w.Close()
		name := "1700000000.M1P1.host,S=" + itoa(size) + ":2,"
		if err := os.WriteFile(filepath.Join(root, "cur", name), buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		s := openStore(t, formats.Location{Driver: "maildir", Path: root}, formats.OpenOptions{ReadOnly: true})
		mb, err := s.Open(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		err = mb.Body(ctx, 1, func(b formats.Body) error {
			_, err := io.ReadAll(b)
			return err
		})
		if !errors.Is(err, formats.ErrInvalidData) {
			t.Errorf("S=%d for %d bytes: Body = %v, want an invalid-data error", size, len(body), err)
		}
		mb.Close()
	}
}

func itoa(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

// zlibDriver returns the Maildir driver configured as Dovecot would be.
func zlibDriver(t *testing.T, settings map[string]string) formats.Driver {
	t.Helper()
	d, err := maildir.Driver{}.Configure(settings)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestZlibDovecotReadsOurs saves compressed mail as zlib_save asks and
// has Dovecot (with the plugin) read back the original bytes, sizes and
// metadata.
func TestZlibDovecotReadsOurs(t *testing.T) {
	ctx := context.Background()
	for _, save := range []string{"zstd", "gz"} {
		t.Run(save, func(t *testing.T) {
			d, loc := zlibDovecot(t, save)
			drv := zlibDriver(t, map[string]string{"mail_plugins": "quota zlib", "plugin/zlib_save": save, "plugin/zlib_save_level": "6"})
			s, err := drv.Open(ctx, loc, formats.OpenOptions{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Create(ctx, "INBOX", formats.NewGUID(), 1234567890); err != nil {
				t.Fatal(err)
			}
			mb, err := s.Open(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			tx, err := mb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			bodies := zlibBodies()
			for i, b := range bodies {
				m := formats.Message{Size: int64(len(b)), Flags: formats.FlagSeen, Received: time.Unix(1600000000+int64(i), 0)}
				if _, err := tx.Save(ctx, m, bytes.NewReader(b)); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			mb.Close()
			want, _ := zlib.ParseFormat(save)
			for name, f := range compressedFiles(t, d.Root()) {
				if f != want {
					t.Errorf("we wrote %s as %s, want %s", name, f, want)
				}
			}
			got := readAll(t, s)
			for i, b := range bodies {
				if !got[sha256.Sum256(b)] {
					t.Errorf("body %d (%d bytes) not read back by us", i, len(b))
				}
			}
			// Dovecot's bytes: SHA-256 of doveadm fetch text, in the
			// Snapshot compare diffs.
			compare(t, d, s)
			out := d.MustDoveadm(t, "-f", "pager", "fetch", "text", "mailbox", "INBOX", "all")
			for i, b := range bodies {
				if len(b) > 0 && !strings.Contains(out, string(b)) {
					t.Errorf("doveadm fetch text lacks body %d", i)
				}
			}
		})
	}
}

// TestZlibSettings: zlib_save without the plugin does nothing, and a body
// that already looks compressed is refused when saving plain (Dovecot:
// "Saving mails compressed by client isn't supported").
func TestZlibSettings(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		settings map[string]string
		want     zlib.Format
	}{
		{"no plugin", map[string]string{"plugin/zlib_save": "zstd"}, zlib.None},
		{"plugin only", map[string]string{"mail_plugins": "zlib"}, zlib.None},
		{"zstd", map[string]string{"mail_plugins": "zlib", "plugin/zlib_save": "zstd"}, zlib.Zstd},
		{"gz bare names", map[string]string{"mail_plugins": "zlib", "zlib_save": "gz", "zlib_save_level": "9"}, zlib.Gzip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			drv := zlibDriver(t, tc.settings)
			loc := formats.Location{Driver: "maildir", Path: filepath.Join(t.TempDir(), "Maildir")}
			s, err := drv.Open(ctx, loc, formats.OpenOptions{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Create(ctx, "INBOX", formats.NewGUID(), 1); err != nil {
				t.Fatal(err)
			}
			mb, err := s.Open(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			defer mb.Close()
			tx, err := mb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := tx.Save(ctx, formats.Message{}, strings.NewReader("Subject: x\n\nx\n")); err != nil {
				t.Fatal(err)
			}
			gz := []byte{0x1f, 0x8b, 8, 0, 0, 0}
			_, err = tx.Save(ctx, formats.Message{}, bytes.NewReader(gz))
			if tc.want == zlib.None && !errors.Is(err, formats.ErrNotPossible) {
				t.Errorf("saving gzip magic plain = %v, want a not-possible error", err)
			}
			if tc.want != zlib.None && err != nil {
				t.Errorf("saving gzip magic compressed = %v, want it saved", err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			for name, f := range compressedFiles(t, loc.Path) {
				if f != tc.want {
					t.Errorf("%s written as %s, want %s", name, f, tc.want)
				}
			}
		})
	}
	if _, err := (maildir.Driver{}).Configure(map[string]string{"mail_plugins": "zlib", "zlib_save": "xz"}); !errors.Is(err, formats.ErrConfig) {
		t.Errorf("Configure(zlib_save=xz) = %v, want a config error", err)
	}
}
