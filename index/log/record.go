package log

import "fmt"

// Type is a transaction record type: the type word with the EXTERNAL/SYNC
// flags and the expunge protection bits removed.
// dovecot 2.3.19.1 mail-transaction-log.h: enum mail_transaction_type;
// spec dovecot-storage.md §2.6.3.
type Type uint32

const (
	TypeExpunge         Type = 0x00000001 // written as 0xCD91 (ExpungeProt)
	TypeAppend          Type = 0x00000002
	TypeFlagUpdate      Type = 0x00000004
	TypeHeaderUpdate    Type = 0x00000020
	TypeExtIntro        Type = 0x00000040
	TypeExtReset        Type = 0x00000080
	TypeExtHdrUpdate    Type = 0x00000100
	TypeExtRecUpdate    Type = 0x00000200
	TypeKeywordUpdate   Type = 0x00000400
	TypeKeywordReset    Type = 0x00000800
	TypeExtAtomicInc    Type = 0x00001000
	TypeExpungeGUID     Type = 0x00002000 // written as 0xED90 (ExpungeProt)
	TypeModSeqUpdate    Type = 0x00008000
	TypeExtHdrUpdate32  Type = 0x00010000
	TypeIndexDeleted    Type = 0x00020000
	TypeIndexUndeleted  Type = 0x00040000
	TypeBoundary        Type = 0x00080000
	TypeAttributeUpdate Type = 0x00100000
)

const (
	// TypeMask selects the type bits of a type word
	// (MAIL_TRANSACTION_TYPE_MASK).
	TypeMask uint32 = 0x0fffffff
	// ExpungeProt is ORed into both expunge types; without it Dovecot
	// treats the log as corrupted (MAIL_TRANSACTION_EXPUNGE_PROT).
	ExpungeProt uint32 = 0x0000cd90
)

var typeNames = map[Type]string{
	TypeExpunge: "expunge", TypeAppend: "append", TypeFlagUpdate: "flag-update",
	TypeHeaderUpdate: "header-update", TypeExtIntro: "ext-intro", TypeExtReset: "ext-reset",
	TypeExtHdrUpdate: "ext-hdr", TypeExtRecUpdate: "ext-rec", TypeKeywordUpdate: "keyword-update",
	TypeKeywordReset: "keyword-reset", TypeExtAtomicInc: "ext-atomic-inc",
	TypeExpungeGUID: "expunge-guid", TypeModSeqUpdate: "modseq-update",
	TypeExtHdrUpdate32: "ext-hdr32", TypeIndexDeleted: "index-deleted",
	TypeIndexUndeleted: "index-undeleted", TypeBoundary: "boundary",
	TypeAttributeUpdate: "attribute-update",
}

// String returns doveadm dump's name for the type ("flag-update").
func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("unknown: %x", uint32(t))
}

// TypeFlags are the flag bits of a type word.
type TypeFlags uint32

const (
	// External marks a change that already happened in the mailbox
	// (MAIL_TRANSACTION_EXTERNAL). Only external expunges remove
	// messages; external records at the log's tail advance it (§2.6.6).
	External TypeFlags = 0x10000000
	// Sync marks a change made by dsync (or boxsync) to bring the mailbox
	// in line with another one, not by a user (MAIL_TRANSACTION_SYNC).
	// dsync skips such records when it exports changes.
	Sync TypeFlags = 0x20000000
)

func (f TypeFlags) String() string {
	s := ""
	if f&External != 0 {
		s += " (ext)"
	}
	if f&Sync != 0 {
		s += " (sync)"
	}
	return s
}

// Record is one decoded transaction log record. The concrete types are the
// pointer types in this package; the interface is sealed.
type Record interface {
	Type() Type
	hdr() *Hdr
}

// Hdr is embedded in every record: the flag bits of its type word.
type Hdr struct {
	Flags TypeFlags
}

func (h *Hdr) hdr() *Hdr { return h }

// FlagsOf returns r's EXTERNAL/SYNC flags.
func FlagsOf(r Record) TypeFlags { return r.hdr().Flags }

// SetFlags replaces r's EXTERNAL/SYNC flags.
func SetFlags(r Record, f TypeFlags) { r.hdr().Flags = f & (External | Sync) }

// UIDRange is an inclusive UID range, uid1 >= 1, UID1 <= UID2.
type UIDRange struct{ UID1, UID2 uint32 }

// Expunge removes the messages in Ranges (struct mail_transaction_expunge).
// Without External it is only a request to the backend.
type Expunge struct {
	Hdr
	Ranges []UIDRange
}

// GUIDExpunge is one entry of an ExpungeGUID record.
type GUIDExpunge struct {
	UID  uint32
	GUID [16]byte // 128-bit message GUID, zero when unknown
}

// ExpungeGUID removes messages, naming their GUIDs
// (struct mail_transaction_expunge_guid).
type ExpungeGUID struct {
	Hdr
	Entries []GUIDExpunge
}

// AppendRec is one appended message (struct mail_index_record as written
// to the log: u32 uid, u8 flags, 3 bytes padding).
type AppendRec struct {
	UID   uint32
	Flags uint8
}

// Append adds messages with ascending UIDs >= next_uid.
type Append struct {
	Hdr
	Recs []AppendRec
}

// FlagChange is one entry of a FlagUpdate record
// (struct mail_transaction_flag_update): new = (old &^ Remove) | Add.
type FlagChange struct {
	UID1, UID2 uint32
	Add        uint8
	Remove     uint8
	// ModSeqInc forces a modseq increase even when no visible flag
	// changes.
	ModSeqInc uint8
}

// Internal reports whether the change touches only the backend bits
// 0x40/0x80 without forcing a modseq (MAIL_TRANSACTION_FLAG_UPDATE_IS_INTERNAL).
func (c FlagChange) Internal() bool {
	return (c.Add|c.Remove)&0x1f == 0 && c.ModSeqInc == 0
}

// FlagUpdate changes message flags.
type FlagUpdate struct {
	Hdr
	Changes []FlagChange
}

// HdrChange writes Data at Offset of a header.
type HdrChange struct {
	Offset uint32
	Data   []byte
}

// HeaderUpdate writes into the base header of dovecot.index
// (struct mail_transaction_header_update: u16 offset, u16 size).
type HeaderUpdate struct {
	Hdr
	Changes []HdrChange
}

// IntroNoShrink is the EXT_INTRO flag "don't shrink sizes".
const IntroNoShrink uint16 = 0x01

// ExtIDNamed is the ext_id of an introduction that names its extension.
const ExtIDNamed uint32 = 0xffffffff

// ExtIntro selects (and creates or resizes) the extension that following
// ExtReset/ExtHdrUpdate/ExtRecUpdate/ExtAtomicInc records work on
// (struct mail_transaction_ext_intro). ExtID is ExtIDNamed with a Name,
// or the extension's position in the index with an empty Name.
type ExtIntro struct {
	Hdr
	ExtID       uint32
	ResetID     uint32
	HdrSize     uint32
	RecordSize  uint16
	RecordAlign uint16
	IntroFlags  uint16
	Name        string
}

// ExtReset changes the last introduced extension's reset_id and, unless
// PreserveData, zeroes its header and records.
type ExtReset struct {
	Hdr
	NewResetID   uint32
	PreserveData bool
}

// ExtHdrUpdate writes into the last introduced extension's header. Wide is
// the EXT_HDR_UPDATE32 form (u32 offset and size).
type ExtHdrUpdate struct {
	Hdr
	Wide    bool
	Changes []HdrChange
}

// ExtRec is one entry of an ExtRecUpdate.
type ExtRec struct {
	UID  uint32
	Data []byte
}

// ExtRecUpdate sets the last introduced extension's record for UIDs. The
// entry size comes from that introduction's record_size; a reader that has
// not seen it keeps the payload in Raw and leaves Recs nil.
type ExtRecUpdate struct {
	Hdr
	Recs []ExtRec
	Raw  []byte
}

// AtomicInc is one entry of an ExtAtomicInc.
type AtomicInc struct {
	UID  uint32
	Diff int32
}

// ExtAtomicInc adds Diff to the last introduced extension's 1/2/4/8-byte
// record (mdbox map refcounts).
type ExtAtomicInc struct {
	Hdr
	Incs []AtomicInc
}

// KeywordUpdate adds or removes one keyword for Ranges. The keyword is
// added to the index's keyword list if new.
type KeywordUpdate struct {
	Hdr
	Remove bool // modify_type: 0 add, 1 remove
	Name   string
	Ranges []UIDRange
}

// KeywordReset clears all keywords of Ranges.
type KeywordReset struct {
	Hdr
	Ranges []UIDRange
}

// ModSeqEntry is one entry of a ModSeqUpdate: raise UID's modseq to at
// least ModSeq; UID 0 raises only the highest modseq.
type ModSeqEntry struct {
	UID    uint32
	ModSeq uint64
}

// ModSeqUpdate raises modseqs (struct mail_transaction_modseq_update).
type ModSeqUpdate struct {
	Hdr
	Entries []ModSeqEntry
}

// IndexDeleted marks the mailbox as being deleted.
type IndexDeleted struct{ Hdr }

// IndexUndeleted cancels IndexDeleted.
type IndexUndeleted struct{ Hdr }

// Boundary starts a transaction of Size bytes (including itself). A reader
// ignores a transaction that extends past the end of the file.
type Boundary struct {
	Hdr
	Size uint32
}

// AttrChange is one METADATA change of an AttributeUpdate.
type AttrChange struct {
	Set       bool // '+' set, '-' unset
	Private   bool // 'p' private, 's' shared
	Key       string
	Timestamp uint32
	ValueLen  uint32 // only for Set
}

// AttributeUpdate records METADATA changes. Replaying it changes nothing in
// the index; it only bumps the modseq.
type AttributeUpdate struct {
	Hdr
	Changes []AttrChange
}

// Unknown is a record of a type this package does not know. Dovecot treats
// it as corruption when it applies the log; readers can still show it.
type Unknown struct {
	Hdr
	TypeWord uint32 // type bits (TypeMask), protection bits included
	Payload  []byte
}

func (*Expunge) Type() Type         { return TypeExpunge }
func (*ExpungeGUID) Type() Type     { return TypeExpungeGUID }
func (*Append) Type() Type          { return TypeAppend }
func (*FlagUpdate) Type() Type      { return TypeFlagUpdate }
func (*HeaderUpdate) Type() Type    { return TypeHeaderUpdate }
func (*ExtIntro) Type() Type        { return TypeExtIntro }
func (*ExtReset) Type() Type        { return TypeExtReset }
func (*ExtRecUpdate) Type() Type    { return TypeExtRecUpdate }
func (*ExtAtomicInc) Type() Type    { return TypeExtAtomicInc }
func (*KeywordUpdate) Type() Type   { return TypeKeywordUpdate }
func (*KeywordReset) Type() Type    { return TypeKeywordReset }
func (*ModSeqUpdate) Type() Type    { return TypeModSeqUpdate }
func (*IndexDeleted) Type() Type    { return TypeIndexDeleted }
func (*IndexUndeleted) Type() Type  { return TypeIndexUndeleted }
func (*Boundary) Type() Type        { return TypeBoundary }
func (*AttributeUpdate) Type() Type { return TypeAttributeUpdate }
func (u *Unknown) Type() Type       { return Type(u.TypeWord) }

// Type is TypeExtHdrUpdate32 for the wide form.
func (u *ExtHdrUpdate) Type() Type {
	if u.Wide {
		return TypeExtHdrUpdate32
	}
	return TypeExtHdrUpdate
}

// Pos is a position in the transaction log: a file sequence number and a
// byte offset in that file, as in dovecot.index's log_file_seq and
// log_file_head_offset.
type Pos struct {
	FileSeq uint32
	Offset  uint32
}

func (p Pos) String() string { return fmt.Sprintf("%d/%d", p.FileSeq, p.Offset) }

// Before reports whether p is strictly before q (LOG_IS_BEFORE).
func (p Pos) Before(q Pos) bool {
	return p.FileSeq < q.FileSeq || (p.FileSeq == q.FileSeq && p.Offset < q.Offset)
}
