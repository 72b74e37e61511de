package imapc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// tx buffers a transaction and applies it at Commit, as far as IMAP allows:
//
//  1. Saves: one MULTIAPPEND (RFC 3502) when the server has it, which is
//     atomic (all or none); otherwise one APPEND per message, all written
//     before the first reply is read when the server has LITERAL+. Bodies
//     wait in temporary files, never in memory.
//  2. Flag changes: UID STORE FLAGS.SILENT, one command per distinct flag
//     set, pipelined. Idempotent, so retried on a new connection.
//  3. Expunges: UID STORE +FLAGS.SILENT (\Deleted), then UID EXPUNGE
//     (UIDPLUS); plain EXPUNGE would also remove other clients' \Deleted
//     mail, so without UIDPLUS expunging is refused.
//
// The gap: IMAP has no transaction spanning these steps. A failure in
// step 2 or 3 leaves the saves of step 1 in place, and a connection lost
// during step 1 without MULTIAPPEND may leave some messages saved. Save
// returns the UID the message will get if nobody else saves meanwhile
// (UIDNEXT at Begin, counting up); Commit compares that with the server's
// APPENDUID answer and fails with KindTemp if they differ.
type tx struct {
	mb       *Mailbox
	nextUID  formats.UID
	saves    []*pendingSave
	flags    map[formats.UID]flagChange
	expunges []formats.UID
	saved    []formats.UID // after Commit: the UIDs the server assigned
	done     bool
}

type pendingSave struct {
	f       *os.File
	size    int64
	flags   formats.Flags
	kws     []string
	date    time.Time
	predict formats.UID
}

type flagChange struct {
	flags formats.Flags
	kws   []string
}

func (t *tx) check() error {
	if t.done {
		return formats.Errorf(formats.KindParams, "imapc: transaction already finished")
	}
	return nil
}

// validKeyword tells whether kw can be sent as an IMAP flag-keyword (an
// atom, RFC 3501 §9).
func validKeyword(kw string) bool {
	if kw == "" {
		return false
	}
	for i := 0; i < len(kw); i++ {
		c := kw[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

func checkKeywords(kws []string) error {
	for _, k := range kws {
		if !validKeyword(k) {
			return formats.Errorf(formats.KindParams, "imapc: keyword %q cannot be sent over IMAP", k)
		}
	}
	return nil
}

func flagList(f formats.Flags, kws []string) string {
	names := (f & formats.SystemFlags).Names()
	names = append(names, kws...)
	return "(" + strings.Join(names, " ") + ")"
}

// Save spools the body to a temporary file. m.UID and m.GUID cannot be
// kept; the flags, keywords and INTERNALDATE are.
func (t *tx) Save(ctx context.Context, m formats.Message, r io.Reader) (formats.UID, error) {
	if err := t.check(); err != nil {
		return 0, err
	}
	if err := checkKeywords(m.Keywords); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp("", "boxsync-imapc-*")
	if err != nil {
		return 0, formats.Wrap(err, formats.KindTemp, "imapc: save", t.mb.name, 0, "")
	}
	os.Remove(f.Name()) // unlinked: nothing to clean up after a crash
	n, err := io.Copy(f, r)
	fail := func(k formats.Kind, err error) (formats.UID, error) {
		f.Close()
		return 0, &formats.Error{Kind: k, Op: "imapc: save", Mailbox: t.mb.name, Err: err}
	}
	switch {
	case err != nil:
		return fail(formats.KindOf(err), err)
	case m.Size > 0 && n != m.Size:
		return fail(formats.KindInvalidData, fmt.Errorf("body has %d bytes, the message says %d", n, m.Size))
	case n == 0:
		// Dovecot: "NO Can't save a zero byte message."
		return fail(formats.KindNotPossible, errors.New("IMAP cannot save an empty message"))
	}
	uid := t.nextUID
	t.nextUID++
	kws := formats.NormalizeKeywords(append([]string(nil), m.Keywords...))
	t.saves = append(t.saves, &pendingSave{f: f, size: n, flags: m.Flags & formats.SystemFlags, kws: kws, date: m.Received, predict: uid})
	return uid, nil
}

// SetFlags records the final flags and keywords of uid.
func (t *tx) SetFlags(uid formats.UID, flags formats.Flags, keywords []string) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := checkKeywords(keywords); err != nil {
		return err
	}
	t.flags[uid] = flagChange{flags: flags & formats.SystemFlags, kws: formats.NormalizeKeywords(append([]string(nil), keywords...))}
	return nil
}

// Expunge records uid for removal.
func (t *tx) Expunge(uid formats.UID) error {
	if err := t.check(); err != nil {
		return err
	}
	t.expunges = append(t.expunges, uid)
	return nil
}

// SetUIDNext does nothing: no IMAP command raises UIDNEXT. QUIRK: the
// destination's UIDNEXT stays the server's.
func (t *tx) SetUIDNext(next formats.UID) error { return t.check() }

// SavedUIDs returns the UIDs the server assigned to the saves of a
// committed transaction, in Save order (0 where it did not say).
func (t *tx) SavedUIDs() []formats.UID { return t.saved }

// Rollback discards the buffered changes.
func (t *tx) Rollback() error {
	if t.done {
		return nil
	}
	t.done = true
	t.release()
	return nil
}

func (t *tx) release() {
	for _, s := range t.saves {
		s.f.Close()
	}
	t.saves = nil
}

// Commit applies the transaction (see the type's documentation).
func (t *tx) Commit(ctx context.Context) error {
	if err := t.check(); err != nil {
		return err
	}
	t.done = true
	defer t.release()
	mb := t.mb
	if len(t.expunges) > 0 && !mb.st.has("UIDPLUS") {
		return mb.errorf(formats.KindNotPossible, 0, "the server lacks UIDPLUS, so messages cannot be expunged without touching other clients' \\Deleted mail")
	}
	if err := t.commitSaves(ctx); err != nil {
		return err
	}
	if err := t.commitFlags(ctx); err != nil {
		return err
	}
	if err := t.commitExpunges(ctx); err != nil {
		return err
	}
	for i, s := range t.saves {
		if i < len(t.saved) && t.saved[i] != 0 && t.saved[i] != s.predict {
			return mb.errorf(formats.KindTemp, 0, "saved, but the server assigned UID %d where %d was expected (another client saved meanwhile); run again", t.saved[i], s.predict)
		}
	}
	return nil
}

func (t *tx) commitSaves(ctx context.Context) error {
	if len(t.saves) == 0 {
		return nil
	}
	mb := t.mb
	for _, s := range t.saves {
		if _, err := s.f.Seek(0, io.SeekStart); err != nil {
			return mb.wrap(err, "save", 0)
		}
	}
	if err := mb.st.throttle.wait(ctx, 0, len(t.saves)); err != nil {
		return err
	}
	// APPEND is not idempotent: never retried.
	err := mb.st.pool.do(ctx, "", false, false, func(c *conn) error {
		if c.has("MULTIAPPEND") && len(t.saves) > 1 {
			resp, err := t.append(ctx, c, t.saves)
			if err != nil {
				return err
			}
			t.saved = append(t.saved, appendUIDs(resp, len(t.saves))...)
			return nil
		}
		if !c.has("LITERAL+") {
			for _, s := range t.saves {
				resp, err := t.append(ctx, c, []*pendingSave{s})
				if err != nil {
					return err
				}
				t.saved = append(t.saved, appendUIDs(resp, 1)...)
			}
			return nil
		}
		// Pipelined: every APPEND is written before the first reply
		// is read.
		tags := make([]string, len(t.saves))
		for i, s := range t.saves {
			tag, err := t.writeAppend(ctx, c, []*pendingSave{s})
			if err != nil {
				return err
			}
			tags[i] = tag
		}
		byTag := map[string]*response{}
		err := c.waitFunc(ctx, tags, nil, func(r *response) { byTag[r.tag] = r })
		for _, tag := range tags {
			t.saved = append(t.saved, appendUIDs(byTag[tag], 1)...)
		}
		return err
	})
	if err != nil {
		var ce *connError
		if errors.As(err, &ce) {
			return mb.errorf(formats.KindTemp, 0, "connection lost while saving; some messages may have been saved: %w", err)
		}
		return mb.wrap(err, "append", 0)
	}
	return nil
}

// append sends one APPEND (several messages: MULTIAPPEND) and streams the
// spooled bodies as literals: non-synchronizing with LITERAL+, else after
// each continuation request.
func (t *tx) append(ctx context.Context, c *conn, saves []*pendingSave) (*response, error) {
	tag, err := t.writeAppend(ctx, c, saves)
	if err != nil {
		return nil, err
	}
	var last *response
	err = c.waitFunc(ctx, []string{tag}, nil, func(r *response) { last = r })
	return last, err
}

// writeAppend writes one APPEND (to the buffer; waitFunc flushes) and
// returns its tag. Without LITERAL+ it waits for each continuation.
func (t *tx) writeAppend(ctx context.Context, c *conn, saves []*pendingSave) (string, error) {
	stop := context.AfterFunc(ctx, c.raw.kill)
	defer stop()
	plus := c.has("LITERAL+")
	c.tagN++
	tag := "b" + strconv.Itoa(c.tagN)
	c.w.WriteString(tag + " APPEND " + quote(t.mb.remote))
	for _, s := range saves {
		c.w.WriteString(" " + flagList(s.flags, s.kws))
		if d := appendDate(s.date); d != "" {
			c.w.WriteString(" " + d)
		}
		if plus {
			fmt.Fprintf(c.w, " {%d+}\r\n", s.size)
		} else {
			fmt.Fprintf(c.w, " {%d}\r\n", s.size)
			if err := c.w.Flush(); err != nil {
				return "", c.ctxOr(ctx, c.lost(err))
			}
			for {
				resp, err := c.r.read()
				if err != nil {
					return "", c.ctxOr(ctx, c.lost(err))
				}
				if resp.tag == "+" {
					break
				}
				if resp.tag == tag {
					return "", &CommandError{Command: "APPEND", Status: resp.kind, Code: resp.code, Text: resp.text}
				}
				c.untagged(resp)
			}
		}
		var src io.Reader = io.LimitReader(s.f, s.size)
		if t.mb.st.throttle != nil {
			src = &throttledReader{ctx: ctx, r: src, t: t.mb.st.throttle}
		}
		if n, err := io.Copy(c.w, src); err != nil || n != s.size {
			c.broken = true
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return "", c.ctxOr(ctx, c.lost(err))
		}
	}
	c.w.WriteString("\r\n")
	if c.names == nil {
		c.names = map[string]string{}
	}
	c.names[tag] = "APPEND"
	return tag, nil
}

// appendUIDs reads "[APPENDUID uidvalidity uid-set]" (RFC 4315).
func appendUIDs(resp *response, n int) []formats.UID {
	out := make([]formats.UID, n)
	if resp == nil || resp.code != "APPENDUID" {
		return out
	}
	f := strings.Fields(resp.codeArgs)
	if len(f) != 2 {
		return out
	}
	uids, err := parseSeqSet(f[1], n+1)
	if err != nil || len(uids) != n {
		return out
	}
	for i, u := range uids {
		out[i] = formats.UID(u)
	}
	return out
}

func (t *tx) commitFlags(ctx context.Context) error {
	if len(t.flags) == 0 {
		return nil
	}
	groups := map[string][]uint32{}
	for uid, fc := range t.flags {
		l := flagList(fc.flags, fc.kws)
		groups[l] = append(groups[l], uint32(uid))
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	err := t.mb.do(ctx, true, true, func(c *conn) error {
		var tags []string
		for _, k := range keys {
			uids := groups[k]
			sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
			tags = append(tags, c.send("UID STORE "+uidSet(uids)+" FLAGS.SILENT "+k))
		}
		return c.wait(ctx, tags, nil)
	})
	return t.mb.wrap(err, "store flags", 0)
}

func (t *tx) commitExpunges(ctx context.Context) error {
	if len(t.expunges) == 0 {
		return nil
	}
	uids := make([]uint32, len(t.expunges))
	for i, u := range t.expunges {
		uids[i] = uint32(u)
	}
	sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
	set := uidSet(uids)
	err := t.mb.do(ctx, true, true, func(c *conn) error {
		if _, err := c.run(ctx, "UID STORE "+set+` +FLAGS.SILENT (\Deleted)`, nil); err != nil {
			return err
		}
		_, err := c.run(ctx, "UID EXPUNGE "+set, nil)
		return err
	})
	return t.mb.wrap(err, "expunge", 0)
}

// throttle limits body bytes and messages per second over all connections
// of a store: each caller reserves its share and sleeps until the earlier
// reservations have passed. A nil *throttle does nothing.
type throttle struct {
	bytesPerSec int64
	msgsPerSec  float64

	mu        sync.Mutex
	nextBytes time.Time // guarded by mu
	nextMsgs  time.Time // guarded by mu
}

func newThrottle(bytesPerSec int64, msgsPerSec float64) *throttle {
	return &throttle{bytesPerSec: bytesPerSec, msgsPerSec: msgsPerSec}
}

func (t *throttle) wait(ctx context.Context, bytes int64, msgs int) error {
	if t == nil {
		return nil
	}
	now := time.Now()
	var until time.Time
	t.mu.Lock()
	if t.bytesPerSec > 0 && bytes > 0 {
		start := later(now, t.nextBytes)
		t.nextBytes = start.Add(time.Duration(float64(bytes) / float64(t.bytesPerSec) * float64(time.Second)))
		until = later(until, start)
	}
	if t.msgsPerSec > 0 && msgs > 0 {
		start := later(now, t.nextMsgs)
		t.nextMsgs = start.Add(time.Duration(float64(msgs) / t.msgsPerSec * float64(time.Second)))
		until = later(until, start)
	}
	t.mu.Unlock()
	if d := time.Until(until); d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
