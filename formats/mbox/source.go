package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/boxsync/boxsync/formats/internal/zlib"
)

// source gives readers of an mbox file's (decompressed) bytes at any
// offset. A plain file serves them with ReadAt; a compressed one with a
// forward-only decompressor that starts over when asked to go back, so
// reading messages in file order costs one pass.
type source interface {
	at(off int64) (io.Reader, error)
	Close() error
}

type fileSource struct{ f *os.File }

func (s fileSource) at(off int64) (io.Reader, error) {
	return io.NewSectionReader(s.f, off, 1<<62), nil
}

func (s fileSource) Close() error { return nil }

// zSource decompresses f. It keeps the last bytes it decompressed
// (window) so that going back a little, as reading a message's header
// and then its segments does, doesn't start over. Each at() invalidates
// the readers returned before.
type zSource struct {
	f        *os.File
	format   zlib.Format
	rc       io.ReadCloser
	br       *bufio.Reader
	pos      int64  // stream offset of the next byte br yields
	win      []byte // the bytes [pos-len(win), pos)
	restarts int    // how often decompression started over (tests)
}

// zWindow bounds the bytes kept for going back: a header (maxHeader)
// plus the line reader's buffer.
const zWindow = maxHeader + 2*readBuf

func newZSource(f *os.File, format zlib.Format) *zSource {
	return &zSource{f: f, format: format}
}

func (s *zSource) at(off int64) (io.Reader, error) {
	if s.rc != nil && off < s.pos && off >= s.pos-int64(len(s.win)) {
		back := append([]byte(nil), s.win[int64(len(s.win))-(s.pos-off):]...)
		return io.MultiReader(bytes.NewReader(back), &zReader{s: s}), nil
	}
	if s.rc == nil || off < s.pos {
		if s.rc != nil {
			s.rc.Close()
		}
		rc, err := zlib.Decompress(io.NewSectionReader(s.f, 0, 1<<62), s.format)
		if err != nil {
			return nil, err
		}
		s.rc, s.pos, s.win = rc, 0, s.win[:0]
		s.restarts++
		if s.br == nil {
			s.br = bufio.NewReaderSize(rc, readBuf)
		} else {
			s.br.Reset(rc)
		}
	}
	var skip [32 << 10]byte
	for s.pos < off {
		n, err := (&zReader{s: s}).Read(skip[:min(int64(len(skip)), off-s.pos)])
		if err == io.EOF && n == 0 {
			return eofReader{}, nil
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
	}
	return &zReader{s: s}, nil
}

func (s *zSource) Close() error {
	if s.rc != nil {
		err := s.rc.Close()
		s.rc = nil
		return err
	}
	return nil
}

type zReader struct{ s *zSource }

func (r *zReader) Read(p []byte) (int, error) {
	s := r.s
	n, err := s.br.Read(p)
	s.pos += int64(n)
	s.win = append(s.win, p[:n]...)
	if len(s.win) > 2*zWindow {
		s.win = append(s.win[:0], s.win[len(s.win)-zWindow:]...)
	}
	return n, err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// lineReader reads lines with their file offsets.
type lineReader struct {
	src source
	br  *bufio.Reader
	off int64 // offset of the next unread byte
	buf []byte
}

const readBuf = 64 << 10

func newLineReader(src source, off int64) (*lineReader, error) {
	return newLineReaderSize(src, off, readBuf)
}

// newLineReaderSize makes a line reader with a smaller buffer, for
// reading one message's header.
func newLineReaderSize(src source, off int64, size int) (*lineReader, error) {
	r, err := src.at(off)
	if err != nil {
		return nil, err
	}
	return &lineReader{src: src, br: bufio.NewReaderSize(r, size), off: off}, nil
}

// seek moves to off.
func (lr *lineReader) seek(off int64) error {
	r, err := lr.src.at(off)
	if err != nil {
		return err
	}
	lr.br.Reset(r)
	lr.off = off
	return nil
}

// lineInfo describes one line.
type lineInfo struct {
	start int64
	n     int64  // whole length, LF included
	data  []byte // its first bytes (at most keep), valid until the next call
	lf    bool   // ends with LF (else the file ends)
	crlf  bool   // ends with CRLF
}

func (l *lineInfo) blank() bool {
	return l.lf && (l.n == 1 || (l.n == 2 && l.crlf))
}

// next reads the next line, keeping at most keep of its bytes. n == 0
// means the end of the file.
func (lr *lineReader) next(keep int) (lineInfo, error) {
	li := lineInfo{start: lr.off}
	lr.buf = lr.buf[:0]
	var last2 [2]byte // the line's last two bytes
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if len(chunk) > 0 {
			if room := keep - len(lr.buf); room > 0 {
				lr.buf = append(lr.buf, chunk[:min(room, len(chunk))]...)
			}
			if len(chunk) >= 2 {
				last2 = [2]byte{chunk[len(chunk)-2], chunk[len(chunk)-1]}
			} else {
				last2 = [2]byte{last2[1], chunk[0]}
			}
			li.n += int64(len(chunk))
			lr.off += int64(len(chunk))
		}
		if err == nil {
			li.lf = true
			li.crlf = li.n >= 2 && last2[0] == '\r'
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		return li, fmt.Errorf("read at offset %d: %w", lr.off, err)
	}
	li.data = lr.buf
	return li, nil
}
