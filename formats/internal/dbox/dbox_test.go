package dbox

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// dovecotFile is Appendix A.1: a u.2 that Dovecot 2.3.19.1 wrote.
var dovecotFile = []byte("2 M1e C6b0bd91a\n" +
	"\x01\x02N          0000000000000035\n" +
	"From: c@example.com\nSubject: two\n\nBody two\nFrom here\n" +
	"\n\x01\x03\nR6b0bd91a\nV3a\nG0ed7e52c1ad90b6b8b24000083ecc375\n\n")

func TestReadDovecotFile(t *testing.T) {
	r, err := NewReader(bytes.NewReader(dovecotFile), int64(len(dovecotFile)), "u.2")
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Header(); h.Version != 2 || h.MsgHeaderSize() != 30 || h.CreateStamp().Unix() != 0x6b0bd91a {
		t.Errorf("Header() = %+v", h)
	}
	m, err := r.ReadMessage(r.FirstOffset())
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Size != 0x35 || m.End != int64(len(dovecotFile)) {
		t.Errorf("message = %+v, want size 0x35 ending at %d", m, len(dovecotFile))
	}
	for _, c := range []struct {
		key  byte
		want string
	}{{'R', "6b0bd91a"}, {'V', "3a"}, {'G', "0ed7e52c1ad90b6b8b24000083ecc375"}} {
		if v, _ := m.Metadata.Get(c.key); v != c.want {
			t.Errorf("Get(%c) = %q, want %q", c.key, v, c.want)
		}
	}
	body, size, err := r.Body(m)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(body)
	if size != 0x35 || string(data) != "From: c@example.com\nSubject: two\n\nBody two\nFrom here\n" {
		t.Errorf("Body() = %q (%d)", data, size)
	}
}

// TestWriteLikeDovecot writes the message of Appendix A.1 and compares the
// bytes.
func TestWriteLikeDovecot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "u.2")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hdr, err := AppendFileHeader(nil, NewFileHeader(time.Unix(0x6b0bd91a, 0)))
	if err != nil {
		t.Fatal(err)
	}
	body := "From: c@example.com\nSubject: two\n\nBody two\nFrom here\n"
	for _, announce := range []int64{-1, int64(len(body)), 3} {
		var w MessageWriter
		w.Reset(f, 0, hdr, announce)
		io.Copy(&w, strings.NewReader(body))
		if w.Size() != 0x35 || w.VSize() != 0x3a {
			t.Errorf("Size, VSize = %d, %d, want 0x35, 0x3a", w.Size(), w.VSize())
		}
		md := Metadata{Fields: []Field{{'R', "6b0bd91a"}, {'V', "3a"}, {'G', "0ed7e52c1ad90b6b8b24000083ecc375"}}}
		end, err := w.Finish(md)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, dovecotFile) || end != int64(len(got)) {
			t.Errorf("announced %d: wrote\n%q (end %d), want\n%q", announce, got, end, dovecotFile)
		}
	}
}

func TestVSize(t *testing.T) {
	for _, c := range []struct {
		chunks []string
		want   int64
	}{
		{[]string{"a\nb\r\nc"}, 7},
		{[]string{"a\r", "\nb"}, 4},
		{[]string{"\n", "\n"}, 4},
		{[]string{"\r", "\r\n", "\n"}, 5},
		{nil, 0},
	} {
		var w MessageWriter
		w.Reset(discardAt{}, 0, nil, -1)
		for _, ch := range c.chunks {
			w.Write([]byte(ch))
		}
		if w.VSize() != c.want {
			t.Errorf("VSize(%q) = %d, want %d", c.chunks, w.VSize(), c.want)
		}
	}
}

type discardAt struct{}

func (discardAt) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

func TestCorrupt(t *testing.T) {
	good := string(dovecotFile)
	for _, c := range []struct {
		name, data string
		offset     int64
	}{
		{"empty", "", 0},
		{"no LF in header", "2 M1e", 0},
		{"bad version", "3 M1e\n", 0},
		{"no M", "2 C5\n", 0},
		{"bad M", "2 Mxyz\n", 0},
		{"truncated msg header", good[:30], 16},
		{"bad magic", strings.Replace(good, "\x01\x02N", "\x01\x05N", 1), 16},
		{"bad size", strings.Replace(good, "0000000000000035", "00000000000000z5", 1), 16},
		{"size past end", strings.Replace(good, "0000000000000035", "0000000000000935", 1), 16},
		{"truncated body", good[:60], 16},
		{"no metadata magic", strings.Replace(good, "\n\x01\x03\n", "\n\x01\x04\n", 1), 16 + 30 + 0x35},
		{"no end of metadata", good[:len(good)-1], 16 + 30 + 0x35},
		{"truncated metadata magic", good[:16+30+0x35+2], 16 + 30 + 0x35},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(c.data), int64(len(c.data)), "u.7")
			if err == nil {
				_, err = r.ReadMessage(r.FirstOffset())
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *CorruptError", err)
			}
			if ce.File != "u.7" || ce.Offset != c.offset {
				t.Errorf("CorruptError{%q, %d}, want offset %d", ce.File, ce.Offset, c.offset)
			}
			if formats.KindOf(err) != formats.KindTemp || !errors.Is(err, ErrCorrupt) {
				t.Errorf("kind %s, Is(ErrCorrupt) %v", formats.KindOf(err), errors.Is(err, ErrCorrupt))
			}
			if !strings.Contains(err.Error(), "force-resync") {
				t.Errorf("error %q does not say force-resync", err)
			}
		})
	}
}

func TestExternalAttachments(t *testing.T) {
	data := strings.Replace(string(dovecotFile), "\nR6b", "\nX10 20 B1 sha/abc\nR6b", 1)
	r, _ := NewReader(strings.NewReader(data), int64(len(data)), "u.2")
	m, err := r.ReadMessage(r.FirstOffset())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = r.Body(m)
	if !errors.Is(err, ErrExternalAttachments) || formats.KindOf(err) != formats.KindNotPossible {
		t.Errorf("Body(X) = %v, want ErrExternalAttachments, NotPossible", err)
	}
}

func TestMetadataLines(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []Field
		n    int
	}{
		{"\n\x01\x03\n\n", nil, 5},
		{"\n\x01\x03\nGabc\r\nV3\n\r\nrest", []Field{{'G', "abc"}, {'V', "3"}}, 15},
		{"\n\x01\x03\nGa\x00bc\n \nx", []Field{{'G', "a"}}, 12},
		{"\n\x01\x03\nGa\n\x00junk\n", []Field{{'G', "a"}}, 13},
		{"\n\x01\x03\nxlower\nG\n\n", []Field{{'x', "lower"}, {'G', ""}}, 14},
		{"\n\x01\x03\nGa\r\r\n\n", []Field{{'G', "a\r"}}, 10},
	} {
		md, n, err := ParseMetadata([]byte(c.in))
		if err != nil || n != c.n || len(md.Fields) != len(c.want) {
			t.Errorf("ParseMetadata(%q) = %v, %d, %v; want %v, %d", c.in, md.Fields, n, err, c.want, c.n)
			continue
		}
		for i := range c.want {
			if md.Fields[i] != c.want[i] {
				t.Errorf("ParseMetadata(%q) field %d = %q, want %q", c.in, i, md.Fields[i], c.want[i])
			}
		}
	}
}

func TestGUID128(t *testing.T) {
	g := GUID128("0ED7E52C1AD90B6B8B24000083ECC375")
	if formats.GUID(g).String() != "0ed7e52c1ad90b6b8b24000083ecc375" {
		t.Errorf("GUID128(hex) = %x", g)
	}
	// The SHA-1 of "1700000000.M1P2.host,S=26,W=27", last 16 bytes
	// (mail_generate_guid_128_hash).
	if got := formats.GUID(GUID128("1700000000.M1P2.host,S=26,W=27")).String(); got != "75b310776ceae012ab4a1f63b63f2af5" {
		t.Errorf("GUID128(non-hex) = %s", got)
	}
	if a, b := NewGUID(), NewGUID(); len(a) != 32 || a == b {
		t.Errorf("NewGUID() = %q, %q", a, b)
	}
}
