package zlib

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Format
	}{
		{"gzip", "\x1f\x8b\x08\x00", Gzip},
		{"bzip2", "BZh91AY&SY", Bzip2},
		{"bzip2 empty", "BZh9\x17rE8P", Bzip2},
		{"bzip2 bad level", "BZh0", None},
		{"xz", "\xfd7zXZ\x00\x00", XZ},
		{"lz4", lz4Magic + "\x00\x01\x00\x00", LZ4},
		{"zstd", "\x28\xb5\x2f\xfd\x00", Zstd},
		{"mail", "From: a@example.com\n", None},
		{"short", "\x1f", None},
		{"empty", "", None},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Detect([]byte(tc.in)); got != tc.want {
				t.Errorf("Detect(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestExt(t *testing.T) {
	tests := []struct {
		name string
		want Format
	}{
		{"Archive.gz", Gzip}, {"a.bz2", Bzip2}, {"a.xz", XZ}, {"a.lz4", LZ4},
		{"a.zstd", Zstd}, {"a.zst", Zstd}, {".gz", None}, {"inbox", None}, {"gz", None},
	}
	for _, tc := range tests {
		if got := FromExt(tc.name); got != tc.want {
			t.Errorf("FromExt(%q) = %s, want %s", tc.name, got, tc.want)
		}
	}
	for _, f := range []Format{Gzip, Bzip2, XZ, LZ4, Zstd} {
		if got := FromExt("x" + f.Ext()); got != f {
			t.Errorf("FromExt(x%s) = %s, want %s", f.Ext(), got, f)
		}
		if got, err := ParseFormat(f.String()); err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %s, %v", f.String(), got, err)
		}
	}
}

func sample(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	var b bytes.Buffer
	words := []string{"From ", "hello", "\r\n", "\n", "Subject: x", "\x00", "\xff", " ", "lorem ipsum dolor"}
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

func TestRoundTrip(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	for _, f := range []Format{Gzip, Zstd} {
		lo, _, hi, _ := f.Levels()
		for _, level := range []int{DefaultLevel, lo, hi} {
			for _, size := range []int{0, 1, 100, 300 << 10} {
				data := sample(seed+uint64(size), size)
				var buf bytes.Buffer
				w, err := NewWriter(&buf, f, level)
				if err != nil {
					t.Fatalf("NewWriter(%s, %d) = %v", f, level, err)
				}
				if _, err := w.Write(data); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if got := Detect(buf.Bytes()); got != f {
					t.Errorf("Detect(%s output) = %s", f, got)
				}
				r, got, err := NewReader(&buf)
				if err != nil || got != f {
					t.Fatalf("NewReader(%s) = %s, %v", f, got, err)
				}
				out, err := io.ReadAll(r)
				if err != nil {
					t.Fatalf("%s level %d size %d: read = %v", f, level, size, err)
				}
				r.Close()
				if !bytes.Equal(out, data) {
					t.Errorf("%s level %d size %d: round trip differs", f, level, size)
				}
			}
		}
	}
}

func TestPassThrough(t *testing.T) {
	for _, in := range []string{"", "x", "From: a\n\nbody\n", "\x1f"} {
		r, f, err := NewReader(strings.NewReader(in))
		if err != nil || f != None {
			t.Fatalf("NewReader(%q) = %s, %v", in, f, err)
		}
		out, _ := io.ReadAll(r)
		if string(out) != in {
			t.Errorf("NewReader(%q) read %q", in, out)
		}
	}
}

func TestCorrupt(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Gzip, DefaultLevel)
	w.Write(sample(1, 5000))
	w.Close()
	data := buf.Bytes()
	for name, in := range map[string][]byte{
		"gzip truncated": data[:len(data)/2],
		"gzip garbage":   append(append([]byte{}, data[:20]...), bytes.Repeat([]byte{0xff}, 100)...),
		"lz4 truncated":  []byte(lz4Magic + "\x00\x01\x00\x00\x00\x00\x00\x10ab"),
		"lz4 bad chunk":  []byte(lz4Magic + "\x00\x01\x00\x00\x00\x00\x00\x02\xf0\x01"),
		"zstd garbage":   []byte("\x28\xb5\x2f\xfd\xff\xff\xff\xff\xff"),
	} {
		r, _, err := NewReader(bytes.NewReader(in))
		if err == nil {
			_, err = io.ReadAll(r)
		}
		if formats.KindOf(err) != formats.KindInvalidData {
			t.Errorf("%s: err = %v (kind %s), want InvalidData", name, err, formats.KindOf(err))
		}
	}
	_, _, err := NewReader(strings.NewReader("\xfd7zXZ\x00rest"))
	if formats.KindOf(err) != formats.KindNotPossible {
		t.Errorf("xz: err = %v, want NotPossible", err)
	}
}

// lz4Stream frames blocks the way Dovecot's ostream-lz4 does.
func lz4Stream(blocks ...[]byte) []byte {
	b := []byte(lz4Magic + "\x00\x01\x00\x00") // max chunk 64 KiB
	for _, blk := range blocks {
		b = append(b, byte(len(blk)>>24), byte(len(blk)>>16), byte(len(blk)>>8), byte(len(blk)))
		b = append(b, blk...)
	}
	return b
}

func TestLZ4(t *testing.T) {
	// Hand-made blocks: literals only; a literal then an overlapping
	// match ("ab" + 10 bytes copied from offset 2); long lengths.
	long := bytes.Repeat([]byte("x"), 300)
	tests := []struct {
		name  string
		block []byte
		want  string
	}{
		{"literals", append([]byte{0x50}, "hello"...), "hello"},
		{"match", []byte{0x26, 'a', 'b', 0x02, 0x00, 0x00}, "abababababab"},
		{"long literals", append([]byte{0xf0, 255, 30}, long...), string(long)},
		{"long match", []byte{0x1f, 'z', 0x01, 0x00, 20, 0x00}, strings.Repeat("z", 1+15+20+4)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, f, err := NewReader(bytes.NewReader(lz4Stream(tc.block, tc.block)))
			if err != nil || f != LZ4 {
				t.Fatalf("NewReader = %s, %v", f, err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want+tc.want {
				t.Errorf("read %q, want %q twice", got, tc.want)
			}
		})
	}
}

func TestParseSettings(t *testing.T) {
	tests := []struct {
		name    string
		conf    map[string]string
		want    Settings
		wantErr bool
	}{
		{"off", map[string]string{"plugin/zlib_save": "zstd"}, Settings{Level: DefaultLevel}, false},
		{"read only", map[string]string{"mail_plugins": "quota zlib"}, Settings{Enabled: true, Level: DefaultLevel}, false},
		{"zstd", map[string]string{"mail_plugins": "zlib", "plugin/zlib_save": "zstd"}, Settings{Enabled: true, Save: Zstd, Level: DefaultLevel}, false},
		{"gz 9", map[string]string{"mail_plugins": "zlib", "plugin/zlib_save": "gz", "plugin/zlib_save_level": "9"}, Settings{Enabled: true, Save: Gzip, Level: 9}, false},
		{"bad level", map[string]string{"mail_plugins": "zlib", "plugin/zlib_save": "gz", "plugin/zlib_save_level": "10"}, Settings{}, true},
		{"unknown", map[string]string{"mail_plugins": "zlib", "plugin/zlib_save": "rar"}, Settings{}, true},
		{"xz unwritable", map[string]string{"mail_plugins": "zlib", "plugin/zlib_save": "xz"}, Settings{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSettings(func(k string) (string, bool) { v, ok := tc.conf[k]; return v, ok })
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseSettings = %+v, %v; want error %v", got, err, tc.wantErr)
			}
			if err != nil {
				if formats.KindOf(err) != formats.KindConfig {
					t.Errorf("error kind %s, want Config", formats.KindOf(err))
				}
				return
			}
			if got != tc.want {
				t.Errorf("ParseSettings = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDovecotMaildir has Dovecot's zlib plugin compress mail into a
// Maildir and reads the message files back with this package.
func TestDovecotMaildir(t *testing.T) {
	msgs := [][]byte{
		[]byte("From: a@example.com\nSubject: one\n\nHello\nFrom here\n"),
		[]byte("Subject: big\n\n" + strings.Repeat("lorem ipsum dolor sit amet\n", 20000)),
		[]byte("Subject: no newline\n\nlast"),
	}
	for _, save := range []string{"zstd", "gz", "bz2", "lz4"} {
		t.Run(save, func(t *testing.T) {
			d := dovecottest.New(t, "maildir:~/Maildir",
				"mail_plugins = $mail_plugins zlib",
				"plugin {\n  zlib_save = "+save+"\n  zlib_save_level = 6\n}")
			for _, m := range msgs {
				d.Save(t, "INBOX", m)
			}
			want, _ := ParseFormat(save)
			files, err := filepath.Glob(filepath.Join(d.Root(), "new", "*"))
			if err != nil || len(files) != len(msgs) {
				t.Fatalf("maildir new/ holds %d files (%v), want %d", len(files), err, len(msgs))
			}
			got := map[string]bool{}
			for _, path := range files {
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				r, format, err := NewReader(f)
				if err != nil {
					t.Fatal(err)
				}
				if format != want {
					t.Errorf("%s: detected %s, want %s", filepath.Base(path), format, want)
				}
				data, err := io.ReadAll(r)
				r.Close()
				f.Close()
				if err != nil {
					t.Fatalf("%s: %v", filepath.Base(path), err)
				}
				got[string(data)] = true
			}
			for i, m := range msgs {
				if !got[string(m)] {
					t.Errorf("message %d not found among the decompressed files", i)
				}
			}
			// And Dovecot itself reads them back as the same bytes.
			out := d.MustDoveadm(t, "-f", "pager", "fetch", "text", "all")
			for i, m := range msgs {
				if !strings.Contains(out, string(m)) {
					t.Errorf("doveadm fetch text lacks message %d", i)
				}
			}
			d.CheckLogClean(t)
		})
	}
}

// FuzzLZ4: the block decoder never panics nor writes past its buffer,
// and Detect+NewReader never panic on any input.
func FuzzLZ4(f *testing.F) {
	f.Add([]byte{0x26, 'a', 'b', 0x02, 0x00, 0x00})
	f.Add(append([]byte{0xf0, 255, 30}, bytes.Repeat([]byte("x"), 300)...))
	f.Add([]byte{0x1f, 'z', 0x01, 0x00, 20, 0x00})
	f.Fuzz(func(t *testing.T, block []byte) {
		out, err := lz4Block(make([]byte, 0, 4096), block)
		if err == nil && len(out) > 4096 {
			t.Fatalf("decoded %d bytes into a 4096-byte buffer", len(out))
		}
		r, _, err := NewReader(bytes.NewReader(block))
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(r, 1<<20))
			r.Close()
		}
		r, _, err = NewReader(bytes.NewReader(lz4Stream(block)))
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(r, 1<<20))
			r.Close()
		}
	})
}
