package dbox

import (
	"bytes"
	"reflect"
	"testing"
)

func FuzzFileHeader(f *testing.F) {
	for _, s := range []string{"2 M1e C6b0bd91a", "1 M1e A0 C5", "2 M1e\r", "2  M20 Zfoo", "2 M1e X\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		h, err := ParseFileHeader(line)
		if err != nil {
			return
		}
		out, err := AppendFileHeader(nil, h)
		if err != nil {
			t.Fatalf("AppendFileHeader(%+v) = %v", h, err)
		}
		if out[len(out)-1] != '\n' || bytes.IndexByte(out, '\n') != len(out)-1 {
			t.Fatalf("AppendFileHeader(%+v) = %q: not one line", h, out)
		}
		h2, err := ParseFileHeader(out[:len(out)-1])
		if err != nil || !reflect.DeepEqual(h, h2) {
			t.Fatalf("round trip %q: %+v -> %q -> %+v, %v", line, h, out, h2, err)
		}
	})
}

func FuzzMetadata(f *testing.F) {
	for _, s := range []string{
		"\n\x01\x03\nR6b0bd91a\nV3a\nG0ed7e52c1ad90b6b8b24000083ecc375\n\n",
		"\n\x01\x03\nGa\r\r\n\n", "\n\x01\x03\n \n", "\n\x01\x03\nP\x00x\n\n", "\n\x01\x03\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		md, n, err := ParseMetadata(data)
		if err != nil {
			return
		}
		if n < len(MagicPost)+1 || n > len(data) {
			t.Fatalf("ParseMetadata(%q) used %d bytes", data, n)
		}
		out, err := AppendMetadata(nil, md)
		if err != nil {
			t.Fatalf("AppendMetadata(%q) = %v", md.Fields, err)
		}
		md2, n2, err := ParseMetadata(out)
		if err != nil || n2 != len(out) || !reflect.DeepEqual(md, md2) {
			t.Fatalf("round trip %q: %q -> %q -> %q (%d), %v", data, md.Fields, out, md2.Fields, n2, err)
		}
	})
}

// FuzzReader checks that no file makes the reader panic, and that what
// it reads can be written back the same.
func FuzzReader(f *testing.F) {
	f.Add(dovecotFile)
	f.Add(dovecotFile[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), int64(len(data)), "f")
		if err != nil {
			return
		}
		off := r.FirstOffset()
		for i := 0; i < 10; i++ {
			m, err := r.ReadMessage(off)
			if err != nil {
				return
			}
			if m.End <= off || m.End > int64(len(data)) {
				t.Fatalf("message at %d ends at %d (file %d)", off, m.End, len(data))
			}
			if body, _, err := r.Body(m); err == nil {
				body.Close()
			}
			off = m.End
			if off == int64(len(data)) {
				return
			}
		}
	})
}
