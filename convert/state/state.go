// Package state encodes and decodes dsync's sync state string, the value
// `doveadm sync -s STATE` reads and prints, byte-compatible with Dovecot
// 2.3 so states pass freely between boxsync and doveadm.
//
// # Overview
//
// A State maps mailbox GUIDs to the last common position of a stateful sync
// (last_uidvalidity, last_common_uid, last_common_modseq,
// last_common_pvt_modseq, last_messages_count).
//
// # On-disk format
//
// dsync.md §3.4: base64(header ‖ record* ‖ crc). Header 01 00 00 00;
// records of 44 bytes (GUID, u32 uidvalidity, u32 uid, u64 modseq, u64 pvt
// modseq, u32 messages, all little-endian); CRC-32 (IEEE) of everything
// before it, u32 LE.
//
// # Dovecot compatibility
//
// Decoding follows dsync-brain.c's import: a 4-byte zero word and a valid
// v0 state (no header, 40-byte records) both mean "empty"; anything else that
// does not parse is an *InvalidError, upon which callers fall back to a
// full sync as Dovecot does. Records are written in GUID order (Dovecot
// writes hash order, which no reader relies on).
package state

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"

	"github.com/boxsync/boxsync/formats"
)

// Mailbox is one mailbox's saved position.
type Mailbox struct {
	UIDValidity      uint32
	LastCommonUID    formats.UID
	LastCommonModSeq formats.ModSeq
	LastCommonPvtMod formats.ModSeq
	MessagesCount    uint32
}

// State is a whole sync state, by mailbox GUID.
type State map[formats.GUID]Mailbox

const (
	headerSize   = 4
	recordSize   = 44
	recordSizeV0 = 40
	crcSize      = 4
)

// Empty is the encoding of the empty state as Dovecot prints it.
const Empty = "AQAAAHm4+Jk="

// InvalidError says a state string could not be used; dsync logs "Saved
// sync state is invalid, falling back to full sync: <Reason>".
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string {
	return "saved sync state is invalid, falling back to full sync: " + e.Reason
}

// Encode renders s as Dovecot's v1 state string.
func Encode(s State) string {
	guids := make([]formats.GUID, 0, len(s))
	for g := range s {
		guids = append(guids, g)
	}
	sort.Slice(guids, func(i, j int) bool { return bytes.Compare(guids[i][:], guids[j][:]) < 0 })
	buf := make([]byte, 0, headerSize+len(s)*recordSize+crcSize)
	buf = append(buf, 1, 0, 0, 0)
	for _, g := range guids {
		m := s[g]
		buf = append(buf, g[:]...)
		buf = binary.LittleEndian.AppendUint32(buf, m.UIDValidity)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(m.LastCommonUID))
		buf = binary.LittleEndian.AppendUint64(buf, uint64(m.LastCommonModSeq))
		buf = binary.LittleEndian.AppendUint64(buf, uint64(m.LastCommonPvtMod))
		buf = binary.LittleEndian.AppendUint32(buf, m.MessagesCount)
	}
	buf = binary.LittleEndian.AppendUint32(buf, crc32.ChecksumIEEE(buf))
	return base64.StdEncoding.EncodeToString(buf)
}

// Decode parses a state string. The empty string is the empty state (a
// first stateful run, `-s ”`). Errors are *InvalidError.
func Decode(str string) (State, error) {
	if str == "" {
		return State{}, nil
	}
	data, err := base64.StdEncoding.DecodeString(str)
	if err != nil {
		return nil, &InvalidError{"Invalid base64 data"}
	}
	if len(data) == 4 && binary.LittleEndian.Uint32(data) == 0 {
		return State{}, nil // the v0 empty state
	}
	if len(data) < headerSize+crcSize {
		return nil, &InvalidError{"Input too small"}
	}
	s, v1err := decodeV1(data)
	if v1err == nil {
		return s, nil
	}
	// dsync retries as v0 and treats a valid v0 state as empty: v0
	// records lack what a stateful sync now needs.
	if validV0(data) {
		return State{}, nil
	}
	return nil, v1err
}

func decodeV1(data []byte) (State, error) {
	if data[0] != 1 {
		return nil, &InvalidError{fmt.Sprintf("Unsupported version %d", data[0])}
	}
	body := data[:len(data)-crcSize]
	if (len(body)-headerSize)%recordSize != 0 {
		return nil, &InvalidError{"Invalid input size"}
	}
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(data[len(body):]) {
		return nil, &InvalidError{"CRC32 mismatch"}
	}
	s := State{}
	for p := body[headerSize:]; len(p) > 0; p = p[recordSize:] {
		var g formats.GUID
		copy(g[:], p[:16])
		if _, dup := s[g]; dup {
			return nil, &InvalidError{"Duplicate mailbox GUID " + g.String()}
		}
		s[g] = Mailbox{
			UIDValidity:      binary.LittleEndian.Uint32(p[16:]),
			LastCommonUID:    formats.UID(binary.LittleEndian.Uint32(p[20:])),
			LastCommonModSeq: formats.ModSeq(binary.LittleEndian.Uint64(p[24:])),
			LastCommonPvtMod: formats.ModSeq(binary.LittleEndian.Uint64(p[32:])),
			MessagesCount:    binary.LittleEndian.Uint32(p[40:]),
		}
	}
	return s, nil
}

func validV0(data []byte) bool {
	body := data[:len(data)-crcSize]
	return len(body)%recordSizeV0 == 0 &&
		crc32.ChecksumIEEE(body) == binary.LittleEndian.Uint32(data[len(body):])
}

// IsInvalid tells whether err is a state that Dovecot would replace by a
// full sync.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}
