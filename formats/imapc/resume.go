package imapc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/boxsync/boxsync/formats"
)

// testHookBody, when set, sees the connection a body is being read from.
var testHookBody func(c *conn)

// resumableBody is the reader Body hands to its callback. When the
// connection breaks in the middle of the literal, it fetches the rest on a
// new connection with a partial fetch, BODY.PEEK[]<offset> (RFC 3501
// §6.4.5), and goes on from there, Settings.RetryCount times. The new
// connection is dialed outside the pool, since the broken one still holds
// its slot until the callback returns.
type resumableBody struct {
	ctx  context.Context
	mb   *Mailbox
	uid  formats.UID
	size int64

	cur      io.Reader
	read     int64 // bytes delivered to the callback
	retries  int
	resumed  bool
	complete bool
	err      error // sticky

	stop func() // ends the resume goroutine, if any; waits for it
}

func (b *resumableBody) Size() int64 { return b.size }

func (b *resumableBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	for {
		n, err := b.cur.Read(p)
		b.read += int64(n)
		if b.read == b.size && (err == nil || err == io.EOF) {
			b.complete = true
		}
		if err == nil || n > 0 {
			return n, nil
		}
		if err == io.EOF && b.read == b.size {
			b.complete = true
			return 0, io.EOF
		}
		// Short literal or broken connection.
		if b.ctx.Err() != nil || b.retries >= b.mb.st.s.RetryCount {
			b.err = b.mb.errorf(formats.KindTemp, b.uid, "connection lost after %d of %d body bytes: %w", b.read, b.size, err)
			return 0, b.err
		}
		b.retries++
		if rerr := b.resume(); rerr != nil {
			b.err = rerr
			return 0, b.err
		}
	}
}

func (b *resumableBody) resume() error {
	b.close()
	c, err := dial(b.ctx, b.mb.st.s)
	if err != nil {
		return err
	}
	if err := c.selectBox(b.ctx, b.mb.remote, false); err != nil {
		c.raw.kill()
		return b.mb.wrap(err, "resume body", b.uid)
	}
	if c.uidValidity != b.mb.uidValidity {
		c.raw.kill()
		return b.mb.errorf(formats.KindTemp, b.uid, "UIDVALIDITY changed while resuming the body")
	}
	pr, pw := io.Pipe()
	offset, want := b.read, b.size-b.read
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer c.close()
		got := false
		c.r.body = func(fd *fetchData, section string, r io.Reader, size int64) error {
			if fd.uid != uint32(b.uid) || got {
				return nil
			}
			got = true
			if size != want {
				return fmt.Errorf("partial fetch gave %d bytes, want %d", size, want)
			}
			_, err := io.Copy(pw, r)
			return err
		}
		_, err := c.run(b.ctx, fmt.Sprintf("UID FETCH %d (UID BODY.PEEK[]<%d>)", b.uid, offset), nil)
		if err == nil && !got {
			err = &formats.Error{Kind: formats.KindExpunged, Op: "imapc: resume body", Mailbox: b.mb.name, UID: b.uid,
				Err: errors.New("message was expunged")}
		}
		pw.CloseWithError(err) // nil: EOF
	}()
	b.cur, b.resumed = pr, true
	b.stop = func() {
		pr.CloseWithError(errors.New("body reader closed"))
		wg.Wait()
	}
	return nil
}

// close ends a resume in progress.
func (b *resumableBody) close() {
	if b.stop != nil {
		b.stop()
		b.stop = nil
	}
}
