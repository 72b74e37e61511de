package formats

import "bytes"

// VSizeCounter computes a message's virtual size, IMAP's RFC822.SIZE: the
// size with every LF that is not preceded by CR counted as two bytes (as
// if the message had CRLF line ends). Bytes may arrive in pieces of any
// size, so it can sit beside a stream (bytes are sacred: the message itself
// is never rewritten). It is an io.Writer that never fails.
type VSizeCounter struct {
	vsize  int64
	lastCR bool // the last byte seen was CR
}

// Write counts p.
func (c *VSizeCounter) Write(p []byte) (int, error) {
	c.vsize += int64(len(p))
	prevCR := c.lastCR
	for rest, off := p, 0; ; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		if (off+i == 0 && !prevCR) || (off+i > 0 && p[off+i-1] != '\r') {
			c.vsize++
		}
		rest, off = rest[i+1:], off+i+1
	}
	if len(p) > 0 {
		c.lastCR = p[len(p)-1] == '\r'
	}
	return len(p), nil
}

// VSize is the virtual size of everything written so far.
func (c *VSizeCounter) VSize() int64 { return c.vsize }

// VSize is the virtual size of a whole message held in memory.
func VSize(data []byte) int64 {
	var c VSizeCounter
	c.Write(data)
	return c.vsize
}
