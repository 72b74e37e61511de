package maildir

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index"
)

// Modseqs live in Dovecot's index (dovecot.index + dovecot.index.log in
// the maildir, or under INDEX=), not in the Maildir itself
// (dovecot-storage.md §6.5). Reading takes them from the index as Dovecot
// would replay it; writing keeps a log-only index (§2.9) in step with the
// uidlist so Dovecot keeps the modseqs we set.

// indexDir returns where a mailbox's dovecot.index* files live, or ""
// when there are none (INDEX=MEMORY). With INDEX=<dir> they go to
// "<dir>/.INBOX" and "<dir>/.Work.Sub" (spec §9 [verified]; LAYOUT=fs:
// "<dir>/INBOX", "<dir>/Work/Sub", as CONTROL= does).
func (s *Store) indexDir(b *box) string {
	switch s.index {
	case "":
		return b.dir
	case "MEMORY":
		return ""
	}
	if b.isInbox() {
		if s.fsys {
			return filepath.Join(s.index, "INBOX")
		}
		return filepath.Join(s.index, ".INBOX")
	}
	if s.fsys {
		return filepath.Join(append([]string{s.index}, b.levels...)...)
	}
	return filepath.Join(s.index, "."+joinLevels(b.levels))
}

func joinLevels(levels []string) string {
	out := ""
	for i, l := range levels {
		if i > 0 {
			out += "."
		}
		out += l
	}
	return out
}

func (s *Store) indexOptions() *index.Options {
	return &index.Options{Fsync: s.opt.Fsync}
}

// indexView returns the mailbox index and a fresh view of it; nil, nil,
// nil when there is none. An index whose UIDVALIDITY is not the uidlist's
// is stale (Dovecot would reset it) and reported as an error.
func (m *mailbox) indexView(st *state) (*index.Index, *index.View, error) {
	return m.indexViewValidity(st.hdr.UIDValidity)
}

// indexViewValidity is indexView for a mailbox whose dovecot-uidlist has
// UIDVALIDITY uidValidity.
func (m *mailbox) indexViewValidity(uidValidity uint32) (*index.Index, *index.View, error) {
	dir := m.s.indexDir(m.b)
	if dir == "" {
		return nil, nil, nil
	}
	m.ixMu.Lock()
	defer m.ixMu.Unlock()
	var v *index.View
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if m.ix == nil {
			ix, err := index.Open(dir, index.Prefix, m.s.indexOptions())
			if errors.Is(err, formats.ErrNotFound) {
				return nil, nil, nil
			}
			if err != nil {
				return nil, nil, err
			}
			m.ix = ix
		}
		if v, err = m.ix.View(); err == nil {
			break
		}
		m.ix = nil // replaced or removed meanwhile: open it again
		if errors.Is(err, formats.ErrNotFound) {
			return nil, nil, nil
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if v.UIDValidity() != uidValidity {
		return nil, nil, fmt.Errorf("maildir: %s: index UIDVALIDITY %d is not dovecot-uidlist's %d: stale index ignored",
			dir, v.UIDValidity(), uidValidity)
	}
	return m.ix, v, nil
}

// setIndexErr remembers why the index could not be used (nil: it could).
func (m *mailbox) setIndexErr(err error) {
	m.ixMu.Lock()
	m.ixErr = err
	m.ixMu.Unlock()
}

// IndexError reports why the mailbox's Dovecot index was last ignored
// (corrupt, stale, or a failed update), or nil. Modseqs are then unknown
// and Status.Caps.ModSeqs is false. Reach it with a type assertion to
// interface{ IndexError() error }.
func (m *mailbox) IndexError() error {
	m.ixMu.Lock()
	defer m.ixMu.Unlock()
	return m.ixErr
}

// modseqInfo is what the index says about a state's modseqs.
type modseqInfo struct {
	known   bool // the index is usable
	inSync  bool // the index has every message with its flags, and modseqs
	view    *index.View
	highest uint64   // HIGHESTMODSEQ as Dovecot will report it
	per     []uint64 // by position in st.t.recs
	// extra holds, by position in st.t.recs, the message's keywords
	// that live in the index only (state.indexOnly); nil for most.
	extra [][]string
	// recentFrom is the first UID Dovecot's next session counts as
	// \Recent (formats.Message.Recent), known with or without an index.
	recentFrom uint32
}

// modseqs reads the modseqs of st's messages from the index. Messages
// the index does not have yet, or has with other flags or keywords than
// their file names, are changes Dovecot's next sync records; they get a
// modseq above the index's highest, which the mailbox's HIGHESTMODSEQ is
// raised to: Dovecot counts one for the APPEND (or flag) record and one
// per keyword record, so we never report less than it will assign.
// A missing, corrupt or stale index leaves modseqs unknown (0).
func (m *mailbox) modseqs(st *state) modseqInfo {
	_, v, err := m.indexView(st)
	m.setIndexErr(err)
	if v == nil {
		return modseqInfo{recentFrom: recentFrom(st, nil)}
	}
	kwBit := map[string]uint32{}
	for _, n := range v.Keywords() {
		if i := st.kwNames.lookup(n); i >= 0 {
			kwBit[n] = 1 << i
		}
	}
	highest := v.HighestModSeq()
	info := modseqInfo{known: true, per: make([]uint64, len(st.t.recs))}
	matched := 0
	var pendingKws uint32
	pending, changed := false, false
	// Both lists are in UID order: walked side by side, not searched.
	j, n := 0, v.Count()
	for i := range st.t.recs {
		r := &st.t.recs[i]
		flags, kws := parseFlags(st.t.nameBytes(r))
		for j < n && v.UID(j) < r.uid {
			j++
		}
		ok := j < n && v.UID(j) == r.uid
		if ok {
			im := v.Message(j)
			matched++
			if only := st.indexOnly(im.Keywords); len(only) > 0 {
				if info.extra == nil {
					info.extra = make([][]string, len(st.t.recs))
				}
				info.extra[i] = only
			}
			if im.Flags&index.SystemFlags == uint8(flags) && st.keywordMask(im.Keywords, kwBit) == int64(kws) {
				ms := im.ModSeq
				if ms == 0 {
					ms = highest
				}
				info.per[i] = ms
				continue
			}
			changed = true
		}
		pending = true
		pendingKws |= kws
	}
	if pending || matched < v.Count() {
		p := highest + 1 + uint64(bits.OnesCount32(pendingKws))
		if changed {
			p++
		}
		for i := range info.per {
			if info.per[i] == 0 {
				info.per[i] = p
			}
		}
		highest = p
	}
	info.highest = highest
	info.recentFrom = recentFrom(st, v)
	_, hasModSeqs := v.Ext(index.ExtModSeq)
	info.inSync = !pending && matched == v.Count() && hasModSeqs
	info.view = v
	if !hasModSeqs {
		// Modseqs are not tracked yet: the first CONDSTORE access
		// enables them and gives every message the highest modseq
		// [verified: doveadm fetch modseq].
		for i := range info.per {
			info.per[i] = highest
		}
	}
	return info
}

// recentFrom is the first UID of st that Dovecot's next session reports
// as \Recent, v the mailbox's usable index or nil. dovecot 2.3.19.1
// maildir-sync-index.c maildir_sync_index: first_recent_uid starts at
// the index header's (at least 1; an index reset for a new UIDVALIDITY,
// or built afresh, starts at 1) and is raised past every message it
// appends to the index that the uidlist does not mark recent. A file the
// maildir scan finds in new/ is marked recent (maildir-sync.c
// maildir_scan_dir), and so is a file the uidlist did not have, but we
// record every file's UID in dovecot-uidlist before Dovecot sees it, so
// of the messages new to the index exactly those in cur/ are not recent
// [verified: doveadm fetch flags]. Messages the index has keep its
// verdict, wherever their files are.
func recentFrom(st *state, v *index.View) uint32 {
	first, next := uint32(1), uint32(0)
	if v != nil {
		first, next = max(v.Header().FirstRecentUID, 1), v.NextUID()
	}
	for i := range st.t.recs {
		r := &st.t.recs[i]
		// Below the index's next UID: in the index, or a UID
		// Dovecot would not append (maildir_handle_uid_insertion).
		if r.dir == dirCur && r.uid >= first && r.uid >= next {
			first = r.uid + 1
		}
	}
	return first
}

// keywordMask maps index keyword names to file name letters, leaving out
// the index-only ones (Dovecot's sync does not touch them); -1 when a
// name has no letter but could get one (Dovecot's next sync would drop it
// from the index, the file name being what counts).
func (st *state) keywordMask(names []string, kwBit map[string]uint32) int64 {
	var mask uint32
	full := st.kwNames.full()
	for _, n := range names {
		b, ok := kwBit[n]
		if !ok {
			if full {
				continue
			}
			return -1
		}
		mask |= b
	}
	return int64(mask)
}

// indexOnly returns those of a message's index keywords that Dovecot
// keeps in its index only: names without a letter while all 26 letters
// are taken. dovecot 2.3.19.1 maildir-sync-index.c
// maildir_sync_mail_keywords leaves exactly these alone when it syncs the
// file names into the index (maildir_keywords_idx_char returns no letter
// for them: maildir_keywords_lookup_or_create finds dovecot-keywords
// full); any other index keyword without its letter in the file name is
// dropped by that sync.
func (st *state) indexOnly(names []string) []string {
	if len(names) == 0 || !st.kwNames.full() {
		return nil
	}
	var out []string
	for _, n := range names {
		if st.kwNames.lookup(n) < 0 {
			out = append(out, n)
		}
	}
	return out
}

// modseqCaps narrows the driver's Caps for this mailbox: modseqs are
// kept when the index is usable, or absent on a store we may write (the
// first commit creates it).
func (m *mailbox) modseqCaps(info modseqInfo) formats.Caps {
	c := Driver{}.Caps()
	c.ModSeqs = info.known || (!m.s.opt.ReadOnly && m.s.indexDir(m.b) != "" && m.IndexError() == nil)
	// Without an index only new/ says \Recent: a Recent message with
	// flags (cur/) is not (recentFrom).
	c.SaveRecent = m.s.indexDir(m.b) != ""
	return c
}

// indexWrite is the index a commit extends: ix nil means it is created.
type indexWrite struct {
	dir string
	ix  *index.Index
}

// beginIndex looks at the index before a commit assigns UIDs. It returns
// nil when the commit must leave the index alone (INDEX=MEMORY, or an
// index we cannot safely extend: corrupt or stale), and the index's next
// UID, which saved messages must not go below.
func (m *mailbox) beginIndex(st *state) (*indexWrite, uint32) {
	dir := m.s.indexDir(m.b)
	if dir == "" {
		return nil, 0
	}
	ix, v, err := m.indexView(st)
	if err != nil {
		m.setIndexErr(err)
		return nil, 0
	}
	if v == nil {
		return &indexWrite{dir: dir}, 0
	}
	return &indexWrite{dir: dir, ix: ix}, v.NextUID()
}

// commitIndex appends what the commit did to dovecot.index.log, after
// dovecot-uidlist names it: appends of the new messages (every message
// at or above the index's next UID, with the flags and keywords of their
// file names), flag and keyword changes, expunges, then a MODSEQ_UPDATE
// raising each saved message to its source modseq and HIGHESTMODSEQ to
// the highest of them. The mail is already committed, so a failure only
// leaves the modseqs to Dovecot (IndexError, Caps.ModSeqs false), and
// loses the index-only keywords (extra, by UID), which the caller
// reports.
func (m *mailbox) commitIndex(w *indexWrite, t *tx, old, ns *state, gone map[uint32]bool, extra map[uint32][]string) error {
	if w == nil {
		return nil
	}
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if err = m.writeIndex(w, t, old, ns, gone, extra); err == nil {
			break
		}
		// Dovecot may have synced meanwhile: look again.
		m.ixMu.Lock()
		m.ix = nil
		m.ixMu.Unlock()
		w2, _ := m.beginIndex(ns)
		if w2 == nil {
			break
		}
		w = w2
	}
	if err != nil {
		err = fmt.Errorf("maildir: %s: updating dovecot.index.log: %w", w.dir, err)
	}
	m.setIndexErr(err)
	return err
}

func (m *mailbox) writeIndex(w *indexWrite, t *tx, old, ns *state, gone map[uint32]bool, extra map[uint32][]string) error {
	ix := w.ix
	if ix == nil {
		if err := os.MkdirAll(w.dir, m.s.dirMode); err != nil {
			return err
		}
		opt := *m.s.indexOptions()
		opt.UIDValidity = ns.hdr.UIDValidity
		var err error
		ix, err = index.Create(w.dir, index.Prefix, opt)
		if errors.Is(err, formats.ErrExists) {
			ix, err = index.Open(w.dir, index.Prefix, m.s.indexOptions())
		}
		if err != nil {
			return err
		}
		m.ixMu.Lock()
		m.ix = ix
		m.ixMu.Unlock()
	}
	v, err := ix.View()
	if err != nil {
		return err
	}
	if v.UIDValidity() != ns.hdr.UIDValidity {
		return fmt.Errorf("index UIDVALIDITY %d is not dovecot-uidlist's %d", v.UIDValidity(), ns.hdr.UIDValidity)
	}
	// kwNames is a message's keywords: the names of its file name
	// letters, then those it has in the index only.
	kwNames := func(mask uint32, uid uint32) []string {
		var out []string
		for i := 0; i < maxKeywords; i++ {
			if mask&(1<<i) != 0 && ns.kwNames[i] != "" {
				out = append(out, ns.kwNames[i])
			}
		}
		return append(out, extra[uid]...)
	}
	// Recent saves keep \Recent (Message.Recent); the others claim it.
	savedRecent := make(map[uint32]bool, len(t.saves))
	for _, s := range t.saves {
		savedRecent[s.uid] = s.recent
	}
	hdrFirstRecent := max(v.Header().FirstRecentUID, 1)
	firstRecent := hdrFirstRecent
	tx := ix.Begin()
	defer tx.Rollback()
	changes := 0
	for i := range ns.t.recs {
		r := &ns.t.recs[i]
		flags, kws := parseFlags(ns.t.nameBytes(r))
		_, im, ok := v.Lookup(r.uid)
		if !ok && r.uid < v.NextUID() && len(extra[r.uid]) > 0 {
			// Below the index's next UID but not in it (Dovecot
			// has not synced it yet): nowhere to keep these.
			return fmt.Errorf("uid %d is not in the index: keywords %q not kept", r.uid, extra[r.uid])
		}
		switch {
		case !ok && r.uid >= v.NextUID():
			tx.Append(r.uid, uint8(flags))
			if names := kwNames(kws, r.uid); len(names) > 0 {
				tx.UpdateKeywords(r.uid, index.KeywordsAdd, names...)
			}
			changes++
			// dovecot 2.3.19.1 maildir-save.c
			// maildir_save_sync_index: first_recent_uid goes past
			// the last save without MAIL_RECENT (last_nonrecent_uid);
			// maildir-sync-index.c does the same for mail it first
			// indexes from cur/ (see recentFrom).
			recent, saved := savedRecent[r.uid]
			if !saved {
				recent = r.dir == dirNew
			}
			if !recent && r.uid >= firstRecent {
				firstRecent = r.uid + 1
			}
		case ok && t.flags != nil:
			if _, mine := t.flags[r.uid]; !mine {
				continue
			}
			cur := im.Flags & index.SystemFlags
			if add, rm := uint8(flags)&^cur, cur&^uint8(flags); add != 0 || rm != 0 {
				tx.UpdateFlags(r.uid, add, rm)
				changes++
			}
			// Compared case-insensitively, as the index's
			// keyword hash does.
			names := kwNames(kws, r.uid)
			want := map[string]bool{}
			for _, n := range names {
				want[asciiLower(n)] = true
			}
			var add, rm []string
			for _, n := range im.Keywords {
				if !want[asciiLower(n)] {
					rm = append(rm, n)
				}
				delete(want, asciiLower(n))
			}
			for _, n := range names {
				if want[asciiLower(n)] {
					add = append(add, n)
					delete(want, asciiLower(n))
				}
			}
			if len(add) > 0 {
				tx.UpdateKeywords(r.uid, index.KeywordsAdd, add...)
				changes++
			}
			if len(rm) > 0 {
				tx.UpdateKeywords(r.uid, index.KeywordsRemove, rm...)
				changes++
			}
		}
	}
	for uid := range gone {
		if _, _, ok := v.Lookup(uid); !ok {
			continue
		}
		var guid [16]byte
		if i := old.t.find(uid); i >= 0 {
			r := &old.t.recs[i]
			g := old.t.base(r)
			if x, ok := extValue(old.t.ext(r), extGUID); ok && x != "" {
				g = x
			}
			guid = guid128(g)
		}
		tx.Expunge(uid, guid)
		changes++
	}
	var highest uint64
	enabled := false
	enable := func() {
		if _, ok := v.Ext(index.ExtModSeq); !ok && !enabled {
			// Enable modseqs as Dovecot does for CONDSTORE (§2.6.5).
			d := index.ExtDefModSeq
			d.Hdr = index.ModSeqHdr{HighestModSeq: 1}.Encode()
			tx.ExtIntro(d)
		}
		enabled = true
	}
	for _, s := range t.saves {
		if s.modseq == 0 {
			continue
		}
		enable()
		tx.SetModSeq(s.uid, s.modseq)
		highest = max(highest, s.modseq)
		changes++
	}
	if t.hms > highest && t.hms > v.HighestModSeq() {
		// The source's HIGHESTMODSEQ may be above every message it
		// still has (its last change was an expunge).
		enable()
		highest = t.hms
		changes++
	}
	if highest > 0 {
		tx.SetModSeq(0, highest)
	}
	if ns.next > v.NextUID() {
		tx.SetHeader(index.FieldNextUID, ns.next)
		changes++
	}
	// RaiseFirstRecentUID's value after the saves' own raises, as
	// dsync's mailbox_update follows its commit
	// (index-storage.c index_storage_mailbox_update: a header update
	// when it raises the value), capped at the next UID this leaves
	// (Dovecot's index check: first_recent_uid <= next_uid).
	firstRecent = max(firstRecent, min(t.recent, max(ns.next, v.NextUID())))
	if firstRecent > hdrFirstRecent {
		tx.SetHeader(index.FieldFirstRecentUID, firstRecent)
		changes++
	}
	if changes == 0 {
		return nil
	}
	_, err = tx.Commit()
	return err
}

// guid128 is the 128-bit form Dovecot writes in EXPUNGE_GUID records
// (formats.MessageGUID128).
func guid128(guid string) [16]byte { return formats.MessageGUID128(guid) }
