package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

var le = binary.LittleEndian

// RecordHeaderSize is the size of struct mail_transaction_header: the
// encoded size word and the type word.
const RecordHeaderSize = 8

// MaxRecordSize is the largest record size the 4×7-bit encoding can hold.
const MaxRecordSize = 1<<30 - 4

// EncodeSize encodes a record size (a multiple of 4, including the 8-byte
// header) the way mail_index_uint32_to_offset does: n/4 split into four
// 7-bit groups, most significant first, each byte with bit 0x80 set.
// Spec §2.6.2.
func EncodeSize(n uint32) [4]byte {
	if n%4 != 0 || n > MaxRecordSize {
		panic(fmt.Sprintf("log: record size %d not encodable", n))
	}
	v := n >> 2
	return [4]byte{
		0x80 | byte(v>>21&0x7f),
		0x80 | byte(v>>14&0x7f),
		0x80 | byte(v>>7&0x7f),
		0x80 | byte(v&0x7f),
	}
}

// DecodeSize decodes an encoded record size; 0 means "not fully written
// yet" (some byte lacks bit 0x80), as mail_index_offset_to_uint32.
func DecodeSize(b []byte) uint32 {
	if b[0]&b[1]&b[2]&b[3]&0x80 == 0 {
		return 0
	}
	return (uint32(b[0]&0x7f)<<21 | uint32(b[1]&0x7f)<<14 |
		uint32(b[2]&0x7f)<<7 | uint32(b[3]&0x7f)) << 2
}

// Raw is an undecoded record: the type word (flags and protection bits
// included) and the payload. Payload aliases the file's bytes.
type Raw struct {
	Word    uint32
	Payload []byte
}

// Type is the record type without flags and protection bits.
func (r Raw) Type() Type { return typeOf(r.Word) }

// Flags are the record's EXTERNAL/SYNC bits.
func (r Raw) Flags() TypeFlags { return TypeFlags(r.Word) & (External | Sync) }

func typeOf(word uint32) Type {
	t := word & TypeMask
	if t&uint32(TypeExpunge) != 0 || t&uint32(TypeExpungeGUID) != 0 {
		t &^= ExpungeProt
	}
	return Type(t)
}

// checkRaw validates a record's payload as Dovecot does before using it
// (mail-transaction-log-view.c: log_view_is_record_valid), and a little
// more: every entry must lie inside the payload. It returns the record
// type, or a reason.
func checkRaw(r Raw) (Type, string) {
	word := r.Word & TypeMask
	// we want to be extra careful with expunges
	if word&uint32(TypeExpunge) != 0 && word != uint32(TypeExpunge)|ExpungeProt {
		return 0, "expunge record missing protection mask"
	}
	if word&uint32(TypeExpungeGUID) != 0 && word != uint32(TypeExpungeGUID)|ExpungeProt {
		return 0, "expunge guid record missing protection mask"
	}
	t := typeOf(r.Word)
	p := r.Payload
	if len(p) == 0 {
		return t, fmt.Sprintf("Empty record contents (type=0x%x)", uint32(t))
	}
	if len(p)%4 != 0 {
		// impossible in a file: record sizes are multiples of 4
		return t, fmt.Sprintf("record size not a multiple of 4 (type=0x%x)", uint32(t))
	}
	switch t {
	case TypeAppend:
		if len(p)%8 != 0 {
			return t, "Invalid append record size"
		}
	case TypeExpunge, TypeKeywordReset:
		if reason := checkRanges(p, 8, t); reason != "" {
			return t, reason
		}
	case TypeFlagUpdate:
		if reason := checkRanges(p, 12, t); reason != "" {
			return t, reason
		}
	case TypeExpungeGUID:
		if len(p)%20 != 0 {
			return t, "Invalid expunge guid record size"
		}
		for i := 0; i < len(p); i += 20 {
			if le.Uint32(p[i:]) == 0 {
				return t, "Expunge guid record with uid=0"
			}
		}
	case TypeKeywordUpdate:
		if len(p) < 4 {
			return t, "Invalid keyword update record size"
		}
		nameSize := int(le.Uint16(p[2:]))
		if nameSize == 0 {
			return t, "Trying to use empty keyword"
		}
		off := pad4(4 + nameSize)
		if off > len(p) {
			return t, "Invalid keyword update record size"
		}
		if p[0] > 1 {
			return t, fmt.Sprintf("Invalid keyword modify type %d", p[0])
		}
		if reason := checkRanges(p[off:], 8, t); reason != "" {
			return t, reason
		}
	case TypeExtIntro:
		if len(p) < introSize {
			return t, "ext intro: record too small"
		}
		nameSize := int(le.Uint16(p[18:]))
		if introSize+nameSize > len(p) {
			return t, "ext intro: name_size too large"
		}
		// QUIRK: Dovecot accepts several intros in one record; it never
		// writes that, and this package keeps one per record.
		if len(p)-pad4(introSize+nameSize) >= introSize {
			return t, "ext intro: more than one introduction in a record"
		}
	case TypeExtReset, TypeBoundary:
		if len(p) < 4 {
			return t, fmt.Sprintf("Invalid record size (type=0x%x)", uint32(t))
		}
	case TypeHeaderUpdate, TypeExtHdrUpdate, TypeExtHdrUpdate32:
		if _, err := parseHdrChanges(p, t == TypeExtHdrUpdate32); err != nil {
			return t, err.Error()
		}
	case TypeExtAtomicInc:
		if len(p)%8 != 0 {
			return t, "ext atomic inc: invalid record size"
		}
	case TypeModSeqUpdate:
		if len(p)%12 != 0 {
			return t, "modseq update: invalid record size"
		}
	case TypeAttributeUpdate:
		if _, err := parseAttrs(p); err != nil {
			return t, err.Error()
		}
	}
	return t, ""
}

// checkRanges checks an array of entries starting with {uid1, uid2}
// (log_view_is_uid_range_valid).
func checkRanges(p []byte, size int, t Type) string {
	if len(p)%size != 0 {
		return fmt.Sprintf("Invalid record size (type=0x%x)", uint32(t))
	}
	if len(p) == 0 {
		return fmt.Sprintf("No UID ranges (type=0x%x)", uint32(t))
	}
	var prev uint32
	for i := 0; i < len(p); i += size {
		u1, u2 := le.Uint32(p[i:]), le.Uint32(p[i+4:])
		if u1 > u2 || u1 == 0 {
			return fmt.Sprintf("Invalid UID range (%d .. %d, type=0x%x)", u1, u2, uint32(t))
		}
		if i > 0 && u1 <= prev {
			return fmt.Sprintf("Non-sorted UID ranges (type=0x%x)", uint32(t))
		}
		prev = u2
	}
	return ""
}

func pad4(n int) int { return (n + 3) &^ 3 }

func parseHdrChanges(p []byte, wide bool) ([]HdrChange, error) {
	var out []HdrChange
	hs := 4
	if wide {
		hs = 8
	}
	for i := 0; i < len(p); {
		if i+hs > len(p) {
			return nil, errors.New("header update: invalid record size")
		}
		var off, size uint32
		if wide {
			off, size = le.Uint32(p[i:]), le.Uint32(p[i+4:])
		} else {
			off, size = uint32(le.Uint16(p[i:])), uint32(le.Uint16(p[i+2:]))
		}
		if uint64(i)+uint64(hs)+uint64(size) > uint64(len(p)) {
			return nil, errors.New("header update: invalid record size")
		}
		out = append(out, HdrChange{Offset: off, Data: p[i+hs : i+hs+int(size)]})
		i = pad4(i + hs + int(size))
	}
	return out, nil
}

func parseAttrs(p []byte) ([]AttrChange, error) {
	var out []AttrChange
	i := 0
	for i+2 < len(p) && p[i] != 0 {
		var c AttrChange
		switch p[i] {
		case '+':
			c.Set = true
		case '-':
		default:
			return nil, fmt.Errorf("attribute update: Invalid prefix 0x%02x", p[i])
		}
		switch p[i+1] {
		case 'p':
			c.Private = true
		case 's':
		default:
			return nil, fmt.Errorf("attribute update: Invalid type 0x%02x", p[i+1])
		}
		i += 2
		if p[i] == 0 {
			return nil, errors.New("attribute update: Empty key")
		}
		n := bytes.IndexByte(p[i:], 0)
		if n < 0 {
			return nil, errors.New("attribute update doesn't end with NUL")
		}
		c.Key = string(p[i : i+n])
		i += n + 1
		out = append(out, c)
	}
	if i == 0 || (i < len(p) && p[i] != 0) {
		return nil, errors.New("attribute update doesn't end with NUL")
	}
	// the NUL ending the key list, padding, then u32 timestamps and, for
	// each set key, u32 value lengths
	j := pad4(i + 1)
	next := func() uint32 {
		if j+4 > len(p) {
			return 0
		}
		v := le.Uint32(p[j:])
		j += 4
		return v
	}
	for k := range out {
		out[k].Timestamp = next()
		if out[k].Set {
			out[k].ValueLen = next()
		}
	}
	return out, nil
}

// Decode decodes a raw record. extRecSize is the record_size of the last
// ExtIntro in the same stream (needed to split an ExtRecUpdate), or -1 when
// unknown. Slices in the result alias r.Payload. The error is a reason
// without file and offset; Reader wraps it in a *CorruptError.
func Decode(r Raw, extRecSize int) (Record, error) {
	t, reason := checkRaw(r)
	if reason != "" {
		return nil, errors.New(reason)
	}
	h := Hdr{Flags: r.Flags()}
	p := r.Payload
	switch t {
	case TypeExpunge:
		return &Expunge{Hdr: h, Ranges: ranges(p, 8)}, nil
	case TypeKeywordReset:
		return &KeywordReset{Hdr: h, Ranges: ranges(p, 8)}, nil
	case TypeExpungeGUID:
		out := &ExpungeGUID{Hdr: h, Entries: make([]GUIDExpunge, len(p)/20)}
		for i := range out.Entries {
			e := &out.Entries[i]
			e.UID = le.Uint32(p[i*20:])
			copy(e.GUID[:], p[i*20+4:i*20+20])
		}
		return out, nil
	case TypeAppend:
		out := &Append{Hdr: h, Recs: make([]AppendRec, len(p)/8)}
		for i := range out.Recs {
			out.Recs[i] = AppendRec{UID: le.Uint32(p[i*8:]), Flags: p[i*8+4]}
		}
		return out, nil
	case TypeFlagUpdate:
		out := &FlagUpdate{Hdr: h, Changes: make([]FlagChange, len(p)/12)}
		for i := range out.Changes {
			q := p[i*12:]
			out.Changes[i] = FlagChange{UID1: le.Uint32(q), UID2: le.Uint32(q[4:]),
				Add: q[8], Remove: q[9], ModSeqInc: q[10]}
		}
		return out, nil
	case TypeHeaderUpdate:
		ch, _ := parseHdrChanges(p, false)
		return &HeaderUpdate{Hdr: h, Changes: ch}, nil
	case TypeExtHdrUpdate, TypeExtHdrUpdate32:
		ch, _ := parseHdrChanges(p, t == TypeExtHdrUpdate32)
		return &ExtHdrUpdate{Hdr: h, Wide: t == TypeExtHdrUpdate32, Changes: ch}, nil
	case TypeExtIntro:
		return decodeIntro(h, p), nil
	case TypeExtReset:
		out := &ExtReset{Hdr: h, NewResetID: le.Uint32(p)}
		if len(p) > 4 {
			out.PreserveData = p[4] != 0
		}
		return out, nil
	case TypeExtRecUpdate:
		out := &ExtRecUpdate{Hdr: h}
		if extRecSize < 0 {
			out.Raw = p
			return out, nil
		}
		stride := pad4(4 + extRecSize)
		if len(p)%stride != 0 {
			return nil, errors.New("ext rec update: invalid record size")
		}
		out.Recs = make([]ExtRec, len(p)/stride)
		for i := range out.Recs {
			q := p[i*stride:]
			out.Recs[i] = ExtRec{UID: le.Uint32(q), Data: q[4 : 4+extRecSize]}
		}
		return out, nil
	case TypeExtAtomicInc:
		out := &ExtAtomicInc{Hdr: h, Incs: make([]AtomicInc, len(p)/8)}
		for i := range out.Incs {
			out.Incs[i] = AtomicInc{UID: le.Uint32(p[i*8:]), Diff: int32(le.Uint32(p[i*8+4:]))}
		}
		return out, nil
	case TypeKeywordUpdate:
		nameSize := int(le.Uint16(p[2:]))
		return &KeywordUpdate{Hdr: h, Remove: p[0] == 1, Name: string(p[4 : 4+nameSize]),
			Ranges: ranges(p[pad4(4+nameSize):], 8)}, nil
	case TypeModSeqUpdate:
		out := &ModSeqUpdate{Hdr: h, Entries: make([]ModSeqEntry, len(p)/12)}
		for i := range out.Entries {
			q := p[i*12:]
			out.Entries[i] = ModSeqEntry{UID: le.Uint32(q),
				ModSeq: uint64(le.Uint32(q[4:])) | uint64(le.Uint32(q[8:]))<<32}
		}
		return out, nil
	case TypeIndexDeleted:
		return &IndexDeleted{Hdr: h}, nil
	case TypeIndexUndeleted:
		return &IndexUndeleted{Hdr: h}, nil
	case TypeBoundary:
		return &Boundary{Hdr: h, Size: le.Uint32(p)}, nil
	case TypeAttributeUpdate:
		ch, _ := parseAttrs(p)
		return &AttributeUpdate{Hdr: h, Changes: ch}, nil
	}
	return &Unknown{Hdr: h, TypeWord: r.Word & TypeMask, Payload: p}, nil
}

// introSize is sizeof(struct mail_transaction_ext_intro): u32 ext_id,
// u32 reset_id, u32 hdr_size, u16 record_size, u16 record_align, u16 flags,
// u16 name_size; the name follows.
const introSize = 20

func decodeIntro(h Hdr, p []byte) *ExtIntro {
	nameSize := int(le.Uint16(p[18:]))
	return &ExtIntro{Hdr: h, ExtID: le.Uint32(p), ResetID: le.Uint32(p[4:]),
		HdrSize: le.Uint32(p[8:]), RecordSize: le.Uint16(p[12:]),
		RecordAlign: le.Uint16(p[14:]), IntroFlags: le.Uint16(p[16:]),
		Name: string(p[introSize : introSize+nameSize])}
}

func ranges(p []byte, size int) []UIDRange {
	out := make([]UIDRange, len(p)/size)
	for i := range out {
		out[i] = UIDRange{le.Uint32(p[i*size:]), le.Uint32(p[i*size+4:])}
	}
	return out
}
