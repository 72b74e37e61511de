package convert

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"

	"github.com/boxsync/boxsync/formats"
)

// AllMail is -a (dsync's virtual_all_box, dsync.md §1.2 and §2.8 (c)):
// where the side that must create a message first looks for a copy of it
// it already has, by GUID, and reads that copy instead of the other
// side's. It saves the transfer when the other side is remote (imapc) and
// when mail moved between mailboxes. The zero value is off.
type AllMail struct {
	// Mailbox is the storage name of the one mailbox to look in, e.g. a
	// Gmail-style "All Mail"; ignored with Everywhere.
	Mailbox string
	// Everywhere looks in every mailbox of the store: what a Dovecot
	// virtual mailbox with the rules `*` and `all` (the usual
	// virtual/All) holds.
	Everywhere bool
}

func (a AllMail) on() bool { return a.Everywhere || a.Mailbox != "" }

// localCopy is where a store already holds a message.
type localCopy struct {
	mailbox string
	uid     formats.UID
	size    int64
}

// allMailIndex maps message GUIDs to a copy in one store. It is built on
// first use, once per run and store, so it can be stale: a copy expunged
// since then fails to open and the message is read from the other side.
//
// QUIRK: dsync searches its \All mailbox again for each mailbox it
// imports; one listing per run is cheaper and finds the same mail unless
// the run itself expunged it first (a message moved into a mailbox that
// is synced after the one it left is still transferred).
type allMailIndex struct {
	once     sync.Once
	copies   map[string]localCopy // immutable after once
	err      error                // immutable after once
	reported sync.Once            // err is reported once, then -a is off for the store
}

// allMailFor returns the index of st (the destination, or in Sync either
// side), nil when -a is off.
func (r *run) allMailFor(st formats.Store) *allMailIndex {
	if !r.opt.AllMail.on() {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.allMail == nil {
		r.allMail = map[formats.Store]*allMailIndex{}
	}
	ix := r.allMail[st]
	if ix == nil {
		ix = &allMailIndex{}
		r.allMail[st] = ix
	}
	return ix
}

// build lists the -a mailbox (or every mailbox) of st. A -a mailbox st
// lacks is logged once and the run goes on without it, as dsync does
// ("Couldn't sync \All mailbox").
func (ix *allMailIndex) build(ctx context.Context, r *run, st formats.Store) {
	ix.once.Do(func() {
		ix.copies = map[string]localCopy{}
		var names []string
		if r.opt.AllMail.Everywhere {
			boxes, err := st.Mailboxes(ctx)
			if err != nil {
				ix.err = err
				return
			}
			for _, b := range boxes {
				if !b.NoSelect {
					names = append(names, b.Name)
				}
			}
		} else {
			names = []string{r.opt.AllMail.Mailbox}
		}
		for _, name := range names {
			mb, err := st.Open(ctx, name)
			if err != nil {
				if errors.Is(err, formats.ErrNotFound) && !r.opt.AllMail.Everywhere {
					r.warnf("Couldn't sync \\All mailbox '%s': Mailbox doesn't exist", name)
					continue
				}
				ix.err = err
				return
			}
			for m, err := range mb.Messages(ctx, 1) {
				if err != nil {
					mb.Close()
					ix.err = err
					return
				}
				if _, dup := ix.copies[m.GUID]; m.GUID != "" && m.Size >= 0 && !dup {
					ix.copies[m.GUID] = localCopy{mailbox: name, uid: m.UID, size: m.Size}
				}
			}
			mb.Close()
		}
	})
}

// lookup finds st's copy of m. Only a copy known to have the same bytes
// counts: same GUID and same size (an imapc side's size is RFC822.SIZE,
// the size of the bytes it would send). A copy in the mailbox being
// written (skip) is not used: that mailbox has a transaction open, which
// may be expunging that very copy.
func (ix *allMailIndex) lookup(ctx context.Context, r *run, st formats.Store, m formats.Message, skip string) (localCopy, bool) {
	if ix == nil || m.GUID == "" || m.Size < 0 {
		return localCopy{}, false
	}
	ix.build(ctx, r, st)
	if ix.err != nil {
		ix.reported.Do(func() {
			// Only an optimisation: dsync logs "Couldn't search \All
			// mailbox" and goes on, and so does this.
			r.warnf("Couldn't search \\All mailbox: %s; copying without it", ix.err)
		})
		return localCopy{}, false
	}
	c, ok := ix.copies[m.GUID]
	if !ok || c.size != m.Size || c.mailbox == skip {
		return localCopy{}, false
	}
	return c, true
}

// body calls fn with the body of message m of from, reading the copy that
// store to already has instead where -a finds one (AllMail). A local copy
// that cannot be read (expunged since the index was built) is logged and
// the message read from from; a failure of fn itself is returned as is.
// toBox is the mailbox being written (see lookup).
func (r *run) body(ctx context.Context, to formats.Store, toBox string, from formats.Mailbox, m formats.Message, fn func(formats.Body) error) error {
	if c, ok := r.allMailFor(to).lookup(ctx, r, to, m, toBox); ok {
		used, err := r.localBody(ctx, to, c, fn)
		if used || ctx.Err() != nil {
			return err
		}
		r.logf("%s: UID %d: the copy in %s (UID %d) is gone (%s); reading it from the source", from.Name(), m.UID, c.mailbox, c.uid, err)
	}
	return from.Body(ctx, m.UID, fn)
}

// localBody runs fn over the local copy c and tells whether fn's outcome
// stands (false: the copy could not be read, try the other side).
func (r *run) localBody(ctx context.Context, st formats.Store, c localCopy, fn func(formats.Body) error) (bool, error) {
	mb, err := st.Open(ctx, c.mailbox)
	if err != nil {
		return false, err
	}
	defer mb.Close()
	var lb *localBody
	err = mb.Body(ctx, c.uid, func(b formats.Body) error {
		if b.Size() != c.size {
			return errChanged
		}
		lb = &localBody{Body: b}
		return fn(lb)
	})
	switch {
	case lb == nil, lb.err != nil:
		// Not opened, or it broke while being read: fn saw no
		// complete message (a failed Save keeps nothing).
		return false, err
	}
	if err == nil {
		r.update(func(res *Result) { res.Local++ })
	}
	return true, err
}

var errChanged = errors.New("size changed")

// localBody is a local copy's Body that remembers its read errors, so
// that they are told apart from the destination's.
type localBody struct {
	formats.Body
	err  error
	read bool
}

func (b *localBody) Read(p []byte) (int, error) {
	b.read = true
	n, err := b.Body.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// FileSection passes on the copy's file range (formats.FileSection) while
// nothing was read from it.
func (b *localBody) FileSection() (*os.File, int64, bool) {
	if sec, ok := b.Body.(formats.FileSection); ok && !b.read {
		return sec.FileSection()
	}
	return nil, 0, false
}
