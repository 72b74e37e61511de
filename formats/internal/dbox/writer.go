package dbox

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// MessageWriter writes one message into a dbox file at an offset, the way
// Dovecot's dbox save does (dbox-save.c): the 30-byte message header, the
// body streamed while its size and virtual size are counted, the metadata
// block, and then the message header again if the size turned out other
// than announced. A MessageWriter is reusable with Reset, which keeps its
// buffer.
type MessageWriter struct {
	f         io.WriterAt
	start     int64 // offset of the message header
	announced int64 // size written into the header, -1: placeholder
	bw        *bufio.Writer
	ow        *io.OffsetWriter
	size      int64
	vsize     int64
	prevCR    bool
	err       error
}

// BufferSize is the write buffer of a MessageWriter.
const BufferSize = 64 << 10

// Reset starts a message at off in f. prefix, when not empty, is written
// first (the file header line of a new file); the message header follows
// it. size is the body size if known (the header is then written right
// away), or -1.
func (w *MessageWriter) Reset(f io.WriterAt, off int64, prefix []byte, size int64) {
	w.f, w.announced, w.size, w.vsize, w.prevCR, w.err = f, size, 0, 0, false, nil
	w.start = off + int64(len(prefix))
	w.ow = io.NewOffsetWriter(f, off)
	if w.bw == nil {
		w.bw = bufio.NewWriterSize(w.ow, BufferSize)
	} else {
		w.bw.Reset(w.ow)
	}
	w.bw.Write(prefix)
	var hdr [MsgHeaderSize]byte
	AppendMsgHeader(hdr[:0], max(size, 0))
	w.bw.Write(hdr[:])
}

// Write appends body bytes, counting them.
func (w *MessageWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.count(p)
	n, err := w.bw.Write(p)
	w.err = err
	return n, err
}

// count adds p to the size and the virtual size (every LF not preceded by
// CR counts twice, as RFC822.SIZE does).
func (w *MessageWriter) count(p []byte) {
	w.size += int64(len(p))
	w.vsize += int64(len(p))
	rest := p
	prevCR := w.prevCR
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		if (i == 0 && !prevCR) || (i > 0 && rest[i-1] != '\r') {
			w.vsize++
		}
		prevCR = false
		rest = rest[i+1:]
	}
	if len(p) > 0 {
		w.prevCR = p[len(p)-1] == '\r'
	}
}

// Size is the number of body bytes written so far.
func (w *MessageWriter) Size() int64 { return w.size }

// VSize is their virtual size.
func (w *MessageWriter) VSize() int64 { return w.vsize }

// Finish writes md's metadata block, flushes, and fixes the message header
// if the body size differs from the one announced to Reset. It returns the
// offset after the message: where the next one goes.
func (w *MessageWriter) Finish(md Metadata) (end int64, err error) {
	if w.err != nil {
		return 0, w.err
	}
	meta, err := AppendMetadata(nil, md)
	if err != nil {
		return 0, err
	}
	if _, err := w.bw.Write(meta); err != nil {
		return 0, err
	}
	if err := w.bw.Flush(); err != nil {
		return 0, err
	}
	if w.size != w.announced {
		hdr := AppendMsgHeader(nil, w.size)
		if _, err := w.f.WriteAt(hdr, w.start); err != nil {
			return 0, err
		}
	}
	w.err = errors.New("dbox: message already finished")
	return w.start + MsgHeaderSize + w.size + int64(len(meta)), nil
}
