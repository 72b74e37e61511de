package imapc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/boxsync/boxsync/formats"
)

const (
	fetchChunk    = 1000    // UIDs per UID FETCH command
	fetchPipeline = 4       // UID FETCH commands in flight per round trip
	maxUIDs       = 1 << 26 // a UID SEARCH result bigger than this is refused
)

// Mailbox is one open remote mailbox.
type Mailbox struct {
	st          *Store
	name        string
	remote      string
	uidValidity uint32 // pinned by Open
}

var _ formats.Mailbox = (*Mailbox)(nil)

// Name is the contract name.
func (mb *Mailbox) Name() string { return mb.name }

// Close does nothing: connections belong to the store's pool.
func (mb *Mailbox) Close() error { return nil }

func (mb *Mailbox) errorf(k formats.Kind, uid formats.UID, format string, args ...any) error {
	return &formats.Error{Kind: k, Op: "imapc", Mailbox: mb.name, UID: uid, Err: fmt.Errorf(format, args...)}
}

func (mb *Mailbox) wrap(err error, op string, uid formats.UID) error {
	if err == nil {
		return nil
	}
	var ce *CommandError
	if errors.As(err, &ce) {
		return &formats.Error{Kind: ce.kind(), Op: "imapc: " + op, Mailbox: mb.name, UID: uid, Err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return formats.Wrap(err, formats.KindTemp, "imapc: "+op, mb.name, uid, "")
}

// do runs fn on a connection with the mailbox selected (rw) or examined,
// after checking that UIDVALIDITY is still the one Open saw.
func (mb *Mailbox) do(ctx context.Context, rw, idempotent bool, fn func(c *conn) error) error {
	return mb.st.pool.do(ctx, mb.remote, rw, idempotent, func(c *conn) error {
		if mb.uidValidity != 0 && c.uidValidity != 0 && c.uidValidity != mb.uidValidity {
			c.selected = "" // select again next time
			return mb.errorf(formats.KindTemp, 0, "UIDVALIDITY changed from %d to %d: the server renumbered the mailbox; run again", mb.uidValidity, c.uidValidity)
		}
		return fn(c)
	})
}

// Status runs STATUS (MESSAGES UIDNEXT UIDVALIDITY, HIGHESTMODSEQ with
// CONDSTORE, the mailbox GUID item where the server has one).
func (mb *Mailbox) Status(ctx context.Context) (formats.Status, error) {
	return mb.status(ctx)
}

func (mb *Mailbox) status(ctx context.Context) (formats.Status, error) {
	st := mb.st
	items := "MESSAGES UIDNEXT UIDVALIDITY"
	if st.modseqs() {
		items += " HIGHESTMODSEQ"
	}
	if gi := st.guidItem(); gi != "" {
		items += " " + gi
	}
	var out formats.Status
	var got, gotGUID bool
	err := st.pool.do(ctx, "", false, true, func(c *conn) error {
		_, err := c.run(ctx, "STATUS "+quote(mb.remote)+" ("+items+")", func(r *response) error {
			if r.kind != "STATUS" || len(r.values) < 2 {
				return nil
			}
			list, _ := r.values[1].([]any)
			got = true
			out.GUID, gotGUID = guidFromStatus(list)
			for i := 0; i+1 < len(list); i += 2 {
				k, _ := list[i].(string)
				v, _ := list[i+1].(string)
				n, _ := strconv.ParseUint(v, 10, 64)
				switch strings.ToUpper(k) {
				case "MESSAGES":
					out.Messages = int(n)
				case "UIDNEXT":
					out.UIDNext = formats.UID(n)
				case "UIDVALIDITY":
					out.UIDValidity = uint32(n)
				case "HIGHESTMODSEQ":
					out.HighestModSeq = formats.ModSeq(n)
				}
			}
			return nil
		})
		return err
	})
	if err != nil {
		return out, mb.wrap(err, "status", 0)
	}
	if !got {
		return out, mb.errorf(formats.KindTemp, 0, "STATUS gave no data")
	}
	if !gotGUID {
		out.GUID = NameGUID(mb.remote, st.sep)
	}
	if mb.uidValidity != 0 && out.UIDValidity != mb.uidValidity {
		return out, mb.errorf(formats.KindTemp, 0, "UIDVALIDITY changed from %d to %d: the server renumbered the mailbox; run again", mb.uidValidity, out.UIDValidity)
	}
	out.Caps = formats.Caps{GUIDs: st.msgGUIDItem() != "", ModSeqs: st.modseqs(), Keywords: true}
	return out, nil
}

// fetchItems is what Messages asks for.
func (mb *Mailbox) fetchItems() string {
	items := "UID FLAGS INTERNALDATE RFC822.SIZE"
	if mb.st.modseqs() {
		items += " MODSEQ"
	}
	if gi := mb.st.msgGUIDItem(); gi != "" {
		items += " " + gi
	}
	if mb.st.has("SAVEDATE") {
		items += " SAVEDATE"
	}
	return items
}

// searchUIDs lists the UIDs >= from (UID SEARCH, ESEARCH when offered).
func (mb *Mailbox) searchUIDs(ctx context.Context, from formats.UID) ([]uint32, error) {
	if from == 0 {
		from = 1
	}
	var uids []uint32
	err := mb.do(ctx, false, true, func(c *conn) error {
		uids = uids[:0]
		// NOOP first: the session then sees what other sessions saved.
		if _, err := c.run(ctx, "NOOP", nil); err != nil {
			return err
		}
		cmd := fmt.Sprintf("UID SEARCH UID %d:*", from)
		if c.has("ESEARCH") {
			cmd = fmt.Sprintf("UID SEARCH RETURN (ALL) UID %d:*", from)
		}
		_, err := c.run(ctx, cmd, func(r *response) error {
			switch r.kind {
			case "SEARCH":
				for _, v := range r.values {
					s, _ := v.(string)
					n, err := strconv.ParseUint(s, 10, 32)
					if err != nil {
						return &ProtocolError{What: "SEARCH result is not a number", Near: s}
					}
					if len(uids) >= maxUIDs {
						return &ProtocolError{What: "too many UIDs"}
					}
					uids = append(uids, uint32(n))
				}
			case "ESEARCH":
				for i := 0; i+1 < len(r.values); i++ {
					if s, _ := r.values[i].(string); strings.EqualFold(s, "ALL") {
						set, _ := r.values[i+1].(string)
						got, err := parseSeqSet(set, maxUIDs)
						if err != nil {
							return &ProtocolError{What: err.Error()}
						}
						uids = append(uids, got...)
					}
				}
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, mb.wrap(err, "search", 0)
	}
	// "n:*" matches the last message even when its UID is below n.
	out := uids[:0]
	for _, u := range uids {
		if u >= uint32(from) {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Messages lists the messages with UID >= from. It first learns the UIDs
// (one UID SEARCH), then fetches their metadata in chunks of 1000 UIDs,
// four UID FETCH commands pipelined per round trip. No connection is held
// while the caller runs, so it may call Body from inside the loop even
// with one connection.
func (mb *Mailbox) Messages(ctx context.Context, from formats.UID) iter.Seq2[formats.Message, error] {
	return func(yield func(formats.Message, error) bool) {
		uids, err := mb.searchUIDs(ctx, from)
		if err != nil {
			yield(formats.Message{}, err)
			return
		}
		items := mb.fetchItems()
		for len(uids) > 0 {
			n := min(len(uids), fetchChunk*fetchPipeline)
			batch := uids[:n]
			uids = uids[n:]
			got := map[uint32]*fetchData{}
			err := mb.do(ctx, false, true, func(c *conn) error {
				clear(got)
				var tags []string
				for i := 0; i < len(batch); i += fetchChunk {
					part := batch[i:min(i+fetchChunk, len(batch))]
					tags = append(tags, c.send("UID FETCH "+uidSet(part)+" ("+items+")"))
				}
				return c.wait(ctx, tags, func(r *response) error {
					if r.fetch != nil && r.fetch.uid != 0 {
						if old := got[r.fetch.uid]; old != nil {
							old.merge(r.fetch) // an unsolicited FLAGS update
						} else {
							got[r.fetch.uid] = r.fetch
						}
					}
					return nil
				})
			})
			if err != nil {
				yield(formats.Message{}, mb.wrap(err, "fetch", 0))
				return
			}
			for _, uid := range batch {
				fd := got[uid]
				if fd == nil || fd.size < 0 {
					continue // expunged meanwhile
				}
				if !yield(mb.message(fd), nil) {
					return
				}
			}
		}
	}
}

func (fd *fetchData) merge(o *fetchData) {
	if o.hasFlags {
		fd.flags, fd.hasFlags = o.flags, true
	}
	if o.modseq > fd.modseq {
		fd.modseq = o.modseq
	}
	if fd.size < 0 {
		fd.size = o.size
	}
	if fd.internalDate.IsZero() {
		fd.internalDate = o.internalDate
	}
	if fd.guid == "" {
		fd.guid = o.guid
	}
}

func (mb *Mailbox) message(fd *fetchData) formats.Message {
	m := formats.Message{
		UID: formats.UID(fd.uid), GUID: fd.guid, ModSeq: formats.ModSeq(fd.modseq),
		Received: fd.internalDate, Saved: fd.saveDate,
		// RFC822.SIZE is the size of what BODY[] sends, which is what
		// Body yields (the server's CRLF form).
		Size: fd.size, VSize: fd.size,
	}
	for _, f := range fd.flags {
		if sf, ok := formats.ParseFlag(f); ok {
			m.Flags |= sf &^ formats.FlagRecent
		} else if !strings.HasPrefix(f, `\`) {
			m.Keywords = append(m.Keywords, f)
		}
	}
	m.Keywords = formats.NormalizeKeywords(m.Keywords)
	return m
}

// body is a message being streamed.
type body struct {
	r    io.Reader
	size int64
}

func (b *body) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *body) Size() int64                { return b.size }

// throttledReader applies the store's byte throttle to a body.
type throttledReader struct {
	ctx context.Context
	r   io.Reader
	t   *throttle
}

func (t *throttledReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		if werr := t.t.wait(t.ctx, int64(n), 0); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// Body streams BODY.PEEK[] of uid to fn straight from the connection; the
// message is never held in memory. A connection that breaks before fn was
// called is replaced and the fetch retried; one that breaks while fn reads
// is resumed where it stopped with a partial fetch on a new connection
// (see resumableBody), invisibly to fn.
func (mb *Mailbox) Body(ctx context.Context, uid formats.UID, fn func(formats.Body) error) error {
	var rb *resumableBody // set once fn has been called
	found := false
	var fnErr error
	if err := mb.st.throttle.wait(ctx, 0, 1); err != nil {
		return err
	}
	err := mb.do(ctx, false, true, func(c *conn) error {
		if rb != nil {
			if rb.complete {
				// fn got every byte (the rest came from a
				// resumed fetch); only the old connection broke.
				return nil
			}
			return mb.errorf(formats.KindTemp, uid, "connection lost while reading the message body")
		}
		c.r.body = func(fd *fetchData, section string, r io.Reader, size int64) error {
			if fd.uid != 0 && fd.uid != uint32(uid) || rb != nil {
				return nil // unrelated data
			}
			found = true
			if testHookBody != nil {
				testHookBody(c)
			}
			rb = &resumableBody{ctx: ctx, mb: mb, uid: uid, size: size, cur: r}
			defer rb.close()
			var src formats.Body = rb
			if mb.st.throttle != nil {
				src = &body{r: &throttledReader{ctx: ctx, r: rb, t: mb.st.throttle}, size: size}
			}
			fnErr = fn(src)
			return fnErr
		}
		defer func() { c.r.body = nil }()
		_, err := c.run(ctx, fmt.Sprintf("UID FETCH %d (UID BODY.PEEK[])", uid), func(r *response) error {
			if r.fetch != nil && r.fetch.uid == uint32(uid) && r.fetch.bodyNil {
				found = false
			}
			return nil
		})
		return err
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return mb.wrap(err, "fetch body", uid)
	}
	if !found {
		return &formats.Error{Kind: formats.KindExpunged, Op: "imapc: fetch body", Mailbox: mb.name, UID: uid,
			Err: errors.New("message was expunged")}
	}
	return nil
}

// Bodies streams the bodies of many messages with one UID FETCH per 1000
// UIDs on one connection: the server sends them back to back, without a
// round trip per message. fn sees them in the server's order (ascending
// UID); UIDs that no longer exist are skipped. This is the fast path for
// copying a whole mailbox; the engine finds it with a type assertion.
func (mb *Mailbox) Bodies(ctx context.Context, uids []formats.UID, fn func(uid formats.UID, b formats.Body) error) error {
	sorted := make([]uint32, len(uids))
	for i, u := range uids {
		sorted[i] = uint32(u)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	done := map[uint32]bool{}
	for len(sorted) > 0 {
		part := sorted[:min(len(sorted), fetchChunk)]
		sorted = sorted[len(part):]
		var fnErr error
		err := mb.do(ctx, false, true, func(c *conn) error {
			// On a retry after a broken connection, ask only for what
			// fn has not seen.
			var rest []uint32
			for _, u := range part {
				if !done[u] {
					rest = append(rest, u)
				}
			}
			if len(rest) == 0 {
				return nil
			}
			c.r.body = func(fd *fetchData, section string, r io.Reader, size int64) error {
				if fd.uid == 0 || done[fd.uid] {
					return nil
				}
				done[fd.uid] = true
				if err := mb.st.throttle.wait(ctx, 0, 1); err != nil {
					return err
				}
				if mb.st.throttle != nil {
					r = &throttledReader{ctx: ctx, r: r, t: mb.st.throttle}
				}
				fnErr = fn(formats.UID(fd.uid), &body{r: r, size: size})
				return fnErr
			}
			defer func() { c.r.body = nil }()
			_, err := c.run(ctx, "UID FETCH "+uidSet(rest)+" (UID BODY.PEEK[])", nil)
			return err
		})
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			return mb.wrap(err, "fetch bodies", 0)
		}
	}
	return nil
}

// Begin starts a transaction (see tx).
func (mb *Mailbox) Begin(ctx context.Context) (formats.Tx, error) {
	if err := mb.st.writable("begin", mb.name); err != nil {
		return nil, err
	}
	st, err := mb.status(ctx)
	if err != nil {
		return nil, err
	}
	return &tx{mb: mb, nextUID: st.UIDNext, flags: map[formats.UID]flagChange{}}, nil
}

// date returns t for APPEND, or "" when unknown.
func appendDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return quote(imapDate(t))
}
