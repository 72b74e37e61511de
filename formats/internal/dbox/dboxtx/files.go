package dboxtx

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxlist"
	"github.com/boxsync/boxsync/formats/internal/dotlock"
)

// tempCount makes temporary file names unique within the process.
var tempCount atomic.Uint64

// TempName returns a new temporary file name as
// dbox_generate_tmp_filename makes it:
// ".temp.<secs>.P<pid>Q<count>M<usecs>.<host>".
func TempName() string {
	now := time.Now()
	return fmt.Sprintf("%s%d.P%dQ%dM%d.%s", dboxlist.TempPrefix, now.Unix(), os.Getpid(),
		tempCount.Add(1)-1, now.Nanosecond()/1000, dotlock.Hostname())
}

// Body is a message's bytes, size long, for formats.Mailbox.Body's
// callback; reading stops when ctx ends.
func Body(ctx context.Context, r io.Reader, size int64) formats.Body {
	return &body{Reader: &ctxReader{ctx: ctx, r: r}, size: size}
}

type body struct {
	io.Reader
	size int64
	file *os.File // the file the bytes are a range of, or nil
	off  int64
}

func (b *body) Size() int64 { return b.size }

// FileBody is Body for bytes that are size bytes at off of f as they are
// (formats.FileSection).
func FileBody(ctx context.Context, r io.Reader, size int64, f *os.File, off int64) formats.Body {
	return &body{Reader: &ctxReader{ctx: ctx, r: r}, size: size, file: f, off: off}
}

func (b *body) FileSection() (*os.File, int64, bool) { return b.file, b.off, b.file != nil }

// ctxReader stops reading when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
