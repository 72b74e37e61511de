package maildir

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dotlock"
	"github.com/boxsync/boxsync/index"
)

// mailbox is an open Maildir mailbox.
type mailbox struct {
	s *Store // immutable
	b *box   // immutable

	mu    sync.Mutex // guards st, tx, look
	st    *state     // the last sync's state; nil before the first
	look  dirLook    // what Status saw before it read st, for one reuse by Messages
	tx    *tx
	tmpGC bool // our stale tmp/ files were removed

	dirReads atomic.Int64 // directories scan read (not taken from a previous scan): for tests
	// distrustCur is set once a message file was missing under the
	// name a scan gave it: names taken from the index instead of a
	// read of cur/ (quickcur.go) are not used again.
	distrustCur atomic.Bool

	ixMu  sync.Mutex   // guards ix, ixErr
	ix    *index.Index // the Dovecot index, once opened
	ixErr error        // why the index was last ignored
}

var _ formats.Mailbox = (*mailbox)(nil)

func (m *mailbox) Name() string { return m.b.name }

func (m *mailbox) Close() error {
	m.mu.Lock()
	t := m.tx
	m.mu.Unlock()
	if t != nil {
		return t.Rollback()
	}
	return nil
}

// Status syncs the mailbox and reports it.
func (m *mailbox) Status(ctx context.Context) (formats.Status, error) {
	if qs, ok := m.quickStatus(); ok {
		return qs, nil
	}
	look := m.dirTimes()
	st, err := m.load(ctx)
	if err != nil {
		return formats.Status{}, err
	}
	if st.wrote && st.uidlistID.ok {
		// load wrote dovecot-uidlist itself (new files got UIDs): the
		// version it wrote is the one st describes.
		w := st.uidlistID
		look.hdr.UIDListMtime, look.hdr.UIDListMtimeNsecs, look.hdr.UIDListSize = uint32(w.sec), uint32(w.nsec), uint32(w.size)
	}
	ms := m.modseqs(st)
	m.markSynced(look, ms)
	m.mu.Lock()
	if m.st == st {
		m.look = look
	}
	m.mu.Unlock()
	return formats.Status{
		GUID:          st.hdr.GUID,
		UIDValidity:   st.hdr.UIDValidity,
		UIDNext:       formats.UID(st.next),
		HighestModSeq: formats.ModSeq(ms.highest),
		Messages:      len(st.t.recs),
		// What Dovecot's STATUS_FIRST_RECENT_UID says after its sync
		// of the mailbox (which dsync does before it reads it).
		FirstRecentUID: formats.UID(ms.recentFrom),
		Caps:           m.modseqCaps(ms),
	}, nil
}

// missing notes that a file of st was not where st names it. A state
// whose cur/ names came from the index (quickcur.go) may have guessed a
// name wrong: the next scans read cur/.
func (m *mailbox) missing(st *state) {
	if st.quickCur {
		m.distrustCur.Store(true)
	}
}

// subdir is the directory name of a record's dir.
func subdir(dir uint8) string {
	if dir == dirNew {
		return "new"
	}
	return "cur"
}

func (m *mailbox) path(st *state, r *rec) string {
	return filepath.Join(m.b.dir, subdir(r.dir), st.t.name(r))
}

// Messages syncs the mailbox and yields its messages with UID >= from.
// Each message costs one stat(2) (INTERNALDATE is the file's mtime;
// MessagesWithoutDates does without). A file renamed by a concurrent flag
// change is found again by a new sync.
func (m *mailbox) Messages(ctx context.Context, from formats.UID) iter.Seq2[formats.Message, error] {
	return m.messages(ctx, from, true)
}

var _ formats.LazyDates = (*mailbox)(nil)

// MessagesWithoutDates implements formats.LazyDates: Messages without
// the stat(2) per message, which is there only for the dates. A file
// whose name and uidlist record give no size (no ,S=, no S field) is
// still looked at. A file renamed or removed since the read is found by
// Body, as with Messages after its stat.
func (m *mailbox) MessagesWithoutDates(ctx context.Context, from formats.UID) iter.Seq2[formats.Message, error] {
	return m.messages(ctx, from, false)
}

// Dates implements formats.LazyDates: the file's mtime and ctime, as
// Messages gives them. A file renamed meanwhile (a flag change) is found
// by a new read.
func (m *mailbox) Dates(ctx context.Context, uid formats.UID) (received, saved time.Time, err error) {
	st, err := m.current(ctx)
	if err != nil {
		return received, saved, err
	}
	for attempt := 0; ; attempt++ {
		if i := st.t.find(uint32(uid)); i >= 0 {
			path := m.path(st, &st.t.recs[i])
			fi, err := os.Stat(path)
			if err == nil {
				received, saved = fi.ModTime(), fi.ModTime()
				if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
					saved = statCtime(sys)
				}
				return received, saved, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return received, saved, wrap(err, "dates", m.b.name, uid, path)
			}
			m.missing(st)
		}
		if attempt > 0 {
			return received, saved, fail(formats.KindExpunged, "dates", m.b.name, uid, "", errors.New("no such message"))
		}
		if st, err = m.load(ctx); err != nil {
			return received, saved, err
		}
	}
}

func (m *mailbox) messages(ctx context.Context, from formats.UID, dates bool) iter.Seq2[formats.Message, error] {
	return func(yield func(formats.Message, error) bool) {
		st, err := m.reuseOrLoad(ctx)
		if err != nil {
			yield(formats.Message{}, err)
			return
		}
		ms := m.modseqs(st)
		resyncs := 0
		for i := st.t.lowerBound(uint32(from)); i < len(st.t.recs); i++ {
			if err := ctx.Err(); err != nil {
				yield(formats.Message{}, wrap(err, "messages", m.b.name, 0, ""))
				return
			}
			r := &st.t.recs[i]
			if !dates && namedSize(st.t.base(r), st.t.ext(r)) >= 0 {
				msg := message(st, r, nil)
				msg.Recent = r.uid >= ms.recentFrom
				if ms.known {
					msg.ModSeq = formats.ModSeq(ms.per[i])
				}
				if !yield(msg, nil) {
					return
				}
				continue
			}
			fi, err := os.Stat(m.path(st, r))
			if errors.Is(err, fs.ErrNotExist) && resyncs < 3 {
				// Renamed or expunged meanwhile: sync and go on
				// from this UID.
				resyncs++
				m.missing(st)
				uid := r.uid
				if st, err = m.load(ctx); err != nil {
					yield(formats.Message{}, err)
					return
				}
				ms = m.modseqs(st)
				i = st.t.lowerBound(uid) - 1
				continue
			}
			if errors.Is(err, fs.ErrNotExist) {
				continue // expunged
			}
			if err != nil {
				yield(formats.Message{}, wrap(err, "messages", m.b.name, formats.UID(r.uid), m.path(st, r)))
				return
			}
			msg := message(st, r, fi)
			msg.Recent = r.uid >= ms.recentFrom
			if !dates {
				msg.Received, msg.Saved = time.Time{}, time.Time{}
			}
			if namedSize(st.t.base(r), st.t.ext(r)) < 0 && fileCompressed(m.path(st, r)) {
				// No ,S=: the file's size is not the message's.
				msg.Size = -1
			}
			if ms.known {
				msg.ModSeq = formats.ModSeq(ms.per[i])
			}
			if ms.extra != nil && len(ms.extra[i]) > 0 {
				// Keywords beyond the 26 letters: in the index only.
				msg.Keywords = formats.NormalizeKeywords(append(msg.Keywords, ms.extra[i]...))
			}
			if !yield(msg, nil) {
				return
			}
		}
	}
}

// message builds a record's Message; without fi (the file was not
// looked at) the dates are zero and the size is the named one.
func message(st *state, r *rec, fi fs.FileInfo) formats.Message {
	t := st.t
	base := t.base(r)
	ext := t.ext(r)
	msg := formats.Message{
		UID:   formats.UID(r.uid),
		GUID:  base,
		Size:  -1,
		VSize: -1,
	}
	if fi != nil {
		msg.Received, msg.Saved, msg.Size = fi.ModTime(), fi.ModTime(), fi.Size()
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			msg.Saved = statCtime(sys)
		}
	}
	// maildir-mail.c: the G field wins; an empty one is ignored.
	if g, ok := extValue(ext, extGUID); ok && g != "" {
		msg.GUID = g
	}
	if n := namedSize(base, ext); n >= 0 {
		msg.Size = n
	}
	if n, ok := extraSize(base, 'W'); ok {
		msg.VSize = n
	} else if v, ok := extValue(ext, extVSize); ok {
		if n, ok := parseSize(v); ok {
			msg.VSize = n
		}
	}
	if v, ok := extValue(ext, extPOP3UIDL); ok {
		if v == "" {
			v = base // "use the base file name" (MAIL_FETCH_UIDL_BACKEND)
		}
		msg.Ext = map[byte]string{'P': v}
	}
	if v, ok := extValue(ext, extPOP3Order); ok {
		if msg.Ext == nil {
			msg.Ext = map[byte]string{}
		}
		msg.Ext['O'] = v
	}
	var kws uint32
	msg.Flags, kws = parseFlags(t.nameBytes(r))
	for i := 0; i < maxKeywords; i++ {
		if kws&(1<<i) != 0 {
			msg.Keywords = append(msg.Keywords, st.kwNames[i])
		}
	}
	msg.Keywords = formats.NormalizeKeywords(msg.Keywords)
	return msg
}

// namedSize is the ,S= size of the file name, else dovecot-uidlist's S
// field, else -1. For a compressed file it is the uncompressed size.
func namedSize(base, ext string) int64 {
	if n, ok := extraSize(base, 'S'); ok {
		return n
	}
	if v, ok := extValue(ext, extPSize); ok {
		if n, ok := parseSize(v); ok {
			return n
		}
	}
	return -1
}

func parseSize(s string) (int64, bool) {
	var n int64
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// body is a message file as a formats.Body.
type body struct {
	io.Reader
	size int64
	file *os.File // the plain (uncompressed) message file, or nil
}

func (b body) Size() int64 { return b.size }

// FileSection implements formats.FileSection for a plain message file:
// the whole file, from offset 0, so that a destination can copy it in
// the kernel, or a Maildir on the same file system link it (tx.saveLink).
func (b body) FileSection() (*os.File, int64, bool) { return b.file, 0, b.file != nil }

// Body streams the exact bytes of message uid, decompressed when the file
// is compressed (detected by its magic bytes, as Dovecot's zlib plugin
// does); Size is then the uncompressed size, the file name's ,S=. If its file is gone
// because a concurrent Dovecot renamed it (a flag change), new/ and cur/
// are scanned again before the message is reported expunged.
func (m *mailbox) Body(ctx context.Context, uid formats.UID, fn func(formats.Body) error) error {
	st, err := m.current(ctx)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		i := st.t.find(uint32(uid))
		if i >= 0 {
			r := &st.t.recs[i]
			path := m.path(st, r)
			f, err := openRead(path)
			if err == nil {
				defer f.Close()
				b, _, closeBody, err := openBody(f, namedSize(st.t.base(r), st.t.ext(r)))
				if err != nil {
					return wrap(err, "body", m.b.name, uid, path)
				}
				err = fn(b)
				if cerr := closeBody(); err == nil && cerr != nil {
					return wrap(cerr, "body", m.b.name, uid, path)
				}
				return err
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return wrap(err, "body", m.b.name, uid, path)
			}
			m.missing(st)
		}
		if attempt > 0 {
			return fail(formats.KindExpunged, "body", m.b.name, uid, "", errors.New("no such message"))
		}
		if st, err = m.load(ctx); err != nil {
			return err
		}
	}
}

// Begin starts a transaction. The store must not be read-only.
func (m *mailbox) Begin(ctx context.Context) (formats.Tx, error) {
	if err := m.s.writable("begin", m.b.name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.tx != nil {
		m.mu.Unlock()
		return nil, fail(formats.KindInUse, "begin", m.b.name, 0, "", errors.New("a transaction is already open"))
	}
	m.mu.Unlock()
	// A fresh state, not one read up to reuseFor ago: Save promises UIDs
	// from it (Caps.SaveUIDs: kept when >= UIDNEXT), and a UIDNEXT that
	// Dovecot moved meanwhile would make Commit move them instead
	// (TestDovecotWritesBetweenOurCommits). The load is cheap: unchanged
	// directories and uidlist versions are taken from the last scan.
	st, err := m.load(ctx)
	if err != nil {
		return nil, err
	}
	m.cleanTmp()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tx != nil {
		return nil, fail(formats.KindInUse, "begin", m.b.name, 0, "", errors.New("a transaction is already open"))
	}
	m.tx = &tx{m: m, next: st.next, begun: st}
	return m.tx, nil
}

// tmpMaxAge is how old a tmp/ file gets before Dovecot deletes it
// (maildir-storage.h MAILDIR_TMP_DELETE_SECS).
const tmpMaxAge = 36 * time.Hour

// cleanTmp removes tmp/ files older than 36 hours, as Dovecot does, and
// files an interrupted run of ours left (named by a process of this host
// that no longer exists). Errors are ignored: this is housekeeping.
func (m *mailbox) cleanTmp() {
	m.mu.Lock()
	done := m.tmpGC
	m.tmpGC = true
	m.mu.Unlock()
	if done {
		return
	}
	dir := filepath.Join(m.b.dir, "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	old := time.Now().Add(-tmpMaxAge)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name := e.Name()
		if pid, ok := tmpOwner(name); ok && pid != os.Getpid() && !dotlock.ProcessExists(pid) {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(old) {
			os.Remove(filepath.Join(dir, name))
		}
	}
}

// tmpOwner returns the pid of a base name we generated on this host
// ("<secs>.M<usecs>P<pid>.<host>").
func tmpOwner(name string) (int, bool) {
	_, rest := leadingSecs(name)
	if len(rest) < 2 || rest[0] != '.' || rest[1] != 'M' {
		return 0, false
	}
	rest = rest[2:]
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(rest) || rest[i] != 'P' {
		return 0, false
	}
	rest = rest[i+1:]
	pid := 0
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' && pid < 1<<30 {
		pid = pid*10 + int(rest[j]-'0')
		j++
	}
	if j == 0 || rest[j:] != "."+genHost {
		return 0, false
	}
	return pid, true
}
