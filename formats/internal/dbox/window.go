package dbox

import (
	"io"
	"sync"
)

// WindowReader is an io.ReaderAt over a file read mostly in order (an
// mdbox m.* file: header, bytes, metadata, next header, ...). It keeps
// one window of the file: a read that falls inside it is a copy, one that
// does not refills the window from its offset with one pread, and one at
// least as large as the window goes to the file directly. Reading a run
// of small messages then costs a system call per window instead of
// several per message (message header, metadata, bytes). It is safe for
// concurrent use. Release gives the window's memory back until the next
// read (a reader of many files keeps only the one in use filled).
type WindowReader struct {
	r      io.ReaderAt
	mu     sync.Mutex
	window int
	buf    []byte // nil after Release
	off    int64  // file offset of buf[0]
	n      int    // valid bytes in buf
	size   int64  // file size: the window never reads beyond it
}

// NewWindowReader reads r, a file of size bytes, through a window of
// window bytes.
func NewWindowReader(r io.ReaderAt, size int64, window int) *WindowReader {
	return &WindowReader{r: r, window: window, size: size}
}

// windows holds released windows (*[]byte) for the next reader to fill.
var windows sync.Pool

// Release drops the window's content and returns its memory to a pool
// for the next window of the same size; the next read refills it.
func (w *WindowReader) Release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf != nil {
		b := w.buf
		windows.Put(&b)
		w.buf, w.n = nil, 0
	}
}

// ReadAt implements io.ReaderAt.
func (w *WindowReader) ReadAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(p) >= w.window {
		return w.r.ReadAt(p, off)
	}
	if off < w.off || off+int64(len(p)) > w.off+int64(w.n) {
		if w.buf == nil {
			if b, ok := windows.Get().(*[]byte); ok && len(*b) == w.window {
				w.buf = *b
			} else {
				w.buf = make([]byte, w.window)
			}
		}
		// refill at off; a short read at the end of the file is fine,
		// what the caller needs is checked below
		w.off, w.n = off, 0
		n, err := w.r.ReadAt(w.buf[:min(int64(len(w.buf)), max(w.size-off, 0))], off)
		w.n = n
		if n < len(p) && err != nil && err != io.EOF {
			return 0, err
		}
	}
	start := off - w.off
	n := copy(p, w.buf[start:w.n])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
