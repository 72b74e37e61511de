package dbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/zlib"
)

// Reader reads the messages of one dbox file through an io.ReaderAt, so
// that bodies can be streamed with io.SectionReader while other messages of
// the file are located. It holds no state beyond the parsed file header and
// is safe for concurrent use if its io.ReaderAt is.
type Reader struct {
	r      io.ReaderAt
	size   int64
	name   string
	header FileHeader
	hdrLen int64 // bytes of the header line, LF included
	msgHdr int64 // the file's 'M'
}

// NewReader parses the file header line of a dbox file of size bytes. name
// is the file's path, used in errors.
func NewReader(r io.ReaderAt, size int64, name string) (*Reader, error) {
	n := min(size, MaxHeaderLine+1)
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, err
	}
	i := bytes.IndexByte(buf, '\n')
	if i < 0 {
		if n == size {
			return nil, corruptf(name, 0, "EOF while reading file header")
		}
		return nil, corruptf(name, 0, "file header line longer than %d bytes", MaxHeaderLine)
	}
	h, err := ParseFileHeader(buf[:i])
	if err != nil {
		return nil, corruptf(name, 0, "%s", err)
	}
	return &Reader{r: r, size: size, name: name, header: h, hdrLen: int64(i + 1), msgHdr: int64(h.MsgHeaderSize())}, nil
}

// Header is the file header.
func (r *Reader) Header() FileHeader { return r.header }

// FirstOffset is the offset of the file's first message.
func (r *Reader) FirstOffset() int64 { return r.hdrLen }

// Size is the file size the Reader was made with.
func (r *Reader) Size() int64 { return r.size }

// Message is one message located in a dbox file.
type Message struct {
	Offset     int64 // of the message header
	BodyOffset int64 // of the stored message bytes
	Header     MsgHeader
	Metadata   Metadata
	End        int64 // after the metadata block: where the next message starts
}

// ReadMessage reads the message header at off and the metadata block after
// the message (dbox_file_seek and dbox_file_metadata_read). Damage is a
// *CorruptError naming the file and offset.
func (r *Reader) ReadMessage(off int64) (*Message, error) {
	if off < r.hdrLen {
		return nil, fmt.Errorf("dbox: %s: offset %d is inside the file header", r.name, off)
	}
	if off+r.msgHdr > r.size {
		return nil, corruptf(r.name, off, "EOF reading msg header (got %d/%d bytes)", max(r.size-off, 0), r.msgHdr)
	}
	hb := make([]byte, r.msgHdr)
	if err := r.readAt(hb, off); err != nil {
		return nil, err
	}
	h, err := ParseMsgHeader(hb)
	if err != nil {
		return nil, corruptf(r.name, off, "%s", err)
	}
	m := &Message{Offset: off, BodyOffset: off + r.msgHdr, Header: h}
	metaOff := m.BodyOffset + h.Size
	if h.Size > r.size || metaOff > r.size {
		return nil, corruptf(r.name, off, "message size %d runs past the end of the file (%d bytes)", h.Size, r.size)
	}
	chunk := int64(512)
	for {
		n := min(chunk, r.size-metaOff)
		buf := make([]byte, n)
		if err := r.readAt(buf, metaOff); err != nil {
			return nil, err
		}
		md, used, err := parseMetadata(buf)
		switch {
		case err == nil:
			m.Metadata = md
			m.End = metaOff + int64(used)
			return m, nil
		case err != errShort:
			return nil, corruptf(r.name, metaOff, "%s", err)
		case n < chunk:
			if n < int64(len(MagicPost)) {
				return nil, corruptf(r.name, metaOff, "Unexpected EOF while reading metadata header")
			}
			return nil, corruptf(r.name, metaOff, "missing end-of-metadata line")
		case chunk >= MaxMetadata:
			return nil, corruptf(r.name, metaOff, "metadata block longer than %d bytes", MaxMetadata)
		}
		chunk *= 4
	}
}

func (r *Reader) readAt(b []byte, off int64) error {
	n, err := r.r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == io.EOF || err == nil {
		return corruptf(r.name, off+int64(n), "file truncated (read %d of %d bytes)", n, len(b))
	}
	return err
}

// Stored returns the message's bytes as they are in the file: exactly
// Header.Size bytes.
func (r *Reader) Stored(m *Message) *io.SectionReader {
	return io.NewSectionReader(r.r, m.BodyOffset, m.Header.Size)
}

// PlainSize is the message's size: the 'Z' metadata when present (the
// stored bytes are compressed), else the stored size
// (dbox_file_get_plaintext_size).
func (m *Message) PlainSize() (int64, error) {
	z, ok, err := m.Metadata.Hex(MetaPhysicalSize)
	if err != nil || !ok {
		return m.Header.Size, nil // Dovecot ignores a bad Z
	}
	if z > 1<<62 {
		return m.Header.Size, nil
	}
	return int64(z), nil
}

// Body returns a reader of the message's bytes and their number. A message
// saved with Dovecot's zlib plugin (stored bytes compressed, 'Z' giving the
// plain size) is decompressed; one with external attachments ('X') fails
// with ErrExternalAttachments (Kind NotPossible), since the file alone does
// not hold it. The reader fails with a *CorruptError if the message turns
// out shorter or longer than its size.
func (r *Reader) Body(m *Message) (io.ReadCloser, int64, error) {
	if _, ok := m.Metadata.Get(MetaExtRef); ok {
		return nil, 0, &formats.Error{Kind: formats.KindNotPossible, Op: "dbox", Path: r.name, Err: ErrExternalAttachments}
	}
	stored := r.Stored(m)
	size, _ := m.PlainSize()
	if r.plain(m, stored) {
		return io.NopCloser(stored), m.Header.Size, nil
	}
	zr, _, err := zlib.NewReader(stored)
	if err != nil {
		return nil, 0, corruptf(r.name, m.BodyOffset, "compressed message: %s", err)
	}
	return &exactReader{rc: zr, left: size, name: r.name, off: m.BodyOffset}, size, nil
}

// plain tells whether Body yields the stored bytes as they are.
func (r *Reader) plain(m *Message, stored *io.SectionReader) bool {
	size, _ := m.PlainSize()
	_, ok := m.Metadata.Get(MetaPhysicalSize)
	return !ok || size == m.Header.Size && !looksCompressed(stored)
}

// PlainAt tells whether Body yields exactly the stored bytes, which then
// are Header.Size bytes at BodyOffset of the file: neither compressed nor
// stored without external attachments.
func (r *Reader) PlainAt(m *Message) bool {
	if _, ok := m.Metadata.Get(MetaExtRef); ok {
		return false
	}
	return r.plain(m, r.Stored(m))
}

func looksCompressed(s *io.SectionReader) bool {
	head := make([]byte, zlib.MagicLen)
	n, _ := s.ReadAt(head, 0)
	return zlib.LooksCompressed(head[:n])
}

// exactReader yields exactly left bytes of rc, failing when rc has fewer or
// more.
type exactReader struct {
	rc   io.ReadCloser
	left int64
	name string
	off  int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		var one [1]byte
		if n, _ := e.rc.Read(one[:]); n > 0 {
			return 0, corruptf(e.name, e.off, "decompressed message is longer than its size ('Z' metadata)")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.rc.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, corruptf(e.name, e.off, "decompressed message is %d bytes shorter than its size ('Z' metadata)", e.left)
	}
	if err == io.EOF {
		err = nil
	}
	if err != nil && !errors.Is(err, ErrCorrupt) {
		err = corruptf(e.name, e.off, "compressed message: %s", err)
	}
	return n, err
}

func (e *exactReader) Close() error { return e.rc.Close() }
