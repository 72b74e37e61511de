package zlib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// dovecot 2.3.19.1 iostream-lz4.h: ISTREAM_LZ4_CHUNK_SIZE, the largest
// chunk a reader accepts (compressed or not).
const lz4MaxChunk = 1 << 20

// lz4Reader reads Dovecot's lz4 framing: the 19-byte header, then chunks
// of a big-endian u32 length and one LZ4 block. It holds one chunk.
type lz4Reader struct {
	r        io.Reader
	header   bool
	maxChunk int
	comp     []byte
	out      []byte // decoded, not yet returned
	buf      []byte
	err      error
}

func newLZ4Reader(r io.Reader) *lz4Reader { return &lz4Reader{r: r} }

func (z *lz4Reader) Read(p []byte) (int, error) {
	for len(z.out) == 0 {
		if z.err != nil {
			return 0, z.err
		}
		z.err = z.next()
	}
	n := copy(p, z.out)
	z.out = z.out[n:]
	return n, nil
}

func (z *lz4Reader) next() error {
	if !z.header {
		var hdr [len(lz4Magic) + 4]byte
		if _, err := io.ReadFull(z.r, hdr[:]); err != nil {
			return fmt.Errorf("lz4 header: %w", unexpected(err))
		}
		if string(hdr[:len(lz4Magic)]) != lz4Magic {
			return errors.New("wrong magic in header (not lz4 file?)")
		}
		z.maxChunk = int(binary.BigEndian.Uint32(hdr[len(lz4Magic):]))
		if z.maxChunk > lz4MaxChunk || z.maxChunk <= 0 {
			return fmt.Errorf("lz4 max chunk size %d out of range", z.maxChunk)
		}
		z.header = true
	}
	var lenBuf [4]byte
	if _, err := io.ReadFull(z.r, lenBuf[:]); err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("lz4 chunk length: %w", unexpected(err))
	}
	n := int(binary.BigEndian.Uint32(lenBuf[:]))
	if n == 0 || n > lz4MaxChunk {
		return fmt.Errorf("invalid lz4 chunk size: %d", n)
	}
	if cap(z.comp) < n {
		z.comp = make([]byte, n)
	}
	z.comp = z.comp[:n]
	if _, err := io.ReadFull(z.r, z.comp); err != nil {
		return fmt.Errorf("lz4 chunk: %w", unexpected(err))
	}
	if cap(z.buf) < z.maxChunk {
		z.buf = make([]byte, z.maxChunk)
	}
	out, err := lz4Block(z.buf[:0:z.maxChunk], z.comp)
	if err != nil {
		return err
	}
	z.out = out
	return nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

var errLZ4Corrupt = errors.New("corrupt lz4 block")

// lz4Block decodes one raw LZ4 block (LZ4_decompress_safe) by appending
// to dst, never beyond cap(dst).
func lz4Block(dst, src []byte) ([]byte, error) {
	i := 0
	for i < len(src) {
		token := src[i]
		i++
		lit := int(token >> 4)
		if lit == 15 {
			for {
				if i >= len(src) {
					return nil, errLZ4Corrupt
				}
				b := src[i]
				i++
				lit += int(b)
				if lit > len(src) {
					return nil, errLZ4Corrupt
				}
				if b != 255 {
					break
				}
			}
		}
		if lit > len(src)-i || lit > cap(dst)-len(dst) {
			return nil, errLZ4Corrupt
		}
		dst = append(dst, src[i:i+lit]...)
		i += lit
		if i == len(src) {
			return dst, nil // the last sequence has literals only
		}
		if i+2 > len(src) {
			return nil, errLZ4Corrupt
		}
		off := int(src[i]) | int(src[i+1])<<8
		i += 2
		if off == 0 || off > len(dst) {
			return nil, errLZ4Corrupt
		}
		ml := int(token & 15)
		if ml == 15 {
			for {
				if i >= len(src) {
					return nil, errLZ4Corrupt
				}
				b := src[i]
				i++
				ml += int(b)
				if ml > cap(dst) {
					return nil, errLZ4Corrupt
				}
				if b != 255 {
					break
				}
			}
		}
		ml += 4
		if ml > cap(dst)-len(dst) {
			return nil, errLZ4Corrupt
		}
		start := len(dst) - off
		for k := 0; k < ml; k++ { // byte by byte: matches may overlap
			dst = append(dst, dst[start+k])
		}
	}
	return dst, nil
}
