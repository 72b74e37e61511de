package dbox

import (
	"bufio"
	"errors"
	"io"
	"strconv"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/zlib"
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
	vs        formats.VSizeCounter // virtual size of the plain bytes
	err       error
	zw        io.WriteCloser // compressor set by Compress, or nil
	stored    int64          // body bytes written to the file
}

// BufferSize is the write buffer of a MessageWriter.
const BufferSize = 64 << 10

// Reset starts a message at off in f. prefix, when not empty, is written
// first (the file header line of a new file); the message header follows
// it. size is the body size if known (the header is then written right
// away), or -1.
func (w *MessageWriter) Reset(f io.WriterAt, off int64, prefix []byte, size int64) {
	w.f, w.announced, w.size, w.vs, w.err = f, size, 0, formats.VSizeCounter{}, nil
	w.zw, w.stored = nil, 0
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

// Compress makes the message's stored bytes a stream compressed as f at
// level, as Dovecot's zlib plugin saves with zlib_save
// (zlib_mail_save_compress_begin): the message header then gives the
// compressed size, and Finish writes the plain size as 'Z' metadata.
// Call it after Reset, before Write; None leaves the message plain.
func (w *MessageWriter) Compress(f zlib.Format, level int) error {
	if f == zlib.None {
		return nil
	}
	zw, err := zlib.NewWriter(storedWriter{w}, f, level)
	if err != nil {
		return err
	}
	w.zw = zw
	return nil
}

// storedWriter writes body bytes to the file, counting them.
type storedWriter struct{ w *MessageWriter }

func (s storedWriter) Write(p []byte) (int, error) {
	n, err := s.w.bw.Write(p)
	s.w.stored += int64(n)
	return n, err
}

// Write appends body bytes, counting them.
func (w *MessageWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.count(p)
	var n int
	var err error
	if w.zw != nil {
		n, err = w.zw.Write(p)
	} else {
		n, err = storedWriter{w}.Write(p)
	}
	w.err = err
	return n, err
}

// count adds p to the size and the virtual size.
func (w *MessageWriter) count(p []byte) {
	w.size += int64(len(p))
	w.vs.Write(p)
}

// Size is the number of body bytes written so far (before compression).
func (w *MessageWriter) Size() int64 { return w.size }

// VSize is their virtual size.
func (w *MessageWriter) VSize() int64 { return w.vs.VSize() }

// Finish writes md's metadata block, flushes, and fixes the message header
// if the body size differs from the one announced to Reset. It returns the
// offset after the message: where the next one goes. A compressed
// message's metadata starts with 'Z', its plain size, when that differs
// from the stored size, as dbox_save_write_metadata writes it.
func (w *MessageWriter) Finish(md Metadata) (end int64, err error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.zw != nil {
		if err := w.zw.Close(); err != nil {
			w.err = err
			return 0, err
		}
		// QUIRK: Dovecot leaves Z out when the compressed and plain
		// sizes happen to be equal (its reader detects compression by
		// magic bytes). We always write it: our reader decompresses
		// only what Z marks, so plain mail that merely starts like a
		// gzip stream is never altered.
		md.Fields = append([]Field{{Key: MetaPhysicalSize, Value: strconv.FormatInt(w.size, 16)}}, md.Fields...)
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
	if w.stored != w.announced {
		hdr := AppendMsgHeader(nil, w.stored)
		if _, err := w.f.WriteAt(hdr, w.start); err != nil {
			return 0, err
		}
	}
	w.err = errors.New("dbox: message already finished")
	return w.start + MsgHeaderSize + w.stored + int64(len(meta)), nil
}
