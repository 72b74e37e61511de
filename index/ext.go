package index

import (
	"fmt"
	"slices"
)

// Names of the extensions Dovecot 2.3 uses in mailbox and map indexes
// (spec §2.8).
const (
	ExtKeywords    = "keywords"
	ExtModSeq      = "modseq"
	ExtCache       = "cache"
	ExtDboxHdr     = "dbox-hdr"
	ExtMdboxHdr    = "mdbox-hdr"
	ExtMdbox       = "mdbox"
	ExtGUID        = "guid"
	ExtMap         = "map"
	ExtRef         = "ref"
	ExtMaildir     = "maildir"
	ExtMbox        = "mbox"
	ExtHeaderMD5   = "header-md5"
	ExtPop3UIDL    = "hdr-pop3-uidl"
	ExtHdrVSize    = "hdr-vsize"
	ExtVSize       = "vsize"
	ExtBoxName     = "box-name"
	ExtRenameStamp = "last-rename-stamp"
)

// maxExtHdrSize is MAIL_INDEX_EXT_HEADER_MAX_SIZE.
const maxExtHdrSize = 1024*1024*16 - 1

// maxExtNameLen is MAIL_INDEX_EXT_NAME_MAX_LENGTH (names are shorter).
const maxExtNameLen = 64

// extHeaderSize is sizeof(struct mail_index_ext_header): u32 hdr_size,
// u32 reset_id, u16 record_offset, u16 record_size, u16 record_align,
// u16 name_size. Spec §2.2.
const extHeaderSize = 16

func pad8(n int) int { return (n + 7) &^ 7 }
func pad4(n int) int { return (n + 3) &^ 3 }

// validExtName is mail_index_ext_name_is_valid: ASCII letters, digits, '-',
// '_' and space, shorter than 64 bytes.
func validExtName(name string) bool {
	if len(name) >= maxExtNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == ' ') {
			return false
		}
	}
	return true
}

// ext is one extension of an index map (struct mail_index_ext with its
// header data).
type ext struct {
	name      string
	resetID   uint32
	hdrSize   uint32
	hdr       []byte // header data padded to 8 bytes; hdr[:hdrSize] is the header
	recOffset uint16
	recSize   uint16
	recAlign  uint16
}

func (e *ext) clone() *ext {
	c := *e
	c.hdr = slices.Clone(e.hdr)
	return &c
}

// Ext describes one extension of a View.
type Ext struct {
	Name         string
	ResetID      uint32
	HdrSize      uint32
	RecordOffset uint16
	RecordSize   uint16
	RecordAlign  uint16
	Hdr          []byte // the header data (HdrSize bytes); do not modify
}

// ExtDef introduces an extension (Options.Extensions, Tx.ExtIntro): its
// sizes and, optionally, initial header data (at most HdrSize bytes).
type ExtDef struct {
	Name        string
	HdrSize     uint32
	RecordSize  uint16
	RecordAlign uint16
	Hdr         []byte
}

// checkExtDef validates sizes as mail_index_map_ext_hdr_check does.
func checkExtDef(name string, hdrSize uint32, recSize, recAlign uint16) string {
	if recSize == 0 && hdrSize == 0 {
		return "Invalid field values"
	}
	if !validExtName(name) {
		return "Invalid name"
	}
	if recSize != 0 {
		if recAlign == 0 {
			return "Record field alignment is zero"
		}
		if recAlign > 8 {
			return "Record alignment is too large"
		}
		if recSize >= 32768 {
			return "Record size is too large"
		}
	}
	if hdrSize > maxExtHdrSize {
		return fmt.Sprintf("Headersize too large (%d)", hdrSize)
	}
	return ""
}

// DboxHdr is the sdbox mailbox header extension "dbox-hdr" (24 bytes,
// struct sdbox_index_header).
type DboxHdr struct {
	RebuildCount uint32
	MailboxGUID  [16]byte
	Flags        uint8 // 0x01 POP3 UIDLs in metadata, 0x02 POP3 order
}

// MdboxHdr is the mdbox mailbox header extension "mdbox-hdr" (24 bytes,
// struct mdbox_index_header).
type MdboxHdr struct {
	MapUIDValidity uint32 // must equal the map index's uid_validity
	MailboxGUID    [16]byte
	Flags          uint8
}

// MdboxRec is the mdbox mailbox record extension "mdbox" (8 bytes).
type MdboxRec struct {
	MapUID   uint32
	SaveDate uint32 // UNIX time
}

// MapHdr is the mdbox map index header extension "map" (8 bytes).
type MapHdr struct {
	HighestFileID uint32
	RebuildCount  uint32
}

// MapRec is the mdbox map index record extension "map" (12 bytes).
type MapRec struct {
	FileID, Offset, Size uint32
}

// ModSeqHdr is the "modseq" header (struct mail_index_modseq_header).
type ModSeqHdr struct {
	HighestModSeq uint64
	LogSeq        uint32 // position up to which record modseqs are complete
	LogOffset     uint32
}

// MaildirHdr is the "maildir" header (struct maildir_index_header).
type MaildirHdr struct {
	NewCheckTime, NewMtime, NewMtimeNsecs uint32
	CurCheckTime, CurMtime, CurMtimeNsecs uint32
	UIDListMtime, UIDListMtimeNsecs       uint32
	UIDListSize                           uint32
}

// Encode returns the 36-byte header.
func (h MaildirHdr) Encode() []byte {
	var b []byte
	for _, v := range []uint32{h.NewCheckTime, h.NewMtime, h.NewMtimeNsecs, h.CurCheckTime, h.CurMtime, h.CurMtimeNsecs,
		h.UIDListMtime, h.UIDListMtimeNsecs, h.UIDListSize} {
		b = le.AppendUint32(b, v)
	}
	return b
}

// Ext returns the definition for Create/Tx.ExtIntro (Dovecot's maildir
// storage registers "maildir" with a 36-byte header and no records).
func (h MaildirHdr) Ext() ExtDef { return ExtDef{Name: ExtMaildir, HdrSize: 36, Hdr: h.Encode()} }

// Encode returns the 24-byte header.
func (h DboxHdr) Encode() []byte {
	b := le.AppendUint32(nil, h.RebuildCount)
	b = append(b, h.MailboxGUID[:]...)
	return append(b, h.Flags, 0, 0, 0)
}

// Ext returns the definition for Create/Tx.ExtIntro.
func (h DboxHdr) Ext() ExtDef { return ExtDef{Name: ExtDboxHdr, HdrSize: 24, Hdr: h.Encode()} }

// Encode returns the 24-byte header.
func (h MdboxHdr) Encode() []byte {
	b := le.AppendUint32(nil, h.MapUIDValidity)
	b = append(b, h.MailboxGUID[:]...)
	return append(b, h.Flags, 0, 0, 0)
}

// Ext returns the definition for Create/Tx.ExtIntro.
func (h MdboxHdr) Ext() ExtDef { return ExtDef{Name: ExtMdboxHdr, HdrSize: 24, Hdr: h.Encode()} }

// Encode returns the 8-byte record.
func (r MdboxRec) Encode() []byte { return le.AppendUint32(le.AppendUint32(nil, r.MapUID), r.SaveDate) }

// Encode returns the 8-byte header.
func (h MapHdr) Encode() []byte {
	return le.AppendUint32(le.AppendUint32(nil, h.HighestFileID), h.RebuildCount)
}

// Encode returns the 12-byte record.
func (r MapRec) Encode() []byte {
	return le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, r.FileID), r.Offset), r.Size)
}

// Encode returns the 16-byte header.
func (h ModSeqHdr) Encode() []byte {
	return le.AppendUint32(le.AppendUint32(le.AppendUint64(nil, h.HighestModSeq), h.LogSeq), h.LogOffset)
}

// Definitions of the record extensions (sizes as Dovecot registers them).
var (
	ExtDefModSeq = ExtDef{Name: ExtModSeq, HdrSize: 16, RecordSize: 8, RecordAlign: 8}
	ExtDefMdbox  = ExtDef{Name: ExtMdbox, RecordSize: 8, RecordAlign: 4}
	ExtDefGUID   = ExtDef{Name: ExtGUID, RecordSize: 16, RecordAlign: 1}
	ExtDefMap    = ExtDef{Name: ExtMap, HdrSize: 8, RecordSize: 12, RecordAlign: 4}
	ExtDefRef    = ExtDef{Name: ExtRef, RecordSize: 2, RecordAlign: 2}
)

func decodeDboxHdr(b []byte) (DboxHdr, bool) {
	var h DboxHdr
	if len(b) < 21 {
		return h, false
	}
	h.RebuildCount = le.Uint32(b)
	copy(h.MailboxGUID[:], b[4:20])
	h.Flags = b[20]
	return h, true
}

func decodeMdboxHdr(b []byte) (MdboxHdr, bool) {
	var h MdboxHdr
	if len(b) < 21 {
		return h, false
	}
	h.MapUIDValidity = le.Uint32(b)
	copy(h.MailboxGUID[:], b[4:20])
	h.Flags = b[20]
	return h, true
}

func decodeModSeqHdr(b []byte) (ModSeqHdr, bool) {
	if len(b) < 16 {
		return ModSeqHdr{}, false
	}
	return ModSeqHdr{HighestModSeq: le.Uint64(b), LogSeq: le.Uint32(b[8:]), LogOffset: le.Uint32(b[12:])}, true
}

func decodeMapHdr(b []byte) (MapHdr, bool) {
	if len(b) < 8 {
		return MapHdr{}, false
	}
	return MapHdr{HighestFileID: le.Uint32(b), RebuildCount: le.Uint32(b[4:])}, true
}

func decodeMaildirHdr(b []byte) (MaildirHdr, bool) {
	if len(b) < 36 {
		return MaildirHdr{}, false
	}
	u := func(i int) uint32 { return le.Uint32(b[4*i:]) }
	return MaildirHdr{u(0), u(1), u(2), u(3), u(4), u(5), u(6), u(7), u(8)}, true
}

// layoutRecords computes record offsets the way sync_ext_reorder does
// (spec §2.3): start at offset 5, repeatedly place the not yet placed
// extension with the largest alignment that fits the current offset
// (ties in index order), pad to the smallest pending alignment when none
// fits, and round the record size up to the largest alignment (at least
// 4). It sets recOffset of every extension and returns the record size.
func layoutRecords(exts []*ext) int {
	sorted := slices.Clone(exts)
	slices.SortStableFunc(sorted, func(a, b *ext) int { return int(b.recAlign) - int(a.recAlign) })
	placed := make(map[*ext]bool, len(exts))
	for _, e := range exts {
		e.recOffset = 0
	}
	offset, maxAlign := 5, 4 // MAIL_INDEX_RECORD_MIN_SIZE, sizeof(uint32_t)
	for {
		minAlign := -1
		var pick *ext
		for _, e := range sorted {
			maxAlign = max(maxAlign, int(e.recAlign))
			if placed[e] || e.recSize == 0 {
				continue
			}
			if offset%int(e.recAlign) == 0 {
				pick = e
				break
			}
			if minAlign < 0 || int(e.recAlign) < minAlign {
				minAlign = int(e.recAlign)
			}
		}
		if pick == nil {
			if minAlign < 0 {
				break
			}
			offset += minAlign - offset%minAlign
			continue
		}
		pick.recOffset = uint16(offset)
		placed[pick] = true
		offset += int(pick.recSize)
	}
	if offset%maxAlign != 0 {
		offset += maxAlign - offset%maxAlign
	}
	return offset
}
