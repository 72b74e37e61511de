package index

import (
	"encoding/binary"
	"fmt"
)

var le = binary.LittleEndian

// Index file format version this package reads and writes (7.3).
const (
	MajorVersion = 7
	MinorVersion = 3
)

// BaseHeaderSize is sizeof(struct mail_index_header), the smallest
// base_header_size Dovecot accepts (MAIL_INDEX_HEADER_MIN_SIZE).
const BaseHeaderSize = 120

// Message flags as stored in a record's flags byte (dovecot 2.3.19.1
// mail-types.h enum mail_flags, mail-index.h enum mail_index_mail_flags).
const (
	FlagAnswered uint8 = 0x01
	FlagFlagged  uint8 = 0x02
	FlagDeleted  uint8 = 0x04
	FlagSeen     uint8 = 0x08
	FlagDraft    uint8 = 0x10
	// FlagBackend is private to the storage backend (dbox: the message
	// is in ALT storage). Replacing flags keeps it.
	FlagBackend uint8 = 0x40
	// FlagDirty means the flags were not yet written to the backend
	// (Maildir file names).
	FlagDirty uint8 = 0x80

	// SystemFlags are the IMAP flags (MAIL_INDEX_FLAGS_MASK).
	SystemFlags = FlagAnswered | FlagFlagged | FlagDeleted | FlagSeen | FlagDraft
)

// FlagNames renders a record flags byte as doveadm dump does, with IMAP
// names: "\Seen \Flagged", plus "backend" and "dirty".
func FlagNames(f uint8) string {
	names := []struct {
		f uint8
		n string
	}{
		{FlagAnswered, `\Answered`}, {FlagFlagged, `\Flagged`}, {FlagDeleted, `\Deleted`},
		{FlagSeen, `\Seen`}, {FlagDraft, `\Draft`}, {0x20, "unused-0x20"},
		{FlagBackend, "backend"}, {FlagDirty, "dirty"},
	}
	s := ""
	for _, n := range names {
		if f&n.f != 0 {
			if s != "" {
				s += " "
			}
			s += n.n
		}
	}
	return s
}

// Header flags (enum mail_index_header_flag).
const (
	HdrFlagCorrupted uint32 = 0x1
	HdrFlagHaveDirty uint32 = 0x2
	HdrFlagFsckd     uint32 = 0x4
)

// Header is the base header of dovecot.index (struct mail_index_header,
// 120 bytes, spec §2.1). HeaderSize and RecordSize describe the file
// layout; the others are state.
type Header struct {
	Major, Minor            uint8
	BaseHeaderSize          uint16
	HeaderSize              uint32
	RecordSize              uint32
	CompatFlags             uint8
	IndexID                 uint32
	Flags                   uint32
	UIDValidity             uint32
	NextUID                 uint32
	MessagesCount           uint32
	UnusedOldRecentCount    uint32
	SeenMessagesCount       uint32
	DeletedMessagesCount    uint32
	FirstRecentUID          uint32
	FirstUnseenUIDLowwater  uint32
	FirstDeletedUIDLowwater uint32
	LogFileSeq              uint32
	LogFileTailOffset       uint32
	LogFileHeadOffset       uint32
	UnusedOldSyncSizePart1  uint32
	Log2RotateTime          uint32
	LastTempFileScan        uint32
	DayStamp                uint32
	DayFirstUID             [8]uint32
}

// Offsets of the base header fields (offsetof(struct mail_index_header, …)).
const (
	offMajor                   = 0
	offMinor                   = 1
	offBaseHeaderSize          = 2
	offHeaderSize              = 4
	offRecordSize              = 8
	offCompatFlags             = 12
	offIndexID                 = 16
	offFlags                   = 20
	offUIDValidity             = 24
	offNextUID                 = 28
	offMessagesCount           = 32
	offUnusedOldRecent         = 36
	offSeenMessagesCount       = 40
	offDeletedMessagesCount    = 44
	offFirstRecentUID          = 48
	offFirstUnseenUIDLowwater  = 52
	offFirstDeletedUIDLowwater = 56
	offLogFileSeq              = 60
	offLogFileTailOffset       = 64
	offLogFileHeadOffset       = 68
	offUnusedOldSyncSize       = 72
	offLog2RotateTime          = 76
	offLastTempFileScan        = 80
	offDayStamp                = 84
	offDayFirstUID             = 88
)

// HeaderField names a 32-bit field of the base header, for Tx.SetHeader.
type HeaderField uint16

// The base header fields a transaction may set.
const (
	FieldUIDValidity      HeaderField = offUIDValidity
	FieldNextUID          HeaderField = offNextUID
	FieldFirstRecentUID   HeaderField = offFirstRecentUID
	FieldLog2RotateTime   HeaderField = offLog2RotateTime
	FieldLastTempFileScan HeaderField = offLastTempFileScan
	FieldDayStamp         HeaderField = offDayStamp
)

// headerFields describes the base header for dumps and for decoding
// HEADER_UPDATE records, in doveadm dump's words.
var headerFields = []struct {
	off, size int
	name      string
	time      bool
}{
	{offMajor, 1, "major version", false},
	{offMinor, 1, "minor version", false},
	{offBaseHeaderSize, 2, "base header size", false},
	{offHeaderSize, 4, "header size", false},
	{offRecordSize, 4, "record size", false},
	{offCompatFlags, 1, "compat flags", false},
	{offIndexID, 4, "index id", true},
	{offFlags, 4, "flags", false},
	{offUIDValidity, 4, "uid validity", true},
	{offNextUID, 4, "next uid", false},
	{offMessagesCount, 4, "messages count", false},
	{offUnusedOldRecent, 4, "unused old recent count", false},
	{offSeenMessagesCount, 4, "seen messages count", false},
	{offDeletedMessagesCount, 4, "deleted messages count", false},
	{offFirstRecentUID, 4, "first recent uid", false},
	{offFirstUnseenUIDLowwater, 4, "first unseen uid lowwater", false},
	{offFirstDeletedUIDLowwater, 4, "first deleted uid lowwater", false},
	{offLogFileSeq, 4, "log file seq", false},
	{offLogFileTailOffset, 4, "log file tail offset", false},
	{offLogFileHeadOffset, 4, "log file head offset", false},
	{offUnusedOldSyncSize, 4, "unused old sync size", false},
	{offLog2RotateTime, 4, "log2 rotate time", true},
	{offLastTempFileScan, 4, "last temp file scan", true},
	{offDayStamp, 4, "day stamp", true},
	{offDayFirstUID + 0, 4, "day first uid[0]", false},
	{offDayFirstUID + 4, 4, "day first uid[1]", false},
	{offDayFirstUID + 8, 4, "day first uid[2]", false},
	{offDayFirstUID + 12, 4, "day first uid[3]", false},
	{offDayFirstUID + 16, 4, "day first uid[4]", false},
	{offDayFirstUID + 20, 4, "day first uid[5]", false},
	{offDayFirstUID + 24, 4, "day first uid[6]", false},
	{offDayFirstUID + 28, 4, "day first uid[7]", false},
}

func headerFieldName(off int) string {
	for _, f := range headerFields {
		if f.off == off {
			return f.name
		}
	}
	return fmt.Sprintf("offset %d", off)
}

// decodeHeader decodes the first 120 bytes of a base header.
func decodeHeader(b []byte) Header {
	u := func(off int) uint32 { return le.Uint32(b[off:]) }
	h := Header{
		Major: b[offMajor], Minor: b[offMinor], BaseHeaderSize: le.Uint16(b[offBaseHeaderSize:]),
		HeaderSize: u(offHeaderSize), RecordSize: u(offRecordSize), CompatFlags: b[offCompatFlags],
		IndexID: u(offIndexID), Flags: u(offFlags), UIDValidity: u(offUIDValidity),
		NextUID: u(offNextUID), MessagesCount: u(offMessagesCount),
		UnusedOldRecentCount: u(offUnusedOldRecent), SeenMessagesCount: u(offSeenMessagesCount),
		DeletedMessagesCount: u(offDeletedMessagesCount), FirstRecentUID: u(offFirstRecentUID),
		FirstUnseenUIDLowwater: u(offFirstUnseenUIDLowwater), FirstDeletedUIDLowwater: u(offFirstDeletedUIDLowwater),
		LogFileSeq: u(offLogFileSeq), LogFileTailOffset: u(offLogFileTailOffset),
		LogFileHeadOffset: u(offLogFileHeadOffset), UnusedOldSyncSizePart1: u(offUnusedOldSyncSize),
		Log2RotateTime: u(offLog2RotateTime), LastTempFileScan: u(offLastTempFileScan),
		DayStamp: u(offDayStamp),
	}
	for i := range h.DayFirstUID {
		h.DayFirstUID[i] = u(offDayFirstUID + 4*i)
	}
	return h
}
