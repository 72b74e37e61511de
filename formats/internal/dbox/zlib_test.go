package dbox

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/zlib"
)

type memFile struct{ b []byte }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if n := int(off) + len(p); n > len(m.b) {
		m.b = append(m.b, make([]byte, n-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

// TestWriteCompressed writes messages as the zlib plugin does and reads
// them back: 'Z' first in the metadata, the header the stored size.
func TestWriteCompressed(t *testing.T) {
	body := []byte("Subject: z\n\n" + strings.Repeat("hello\n", 100))
	for _, f := range []zlib.Format{zlib.Gzip, zlib.Zstd} {
		var mf memFile
		var w MessageWriter
		hdr, _ := AppendFileHeader(nil, NewFileHeader(time.Unix(1e9, 0)))
		w.Reset(&mf, 0, hdr, int64(len(body)))
		if err := w.Compress(f, zlib.DefaultLevel); err != nil {
			t.Fatal(err)
		}
		w.Write(body)
		end, err := w.Finish(SaveMetadata(formats.Message{}, "g", time.Unix(1e9, 0), w.VSize(), ""))
		if err != nil || end != int64(len(mf.b)) {
			t.Fatalf("%v: Finish = %d, %v; file has %d bytes", f, end, err, len(mf.b))
		}
		r, err := NewReader(bytes.NewReader(mf.b), int64(len(mf.b)), "u.1")
		if err != nil {
			t.Fatal(err)
		}
		m, err := r.ReadMessage(r.FirstOffset())
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Size >= int64(len(body)) || m.Metadata.Fields[0].Key != MetaPhysicalSize || m.Metadata.Fields[0].Value != "264" {
			t.Errorf("%v: header size %d, metadata %v", f, m.Header.Size, m.Metadata.Fields)
		}
		if v, _ := m.Metadata.Get(MetaVirtualSize); v != "2ca" {
			t.Errorf("%v: V = %s, want 2ca", f, v)
		}
		rc, size, err := r.Body(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || size != int64(len(body)) || !bytes.Equal(got, body) {
			t.Errorf("%v: read back %d bytes (size %d), %v", f, len(got), size, err)
		}
	}
}
