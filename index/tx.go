package index

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index/log"
)

// Tx collects changes to an index; nothing is written before Commit,
// which appends them to the log as one transaction. Methods record the
// change and report only argument errors; everything else is checked at
// Commit against the index as it is then. A Tx is not safe for concurrent
// use. Always `defer tx.Rollback()`.
type Tx struct {
	ix    *Index
	flags log.TypeFlags
	done  bool
	err   error // first argument error

	appends  map[uint32]uint8
	expunges map[uint32][16]byte
	flagOps  map[uint32]flagOp
	kwOps    map[uint32]*kwOp
	modseqs  map[uint32]uint64
	preHdr   map[uint32][]byte // offset → data, before appends
	postHdr  map[uint32][]byte
	exts     []*extTx
	hint     bool // Hint: appended without an fsync
}

type flagOp struct{ add, remove uint8 }

type kwOp struct {
	reset       bool
	add, remove map[string]bool
}

type extTx struct {
	name    string
	def     *ExtDef
	reset   bool
	resetID uint32
	keep    bool
	hdr     []log.HdrChange
	recs    map[uint32][]byte
	incs    []log.AtomicInc
}

// Begin starts a transaction whose records are written EXTERNAL (they
// describe changes already made to the mailbox) and SYNC (made to sync
// with another store, as dsync marks its own writes), so that Changes can
// tell them from others' changes.
func (ix *Index) Begin() *Tx { return ix.begin(log.External | log.Sync) }

// BeginFlags starts a transaction whose records carry flags instead.
// Without log.External, expunges are only requests to the backend.
func (ix *Index) BeginFlags(flags log.TypeFlags) *Tx {
	return ix.begin(flags & (log.External | log.Sync))
}

func (ix *Index) begin(flags log.TypeFlags) *Tx {
	tx := &Tx{ix: ix, flags: flags, appends: map[uint32]uint8{}, expunges: map[uint32][16]byte{},
		flagOps: map[uint32]flagOp{}, kwOps: map[uint32]*kwOp{}, modseqs: map[uint32]uint64{},
		preHdr: map[uint32][]byte{}, postHdr: map[uint32][]byte{}}
	if ix.opt.NoKeywords {
		tx.fail("opened without keywords (Options.NoKeywords): read only")
	}
	return tx
}

func (tx *Tx) fail(format string, args ...any) {
	if tx.err == nil {
		tx.err = formats.Errorf(formats.KindParams, "index: "+format, args...)
	}
}

// Append adds a message with uid and flags (record flag bits). UIDs must be
// >= the index's next UID; they are written in ascending order.
func (tx *Tx) Append(uid uint32, flags uint8) {
	if uid == 0 {
		tx.fail("append: uid 0")
		return
	}
	if _, dup := tx.appends[uid]; dup {
		tx.fail("append: uid %d twice", uid)
		return
	}
	tx.appends[uid] = flags &^ 0x20
}

// Expunge removes message uid; guid is its 128-bit GUID (zero if unknown),
// written in the EXPUNGE_GUID record.
func (tx *Tx) Expunge(uid uint32, guid [16]byte) {
	if uid == 0 {
		tx.fail("expunge: uid 0")
		return
	}
	tx.expunges[uid] = guid
}

// UpdateFlags adds and removes flag bits of message uid (new = old &^ remove
// | add). Replacing all flags is remove 0xff.
func (tx *Tx) UpdateFlags(uid uint32, add, remove uint8) {
	if uid == 0 {
		tx.fail("flags: uid 0")
		return
	}
	add &^= 0x20
	op := tx.flagOps[uid]
	op.remove |= remove
	op.add = op.add&^remove | add
	tx.flagOps[uid] = op
}

// KeywordModify says how UpdateKeywords changes a message's keywords.
type KeywordModify int

const (
	KeywordsAdd     KeywordModify = iota // add the names
	KeywordsRemove                       // remove the names
	KeywordsReplace                      // remove all, then add the names
)

// UpdateKeywords changes message uid's keywords.
func (tx *Tx) UpdateKeywords(uid uint32, mod KeywordModify, names ...string) {
	if uid == 0 {
		tx.fail("keywords: uid 0")
		return
	}
	for _, n := range names {
		if err := CheckKeyword(n); err != nil {
			tx.fail("keywords: %v", err)
			return
		}
	}
	op := tx.kwOps[uid]
	if op == nil {
		op = &kwOp{add: map[string]bool{}, remove: map[string]bool{}}
		tx.kwOps[uid] = op
	}
	switch mod {
	case KeywordsReplace:
		op.reset = true
		clear(op.add)
		clear(op.remove)
		fallthrough
	case KeywordsAdd:
		for _, n := range names {
			op.add[n] = true
			delete(op.remove, n)
		}
	case KeywordsRemove:
		for _, n := range names {
			delete(op.add, n)
			if !op.reset {
				op.remove[n] = true
			}
		}
	default:
		tx.fail("keywords: bad modify %d", mod)
	}
}

// CheckKeyword reports whether name can be a keyword: an IMAP atom (no
// space, parentheses, braces, quotes, backslash, '%', '*', ']' or control
// characters), not a system flag, at most 255 bytes.
func CheckKeyword(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("invalid keyword %q", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || c == '(' || c == ')' || c == '{' || c == '"' || c == '\\' ||
			c == '%' || c == '*' || c == ']' {
			return fmt.Errorf("invalid keyword %q", name)
		}
	}
	return nil
}

// SetModSeq raises message uid's modseq to at least modseq; uid 0 raises
// only the highest modseq (MODSEQ_UPDATE, spec §2.6.5). The index needs
// the "modseq" extension.
func (tx *Tx) SetModSeq(uid uint32, modseq uint64) {
	if modseq == 0 {
		tx.fail("modseq: 0")
		return
	}
	tx.modseqs[uid] = max(tx.modseqs[uid], modseq)
}

// SetHeader sets a 32-bit base header field. UIDVALIDITY is written before
// the appends, the others after them (a next_uid before the appends would
// make them invalid). Dovecot ignores a next_uid that would shrink.
func (tx *Tx) SetHeader(f HeaderField, value uint32) {
	data := le.AppendUint32(nil, value)
	if f == FieldUIDValidity {
		tx.preHdr[uint32(f)] = data
	} else {
		tx.postHdr[uint32(f)] = data
	}
}

// UpdateHeader writes raw bytes into the base header after the appends.
// Offsets 2..11 (the header and record sizes) can't be written.
func (tx *Tx) UpdateHeader(offset uint16, data []byte) {
	if int(offset)+len(data) > BaseHeaderSize || (int(offset) < offCompatFlags && int(offset)+len(data) > offBaseHeaderSize) {
		tx.fail("header update at %d+%d", offset, len(data))
		return
	}
	tx.postHdr[uint32(offset)] = slices.Clone(data)
}

func (tx *Tx) extTx(name string) *extTx {
	for _, e := range tx.exts {
		if e.name == name {
			return e
		}
	}
	if name == ExtKeywords {
		tx.fail("the keywords extension is changed only through keywords")
	}
	e := &extTx{name: name, recs: map[uint32][]byte{}}
	tx.exts = append(tx.exts, e)
	return e
}

// ExtIntro introduces extension d: creates it, or resizes it to d's sizes.
// A non-empty d.Hdr is written to its header.
func (tx *Tx) ExtIntro(d ExtDef) {
	if reason := checkExtDef(d.Name, d.HdrSize, d.RecordSize, d.RecordAlign); reason != "" {
		tx.fail("extension %q: %s", d.Name, reason)
		return
	}
	if uint32(len(d.Hdr)) > d.HdrSize {
		tx.fail("extension %q: %d header bytes for header size %d", d.Name, len(d.Hdr), d.HdrSize)
		return
	}
	e := tx.extTx(d.Name)
	dc := d
	e.def = &dc
	if len(d.Hdr) > 0 {
		e.hdr = append(e.hdr, log.HdrChange{Offset: 0, Data: slices.Clone(d.Hdr)})
	}
}

// ExtReset changes extension name's reset_id and, unless preserve, zeroes
// its header and records.
func (tx *Tx) ExtReset(name string, resetID uint32, preserve bool) {
	e := tx.extTx(name)
	e.reset, e.resetID, e.keep = true, resetID, preserve
}

// ExtHdrUpdate writes data at offset of extension name's header.
func (tx *Tx) ExtHdrUpdate(name string, offset uint32, data []byte) {
	e := tx.extTx(name)
	e.hdr = append(e.hdr, log.HdrChange{Offset: offset, Data: slices.Clone(data)})
}

// ExtRecUpdate sets extension name's record of message uid (data shorter
// than the record size is zero-padded).
func (tx *Tx) ExtRecUpdate(name string, uid uint32, data []byte) {
	if uid == 0 {
		tx.fail("extension %q: record for uid 0", name)
		return
	}
	tx.extTx(name).recs[uid] = slices.Clone(data)
}

// ExtAtomicInc adds diff to extension name's 1/2/4/8-byte record of uid.
func (tx *Tx) ExtAtomicInc(name string, uid uint32, diff int32) {
	if uid == 0 {
		tx.fail("extension %q: increment for uid 0", name)
		return
	}
	e := tx.extTx(name)
	e.incs = append(e.incs, log.AtomicInc{UID: uid, Diff: diff})
}

// Rollback discards the transaction; a no-op after Commit.
func (tx *Tx) Rollback() error {
	tx.done = true
	return nil
}

// Hint marks the transaction as a cache hint that need not survive a
// crash (a maildir header's directory mtimes: losing it only forces a
// rescan): Commit then appends it without an fsync, as Dovecot writes its
// log under mail_fsync=optimized. A later synced commit makes it durable
// with everything before it.
func (tx *Tx) Hint() { tx.hint = true }

// Commit appends the transaction to the log under Dovecot's log lock. The
// changes are first replayed on a copy of the index: if Dovecot would
// consider them corrupt, nothing is written. Afterwards the log may be
// rotated and dovecot.index rewritten, under the same rules as Dovecot.
// It returns the log position after the transaction.
func (tx *Tx) Commit() (log.Pos, error) {
	if tx.done {
		return log.Pos{}, errors.New("index: transaction already committed or rolled back")
	}
	tx.done = true
	if tx.err != nil {
		return log.Pos{}, tx.err
	}
	ix := tx.ix
	// lock order: ix.mu, then the log (log.ReadFile waits for the log too)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	w, err := ix.openWriter()
	if err != nil {
		return log.Pos{}, err
	}
	if tx.hint {
		w.SetFsync(formats.FsyncNever)
	}
	pos, err := ix.commitLocked(tx, w)
	return pos, ix.closeWriter(w, err)
}

// Update runs fill with a view of the index as it is under Dovecot's log
// lock and appends the transaction fill built before the lock is
// released: choices fill makes from the view (the next UID, a file named
// after it) cannot race another writer, Dovecot included, which holds
// the same lock from reading its index to appending (its index sync).
// The transaction is EXTERNAL and SYNC like Begin's. fill must not read
// this index by other means (that would wait for the lock fill runs
// under); it may read other indexes. If fill fails nothing is written
// and its error is returned. An error with a non-zero position means the
// transaction was appended and only what follows failed (rotating the
// log, rewriting dovecot.index, closing): the change is in the index.
func (ix *Index) Update(fill func(v *View, tx *Tx) error) (log.Pos, error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	w, err := ix.openWriter()
	if err != nil {
		return log.Pos{}, err
	}
	pos, err := ix.updateLocked(w, fill)
	return pos, ix.closeWriter(w, err)
}

func (ix *Index) updateLocked(w *log.Writer, fill func(v *View, tx *Tx) error) (log.Pos, error) {
	st, err := ix.catchUpLocked(w)
	if err != nil {
		return log.Pos{}, err
	}
	tx := ix.begin(log.External | log.Sync)
	if err := fill(newView(st, ix.logPath()), tx); err != nil { // st is immutable: see View
		return log.Pos{}, err
	}
	if tx.done {
		return log.Pos{}, errors.New("index: Update: fill committed or rolled back its transaction")
	}
	tx.done = true
	if tx.err != nil {
		return log.Pos{}, tx.err
	}
	return ix.commitLocked(tx, w)
}

// openWriter locks the log, creating it when only dovecot.index exists.
// ix.mu is held.
// closeWriter closes w after the work that ended with err, returning
// err or else the close's error, and keeps w's picture of the log for the
// next openWriter (log.WriterOptions.Known) when all went well.
func (ix *Index) closeWriter(w *log.Writer, err error) error {
	cerr := w.Close()
	if err == nil {
		err = cerr
	}
	ix.known = nil
	if err == nil {
		ix.known = w.File()
	}
	return err
}

func (ix *Index) openWriter() (*log.Writer, error) {
	for {
		opt := ix.opt.writerOptions()
		opt.Known = ix.known
		w, err := log.OpenWriter(ix.logPath(), opt)
		if !errors.Is(err, fs.ErrNotExist) {
			return w, err
		}
		st := ix.st
		if _, serr := os.Stat(ix.indexPath()); serr != nil {
			return nil, err // neither log nor index: the mailbox is gone
		}
		// index only: a new log continues it (mail_transaction_log_init_hdr)
		h := ix.newLogHeader(st.get(offLogFileSeq)+1, st.get(offLogFileSeq), st.get(offLogFileHeadOffset),
			max(st.highestModSeq(), 1))
		w, err = log.Create(ix.logPath(), h, []log.Record{tailRecord()}, ix.opt.writerOptions())
		if errors.Is(err, fs.ErrExist) {
			continue // someone else created it: lock that one
		}
		return w, err
	}
}

func (ix *Index) newLogHeader(seq, prevSeq, prevOff uint32, initialModSeq uint64) log.Header {
	return log.Header{Major: log.MajorVersion, Minor: log.MinorVersion, HdrSize: log.HeaderSize,
		IndexID: ix.st.get(offIndexID), FileSeq: seq, PrevFileSeq: prevSeq, PrevFileOffset: prevOff,
		CreateStamp: uint32(ix.opt.now().Unix()), InitialModSeq: initialModSeq,
		CompatFlags: log.CompatLittleEndian}
}

// tailRecord is the first record of a log this package creates: an
// EXTERNAL header update moving the tail just past itself (spec §2.6.6).
// QUIRK: Dovecot writes no such record in logs it rotates; having it makes
// the tail right even when dovecot.index can't be written.
func tailRecord() log.Record {
	return &log.HeaderUpdate{Hdr: log.Hdr{Flags: log.External},
		Changes: []log.HdrChange{{Offset: offLogFileTailOffset, Data: le.AppendUint32(nil, log.HeaderSize+16)}}}
}

// catchUpLocked brings the state up to the log w holds locked: replaying
// what others appended, or rereading everything after a rotation.
func (ix *Index) catchUpLocked(w *log.Writer) (*state, error) {
	head := w.File()
	if st := ix.st; st != nil && canAdvance(st, head) {
		if head.End != st.logPos.Offset {
			st2, err := ix.advance(st, head)
			if err != nil {
				return nil, err
			}
			ix.st = st2
		}
		ix.noteHead(w)
		return ix.st, nil
	}
	l, err := ix.load(head)
	if err != nil {
		return nil, err
	}
	ix.adopt(l)
	return ix.st, nil
}

// commitLocked writes tx with the log locked by w. ix.mu is held.
func (ix *Index) commitLocked(tx *Tx, w *log.Writer) (log.Pos, error) {
	head := w.File()
	st, err := ix.catchUpLocked(w)
	if err != nil {
		return log.Pos{}, err
	}
	recs, err := tx.records(st)
	if err != nil {
		return log.Pos{}, err
	}
	if len(recs) == 0 {
		return st.logPos, nil
	}
	buf, err := log.EncodeTransaction(recs)
	if err != nil {
		return log.Pos{}, err
	}
	// replay the transaction exactly as it will be on disk, before
	// writing anything
	// (one copy of the log: the writer's file then continues in the same
	// array, where Append writes these very bytes again).
	clean := head.Garbage() == 0 // nothing past End that a write could cover
	data := head.Data[:head.End:head.End]
	if clean {
		data = head.Data
	}
	next := &log.File{Path: head.Path, Hdr: head.Hdr, End: head.End + uint32(len(buf)),
		Data: append(data, buf...)}
	st2, err := ix.advance(st, next)
	if err != nil {
		return log.Pos{}, fmt.Errorf("index: commit refused, Dovecot would find it corrupt: %w", err)
	}
	if clean {
		head.Data = next.Data[:head.End]
	}
	if _, err := w.Append(recs); err != nil {
		return log.Pos{}, err
	}
	ix.st = st2
	ix.noteHead(w)
	if err := ix.maybeRewrite(w); err != nil {
		return ix.st.logPos, err
	}
	return st2.logPos, nil
}

func (ix *Index) noteHead(w *log.Writer) {
	if fi, err := os.Stat(w.Path()); err == nil {
		ix.head = headID{fi: fi, size: int64(len(w.File().Data))}
	}
}

// maybeRewrite rotates the log and writes dovecot.index when Dovecot would
// (mail_index_sync_commit: mail_transaction_log_want_rotate,
// mail_index_sync_want_index_write, mail_index_write). Both happen only
// when the log is fully synced (its tail at its end).
func (ix *Index) maybeRewrite(w *log.Writer) error {
	o := &ix.opt
	if o.RewriteMaxLogBytes < 0 {
		return nil
	}
	st, head := ix.st, w.File()
	if st.tail != head.End {
		return nil // changes pending for the backend
	}
	now := o.now()
	size := int64(head.End)
	wantRotate := head.Hdr.Version() < log.MajorVersion<<8|log.MinorVersion ||
		size > orDefault(o.LogRotateMaxSize, DefaultLogRotateMaxSize) ||
		(size >= orDefault(o.LogRotateMinSize, DefaultLogRotateMinSize) &&
			int64(head.Hdr.CreateStamp) < now.Add(-orDefault(o.LogRotateMinAge, DefaultLogRotateMinAge)).Unix())
	diff := int64(st.tail) - int64(ix.indexTail)
	if ix.indexSeq != st.get(offLogFileSeq) {
		diff = int64(st.tail)
	}
	wantWrite := (ix.indexSeq != 0 && ix.indexSeq != st.get(offLogFileSeq)) ||
		diff > orDefault(o.RewriteMaxLogBytes, DefaultRewriteMaxLogBytes) ||
		(ix.minWrite && diff > orDefault(o.RewriteMinLogBytes, DefaultRewriteMinLogBytes))
	if !wantRotate && !wantWrite {
		return nil
	}
	st = st.clone()
	if wantRotate {
		initial := max(st.highestModSeq(), st.logModSeq, 1)
		h := ix.newLogHeader(head.Hdr.FileSeq+1, head.Hdr.FileSeq, head.End, initial)
		if err := w.Rotate(h, []log.Record{tailRecord()}); err != nil {
			return err
		}
		st.put(offLogFileSeq, h.FileSeq)
		st.put(offLogFileHeadOffset, log.HeaderSize)
		st.put(offLogFileTailOffset, log.HeaderSize)
		st.put(offLog2RotateTime, uint32(now.Unix()))
	}
	if err := writeIndexFile(ix.indexPath(), st, o.Fsync); err != nil {
		return err
	}
	ix.indexSeq, ix.indexTail = st.get(offLogFileSeq), st.get(offLogFileHeadOffset)
	ix.minWrite = false
	if wantRotate {
		// continue in the new log (its tail record)
		st.logPos = log.Pos{FileSeq: st.get(offLogFileSeq), Offset: log.HeaderSize}
		st.logModSeq = w.File().Hdr.InitialModSeq
		st2, err := ix.advanceOwned(st, w.File()) // st is this function's clone
		if err != nil {
			return err
		}
		st = st2
		ix.noteHead(w)
	}
	ix.st = st
	return nil
}

// WriteIndex writes dovecot.index from the current state now (under the
// log lock), as Dovecot does when enough log has accumulated. A large
// log-only mailbox opens faster afterwards. Nothing is written while
// changes are pending for the backend (non-external records after the
// log's tail).
func (ix *Index) WriteIndex() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	w, err := ix.openWriter()
	if err != nil {
		return err
	}
	return ix.closeWriter(w, ix.writeIndexLocked(w))
}

func (ix *Index) writeIndexLocked(w *log.Writer) error {
	head := w.File()
	st, err := ix.catchUpLocked(w)
	if err != nil {
		return err
	}
	if st.tail != head.End {
		return nil
	}
	if err := writeIndexFile(ix.indexPath(), st, ix.opt.Fsync); err != nil {
		return err
	}
	ix.indexSeq, ix.indexTail = st.get(offLogFileSeq), st.get(offLogFileHeadOffset)
	ix.minWrite = false
	return nil
}

// records builds the transaction's log records against st, in the order
// mail_index_transaction_export writes them.
func (tx *Tx) records(st *state) ([]log.Record, error) {
	h := log.Hdr{Flags: tx.flags}
	var recs []log.Record
	add := func(r log.Record) { recs = append(recs, r) }

	// extension intros, resets and header updates before the appends
	resetIDs := map[string]uint32{}
	introFor := func(e *extTx) (*log.ExtIntro, error) {
		cur := st.ext(e.name)
		in := &log.ExtIntro{Hdr: h, ExtID: log.ExtIDNamed, Name: e.name, IntroFlags: log.IntroNoShrink}
		switch {
		case e.def != nil:
			in.HdrSize, in.RecordSize, in.RecordAlign = e.def.HdrSize, e.def.RecordSize, e.def.RecordAlign
			in.IntroFlags = 0
		case cur != nil:
			in.HdrSize, in.RecordSize, in.RecordAlign = cur.hdrSize, cur.recSize, cur.recAlign
		default:
			return nil, formats.Errorf(formats.KindParams, "index: extension %q does not exist; introduce it first", e.name)
		}
		if cur != nil {
			in.ResetID = cur.resetID
		}
		if id, ok := resetIDs[e.name]; ok {
			in.ResetID = id
		}
		return in, nil
	}
	for _, e := range tx.exts {
		if e.def == nil && !e.reset && len(e.hdr) == 0 {
			continue
		}
		in, err := introFor(e)
		if err != nil {
			return nil, err
		}
		add(in)
		if e.reset {
			add(&log.ExtReset{Hdr: h, NewResetID: e.resetID, PreserveData: e.keep})
			resetIDs[e.name] = e.resetID
		}
		if len(e.hdr) > 0 {
			var wide bool
			for _, c := range e.hdr {
				wide = wide || c.Offset > 0xffff || len(c.Data) > 0xffff
			}
			add(&log.ExtHdrUpdate{Hdr: h, Wide: wide, Changes: e.hdr})
		}
	}
	if len(tx.preHdr) > 0 {
		add(&log.HeaderUpdate{Hdr: h, Changes: hdrChanges(tx.preHdr)})
	}
	if len(tx.appends) > 0 {
		a := &log.Append{Hdr: h}
		for _, uid := range sortedKeys(tx.appends) {
			a.Recs = append(a.Recs, log.AppendRec{UID: uid, Flags: tx.appends[uid]})
		}
		if next := st.get(offNextUID); a.Recs[0].UID < next {
			return nil, &formats.Error{Kind: formats.KindParams, Op: "index: append",
				Err: fmt.Errorf("uid %d < next uid %d", a.Recs[0].UID, next)}
		}
		add(a)
	}
	if len(tx.flagOps) > 0 {
		fu := &log.FlagUpdate{Hdr: h}
		for _, uid := range sortedKeys(tx.flagOps) {
			op := tx.flagOps[uid]
			n := len(fu.Changes)
			if n > 0 && fu.Changes[n-1].UID2+1 == uid && fu.Changes[n-1].Add == op.add && fu.Changes[n-1].Remove == op.remove {
				fu.Changes[n-1].UID2 = uid
				continue
			}
			fu.Changes = append(fu.Changes, log.FlagChange{UID1: uid, UID2: uid, Add: op.add, Remove: op.remove})
		}
		add(fu)
	}
	for _, e := range tx.exts {
		if len(e.recs) == 0 && len(e.incs) == 0 {
			continue
		}
		in, err := introFor(e)
		if err != nil {
			return nil, err
		}
		add(in)
		if len(e.recs) > 0 {
			ru := &log.ExtRecUpdate{Hdr: h}
			for _, uid := range sortedKeys(e.recs) {
				d := e.recs[uid]
				if len(d) > int(in.RecordSize) {
					return nil, formats.Errorf(formats.KindParams, "index: extension %q: %d bytes for record size %d",
						e.name, len(d), in.RecordSize)
				}
				rec := make([]byte, in.RecordSize)
				copy(rec, d)
				ru.Recs = append(ru.Recs, log.ExtRec{UID: uid, Data: rec})
			}
			add(ru)
		}
		if len(e.incs) > 0 {
			add(&log.ExtAtomicInc{Hdr: h, Incs: e.incs})
		}
	}
	if len(tx.kwOps) > 0 {
		var resets []uint32
		adds, removes := map[string][]uint32{}, map[string][]uint32{}
		for _, uid := range sortedKeys(tx.kwOps) {
			op := tx.kwOps[uid]
			if op.reset {
				resets = append(resets, uid)
			}
			for n := range op.add {
				adds[n] = append(adds[n], uid)
			}
			for n := range op.remove {
				// removing a keyword the index doesn't know is a no-op,
				// but Dovecot would add the name to the index
				if st.keywordIndex(n) >= 0 {
					removes[n] = append(removes[n], uid)
				}
			}
		}
		if len(resets) > 0 {
			add(&log.KeywordReset{Hdr: h, Ranges: uidRanges(resets)})
		}
		for _, n := range sortedKeys(adds) {
			add(&log.KeywordUpdate{Hdr: h, Name: n, Ranges: uidRanges(adds[n])})
		}
		for _, n := range sortedKeys(removes) {
			add(&log.KeywordUpdate{Hdr: h, Remove: true, Name: n, Ranges: uidRanges(removes[n])})
		}
	}
	if len(tx.expunges) > 0 {
		ex := &log.ExpungeGUID{Hdr: h}
		for _, uid := range sortedKeys(tx.expunges) {
			ex.Entries = append(ex.Entries, log.GUIDExpunge{UID: uid, GUID: tx.expunges[uid]})
		}
		add(ex)
	}
	// QUIRK: Dovecot writes modseq updates before the expunges; after
	// them, the highest modseq a caller sets is exactly HIGHESTMODSEQ.
	if len(tx.modseqs) > 0 {
		mu := &log.ModSeqUpdate{Hdr: h}
		for _, uid := range sortedKeys(tx.modseqs) {
			if uid != 0 {
				mu.Entries = append(mu.Entries, log.ModSeqEntry{UID: uid, ModSeq: tx.modseqs[uid]})
			}
		}
		if m, ok := tx.modseqs[0]; ok {
			mu.Entries = append(mu.Entries, log.ModSeqEntry{UID: 0, ModSeq: m})
		}
		add(mu)
	}
	if len(tx.postHdr) > 0 {
		add(&log.HeaderUpdate{Hdr: h, Changes: hdrChanges(tx.postHdr)})
	}
	return recs, nil
}

func hdrChanges(m map[uint32][]byte) []log.HdrChange {
	var out []log.HdrChange
	for _, off := range sortedKeys(m) {
		out = append(out, log.HdrChange{Offset: off, Data: m[off]})
	}
	return out
}

func sortedKeys[K uint32 | string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

// uidRanges turns ascending UIDs into ranges.
func uidRanges(uids []uint32) []log.UIDRange {
	var out []log.UIDRange
	for _, u := range uids {
		if n := len(out); n > 0 && out[n-1].UID2+1 == u {
			out[n-1].UID2 = u
			continue
		}
		out = append(out, log.UIDRange{UID1: u, UID2: u})
	}
	return out
}
