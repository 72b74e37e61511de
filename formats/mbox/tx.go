package mbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/zlib"
)

type flagSet struct {
	flags formats.Flags
	kws   []string
}

// pendingSave is a message saved in a transaction, its bytes in the spool.
type pendingSave struct {
	meta formats.Message
	off  int64 // in the spool
	res  saveResult
}

// tx buffers a transaction: saved messages go to a spool file, flag
// changes and expunges to maps; Commit writes them all under the mbox
// locks.
type tx struct {
	mb      *mailbox
	done    bool
	spool   *os.File
	saves   []pendingSave
	nextUID formats.UID
	flags   map[formats.UID]flagSet
	expunge map[formats.UID]bool
	raiseTo formats.UID
	// recentTo is RaiseFirstRecentUID's highest UID, 0 when none.
	recentTo formats.UID
}

func (t *tx) fail(op string, uid formats.UID, k formats.Kind, format string, args ...any) error {
	return &formats.Error{Kind: k, Op: "mbox: " + op, Mailbox: t.mb.name, UID: uid, Err: fmt.Errorf(format, args...)}
}

func checkKeywords(kws []string) error {
	for _, kw := range kws {
		if !isKeywordValid(kw) {
			return fmt.Errorf("keyword %q can't be stored in an mbox (an IMAP atom of at most %d bytes)", kw, maxKeywordLen)
		}
	}
	return nil
}

func (t *tx) Save(ctx context.Context, m formats.Message, r io.Reader) (formats.UID, error) {
	if t.done {
		return 0, t.fail("save", m.UID, formats.KindParams, "transaction is finished")
	}
	if err := checkKeywords(m.Keywords); err != nil {
		return 0, t.fail("save", m.UID, formats.KindParams, "%w", err)
	}
	if t.spool == nil {
		f, err := spoolFile(filepath.Dir(t.mb.path))
		if err != nil {
			return 0, formats.Wrap(err, kindOf(err), "mbox: save", t.mb.name, m.UID, "")
		}
		t.spool = f
	}
	off, err := t.spool.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, formats.Wrap(err, formats.KindTemp, "mbox: save", t.mb.name, m.UID, t.spool.Name())
	}
	undo := func() { t.spool.Truncate(off) }
	bw := bufio.NewWriterSize(t.spool, 64<<10)
	res, err := filterSave(bw, r)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		undo()
		return 0, formats.Wrap(err, formats.KindTemp, "mbox: save", t.mb.name, m.UID, "")
	}
	if m.Size > 0 && res.in != m.Size {
		undo()
		return 0, t.fail("save", m.UID, formats.KindInvalidData, "body has %d bytes, expected %d", res.in, m.Size)
	}
	if res.lwspStart && res.eoh < 0 {
		undo()
		return 0, t.fail("save", m.UID, formats.KindInvalidData,
			"message starts with a blank and has no end of header: mbox can't store it without changing it")
	}
	uid := m.UID
	if uid == 0 || uid < t.nextUID {
		uid = t.nextUID
	}
	t.nextUID = uid + 1
	meta := formats.Message{UID: uid, Flags: m.Flags & formats.SystemFlags, Recent: m.Recent,
		Keywords: formats.NormalizeKeywords(append([]string(nil), m.Keywords...)), Received: m.Received}
	if meta.Received.IsZero() {
		meta.Received = time.Now()
	}
	if len(m.Ext) > 0 {
		meta.Ext = make(map[byte]string, len(m.Ext))
		for k, v := range m.Ext {
			meta.Ext[k] = v
		}
	}
	t.saves = append(t.saves, pendingSave{meta: meta, off: off, res: res})
	return uid, nil
}

func (t *tx) SetFlags(uid formats.UID, flags formats.Flags, keywords []string) error {
	if t.done {
		return t.fail("flags", uid, formats.KindParams, "transaction is finished")
	}
	if err := checkKeywords(keywords); err != nil {
		return t.fail("flags", uid, formats.KindParams, "%w", err)
	}
	t.flags[uid] = flagSet{flags & formats.SystemFlags, formats.NormalizeKeywords(append([]string(nil), keywords...))}
	return nil
}

func (t *tx) Expunge(uid formats.UID) error {
	if t.done {
		return t.fail("expunge", uid, formats.KindParams, "transaction is finished")
	}
	t.expunge[uid] = true
	return nil
}

func (t *tx) SetUIDNext(next formats.UID) error {
	if t.done {
		return t.fail("uidnext", 0, formats.KindParams, "transaction is finished")
	}
	t.raiseTo = max(t.raiseTo, next)
	return nil
}

// RaiseFirstRecentUID (formats.FirstRecentRaiser) takes \Recent from the
// messages below uid at Commit, after its saves, up to UIDNEXT at most,
// as dsync's finish raises min_first_recent_uid. Dovecot keeps that in
// its index only; boxsync puts 'O' into those messages' Status (a
// rewrite of the file, when a message that was \Recent is below uid),
// which every Dovecot reads the same, with or without an index.
func (t *tx) RaiseFirstRecentUID(uid formats.UID) error {
	if t.done {
		return t.fail("raise first recent uid", uid, formats.KindParams, "transaction is finished")
	}
	t.recentTo = max(t.recentTo, uid)
	return nil
}

func (t *tx) Rollback() error {
	t.mb.mu.Lock()
	defer t.mb.mu.Unlock()
	return t.rollbackLocked()
}

func (t *tx) rollbackLocked() error {
	t.done = true
	t.saves = nil
	return t.dropSpool()
}

func (t *tx) dropSpool() error {
	if t.spool == nil {
		return nil
	}
	f := t.spool
	t.spool = nil
	return errors.Join(f.Close(), os.Remove(f.Name()))
}

// Commit writes the transaction under Dovecot's write locks (dotlock,
// then fcntl). Saves alone are appended in place when the file allows
// it; anything else rewrites the file into a temporary one that
// replaces it.
func (t *tx) Commit(ctx context.Context) (err error) {
	if t.done {
		return nil
	}
	t.done = true
	defer func() { err = errors.Join(err, t.dropSpool()) }()
	mb := t.mb
	defer func() {
		mb.mu.Lock()
		mb.snap = nil
		mb.mu.Unlock()
	}()
	lock, err := takeDotlock(ctx, mb.path)
	if err != nil {
		return mb.s.wrap(err, "commit", mb.name, mb.path)
	}
	defer func() {
		if lerr := lock.Release(); lerr != nil && err == nil {
			err = mb.s.wrap(lerr, "commit", mb.name, mb.path)
		}
	}()
	f, err := os.OpenFile(mb.path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &formats.Error{Kind: formats.KindNotFound, Op: "mbox: commit", Mailbox: mb.name, Err: errors.New("mailbox was deleted")}
		}
		return mb.s.wrap(err, "commit", mb.name, mb.path)
	}
	defer f.Close()
	if err := fcntlLock(ctx, f, true); err != nil {
		return mb.s.wrap(err, "commit", mb.name, mb.path)
	}
	defer fcntlUnlock(f)
	fi, err := f.Stat()
	if err != nil {
		return mb.s.wrap(err, "commit", mb.name, mb.path)
	}
	id := idOf(fi)
	mb.mu.Lock()
	snap := mb.snap
	mb.mu.Unlock()
	if snap == nil || snap.id != id {
		if snap, err = scanFile(ctx, f, mb.s.readOpts(), mb.indexDir); err != nil {
			return formats.Wrap(err, formats.KindTemp, "mbox: commit", mb.name, 0, mb.path)
		}
		snap.id = id
	}
	// A foreign mbox rewritten becomes a Dovecot one.
	p := t.plan(snap)
	if !p.changed {
		return nil
	}
	if p.appendOnly {
		err = t.appendInPlace(f, snap, p)
	} else {
		err = t.rewrite(ctx, f, fi, snap, p)
	}
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, "mbox: commit", mb.name, 0, mb.path)
	}
	if err := t.updateExt(snap, p); err != nil {
		return mb.s.wrap(err, "commit", mb.name, mb.indexDir)
	}
	return nil
}

// updateExt rewrites boxsync-ext when the commit changed what it holds.
func (t *tx) updateExt(snap *snapshot, p plan) error {
	have := len(snap.ext) > 0
	for _, s := range t.saves {
		have = have || len(s.meta.Ext) > 0
	}
	if !have {
		return nil
	}
	ext := extMap{}
	for _, e := range snap.msgs {
		if x := snap.ext[e.uid]; len(x) > 0 && !t.expunge[formats.UID(e.uid)] {
			ext[e.uid] = x
		}
	}
	for i, s := range t.saves {
		if len(s.meta.Ext) > 0 {
			ext[p.saveUIDs[i]] = s.meta.Ext
		}
	}
	return writeExt(t.mb.indexDir, snap.uidValidity, ext, t.mb.s.fsync)
}

// plan is what a commit will do.
type plan struct {
	changed    bool
	appendOnly bool
	uidNext    uint32
	// firstRecent: the messages below it (saved ones too) are written
	// with 'O' (not \Recent); the others as they are.
	firstRecent uint32
	keywords    []string // the X-IMAPbase list
	saveUIDs    []uint32
}

func (t *tx) plan(snap *snapshot) plan {
	var p plan
	next := snap.uidNext
	contiguous := true
	for _, s := range t.saves {
		uid := uint32(s.meta.UID)
		if uid < next {
			uid = next
		}
		if uid != next {
			contiguous = false
		}
		p.saveUIDs = append(p.saveUIDs, uid)
		next = uid + 1
	}
	raised := uint32(t.raiseTo) > next
	if raised {
		next = uint32(t.raiseTo)
	}
	p.uidNext = next
	known := map[string]bool{}
	p.keywords = append(p.keywords, snap.keywords...)
	for _, kw := range snap.keywords {
		known[kw] = true
	}
	newKW := false
	addKW := func(kws []string) {
		for _, kw := range kws {
			if !known[kw] {
				known[kw] = true
				p.keywords = append(p.keywords, kw)
				newKW = true
			}
		}
	}
	// A raise applies after the saves and stops at UIDNEXT.
	p.firstRecent = max(snap.firstRecent, min(uint32(t.recentTo), next))
	edits := false
	for _, e := range snap.msgs {
		uid := formats.UID(e.uid)
		if t.expunge[uid] {
			edits = true
			continue
		}
		if e.uid >= snap.firstRecent && e.uid < p.firstRecent {
			edits = true // its Status gets 'O'
		}
		if fl, ok := t.flags[uid]; ok {
			if fl.flags != e.flags || !formats.EqualKeywords(fl.kws, formats.NormalizeKeywords(append([]string(nil), e.keywords...))) {
				edits = true
			}
			addKW(fl.kws)
		}
	}
	for _, s := range t.saves {
		addKW(s.meta.Keywords)
	}
	p.changed = edits || len(t.saves) > 0 || next != snap.uidNext
	p.appendOnly = !edits && !raised && contiguous && len(t.saves) > 0 && !newKW &&
		snap.format == zlib.None && t.mb.s.compress == zlib.None &&
		snap.flavour == FlavourDovecot && snap.base != nil && snap.base.lastUIDOff >= 0 &&
		!snap.pseudo && snap.allXUID && len(snap.msgs) > 0
	return p
}

// appendInPlace appends the saves to the locked file and updates
// X-IMAPbase's last UID in place, with one fsync.
func (t *tx) appendInPlace(f *os.File, snap *snapshot, p plan) (err error) {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	orig := fi.Size()
	var oldDigits [10]byte
	if _, err := f.ReadAt(oldDigits[:], snap.base.lastUIDOff); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// Leave the file as it was.
			f.Truncate(orig)
			f.WriteAt(oldDigits[:], snap.base.lastUIDOff)
		}
	}()
	if _, err := f.WriteAt([]byte(fmt.Sprintf("%010d", p.uidNext-1)), snap.base.lastUIDOff); err != nil {
		return err
	}
	off := orig
	if snap.lastByte != '\n' {
		if _, err := f.WriteAt([]byte("\n"), off); err != nil {
			return err
		}
		off++
	}
	w, err := newMboxWriter(io.NewOffsetWriter(f, off), zlib.None, 0)
	if err != nil {
		return err
	}
	if err := t.writeSaves(w, p, nil); err != nil {
		return err
	}
	if err := w.close(); err != nil {
		return err
	}
	if t.mb.s.fsync {
		return f.Sync()
	}
	return nil
}

// writeSaves writes the transaction's saved messages, the first with
// base (X-IMAPbase) when it is not nil.
func (t *tx) writeSaves(w *mboxWriter, p plan, base *imapBase) error {
	for i, s := range t.saves {
		h := dovecotHeaders{uid: p.saveUIDs[i], flags: s.meta.Flags, recent: s.meta.Recent && p.saveUIDs[i] >= p.firstRecent, keywords: s.meta.Keywords}
		if s.res.eoh >= 0 {
			h.contLen = s.res.bodyLen
		}
		if i == 0 {
			h.base = base
		}
		insertAt := int64(0)
		if s.res.lwspStart {
			insertAt = s.res.eoh
		}
		from := formatFrom(envelopeSender(s.res.retPath), s.meta.Received, t.mb.s.loc)
		content := io.NewSectionReader(t.spool, s.off, s.res.out)
		if err := w.message(from, h, content, s.res.out, insertAt); err != nil {
			return err
		}
	}
	return nil
}

// rewrite writes the whole mailbox into a temporary file next to it and
// renames that over it.
func (t *tx) rewrite(ctx context.Context, f *os.File, fi fs.FileInfo, snap *snapshot, p plan) (err error) {
	mb := t.mb
	tmp, err := os.CreateTemp(filepath.Dir(mb.path), ".boxsync-*.lock")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	format := snap.format
	if format == zlib.None {
		format = mb.s.compress
	}
	w, err := newMboxWriter(tmp, format, mb.s.level)
	if err != nil {
		return err
	}
	src, err := openSource(f)
	if err != nil {
		return err
	}
	defer src.Close()
	uidValidity := snap.uidValidity
	base := &imapBase{uidValidity: uidValidity, lastUID: p.uidNext - 1, keywords: p.keywords}
	written := 0
	for i := range snap.msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := &snap.msgs[i]
		uid := formats.UID(e.uid)
		if t.expunge[uid] {
			continue
		}
		// A message keeps \Recent as Dovecot counts it now: 'O' goes
		// on the ones below the first recent UID, whose own Status
		// may lack it (see recentFrom), so that the file alone says it.
		h := dovecotHeaders{uid: e.uid, flags: e.flags, recent: e.uid >= p.firstRecent, keywords: e.keywords}
		if fl, ok := t.flags[uid]; ok {
			h.flags, h.keywords = fl.flags, fl.kws
		}
		if written == 0 {
			h.base = base
		}
		if err := copyMessage(w, src, snap, e, h); err != nil {
			return fmt.Errorf("uid %d: %w", e.uid, err)
		}
		written++
	}
	if written == 0 && len(t.saves) == 0 {
		if err := w.pseudo(uidValidity, p.uidNext-1, time.Now(), mb.s.loc); err != nil {
			return err
		}
	}
	if len(t.saves) > 0 {
		if written > 0 {
			base = nil // the first message carries X-IMAPbase
		}
		if err := t.writeSaves(w, p, base); err != nil {
			return err
		}
	}
	if err := w.close(); err != nil {
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		return err
	}
	if mb.s.fsync {
		if err := tmp.Sync(); err != nil {
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), mb.path); err != nil {
		return err
	}
	if mb.s.fsync {
		if err := syncDir(filepath.Dir(mb.path)); err != nil {
			return err
		}
	}
	nfi, err := os.Stat(mb.path)
	if err != nil {
		return err
	}
	// Make a Dovecot that indexed the old file read the new one anew.
	return forceFullSync(mb.indexDir, nfi.Size(), mb.guid, uidValidity, mb.s.fsync)
}

// copyMessage writes an existing message with new Dovecot headers: its
// From_ line and every byte Body shows are kept.
func copyMessage(w *mboxWriter, src source, snap *snapshot, e *entry, h dovecotHeaders) error {
	fromLine, err := readRange(src, e.from, e.hdr)
	if err != nil {
		return err
	}
	if len(fromLine) == 0 || fromLine[len(fromLine)-1] != '\n' {
		fromLine = append(fromLine, '\n')
	}
	lay, err := messageLayout(src, e.hdr, e.end)
	if err != nil {
		return err
	}
	content, err := segmentReader(src, lay.segs)
	if err != nil {
		return err
	}
	bodyLen := e.end - lay.bodyOff
	if snap.flavour == FlavourMboxrd {
		content = newUnquoter(content)
		n, err := countRDLines(src, lay.bodyOff, e.end)
		if err != nil {
			return err
		}
		bodyLen -= n
	}
	if lay.eoh {
		h.contLen = bodyLen
	}
	br := bufio.NewReaderSize(content, keepBody)
	head, _ := br.Peek(keepBody)
	insertAt := int64(0)
	if mustNotLead(head) {
		// Dovecot's headers can't go first: put them where Dovecot
		// does, before the end of the header, or after the whole
		// header-only message. QUIRK: with neither (a header-only
		// message without a final LF) they go first anyway and the
		// message changes.
		switch {
		case lay.eoh:
			insertAt = lay.keptBeforeEOH
			if snap.flavour == FlavourMboxrd {
				insertAt -= lay.rdBeforeEOH
			}
		case e.size > 0 && e.size <= maxHeader:
			all, err := io.ReadAll(br)
			if err != nil {
				return err
			}
			if all[len(all)-1] == '\n' {
				insertAt = int64(len(all))
			}
			return w.message(string(fromLine), h, bytes.NewReader(all), int64(len(all)), insertAt)
		}
	}
	return w.message(string(fromLine), h, br, e.size, insertAt)
}

// mustNotLead tells whether a message's first line would change meaning
// with Dovecot's headers before it: a blank (it would continue the
// header before) or a From_ line (it would end the message before).
func mustNotLead(head []byte) bool {
	if len(head) == 0 {
		return false
	}
	if isLWSP(head[0]) {
		return true
	}
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		return isFrom(head[:i+1])
	}
	// The line will be followed by an LF (the separator, at least),
	// which counts for the From_ line's minimum length.
	return isFrom(append(head[:len(head):len(head)], '\n'))
}

func readRange(src source, start, end int64) ([]byte, error) {
	r, err := src.at(start)
	if err != nil {
		return nil, err
	}
	b := make([]byte, end-start)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, eofErr(err)
	}
	return b, nil
}

// countRDLines counts the lines of [start, end) mboxrd unquotes.
func countRDLines(src source, start, end int64) (int64, error) {
	lr, err := newLineReader(src, start)
	if err != nil {
		return 0, err
	}
	var n int64
	for lr.off < end {
		li, err := lr.next(keepBody)
		if err != nil {
			return 0, err
		}
		if li.n == 0 {
			break
		}
		if _, _, rd := isQuotedFrom(li.data); rd {
			n++
		}
	}
	return n, nil
}
