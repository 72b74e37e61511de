package mbox

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"iter"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/zlib"
)

// fileID identifies one version of a file: any write changes it.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
	ctime    int64
}

func idOf(fi fs.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), uint64(st.Ino)
		id.ctime = st.Ctim.Sec*1e9 + st.Ctim.Nsec
	}
	return id
}

// entry is one message of a snapshot: plain metadata and where it is.
type entry struct {
	uid      uint32
	flags    formats.Flags
	from     int64 // the From_ line
	hdr      int64 // the message's first byte
	end      int64
	size     int64 // as Body yields it
	received int64 // unix seconds
	keywords []string
	guid     [16]byte
}

// snapshot is a mailbox file as of one version: what Messages, Status
// and Body need, built by one scan.
type snapshot struct {
	id          fileID
	flavour     Flavour
	format      zlib.Format
	uidValidity uint32
	uidNext     uint32
	base        *imapBase // the first message's X-IMAPbase; nil when none
	pseudo      bool      // the file starts with the pseudo message
	allXUID     bool      // every message had a valid X-UID
	keywords    []string  // X-IMAPbase's list, then others in first use
	msgs        []entry
	ext         extMap // boxsync-ext: per-UID metadata mbox can't hold
	// lastNonRecent is the UID of the last message whose Status has
	// 'O', 0 when none has; firstRecent is the first UID Dovecot's next
	// session counts \Recent (see recentFrom).
	lastNonRecent uint32
	firstRecent   uint32
	warnings      []Warning
	lastByte      int // the file's last byte, -1 when empty
}

func (s *snapshot) find(uid formats.UID) *entry {
	i := sort.Search(len(s.msgs), func(i int) bool { return s.msgs[i].uid >= uint32(uid) })
	if i < len(s.msgs) && s.msgs[i].uid == uint32(uid) {
		return &s.msgs[i]
	}
	return nil
}

// mailbox is one open mbox mailbox.
type mailbox struct {
	s        *store // immutable
	name     string // immutable
	path     string // immutable
	indexDir string // immutable
	guid     formats.GUID

	mu   sync.Mutex
	snap *snapshot // guarded by mu: the last scan
	tx   *tx       // guarded by mu
	body *bodyFile // guarded by mu: kept open for sequential compressed reads
}

// bodyFile keeps a compressed file's decompressor between Body calls.
type bodyFile struct {
	f   *os.File
	src source
	id  fileID
}

func (mb *mailbox) Name() string { return mb.name }

// openSource detects compression by magic, as Dovecot's zlib plugin does.
func openSource(f *os.File) (source, error) {
	var head [zlib.MagicLen]byte
	n, err := f.ReadAt(head[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if format := zlib.Detect(head[:n]); format != zlib.None {
		return newZSource(f, format), nil
	}
	return fileSource{f}, nil
}

func formatOf(src source) zlib.Format {
	if z, ok := src.(*zSource); ok {
		return z.format
	}
	return zlib.None
}

// openLocked opens the file with a read lock.
func (mb *mailbox) openLocked(ctx context.Context) (*os.File, fileID, error) {
	f, err := os.Open(mb.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fileID{}, &formats.Error{Kind: formats.KindNotFound, Op: "mbox", Mailbox: mb.name, Err: errors.New("mailbox was deleted")}
		}
		return nil, fileID{}, mb.s.wrap(err, "open", mb.name, mb.path)
	}
	if err := fcntlLock(ctx, f, false); err != nil {
		f.Close()
		return nil, fileID{}, mb.s.wrap(err, "lock", mb.name, mb.path)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fileID{}, mb.s.wrap(err, "stat", mb.name, mb.path)
	}
	return f, idOf(fi), nil
}

// snapshot returns the current snapshot, scanning the file when it
// changed since the last scan.
func (mb *mailbox) snapshot(ctx context.Context) (*snapshot, error) {
	fi, err := os.Stat(mb.path)
	if err != nil {
		return nil, mb.s.wrap(err, "stat", mb.name, mb.path)
	}
	mb.mu.Lock()
	snap := mb.snap
	mb.mu.Unlock()
	if snap != nil && snap.id == idOf(fi) {
		return snap, nil
	}
	f, id, err := mb.openLocked(ctx)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	snap, err = scanFile(ctx, f, mb.s.readOpts(), mb.indexDir)
	if err != nil {
		return nil, formats.Wrap(err, formats.KindTemp, "mbox: read", mb.name, 0, mb.path)
	}
	snap.id = id
	mb.mu.Lock()
	mb.snap = snap
	mb.mu.Unlock()
	return snap, nil
}

// scanFile reads a whole mbox file (held locked by the caller) into a
// snapshot. Foreign files take two passes: the flavour, which decides
// how bodies read, is known only at the end.
func scanFile(ctx context.Context, f *os.File, o readOpts, indexDir string) (*snapshot, error) {
	src, err := openSource(f)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	snap, err := scanPass(ctx, src, o, false)
	if err != nil {
		return nil, err
	}
	if snap.flavour == FlavourMboxrd {
		if snap, err = scanPass(ctx, src, o, true); err != nil {
			return nil, err
		}
	}
	snap.format = formatOf(src)
	var info indexInfo
	if indexDir != "" {
		info = readIndex(indexDir)
	}
	if snap.base == nil {
		switch {
		case info.uidValidity != 0 && len(snap.msgs) == 0:
			snap.uidValidity = info.uidValidity
			snap.uidNext = max(snap.uidNext, info.nextUID)
		case len(snap.msgs) == 0:
			snap.uidValidity = fallbackUIDValidity(nil, f)
		}
	}
	snap.firstRecent = recentFrom(snap, info)
	if snap.ext, err = readExt(indexDir, snap.uidValidity); err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 && snap.format == zlib.None {
		var b [1]byte
		if _, err := f.ReadAt(b[:], fi.Size()-1); err == nil {
			snap.lastByte = int(b[0])
		}
	}
	return snap, nil
}

func scanPass(ctx context.Context, src source, o readOpts, unescape bool) (*snapshot, error) {
	sc, err := newScanner(src, o)
	if err != nil {
		return nil, err
	}
	snap := &snapshot{allXUID: true, lastByte: -1}
	var stats flavourStats
	kwIndex := map[string]string{} // interned keyword strings
	first := true
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m, err := sc.nextMessage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if first {
			first = false
			if m.hdr.base != nil {
				stats.dovecot = true
				snap.base = m.hdr.base
				snap.uidValidity = m.hdr.base.uidValidity
				for _, kw := range m.hdr.base.keywords {
					if isKeywordValid(kw) && kwIndex[kw] == "" {
						kwIndex[kw] = kw
						snap.keywords = append(snap.keywords, kw)
					}
				}
			} else {
				snap.uidValidity = fallbackUIDValidity(m, nil)
			}
			if m.hdr.pseudo {
				snap.pseudo = true
				continue
			}
		}
		stats.add(m)
		if m.hdr.uid == 0 {
			continue
		}
		e := entry{uid: m.hdr.uid, flags: m.hdr.flags, from: m.fromOff, hdr: m.hdrOff, end: m.end,
			received: m.from.date.Unix()}
		if _, err := hex.Decode(e.guid[:], []byte(m.hdr.guid)); err != nil {
			return nil, err
		}
		if !m.hdr.uidFromHeader {
			snap.allXUID = false
		}
		e.size = m.end - m.hdrOff - hiddenLen(m.hdr.hidden, m.hdrOff, m.end)
		if unescape {
			e.size -= int64(m.rdLines)
		}
		for _, kw := range m.hdr.keywords {
			s := kwIndex[kw]
			if s == "" {
				s = kw
				kwIndex[kw] = kw
				snap.keywords = append(snap.keywords, kw)
			}
			e.keywords = append(e.keywords, s)
		}
		if m.hdr.nonRecent {
			snap.lastNonRecent = m.hdr.uid
		}
		snap.msgs = append(snap.msgs, e)
	}
	snap.uidNext = sc.st.nextUID
	snap.flavour = stats.flavour()
	snap.warnings = sc.warnings
	return snap, nil
}

// recentFrom is the first UID of snap that Dovecot's next session
// counts \Recent (formats.Message.Recent), info its index for the
// mailbox (zero without one). dovecot 2.3.19.1: mbox-sync-parse.c starts
// every message MAIL_RECENT and a Status 'O' takes it away; mbox-sync.c
// mbox_sync_update_index records the UID of the last message with 'O' it
// parses (last_nonrecent_uid: "no messages before this can be recent"),
// and mbox_sync_update_index_header raises that to the header's
// first_recent_uid - 1 ("other sessions have already marked more
// messages as recent") and marks the rest recent, raising
// first_recent_uid to the first of them. A session that claims \Recent
// (IMAP SELECT, MAILBOX_FLAG_DROP_RECENT) raises first_recent_uid to
// next_uid and adds 'O' to Status, perhaps only later (mbox_lazy_writes),
// so both are read. The index counts only when it is the file's
// (UIDVALIDITY agrees); Dovecot resets another.
//
// QUIRK: Dovecot takes 'O' from the messages its sync parses: all of
// them when it reads the file anew (no index, or a file another program
// rewrote: boxsync's writes make it so), only the appended ones when the
// file just grew. An 'O' another program put into an indexed message of
// a file that then grew counts here but not in Dovecot.
func recentFrom(snap *snapshot, info indexInfo) uint32 {
	first := snap.lastNonRecent + 1
	if info.uidValidity != 0 && info.uidValidity == snap.uidValidity && info.firstRecent > first {
		first = info.firstRecent
	}
	return min(first, max(snap.uidNext, 1))
}

// hiddenLen is how many bytes of [from, to) the hidden spans cover.
func hiddenLen(hidden []span, from, to int64) int64 {
	var n int64
	for _, h := range hidden {
		s, e := max(h.start, from), min(h.end, to)
		if e > s {
			n += e - s
		}
	}
	return n
}

func (mb *mailbox) Status(ctx context.Context) (formats.Status, error) {
	snap, err := mb.snapshot(ctx)
	if err != nil {
		return formats.Status{}, err
	}
	guid := mb.guid
	return formats.Status{GUID: guid, UIDValidity: snap.uidValidity, UIDNext: formats.UID(snap.uidNext),
		Messages: len(snap.msgs), FirstRecentUID: formats.UID(snap.firstRecent), Caps: Driver{}.Caps()}, nil
}

func (mb *mailbox) Messages(ctx context.Context, from formats.UID) iter.Seq2[formats.Message, error] {
	return func(yield func(formats.Message, error) bool) {
		snap, err := mb.snapshot(ctx)
		if err != nil {
			yield(formats.Message{}, err)
			return
		}
		i := sort.Search(len(snap.msgs), func(i int) bool { return snap.msgs[i].uid >= uint32(from) })
		for _, e := range snap.msgs[i:] {
			if err := ctx.Err(); err != nil {
				yield(formats.Message{}, err)
				return
			}
			m := formats.Message{
				UID:      formats.UID(e.uid),
				GUID:     hex.EncodeToString(e.guid[:]),
				Flags:    e.flags,
				Recent:   e.uid >= snap.firstRecent,
				Keywords: append([]string(nil), e.keywords...),
				Received: time.Unix(e.received, 0),
				Size:     e.size,
				VSize:    -1,
			}
			m.Keywords = formats.NormalizeKeywords(m.Keywords)
			if x := snap.ext[e.uid]; len(x) > 0 {
				m.Ext = make(map[byte]string, len(x))
				for k, v := range x {
					m.Ext[k] = v
				}
			}
			if !yield(m, nil) {
				return
			}
		}
	}
}

type body struct {
	io.Reader
	size int64
}

func (b body) Size() int64 { return b.size }

func (mb *mailbox) Body(ctx context.Context, uid formats.UID, fn func(formats.Body) error) error {
	for attempt := 0; ; attempt++ {
		snap, err := mb.snapshot(ctx)
		if err != nil {
			return err
		}
		e := snap.find(uid)
		if e == nil {
			return &formats.Error{Kind: formats.KindExpunged, Op: "mbox: body", Mailbox: mb.name, UID: uid, Err: errors.New("no such message")}
		}
		f, id, err := mb.openLocked(ctx)
		if err != nil {
			return err
		}
		if id != snap.id {
			// Changed between the scan and the lock: scan again.
			f.Close()
			if attempt < 3 {
				continue
			}
			return &formats.Error{Kind: formats.KindTemp, Op: "mbox: body", Mailbox: mb.name, UID: uid, Err: errors.New("mailbox keeps changing")}
		}
		err = mb.withBody(f, snap, e, fn)
		f.Close() // drops the read lock
		return formats.Wrap(err, formats.KindTemp, "mbox: body", mb.name, uid, "")
	}
}

func (mb *mailbox) withBody(f *os.File, snap *snapshot, e *entry, fn func(formats.Body) error) error {
	var src source = fileSource{f}
	if snap.format != zlib.None {
		// Keep the decompressor: reading bodies in file order is
		// then one pass over the file.
		mb.mu.Lock()
		bf := mb.body
		if bf == nil || bf.id != snap.id {
			if bf != nil {
				bf.src.Close()
				bf.f.Close()
			}
			g, err := os.Open(mb.path)
			if err != nil {
				mb.mu.Unlock()
				return err
			}
			bf = &bodyFile{f: g, src: newZSource(g, snap.format), id: snap.id}
			mb.body = bf
		}
		mb.mu.Unlock()
		src = bf.src
	}
	lay, err := messageLayout(src, e.hdr, e.end)
	if err != nil {
		return err
	}
	r, err := segmentReader(src, lay.segs)
	if err != nil {
		return err
	}
	if snap.flavour == FlavourMboxrd {
		r = newUnquoter(r)
	}
	cr := &countReader{r: r}
	if err := fn(body{cr, e.size}); err != nil {
		return err
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// layout is where a message's parts are.
type layout struct {
	segs          []span // the message without Dovecot's header lines
	eoh           bool   // the header has its empty line
	bodyOff       int64  // after it (== end without one)
	keptBeforeEOH int64  // bytes of segs before the empty line
	rdBeforeEOH   int64  // header lines mboxrd unquotes
}

// messageLayout parses the header of the message [hdr, end) again.
func messageLayout(src source, hdr, end int64) (layout, error) {
	lay := layout{bodyOff: end}
	lr, err := newLineReaderSize(src, hdr, 4096)
	if err != nil {
		return lay, err
	}
	hp := newHeaderParser(&fileState{known: map[string]bool{}, nextUID: 1, seq: 1})
	eohAt := end
	for lr.off < end {
		li, err := lr.next(maxHeader)
		if err != nil {
			return lay, err
		}
		if li.n == 0 {
			break
		}
		if li.blank() {
			if li.start+li.n <= end {
				lay.eoh = true
				eohAt = li.start
				lay.bodyOff = li.start + li.n
			}
			break
		}
		if _, _, rd := isQuotedFrom(li.data); rd {
			lay.rdBeforeEOH++
		}
		hp.line(li.start, li.data)
	}
	h := hp.finish()
	pos := hdr
	for _, sp := range h.hidden {
		s, e := max(sp.start, hdr), min(sp.end, end)
		if s > pos {
			lay.segs = append(lay.segs, span{pos, min(s, end)})
		}
		if e > pos {
			pos = e
		}
	}
	if end > pos {
		lay.segs = append(lay.segs, span{pos, end})
	}
	lay.keptBeforeEOH = eohAt - hdr - hiddenLen(h.hidden, hdr, eohAt)
	return lay, nil
}

// segmentReader reads the segments one after the other. For a
// compressed source the segments must ascend (they do).
func segmentReader(src source, segs []span) (io.Reader, error) {
	if _, ok := src.(fileSource); ok {
		rs := make([]io.Reader, 0, len(segs))
		for _, s := range segs {
			r, _ := src.at(s.start)
			rs = append(rs, io.LimitReader(r, s.end-s.start))
		}
		return io.MultiReader(rs...), nil
	}
	return &lazySegments{src: src, segs: segs}, nil
}

// lazySegments positions a forward-only source at each segment only when
// it gets there.
type lazySegments struct {
	src  source
	segs []span
	cur  io.Reader
}

func (l *lazySegments) Read(p []byte) (int, error) {
	for {
		if l.cur == nil {
			if len(l.segs) == 0 {
				return 0, io.EOF
			}
			r, err := l.src.at(l.segs[0].start)
			if err != nil {
				return 0, err
			}
			l.cur = io.LimitReader(r, l.segs[0].end-l.segs[0].start)
			l.segs = l.segs[1:]
		}
		n, err := l.cur.Read(p)
		if err == io.EOF {
			l.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

// unquoter removes one '>' from lines matching /^>+From / (mboxrd).
type unquoter struct {
	br      *bufio.Reader
	atStart bool
	pending []byte
}

func newUnquoter(r io.Reader) io.Reader {
	return &unquoter{br: bufio.NewReaderSize(r, 64<<10), atStart: true}
}

func (u *unquoter) Read(p []byte) (int, error) {
	for len(u.pending) == 0 {
		chunk, err := u.br.ReadSlice('\n')
		if len(chunk) > 0 {
			if u.atStart {
				if _, _, rd := isQuotedFrom(chunk); rd {
					chunk = chunk[1:]
				}
			}
			u.atStart = chunk[len(chunk)-1] == '\n'
			u.pending = chunk
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return 0, err
		}
	}
	n := copy(p, u.pending)
	u.pending = u.pending[n:]
	return n, nil
}

func (mb *mailbox) Begin(ctx context.Context) (formats.Tx, error) {
	if mb.s.readOnly {
		return nil, &formats.Error{Kind: formats.KindPerm, Op: "mbox: begin", Mailbox: mb.name, Err: errors.New("store is read-only")}
	}
	snap, err := mb.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.tx != nil && !mb.tx.done {
		return nil, &formats.Error{Kind: formats.KindInUse, Op: "mbox: begin", Mailbox: mb.name, Err: errors.New("a transaction is already open")}
	}
	t := &tx{mb: mb, nextUID: formats.UID(snap.uidNext), flags: map[formats.UID]flagSet{}, expunge: map[formats.UID]bool{}}
	mb.tx = t
	return t, nil
}

func (mb *mailbox) Close() error {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	var errs []error
	if mb.tx != nil && !mb.tx.done {
		errs = append(errs, mb.tx.rollbackLocked())
	}
	if mb.body != nil {
		errs = append(errs, mb.body.src.Close(), mb.body.f.Close())
		mb.body = nil
	}
	return errors.Join(errs...)
}

// Warnings lists the places where splitting the file into messages was
// a guess (see Warning). Reach it with formats.As or a type assertion to
// interface{ Warnings(context.Context) ([]Warning, error) }.
func (mb *mailbox) Warnings(ctx context.Context) ([]Warning, error) {
	snap, err := mb.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return append([]Warning(nil), snap.warnings...), nil
}

// Flavour tells what kind of mbox the file is.
func (mb *mailbox) Flavour(ctx context.Context) (Flavour, error) {
	snap, err := mb.snapshot(ctx)
	if err != nil {
		return "", err
	}
	return snap.flavour, nil
}
