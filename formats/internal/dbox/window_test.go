package dbox

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// countingReaderAt counts the reads that reach the file.
type countingReaderAt struct {
	r     *bytes.Reader
	reads int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return c.r.ReadAt(p, off)
}

// TestWindowReader: random reads through the window return what the file
// has, io.EOF included, also right after a Release (and with a window of
// another size in the pool); reads in order reach the file once per
// window.
func TestWindowReader(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 1))
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(rnd.IntN(256))
	}
	file := &countingReaderAt{r: bytes.NewReader(data)}
	w := NewWindowReader(file, int64(len(data)), 4096)
	other := NewWindowReader(bytes.NewReader(data), int64(len(data)), 1000)
	for i := range 5000 {
		switch rnd.IntN(20) {
		case 0:
			w.Release()
		case 1:
			other.ReadAt(make([]byte, 10), int64(i))
			other.Release()
		}
		off := rnd.Int64N(int64(len(data)) + 10)
		p := make([]byte, 1+rnd.IntN(9000))
		n, err := w.ReadAt(p, off)
		wantN, wantErr := bytes.NewReader(data).ReadAt(make([]byte, len(p)), off)
		if n != wantN || (err == io.EOF) != (wantErr == io.EOF) || (err != nil) != (wantErr != nil) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, %v", len(p), off, n, err, wantN, wantErr)
		}
		if n > 0 && !bytes.Equal(p[:n], data[off:off+int64(n)]) {
			t.Fatalf("ReadAt(%d bytes at %d): wrong bytes", len(p), off)
		}
	}
	file.reads = 0
	for off := 0; off < len(data); off += 100 {
		p := make([]byte, 100)
		if _, err := w.ReadAt(p, int64(off)); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	if want := len(data)/4096 + 2; file.reads > want {
		t.Errorf("reading in order reached the file %d times, want at most %d", file.reads, want)
	}
}
