package index

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index/log"
)

// Prefix is the file name prefix of a mailbox index ("dovecot.index",
// "dovecot.index.log", …). The mdbox map uses "dovecot.map.index".
const (
	Prefix    = "dovecot.index"
	MapPrefix = "dovecot.map.index"
)

// Dovecot's default thresholds (mail-index.c default_optimization_set;
// settings mail_index_rewrite_{min,max}_log_bytes,
// mail_index_log_rotate_{min_size,max_size,min_age}).
const (
	DefaultRewriteMinLogBytes = 8 * 1024
	DefaultRewriteMaxLogBytes = 128 * 1024
	DefaultLogRotateMinSize   = 32 * 1024
	DefaultLogRotateMaxSize   = 1024 * 1024
	DefaultLogRotateMinAge    = 5 * time.Minute
)

// Options configure Create and Open. The zero value is Dovecot's defaults.
type Options struct {
	// Create only: the new mailbox's UIDVALIDITY (0: the current time),
	// the indexid (0: the current time), extensions to introduce with
	// their initial headers (e.g. DboxHdr{…}.Ext()), and whether to leave
	// out the "modseq" extension (then modseqs can't be set).
	UIDValidity uint32
	IndexID     uint32
	Extensions  []ExtDef
	NoModSeq    bool

	Fsync       formats.FsyncMode
	LockMethod  log.LockMethod
	LockTimeout time.Duration // 0: 3 minutes

	// Thresholds for rewriting dovecot.index and rotating the log; zero
	// values mean Dovecot's defaults. A negative RewriteMaxLogBytes never
	// writes dovecot.index (log-only mailboxes stay log-only).
	RewriteMinLogBytes int64
	RewriteMaxLogBytes int64
	LogRotateMinSize   int64
	LogRotateMaxSize   int64
	LogRotateMinAge    time.Duration

	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time

	// Open only: NoKeywords reads the index for a status (UIDVALIDITY,
	// UIDNEXT, message count, HIGHESTMODSEQ, extension headers): the
	// log's keyword changes after the first one are not applied, since
	// setting each message's keyword bits is most of replaying a log
	// of a mailbox with many keywords (issue 6: a stateful sync without
	// changes opens every mailbox's index on both sides). The first one
	// still registers the "keywords" extension, so later extensions keep
	// the ids the log numbers them by. The view's keywords are then
	// incomplete: Begin on such an Index fails.
	NoKeywords bool
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func orDefault[T int64 | time.Duration](v, d T) T {
	if v == 0 {
		return d
	}
	return v
}

func (o *Options) writerOptions() log.WriterOptions {
	return log.WriterOptions{Fsync: o.Fsync, LockMethod: o.LockMethod, LockTimeout: o.LockTimeout}
}

// Index is one Dovecot index (a mailbox's dovecot.index* files or the mdbox
// map). It keeps the state read from the files; View returns snapshots of
// it and Begin starts a transaction. An Index is safe for concurrent use.
type Index struct {
	dir, prefix string
	opt         Options // immutable

	mu sync.Mutex // guards everything below
	st *state
	// dovecot.index as on disk: its log_file_seq and tail offset (0, 0
	// when there is none), Dovecot's main_index_hdr_log_file_*.
	indexSeq, indexTail uint32
	// minWrite: the index was read with more than RewriteMinLogBytes of
	// log to replay, so rewrite it soon (Dovecot's index_min_write).
	minWrite bool
	head     headID // the log head the state was read from
	scan     headScan
	known    *log.File // the log as this Index's last Writer left it
}

// headScan is where finishReplay's scans of a log head stopped: its
// modseq counter and tail offset there. Without it every commit would
// read the whole head again (Dovecot keeps both as it reads); a log only
// grows until it is rotated, so a later scan of the same file resumes
// there. The file is the same when its sequence, creation time and index
// ID are, and the tail scan also depends on where it started (initTail).
type headScan struct {
	fileSeq, createStamp, indexID, initTail uint32
	modseq                                  uint64
	tail                                    log.TailScan // tail.Off: where both stopped
}

// scanHead returns head's modseq counter and tail offset at its end,
// resuming the last scan of the same file. ix.mu is held, or ix is not
// shared yet.
func (ix *Index) scanHead(head *log.File, initTail uint32) (modseq uint64, tail uint32, err error) {
	prev := ix.scan
	start := headScan{fileSeq: head.Hdr.FileSeq, createStamp: head.Hdr.CreateStamp, indexID: head.Hdr.IndexID, initTail: initTail,
		modseq: head.Hdr.InitialModSeq, tail: head.TailStart(initTail)}
	if prev.fileSeq == start.fileSeq && prev.createStamp == start.createStamp && prev.indexID == start.indexID &&
		prev.initTail == initTail && prev.tail.Off >= start.tail.Off && prev.tail.Off <= head.End {
		start = prev
	}
	m, ok := modseqFrom(head, start.tail.Off, start.modseq, head.End)
	ts, err := head.TailFrom(start.tail)
	if err != nil {
		return 0, 0, err
	}
	if ok { // log.Parse makes the records end at End: else nothing to resume
		start.modseq, start.tail = m, ts
		ix.scan = start
	}
	return m, ts.MaxTail, nil
}

// headID identifies the log head file as last read.
type headID struct {
	fi   os.FileInfo
	size int64
}

func (ix *Index) indexPath() string { return filepath.Join(ix.dir, ix.prefix) }
func (ix *Index) logPath() string   { return ix.indexPath() + ".log" }

// Dir is the directory holding the index files.
func (ix *Index) Dir() string { return ix.dir }

// Open reads the index in dir ("dovecot.index" and its logs for prefix
// Prefix): dovecot.index if present, then the log replayed on top of it
// (spec §2.6.7). A missing index and log is an error matching
// formats.ErrNotFound; a corrupted one a *log.CorruptError.
func Open(dir, prefix string, opt *Options) (*Index, error) {
	ix := &Index{dir: dir, prefix: prefix}
	if opt != nil {
		ix.opt = *opt
	}
	l, err := ix.load(nil)
	if err != nil {
		return nil, err
	}
	ix.adopt(l)
	return ix, nil
}

// loaded is the result of reading the files.
type loaded struct {
	st                  *state
	indexSeq, indexTail uint32
	minWrite            bool
	head                headID
}

func (ix *Index) adopt(l *loaded) {
	ix.st, ix.indexSeq, ix.indexTail, ix.minWrite, ix.head = l.st, l.indexSeq, l.indexTail, l.minWrite, l.head
}

// load reads dovecot.index and the logs. head, when not nil, is the log
// head already read (under the write lock).
func (ix *Index) load(head *log.File) (*loaded, error) {
	l := &loaded{}
	var st *state
	data, err := os.ReadFile(ix.indexPath())
	switch {
	case err == nil:
		if st, err = parseIndexFile(ix.indexPath(), data); err != nil {
			return nil, err
		}
		l.indexSeq, l.indexTail = st.get(offLogFileSeq), st.get(offLogFileTailOffset)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if head == nil {
		head, err = log.ReadFile(ix.logPath())
		if errors.Is(err, fs.ErrNotExist) {
			head, err = nil, nil
		}
		if err != nil {
			return nil, err
		}
		if head != nil {
			if fi, err := os.Stat(ix.logPath()); err == nil {
				l.head = headID{fi: fi, size: int64(len(head.Data))}
			}
		}
	} else if fi, err := os.Stat(ix.logPath()); err == nil {
		l.head = headID{fi: fi, size: int64(len(head.Data))}
	}
	if st == nil && head == nil {
		return nil, &formats.Error{Kind: formats.KindNotFound, Op: "index: open", Path: ix.indexPath(),
			Err: fs.ErrNotExist}
	}
	if head == nil {
		// index only: Dovecot will start a new log continuing it
		st.logModSeq = max(st.highestModSeq(), 1)
		st.viewModSeq = st.logModSeq
		st.logPos = log.Pos{FileSeq: st.get(offLogFileSeq), Offset: st.get(offLogFileHeadOffset)}
		st.tracking = st.modseqExt() != nil
		l.st = st
		return l, nil
	}
	if st != nil && head.Hdr.IndexID != st.get(offIndexID) {
		return nil, &log.CorruptError{File: head.Path, Offset: 4,
			Reason: fmt.Sprintf("indexid changed: %d -> %d", st.get(offIndexID), head.Hdr.IndexID)}
	}
	logs := &logSet{files: []*log.File{head}}
	startPos := log.Pos{FileSeq: 1, Offset: 0} // mail_index_map_alloc: log_file_seq 1
	if st != nil {
		startPos = log.Pos{FileSeq: st.get(offLogFileSeq), Offset: st.get(offLogFileHeadOffset)}
	}
	if head.Hdr.PrevFileSeq != 0 && startPos.FileSeq < head.Hdr.FileSeq &&
		!(head.Hdr.PrevFileSeq == startPos.FileSeq && head.Hdr.PrevFileOffset == startPos.Offset) {
		l2, err := readLog2(ix.logPath()+".2", head)
		if err != nil {
			return nil, err
		}
		if l2 != nil {
			logs.files = []*log.File{l2, head}
		}
	}
	from, reset, reason := logs.start(startPos)
	if reason != "" {
		if st == nil {
			reason = fmt.Sprintf("no dovecot.index, and the log does not start a new index (prev_file_seq=%d): %s",
				head.Hdr.PrevFileSeq, reason)
		}
		return nil, &log.CorruptError{File: head.Path, Offset: -1,
			Reason: fmt.Sprintf("Lost log for seq=%d offset=%d: %s", startPos.FileSeq, startPos.Offset, reason)}
	}
	fromIndex := st != nil
	if st == nil || reset {
		fsckd := st != nil && st.get(offFlags)&HdrFlagFsckd != 0
		st = newState(head.Hdr.IndexID)
		if fsckd {
			st.put(offFlags, HdrFlagFsckd)
		}
		if reset {
			st.put(offLogFileSeq, from.FileSeq)
		}
	}
	var initTail uint32
	if fromIndex && !reset && l.indexSeq == head.Hdr.FileSeq {
		initTail = l.indexTail
	}
	r := newReplay(st, logs)
	r.noKeywords = ix.opt.NoKeywords
	if st.tracking {
		r.pos = from
		r.catchUp()
	}
	endModSeq, err := logs.walk(from, log.Pos{}, nil, func(e *entry) error {
		return r.apply(e.raw, e.file.Path, e.pos, e.modseq)
	})
	if err != nil {
		return nil, err
	}
	if err := ix.finishReplay(r, head, endModSeq, initTail); err != nil {
		return nil, err
	}
	// mail_index_sync_map: reading much log makes the index worth rewriting
	mapSeq, mapTail := uint32(1), uint32(0)
	if fromIndex {
		mapSeq, mapTail = l.indexSeq, l.indexTail
	}
	if head.Hdr.FileSeq != mapSeq || int64(head.End)-int64(mapTail) > orDefault(ix.opt.RewriteMinLogBytes, DefaultRewriteMinLogBytes) {
		l.minWrite = true
	}
	l.st = st
	return l, nil
}

func (ix *Index) finishReplay(r *replay, head *log.File, endModSeq uint64, initTail uint32) error {
	headModSeq, tail, err := ix.scanHead(head, initTail)
	if err != nil {
		return err
	}
	r.path, r.pos = head.Path, log.Pos{FileSeq: head.Hdr.FileSeq, Offset: head.End}
	if err := r.finish(log.Pos{FileSeq: head.Hdr.FileSeq, Offset: head.End}, endModSeq, headModSeq, tail); err != nil {
		return err
	}
	r.s.viewModSeq = endModSeq
	r.s.tail = tail
	return nil
}

// advance replays what head holds after st's position (same file, grown)
// onto a copy of st.
func (ix *Index) advance(st *state, head *log.File) (*state, error) {
	return ix.advanceOwned(st.clone(), head)
}

// advanceOwned is advance onto st itself, a state nobody else sees yet.
func (ix *Index) advanceOwned(st *state, head *log.File) (*state, error) {
	logs := &logSet{files: []*log.File{head}}
	r := newReplay(st, logs)
	r.noKeywords = ix.opt.NoKeywords
	if st.tracking {
		// mail_index_modseq_sync_begin: catch up if the modseq header
		// lags (after a rotation it points at the previous log's end)
		r.pos = st.logPos
		r.catchUp()
	}
	m0 := st.viewModSeq
	endModSeq, err := logs.walk(st.logPos, log.Pos{}, &m0, func(e *entry) error {
		return r.apply(e.raw, e.file.Path, e.pos, e.modseq)
	})
	if err != nil {
		return nil, err
	}
	var initTail uint32
	if ix.indexSeq == head.Hdr.FileSeq {
		initTail = ix.indexTail
	}
	if err := ix.finishReplay(r, head, endModSeq, initTail); err != nil {
		return nil, err
	}
	return st, nil
}

// canAdvance tells whether head continues st's log file.
func canAdvance(st *state, head *log.File) bool {
	return st.logPos.FileSeq == head.Hdr.FileSeq && head.Hdr.IndexID == st.get(offIndexID) &&
		st.logPos.Offset >= uint32(head.Hdr.HdrSize) && st.logPos.Offset <= head.End
}

// Refresh reads what changed on disk since the last read.
func (ix *Index) Refresh() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.refresh()
}

func (ix *Index) refresh() error {
	fi, err := os.Stat(ix.logPath())
	if err == nil && ix.head.fi != nil && os.SameFile(fi, ix.head.fi) && fi.Size() == ix.head.size {
		return nil // unchanged
	}
	if err == nil && ix.head.fi != nil && os.SameFile(fi, ix.head.fi) && fi.Size() > ix.head.size {
		head, err := log.ReadFile(ix.logPath())
		if err != nil {
			return err
		}
		if canAdvance(ix.st, head) {
			st, err := ix.advance(ix.st, head)
			if err != nil {
				return err
			}
			ix.st = st
			ix.head = headID{fi: fi, size: int64(len(head.Data))}
			return nil
		}
	}
	l, err := ix.load(nil)
	if err != nil {
		return err
	}
	ix.adopt(l)
	return nil
}

// View returns an immutable snapshot of the index after reading what
// changed on disk.
func (ix *Index) View() (*View, error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err := ix.refresh(); err != nil {
		return nil, err
	}
	// ix.st is never changed in place once published (advance, load and
	// maybeRewrite build a new state), so the view shares it: a view of a
	// 50,000-message map index costs no copy of its records.
	return newView(ix.st, ix.logPath()), nil
}

// Create creates a new log-only index in dir (spec §2.9): a
// dovecot.index.log whose first record moves the log's tail past itself
// (§2.6.6), then one transaction setting UIDVALIDITY and introducing
// opt.Extensions and, unless opt.NoModSeq, the "modseq" extension. dir
// must exist. It fails with formats.ErrExists when the log or the index
// exists.
func Create(dir, prefix string, opt Options) (*Index, error) {
	ix := &Index{dir: dir, prefix: prefix, opt: opt}
	if _, err := os.Stat(ix.indexPath()); err == nil {
		return nil, &formats.Error{Kind: formats.KindExists, Op: "index: create", Path: ix.indexPath(), Err: fs.ErrExist}
	}
	for _, d := range opt.Extensions {
		if reason := checkExtDef(d.Name, d.HdrSize, d.RecordSize, d.RecordAlign); reason != "" || d.Name == ExtKeywords ||
			uint32(len(d.Hdr)) > d.HdrSize {
			return nil, formats.Errorf(formats.KindParams, "index: create: extension %q: invalid definition %s", d.Name, reason)
		}
	}
	now := uint32(opt.now().Unix())
	if opt.IndexID == 0 {
		opt.IndexID = now
	}
	if opt.UIDValidity == 0 {
		opt.UIDValidity = now
	}
	hdr := log.Header{Major: log.MajorVersion, Minor: log.MinorVersion, HdrSize: log.HeaderSize,
		IndexID: opt.IndexID, FileSeq: 1, CreateStamp: now, InitialModSeq: 1, CompatFlags: log.CompatLittleEndian}
	tailRec := &log.HeaderUpdate{Hdr: log.Hdr{Flags: log.External},
		Changes: []log.HdrChange{{Offset: offLogFileTailOffset, Data: le.AppendUint32(nil, log.HeaderSize+16)}}}
	w, err := log.Create(ix.logPath(), hdr, []log.Record{tailRec}, opt.writerOptions())
	if errors.Is(err, fs.ErrExist) {
		return nil, &formats.Error{Kind: formats.KindExists, Op: "index: create", Path: ix.logPath(), Err: err}
	}
	if err != nil {
		return nil, err
	}
	l, err := ix.loadLocked(w)
	if err != nil {
		w.Close()
		return nil, err
	}
	ix.adopt(l)
	tx := ix.begin(log.External)
	tx.SetHeader(FieldUIDValidity, opt.UIDValidity)
	for _, d := range opt.Extensions {
		tx.ExtIntro(d)
	}
	if !opt.NoModSeq {
		// as when Dovecot enables CONDSTORE: highest 1, log position 0/0
		d := ExtDefModSeq
		d.Hdr = ModSeqHdr{HighestModSeq: 1}.Encode()
		tx.ExtIntro(d)
	}
	ix.mu.Lock()
	_, err = ix.commitLocked(tx, w)
	ix.mu.Unlock()
	if err != nil {
		// don't leave a mailbox without UIDVALIDITY behind
		os.Remove(ix.logPath())
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return ix, nil
}

// loadLocked loads the state with the log head read by w.
func (ix *Index) loadLocked(w *log.Writer) (*loaded, error) {
	return ix.load(w.File())
}
