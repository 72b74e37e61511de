package index

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/boxsync/boxsync/index/log"
)

// state is an index map: what dovecot.index holds, plus what replaying
// the log adds (Dovecot's struct mail_index_map with its record map).
type state struct {
	base []byte // base header, len(base) = base_header_size >= 120
	exts []*ext
	recs records  // messages_count records of record_size bytes, ascending UIDs
	kw   []string // keyword names in header order (the "keywords" extension)

	// Not stored in dovecot.index:
	tracking   bool    // per-message modseqs are maintained (Dovecot: sync ctx mmap != NULL)
	deleted    bool    // the mailbox is marked deleted (INDEX_DELETED)
	logModSeq  uint64  // the log head's own modseq counter at its end (sync_highest_modseq)
	viewModSeq uint64  // the replay's (log view's) modseq counter at the end
	logPos     log.Pos // end of the log head: where replay stopped
	tail       uint32  // the log head's tail offset (max_tail_offset)
}

func newState(indexID uint32) *state {
	s := &state{base: make([]byte, BaseHeaderSize), recs: newRecords(8)}
	// mail_index_header_init
	s.base[offMajor], s.base[offMinor] = MajorVersion, MinorVersion
	le.PutUint16(s.base[offBaseHeaderSize:], BaseHeaderSize)
	s.base[offCompatFlags] = 1
	s.put(offIndexID, indexID)
	s.put(offLogFileSeq, 1)
	s.put(offNextUID, 1)
	s.put(offFirstRecentUID, 1)
	return s
}

// clone is a deep copy to change. A state in Index.st or in a View is
// never changed in place: whoever changes one clones it first.
func (s *state) clone() *state {
	c := *s
	c.base = slices.Clone(s.base)
	c.exts = make([]*ext, len(s.exts))
	for i, e := range s.exts {
		c.exts[i] = e.clone()
	}
	c.recs = s.recs.clone() // copy on write (records.go)
	c.kw = slices.Clone(s.kw)
	return &c
}

func (s *state) get(off int) uint32    { return le.Uint32(s.base[off:]) }
func (s *state) put(off int, v uint32) { le.PutUint32(s.base[off:], v) }
func (s *state) count() int            { return s.recs.n }
func (s *state) rec(i int) []byte      { return s.recs.rec(i) }  // to read
func (s *state) wrec(i int) []byte     { return s.recs.wrec(i) } // to change
func (s *state) uid(i int) uint32      { return le.Uint32(s.recs.rec(i)) }

// headerSize is the size of base header plus extension blocks.
func (s *state) headerSize() int {
	n := pad8(len(s.base))
	if len(s.exts) == 0 {
		return len(s.base)
	}
	for _, e := range s.exts {
		n += pad8(extHeaderSize+len(e.name)) + pad8(int(e.hdrSize))
	}
	return n
}

// find returns the index of the record with uid.
func (s *state) find(uid uint32) (int, bool) {
	n := s.count()
	// fast path: UIDs without gaps (no expunges yet)
	if g := int(uid) - 1; g >= 0 && g < n && s.uid(g) == uid {
		return g, true
	}
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.uid(m) < uid {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < n && s.uid(lo) == uid
}

// seqRange returns the records with uid1 <= UID <= uid2 as [i1, i2)
// (mail_index_lookup_seq_range); ok is false when there are none.
func (s *state) seqRange(uid1, uid2 uint32) (i1, i2 int, ok bool) {
	i1, _ = s.find(uid1)
	i2, found := s.find(uid2)
	if found {
		i2++
	}
	return i1, i2, i1 < i2
}

func (s *state) extIndex(name string) int {
	for i, e := range s.exts {
		if e.name == name {
			return i
		}
	}
	return -1
}

func (s *state) ext(name string) *ext {
	if i := s.extIndex(name); i >= 0 {
		return s.exts[i]
	}
	return nil
}

// modseqExt returns the "modseq" extension if records can hold modseqs.
func (s *state) modseqExt() *ext {
	e := s.ext(ExtModSeq)
	if e == nil || e.recSize < 8 {
		return nil
	}
	return e
}

// modseqHdr is mail_index_map_get_modseq_header.
func (s *state) modseqHdr() (ModSeqHdr, bool) {
	e := s.ext(ExtModSeq)
	if e == nil || e.hdrSize != 16 {
		return ModSeqHdr{}, false
	}
	return decodeModSeqHdr(e.hdr)
}

// highestModSeq is mail_index_map_modseq_get_highest.
func (s *state) highestModSeq() uint64 {
	if h, ok := s.modseqHdr(); ok && h.HighestModSeq != 0 {
		return h.HighestModSeq
	}
	return s.logModSeq
}

// recModSeq is mail_index_modseq_lookup for record i.
func (s *state) recModSeq(i int) uint64 {
	e := s.modseqExt()
	if e == nil {
		return max(s.logModSeq, 1)
	}
	m := le.Uint64(s.rec(i)[e.recOffset:])
	if m == 0 {
		return s.highestModSeq()
	}
	return m
}

// raiseModSeqs is mail_index_modseq_update: records [i1, i2) get modseq m
// if theirs is 0 or (nonzeros) lower.
func (s *state) raiseModSeqs(i1, i2 int, m uint64, nonzeros bool) {
	e := s.modseqExt()
	if e == nil {
		return
	}
	for i := i1; i < i2; i++ {
		if cur := le.Uint64(s.rec(i)[e.recOffset:]); cur == 0 || (nonzeros && cur < m) {
			le.PutUint64(s.wrec(i)[e.recOffset:], m)
		}
	}
}

// keywords of record i, by index.
func (s *state) recKeywords(i int) []string {
	e := s.ext(ExtKeywords)
	if e == nil || len(s.kw) == 0 {
		return nil
	}
	var out []string
	bm := s.rec(i)[e.recOffset : int(e.recOffset)+int(e.recSize)]
	for k := range s.kw {
		if k/8 < len(bm) && bm[k/8]&(1<<(k%8)) != 0 {
			out = append(out, s.kw[k])
		}
	}
	return out
}

// parseKeywords reads the keywords header (mail_index_map_parse_keywords).
// prev are the keywords known before; they must be a prefix of the new
// list ("Keywords changed unexpectedly").
func parseKeywords(e *ext, prev []string) ([]string, string) {
	if e == nil {
		return nil, ""
	}
	h := e.hdr[:e.hdrSize]
	if len(h) < 4 {
		return nil, "keywords header too small"
	}
	n := le.Uint32(h)
	if uint64(n) < uint64(len(prev)) {
		return nil, "Keywords removed unexpectedly"
	}
	nameStart := 4 + 8*uint64(n)
	if nameStart > uint64(len(h)) {
		return nil, "keywords_count larger than header size"
	}
	names := h[nameStart:]
	for i := uint64(0); i < uint64(n); i++ {
		if uint64(le.Uint32(h[4+8*i+4:])) >= uint64(len(names)) {
			return nil, "name_offset points outside allocated header"
		}
	}
	if len(names) == 0 || names[len(names)-1] != 0 {
		if n > 0 || len(names) > 0 {
			return nil, "Keyword header doesn't end with NUL"
		}
	}
	out := make([]string, 0, n)
	for i := uint64(0); i < uint64(n); i++ {
		off := le.Uint32(h[4+8*i+4:])
		rest := names[off:]
		kw := string(rest[:bytes.IndexByte(rest, 0)]) // NUL-terminated: checked above
		if int(i) < len(prev) {
			if !strings.EqualFold(kw, prev[i]) {
				return nil, "Keywords changed unexpectedly"
			}
		} else if kw == "" {
			return nil, "Empty keyword name in header"
		}
		out = append(out, kw)
	}
	return out, ""
}

// checkHeader is mail_index_map_check_header, with the record checks.
func (s *state) checkHeader() string {
	h := decodeHeader(s.base)
	if h.Major != MajorVersion {
		return fmt.Sprintf("Major version changed (%d != %d)", h.Major, MajorVersion)
	}
	if h.Flags&HdrFlagCorrupted != 0 {
		return "Header's corrupted flag is set"
	}
	if h.CompatFlags != 1 {
		return "CPU architecture changed"
	}
	if h.UIDValidity == 0 && h.NextUID != 1 {
		return fmt.Sprintf("uidvalidity=0, but next_uid=%d", h.NextUID)
	}
	if h.NextUID == 0 {
		return "next_uid=0"
	}
	if h.SeenMessagesCount > h.MessagesCount {
		return fmt.Sprintf("seen_messages_count %d > messages_count %d", h.SeenMessagesCount, h.MessagesCount)
	}
	if h.DeletedMessagesCount > h.MessagesCount {
		return fmt.Sprintf("deleted_messages_count %d > messages_count %d", h.DeletedMessagesCount, h.MessagesCount)
	}
	if h.FirstRecentUID == 0 {
		return "first_recent_uid=0"
	}
	if h.FirstRecentUID > h.NextUID {
		return fmt.Sprintf("first_recent_uid %d > next_uid %d", h.FirstRecentUID, h.NextUID)
	}
	if h.FirstUnseenUIDLowwater > h.NextUID {
		return fmt.Sprintf("first_unseen_uid_lowwater %d > next_uid %d", h.FirstUnseenUIDLowwater, h.NextUID)
	}
	if h.FirstDeletedUIDLowwater > h.NextUID {
		return fmt.Sprintf("first_deleted_uid_lowwater %d > next_uid %d", h.FirstDeletedUIDLowwater, h.NextUID)
	}
	if n := s.count(); n > 0 {
		last := s.uid(n - 1)
		if last == 0 {
			return "last message has uid=0"
		}
		if last >= h.NextUID {
			return fmt.Sprintf("last message uid %d >= next_uid %d", last, h.NextUID)
		}
	}
	return ""
}

// checkRecords verifies what Dovecot assumes about records without
// checking on open: strictly ascending UIDs, and exact seen/deleted
// counters (spec §2.1, §10.4).
func (s *state) checkRecords() string {
	var prev uint32
	var seen, deleted uint32
	for i := 0; i < s.count(); i++ {
		r := s.rec(i)
		u := le.Uint32(r)
		if u <= prev {
			return fmt.Sprintf("record %d: uid %d not above previous uid %d", i+1, u, prev)
		}
		prev = u
		if r[4]&FlagSeen != 0 {
			seen++
		}
		if r[4]&FlagDeleted != 0 {
			deleted++
		}
	}
	if seen != s.get(offSeenMessagesCount) {
		return fmt.Sprintf("seen_messages_count %d, but %d records have \\Seen", s.get(offSeenMessagesCount), seen)
	}
	if deleted != s.get(offDeletedMessagesCount) {
		return fmt.Sprintf("deleted_messages_count %d, but %d records have \\Deleted", s.get(offDeletedMessagesCount), deleted)
	}
	return ""
}
