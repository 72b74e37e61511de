package index

import (
	"fmt"
	"strings"

	"github.com/boxsync/boxsync/index/log"
)

// replay applies log records to a state, as mail_index_sync_record and its
// helpers do (dovecot 2.3.19.1 mail-index-sync-update.c,
// mail-index-sync-ext.c, mail-index-sync-keywords.c, mail-index-modseq.c).
type replay struct {
	s      *state
	path   string  // log file of the current record, for errors
	pos    log.Pos // position of the current record
	modseq uint64  // log view modseq counter after the current record

	curExt     int // extension of the last intro; -1 none
	curIgnore  bool
	curRecSize int

	hadDirty bool
	logs     *logSet // the log files, for the modseq catch-up scan; may be nil

	noKeywords bool // Options.NoKeywords
}

func newReplay(s *state, logs *logSet) *replay {
	r := &replay{s: s, curExt: -1, logs: logs}
	// mail_index_sync_map: the dirty flag is recomputed at the end
	if s.get(offFlags)&HdrFlagHaveDirty != 0 {
		r.hadDirty = true
		s.put(offFlags, s.get(offFlags)&^HdrFlagHaveDirty)
	}
	// mail_index_modseq_sync_begin: modseqs are tracked when the map
	// already has the extension
	if s.modseqExt() != nil && !s.tracking {
		s.tracking = true
	}
	return r
}

func (r *replay) corrupt(format string, args ...any) error {
	return &log.CorruptError{File: r.path, Offset: int64(r.pos.Offset), Reason: fmt.Sprintf(format, args...)}
}

// atomicMap stands for mail_index_sync_get_atomic_map, which refreshes the
// sync context's modseq map: from then on modseqs are tracked if the
// "modseq" extension exists.
func (r *replay) atomicMap() {
	if !r.s.tracking && r.s.modseqExt() != nil {
		r.s.tracking = true
	}
}

// touch gives records [i1, i2) the current modseq
// (mail_index_modseq_update_to_highest).
func (r *replay) touch(i1, i2 int) {
	if r.s.tracking {
		r.s.raiseModSeqs(i1, i2, r.modseq, true)
	}
}

// apply applies one record. pos is its position and modseq the counter
// after it.
func (r *replay) apply(raw log.Raw, path string, pos log.Pos, modseq uint64) error {
	r.path, r.pos, r.modseq = path, pos, modseq
	p := raw.Payload
	ext := raw.Flags()&log.External != 0
	switch t := raw.Type(); t {
	case log.TypeAppend:
		r.s.recs.grow(len(p) / 8)
		for i := 0; i+8 <= len(p); i += 8 {
			if err := r.append(p[i : i+8]); err != nil {
				return err
			}
		}
	case log.TypeExpunge:
		if !ext {
			return nil // only a request for an expunge
		}
		var rs [][2]int
		for i := 0; i+8 <= len(p); i += 8 {
			if i1, i2, ok := r.s.seqRange(le.Uint32(p[i:]), le.Uint32(p[i+4:])); ok {
				rs = addRange(rs, i1, i2)
			}
		}
		return r.expunge(rs)
	case log.TypeExpungeGUID:
		if !ext {
			return nil
		}
		var rs [][2]int
		for i := 0; i+20 <= len(p); i += 20 {
			if j, ok := r.s.find(le.Uint32(p[i:])); ok {
				rs = addRange(rs, j, j+1)
			}
		}
		return r.expunge(rs)
	case log.TypeFlagUpdate:
		for i := 0; i+12 <= len(p); i += 12 {
			if err := r.flagUpdate(log.FlagChange{UID1: le.Uint32(p[i:]), UID2: le.Uint32(p[i+4:]),
				Add: p[i+8], Remove: p[i+9], ModSeqInc: p[i+10]}); err != nil {
				return err
			}
		}
	case log.TypeHeaderUpdate:
		for i := 0; i+4 <= len(p); {
			off, size := int(le.Uint16(p[i:])), int(le.Uint16(p[i+2:]))
			if err := r.headerUpdate(off, p[i+4:i+4+size]); err != nil {
				return err
			}
			i = pad4(i + 4 + size)
		}
	case log.TypeExtIntro:
		nameSize := int(le.Uint16(p[18:]))
		return r.extIntro(intro{
			extID: le.Uint32(p), resetID: le.Uint32(p[4:]), hdrSize: le.Uint32(p[8:]),
			recSize: le.Uint16(p[12:]), recAlign: le.Uint16(p[14:]), flags: le.Uint16(p[16:]),
			name: string(p[20 : 20+nameSize]),
		}, false)
	case log.TypeExtReset:
		var preserve bool
		if len(p) > 4 {
			preserve = p[4] != 0
		}
		return r.extReset(le.Uint32(p), preserve)
	case log.TypeExtHdrUpdate, log.TypeExtHdrUpdate32:
		hs := 4
		if t == log.TypeExtHdrUpdate32 {
			hs = 8
		}
		for i := 0; i+hs <= len(p); {
			var off, size uint32
			if hs == 8 {
				off, size = le.Uint32(p[i:]), le.Uint32(p[i+4:])
			} else {
				off, size = uint32(le.Uint16(p[i:])), uint32(le.Uint16(p[i+2:]))
			}
			if err := r.extHdrUpdate(off, p[i+hs:i+hs+int(size)]); err != nil {
				return err
			}
			i = pad4(i + hs + int(size))
		}
	case log.TypeExtRecUpdate:
		return r.extRecUpdate(p)
	case log.TypeExtAtomicInc:
		return r.extAtomicInc(p)
	case log.TypeKeywordUpdate:
		nameSize := int(le.Uint16(p[2:]))
		return r.keywordUpdate(p[0] == 1, string(p[4:4+nameSize]), p[pad4(4+nameSize):])
	case log.TypeKeywordReset:
		return r.keywordReset(p)
	case log.TypeModSeqUpdate:
		for i := 0; i+12 <= len(p); i += 12 {
			uid := le.Uint32(p[i:])
			if uid == 0 {
				continue // only raises the highest modseq
			}
			j, ok := r.s.find(uid)
			if !ok {
				continue
			}
			e := r.s.modseqExt()
			if e == nil {
				return r.corrupt("modseqs updated before they were enabled")
			}
			m := uint64(le.Uint32(p[i+4:])) | uint64(le.Uint32(p[i+8:]))<<32
			if le.Uint64(r.s.rec(j)[e.recOffset:]) <= m {
				le.PutUint64(r.s.wrec(j)[e.recOffset:], m)
			}
		}
	case log.TypeIndexDeleted:
		if ext {
			r.s.deleted = true
		}
	case log.TypeIndexUndeleted:
		r.s.deleted = false
	case log.TypeBoundary, log.TypeAttributeUpdate:
	default:
		return r.corrupt("Unknown transaction record type 0x%x", uint32(t))
	}
	return nil
}

// addRange adds [i1, i2) to ascending, merged ranges.
func addRange(rs [][2]int, i1, i2 int) [][2]int {
	if n := len(rs); n > 0 && rs[n-1][1] >= i1 {
		rs[n-1][1] = max(rs[n-1][1], i2)
		return rs
	}
	return append(rs, [2]int{i1, i2})
}

// sync_append (record layout spec §2.3: u32 uid, u8 flags)
func (r *replay) append(rec []byte) error {
	s := r.s
	uid, flags := le.Uint32(rec), rec[4]
	next := s.get(offNextUID)
	if uid < next {
		return r.corrupt("Append with UID %d, but next_uid = %d", uid, next)
	}
	// the record gets the 8 bytes of the log's record (uid, flags and the
	// padding), the rest zeroed
	n := s.count()
	copy(s.recs.appendZero(1), rec[:8])
	s.put(offMessagesCount, uint32(n+1))
	s.put(offNextUID, uid+1)
	if flags&FlagDirty != 0 {
		s.put(offFlags, s.get(offFlags)|HdrFlagHaveDirty)
	}
	r.touch(n, n+1)
	r.lowwaters(uid, flags)
	return r.counts(0, flags)
}

// mail_index_header_update_lowwaters
func (r *replay) lowwaters(uid uint32, flags uint8) {
	s := r.s
	if flags&FlagSeen == 0 && uid < s.get(offFirstUnseenUIDLowwater) {
		s.put(offFirstUnseenUIDLowwater, uid)
	}
	if flags&FlagDeleted != 0 && uid < s.get(offFirstDeletedUIDLowwater) {
		s.put(offFirstDeletedUIDLowwater, uid)
	}
}

// mail_index_header_update_counts
func (r *replay) counts(old, new uint8) error {
	s := r.s
	msgs := s.get(offMessagesCount)
	if (old^new)&FlagSeen != 0 {
		seen := s.get(offSeenMessagesCount)
		if old&FlagSeen != 0 {
			if seen == 0 {
				return r.corrupt("Seen counter wrong")
			}
			s.put(offSeenMessagesCount, seen-1)
		} else {
			if seen >= msgs {
				return r.corrupt("Seen counter wrong")
			}
			s.put(offSeenMessagesCount, seen+1)
			if seen+1 == msgs {
				s.put(offFirstUnseenUIDLowwater, s.get(offNextUID))
			}
		}
	}
	if (old^new)&FlagDeleted != 0 {
		del := s.get(offDeletedMessagesCount)
		if old&FlagDeleted == 0 {
			if del+1 > msgs {
				return r.corrupt("Deleted counter wrong")
			}
			s.put(offDeletedMessagesCount, del+1)
		} else {
			if del == 0 || del > msgs {
				return r.corrupt("Deleted counter wrong")
			}
			s.put(offDeletedMessagesCount, del-1)
			if del-1 == 0 {
				s.put(offFirstDeletedUIDLowwater, s.get(offNextUID))
			}
		}
	}
	return nil
}

// sync_expunge_range
func (r *replay) expunge(rs [][2]int) error {
	if len(rs) == 0 {
		return nil
	}
	s := r.s
	r.atomicMap()
	for _, x := range rs {
		for i := x[0]; i < x[1]; i++ {
			if err := r.counts(s.rec(i)[4], 0); err != nil {
				return err
			}
		}
		s.put(offMessagesCount, s.get(offMessagesCount)-uint32(x[1]-x[0]))
	}
	s.recs = s.recs.without(rs)
	return nil
}

// sync_flag_update
func (r *replay) flagUpdate(u log.FlagChange) error {
	s := r.s
	i1, i2, ok := s.seqRange(u.UID1, u.UID2)
	if !ok {
		return nil
	}
	if !u.Internal() {
		r.touch(i1, i2)
	}
	if u.Add&FlagDirty != 0 {
		s.put(offFlags, s.get(offFlags)|HdrFlagHaveDirty)
	}
	counted := (u.Add|u.Remove)&(FlagSeen|FlagDeleted) != 0
	next := s.get(offNextUID)
	for i := i1; i < i2; i++ {
		rec := s.wrec(i)
		old := rec[4]
		rec[4] = old&^u.Remove | u.Add
		if counted {
			uid := le.Uint32(rec)
			r.lowwaters(uid, rec[4])
			if uid < next {
				if err := r.counts(old, rec[4]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// sync_header_update
func (r *replay) headerUpdate(off int, data []byte) error {
	s := r.s
	if off >= len(s.base) || off+len(data) > len(s.base) {
		return r.corrupt("Header update outside range: %d + %d > %d", off, len(data), len(s.base))
	}
	oldTail, oldNext := s.get(offLogFileTailOffset), s.get(offNextUID)
	var sizes [offCompatFlags - offBaseHeaderSize]byte
	copy(sizes[:], s.base[offBaseHeaderSize:offCompatFlags])
	copy(s.base[off:], data)
	// QUIRK: base_header_size, header_size, record_size and
	// messages_count describe the file; Dovecot would let an update break
	// them, we keep them.
	copy(s.base[offBaseHeaderSize:offCompatFlags], sizes[:])
	s.put(offMessagesCount, uint32(s.count()))
	if s.get(offNextUID) < oldNext {
		// shrinking next_uid is silently ignored (dsync races)
		s.put(offNextUID, oldNext)
	}
	// tail offset updates are for the log's own tracking (§2.6.6)
	s.put(offLogFileTailOffset, oldTail)
	return nil
}

type intro struct {
	extID, resetID, hdrSize uint32
	recSize, recAlign       uint16
	flags                   uint16
	name                    string
}

// mail_index_sync_ext_intro
func (r *replay) extIntro(u intro, internal bool) error {
	s := r.s
	r.curExt, r.curIgnore, r.curRecSize = -2, true, 0
	if u.extID != log.ExtIDNamed && int64(u.extID) >= int64(len(s.exts)) {
		return r.corrupt("Extension introduction for unknown id %d", u.extID)
	}
	if u.extID == log.ExtIDNamed && u.name == "" {
		return r.corrupt("Extension introduction without id or name")
	}
	idx, name := -1, u.name
	if u.extID != log.ExtIDNamed {
		idx = int(u.extID)
	} else {
		idx = s.extIndex(name)
	}
	if idx >= 0 {
		name = s.exts[idx].name
	}
	if !internal && name == ExtKeywords {
		return r.corrupt("Extension introduction for keywords")
	}
	if reason := checkExtDef(name, u.hdrSize, u.recSize, u.recAlign); reason != "" {
		return r.corrupt("Broken extension introduction: %s", reason)
	}
	r.curRecSize = int(u.recSize)
	if idx >= 0 {
		if u.resetID == s.exts[idx].resetID {
			r.extResize(u, idx, u.flags&log.IntroNoShrink != 0)
			r.curIgnore = false
		} else {
			// reset meanwhile: ignore updates until an EXT_RESET
			r.curIgnore = true
		}
		r.curExt = idx
		return nil
	}
	// mail_index_sync_ext_init_new
	r.atomicMap()
	s.exts = append(s.exts, &ext{name: name, resetID: u.resetID, hdrSize: u.hdrSize,
		hdr: make([]byte, pad8(int(u.hdrSize))), recSize: u.recSize, recAlign: u.recAlign})
	idx = len(s.exts) - 1
	s.reorder(idx, 0)
	r.curIgnore = false
	if internal {
		r.curExt = -1
	} else {
		r.curExt = idx
	}
	return nil
}

// sync_ext_resize
func (r *replay) extResize(u intro, idx int, noShrink bool) {
	s := r.s
	e := s.exts[idx]
	oldPad, newPad := pad8(int(e.hdrSize)), pad8(int(u.hdrSize))
	switch {
	case e.recAlign != u.recAlign || e.recSize != u.recSize:
		// record changed
	case newPad < oldPad:
		if noShrink {
			return
		}
	case e.hdrSize == u.hdrSize:
		return
	}
	r.atomicMap()
	switch {
	case newPad < oldPad:
		if !noShrink {
			e.hdr = e.hdr[:newPad]
			e.hdrSize = u.hdrSize
		}
	case newPad > oldPad:
		e.hdr = append(e.hdr, make([]byte, newPad-oldPad)...)
		e.hdrSize = u.hdrSize
	default:
		e.hdrSize = u.hdrSize
	}
	reorder := false
	if e.recAlign < u.recAlign || (e.recAlign > u.recAlign && !noShrink) {
		e.recAlign = u.recAlign
		reorder = true
	}
	oldSize := e.recSize
	if e.recSize < u.recSize || (e.recSize > u.recSize && !noShrink) {
		e.recSize = u.recSize
		reorder = true
	}
	if reorder {
		s.reorder(idx, oldSize)
	}
}

// reorder is sync_ext_reorder: lay the records out again and move the
// data. Extension idx had oldSize bytes before (only those are copied).
func (s *state) reorder(idx int, oldSize uint16) {
	oldOffsets := make([]int, len(s.exts))
	sizes := make([]int, len(s.exts))
	for i, e := range s.exts {
		oldOffsets[i], sizes[i] = int(e.recOffset), int(e.recSize)
	}
	if sizes[idx] > int(oldSize) {
		sizes[idx] = int(oldSize)
	}
	newSize := layoutRecords(s.exts)
	n := s.count()
	nb := newRecords(newSize)
	nb.grow(n)
	for i := 0; i < n; i++ {
		src, dst := s.rec(i), nb.appendZero(1)
		copy(dst[:8], src[:8])
		for j, e := range s.exts {
			if sizes[j] > 0 {
				copy(dst[e.recOffset:int(e.recOffset)+sizes[j]], src[oldOffsets[j]:oldOffsets[j]+sizes[j]])
			}
		}
	}
	s.recs = nb
}

// mail_index_sync_ext_reset
func (r *replay) extReset(newResetID uint32, preserve bool) error {
	if r.curExt == -1 {
		return r.corrupt("Extension reset without intro prefix")
	}
	r.atomicMap()
	s := r.s
	e := s.exts[r.curExt]
	e.resetID = newResetID
	if !preserve {
		clear(e.hdr[:e.hdrSize])
		for i := 0; i < s.count(); i++ {
			clear(s.wrec(i)[e.recOffset : int(e.recOffset)+int(e.recSize)])
		}
	}
	return nil
}

// mail_index_sync_ext_hdr_update
func (r *replay) extHdrUpdate(off uint32, data []byte) error {
	if r.curExt == -1 {
		return r.corrupt("Extension header update without intro prefix")
	}
	if r.curIgnore {
		return nil
	}
	e := r.s.exts[r.curExt]
	if uint64(off)+uint64(len(data)) > uint64(e.hdrSize) {
		return r.corrupt("Extension header update points outside header size")
	}
	copy(e.hdr[off:], data)
	if e.name == ExtModSeq && !r.s.tracking && r.s.modseqExt() != nil {
		// mail_index_modseq_hdr_update: modseqs enabled now
		r.s.tracking = true
		r.catchUp()
	}
	return nil
}

// mail_index_sync_ext_rec_update
func (r *replay) extRecUpdate(p []byte) error {
	if r.curExt == -1 {
		return r.corrupt("Extension record updated without intro prefix")
	}
	if r.curIgnore {
		return nil
	}
	s := r.s
	e := s.exts[r.curExt]
	stride := pad4(4 + r.curRecSize)
	if r.curRecSize > int(e.recSize) {
		return r.corrupt("Extension record size %d larger than the extension's %d", r.curRecSize, e.recSize)
	}
	next := s.get(offNextUID)
	for i := 0; i < len(p); i += stride {
		if i+stride > len(p) {
			return r.corrupt("ext rec update: invalid record size")
		}
		uid := le.Uint32(p[i:])
		if uid == 0 || uid >= next {
			return r.corrupt("Extension record update for invalid uid=%d", uid)
		}
		j, ok := s.find(uid)
		if !ok {
			continue
		}
		dst := s.wrec(j)[e.recOffset : int(e.recOffset)+int(e.recSize)]
		copy(dst, p[i+4:i+4+r.curRecSize])
		clear(dst[r.curRecSize:])
	}
	return nil
}

// mail_index_sync_ext_atomic_inc
func (r *replay) extAtomicInc(p []byte) error {
	if r.curExt == -1 {
		return r.corrupt("Extension record updated without intro prefix")
	}
	if r.curIgnore {
		return nil
	}
	s := r.s
	e := s.exts[r.curExt]
	size := r.curRecSize
	if size > int(e.recSize) {
		return r.corrupt("Extension record size %d larger than the extension's %d", size, e.recSize)
	}
	next := s.get(offNextUID)
	for i := 0; i+8 <= len(p); i += 8 {
		uid, diff := le.Uint32(p[i:]), int32(le.Uint32(p[i+4:]))
		if uid == 0 || uid >= next {
			return r.corrupt("Extension record inc for invalid uid=%d", uid)
		}
		j, ok := s.find(uid)
		if !ok {
			continue
		}
		var minV, maxV uint64
		if diff < 0 {
			minV = uint64(-int64(diff))
		}
		switch size {
		case 1, 2, 4:
			maxV = 1<<(8*size) - 1
		case 8:
			maxV = ^uint64(0)
		default:
			return r.corrupt("Extension record inc with invalid size=%d", size)
		}
		if diff > 0 {
			if maxV < uint64(diff) {
				return r.corrupt("Extension record inc diff=%d larger than max value=%d (uid=%d)", diff, maxV, uid)
			}
			maxV -= uint64(diff)
		}
		d := s.wrec(j)[e.recOffset:]
		var v uint64
		switch size {
		case 1:
			v = uint64(d[0])
		case 2:
			v = uint64(le.Uint16(d))
		case 4:
			v = uint64(le.Uint32(d))
		case 8:
			v = le.Uint64(d)
		}
		if v < minV {
			return r.corrupt("Extension record inc drops number below zero (uid=%d, diff=%d, orig=%d)", uid, diff, v)
		}
		if v > maxV {
			return r.corrupt("Extension record inc overflows number (uid=%d, diff=%d, orig=%d)", uid, diff, v)
		}
		v += uint64(int64(diff))
		switch size {
		case 1:
			d[0] = byte(v)
		case 2:
			le.PutUint16(d, uint16(v))
		case 4:
			le.PutUint32(d, uint32(v))
		case 8:
			le.PutUint64(d, v)
		}
	}
	return nil
}

// keywordIndex finds a keyword as Dovecot does: case-insensitively
// (the index keeps keywords in a strcasecmp hash).
func (s *state) keywordIndex(name string) int {
	for i, k := range s.kw {
		if strings.EqualFold(k, name) {
			return i
		}
	}
	return -1
}

// keywordsRecordSize is the record size Dovecot gives the "keywords"
// extension for n keywords (keywords_ext_register).
func keywordsRecordSize(n int) uint16 {
	size := uint16((n + 7) / 8)
	if size%4 != 0 {
		size++ // not aligned anyway: reserve a byte for the future
	}
	return size
}

// keywords_ext_register
func (r *replay) keywordsExtRegister(idx int, resetID uint32, hdrSize, count int) error {
	u := intro{extID: uint32(idx), resetID: resetID, hdrSize: uint32(hdrSize),
		recSize: keywordsRecordSize(count), recAlign: 1}
	if idx < 0 {
		u.extID, u.name = log.ExtIDNamed, ExtKeywords
	}
	return r.extIntro(u, true)
}

// keywords_header_add: appends name to the keywords header (spec §2.4:
// u32 count, count × {u32 0, u32 name_offset}, NUL-terminated names, 128
// spare bytes when it grows), growing the extension when needed. It
// returns the new keyword's index.
func (r *replay) keywordsHeaderAdd(name string) (int, error) {
	s := r.s
	r.atomicMap()
	idx := s.extIndex(ExtKeywords)
	var e *ext
	var buf []byte
	var count, recOffset, nameRoot, nameOff int
	if idx >= 0 {
		e = s.exts[idx]
		h := e.hdr[:e.hdrSize]
		if kc := int(le.Uint32(h)); kc > 0 {
			names := h[4+8*kc:]
			last := int(le.Uint32(h[4+8*(kc-1)+4:]))
			nameOff = last + strings.IndexByte(string(names[last:]), 0) + 1
			count = kc + 1
			buf = le.AppendUint32(nil, uint32(count))
			buf = append(buf, h[4:4+8*kc]...)
			recOffset = len(buf)
			buf = append(buf, make([]byte, 8)...)
			buf = append(buf, names[:nameOff]...)
			nameRoot = len(buf)
		}
	}
	if buf == nil {
		count, nameOff = 1, 0
		buf = le.AppendUint32(nil, 1)
		recOffset = len(buf)
		buf = append(buf, make([]byte, 8)...)
		nameRoot = len(buf)
	}
	le.PutUint32(buf[recOffset:], 0)
	le.PutUint32(buf[recOffset+4:], uint32(nameOff))
	buf = append(buf[:nameRoot], name...)
	buf = append(buf, 0)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	if e == nil || len(buf) > int(e.hdrSize) || int(e.recSize)*8 < count {
		buf = append(buf, make([]byte, 128)...)
		var resetID uint32
		if e != nil {
			resetID = e.resetID
		}
		if err := r.keywordsExtRegister(idx, resetID, len(buf), count); err != nil {
			return 0, err
		}
		e = s.ext(ExtKeywords)
	}
	copy(e.hdr, buf)
	kw, reason := parseKeywords(e, s.kw)
	if reason != "" {
		return 0, r.corrupt("keyword update corrupted keywords header: %s", reason)
	}
	s.kw = kw
	return count - 1, nil
}

// mail_index_sync_keywords
func (r *replay) keywordUpdate(remove bool, name string, ranges []byte) error {
	s := r.s
	if r.noKeywords && s.extIndex(ExtKeywords) >= 0 {
		return nil // registered: it numbers the extensions after it
	}
	k := s.keywordIndex(name)
	if k < 0 {
		var err error
		if k, err = r.keywordsHeaderAdd(name); err != nil {
			return err
		}
	}
	idx := s.extIndex(ExtKeywords)
	e := s.exts[idx]
	if k/8 >= int(e.recSize) {
		if remove {
			return nil
		}
		if err := r.keywordsExtRegister(idx, e.resetID, int(e.hdrSize), len(s.kw)); err != nil {
			return err
		}
		e = s.exts[idx]
	}
	off, mask := int(e.recOffset)+k/8, byte(1)<<(k%8)
	for i := 0; i+8 <= len(ranges); i += 8 {
		i1, i2, ok := s.seqRange(le.Uint32(ranges[i:]), le.Uint32(ranges[i+4:]))
		if !ok {
			continue
		}
		r.touch(i1, i2)
		for j := i1; j < i2; j++ {
			if remove {
				s.wrec(j)[off] &^= mask
			} else {
				s.wrec(j)[off] |= mask
			}
		}
	}
	return nil
}

// mail_index_sync_keywords_reset
func (r *replay) keywordReset(p []byte) error {
	s := r.s
	if r.noKeywords {
		return nil
	}
	e := s.ext(ExtKeywords)
	if e == nil {
		return nil
	}
	for i := 0; i+8 <= len(p); i += 8 {
		i1, i2, ok := s.seqRange(le.Uint32(p[i:]), le.Uint32(p[i+4:]))
		if !ok {
			continue
		}
		r.touch(i1, i2)
		for j := i1; j < i2; j++ {
			clear(s.wrec(j)[e.recOffset : int(e.recOffset)+int(e.recSize)])
		}
	}
	return nil
}

// catchUp is mail_index_modseq_sync_init: modseqs were just enabled (or
// the index's modseq header lags behind the log). Records between the
// header's log position and the current record get modseqs: zero ones the
// header's highest_modseq, then each one the modseq of the last log record
// that touched it.
func (r *replay) catchUp() {
	s := r.s
	h, ok := s.modseqHdr()
	if !ok {
		return
	}
	from := log.Pos{FileSeq: max(1, h.LogSeq), Offset: h.LogOffset}
	end := r.pos
	if !log.Pos.Before(log.Pos{FileSeq: h.LogSeq, Offset: h.LogOffset}, end) {
		return // up to date
	}
	if r.logs == nil || !r.logs.canStart(from) {
		// missing files: every message gets at least the modseq at the
		// start of the current file
		cur := h.HighestModSeq
		if f := r.logs.file(end.FileSeq); f != nil {
			cur = max(cur, f.Hdr.InitialModSeq)
		}
		s.raiseModSeqs(0, s.count(), cur, true)
		return
	}
	s.raiseModSeqs(0, s.count(), h.HighestModSeq, false)
	r.logs.scanRange(from, end, r.oldRecModSeq)
}

// mail_index_modseq_update_old_rec
func (r *replay) oldRecModSeq(raw log.Raw, modseq uint64) {
	s := r.s
	p := raw.Payload
	var ranges []byte
	stride := 8
	switch raw.Type() {
	case log.TypeAppend:
		for i := 0; i+8 <= len(p); i += 8 {
			if j, ok := s.find(le.Uint32(p[i:])); ok {
				s.raiseModSeqs(j, j+1, modseq, true)
			}
		}
		return
	case log.TypeFlagUpdate:
		ranges, stride = p, 12
	case log.TypeKeywordUpdate:
		ranges = p[pad4(4+int(le.Uint16(p[2:]))):]
	case log.TypeKeywordReset:
		ranges = p
	default:
		return
	}
	for i := 0; i+stride <= len(ranges); i += stride {
		if i1, i2, ok := s.seqRange(le.Uint32(ranges[i:]), le.Uint32(ranges[i+4:])); ok {
			s.raiseModSeqs(i1, i2, modseq, true)
		}
	}
}

// finish is the end of mail_index_sync_map: the dirty flag, the modseq
// header and the log position. end is the log head's end, tail the log's
// tail offset (max_tail_offset).
func (r *replay) finish(end log.Pos, endModSeq, headModSeq uint64, tail uint32) error {
	s := r.s
	if r.hadDirty {
		for i := 0; i < s.count(); i++ {
			if s.rec(i)[4]&FlagDirty != 0 {
				s.put(offFlags, s.get(offFlags)|HdrFlagHaveDirty)
				break
			}
		}
	}
	// mail_index_modseq_update_header
	if s.tracking {
		if e := s.ext(ExtModSeq); e != nil && e.hdrSize >= 16 {
			h, _ := decodeModSeqHdr(e.hdr)
			if (log.Pos{FileSeq: h.LogSeq, Offset: h.LogOffset}).Before(end) {
				copy(e.hdr, ModSeqHdr{HighestModSeq: endModSeq, LogSeq: end.FileSeq, LogOffset: end.Offset}.Encode())
			}
		}
	}
	// mail_index_sync_update_log_offset(eol)
	if s.get(offLogFileSeq) != end.FileSeq {
		s.put(offLogFileSeq, end.FileSeq)
		s.put(offLogFileTailOffset, 0)
	}
	s.put(offLogFileHeadOffset, end.Offset)
	if s.get(offLogFileTailOffset) < tail {
		s.put(offLogFileTailOffset, tail)
	}
	s.logModSeq = headModSeq
	s.logPos = end
	if reason := s.checkHeader(); reason != "" {
		return r.corrupt("Synchronization corrupted index header: %s", reason)
	}
	return nil
}
