package dbox

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
)

// MsgHeader is the fixed-size header before each message (spec §3.2,
// struct dbox_message_header):
//
//	off len
//	0   2   magic 01 02
//	2   1   type, 'N'
//	3   1   space
//	4   8   old v1 UID field: spaces
//	12  1   space
//	13  16  message size: 16 hex digits (Dovecot writes uppercase)
//	29  1   LF, always the header's last byte
//
// A file whose 'M' is larger than 30 has reserved bytes before the LF.
type MsgHeader struct {
	Type byte
	Size int64 // bytes of the stored message that follow the header
}

// ParseMsgHeader parses a message header of len(b) bytes (the file's 'M'),
// checking what dbox_file_read_mail_header checks: the magic, the final
// LF, and (stricter than Dovecot's hex2dec) a valid hex size.
func ParseMsgHeader(b []byte) (MsgHeader, error) {
	if len(b) < MsgHeaderSize {
		return MsgHeader{}, fmt.Errorf("message header size %d is smaller than %d", len(b), MsgHeaderSize)
	}
	if string(b[:2]) != MagicPre {
		return MsgHeader{}, errors.New("msg header has bad magic value")
	}
	if b[len(b)-1] != '\n' {
		return MsgHeader{}, errors.New("msg header doesn't end with LF")
	}
	n, ok := parseHex(string(b[13:29]))
	if !ok || n > math.MaxInt64 {
		return MsgHeader{}, fmt.Errorf("msg header has invalid size %q", b[13:29])
	}
	return MsgHeader{Type: b[2], Size: int64(n)}, nil
}

// AppendMsgHeader appends the 30-byte header Dovecot writes for a message
// of size bytes (dbox_msg_header_fill).
func AppendMsgHeader(b []byte, size int64) []byte {
	b = append(b, MagicPre...)
	b = append(b, TypeNormal, ' ')
	b = append(b, "         "...) // 8 spaces of the old UID field and one more
	b = fmt.Appendf(b, "%016X", uint64(size))
	return append(b, '\n')
}

// Metadata keys (enum dbox_metadata_key). All valid keys are uppercase
// letters.
const (
	MetaGUID         = 'G' // message GUID, preserved when copying
	MetaPOP3UIDL     = 'P' // POP3 UIDL overriding the default
	MetaPOP3Order    = 'O' // POP3 order, decimal
	MetaReceivedTime = 'R' // INTERNALDATE, UNIX time in hex
	MetaPhysicalSize = 'Z' // plain size when the stored bytes differ (compression), hex
	MetaVirtualSize  = 'V' // size with LFs counted as CRLF, hex
	MetaExtRef       = 'X' // external attachment references
	MetaOrigMailbox  = 'B' // mailbox the message was saved to (mdbox)

	// obsolete v1 keys
	MetaOldV1Expunged = 'E'
	MetaOldV1Flags    = 'F'
	MetaOldV1Keywords = 'K'
	MetaOldV1SaveTime = 'S'
)

// MaxMetadata caps a metadata block. Dovecot reads it with an unlimited
// line length; a real one is a few hundred bytes.
const MaxMetadata = 1 << 20

// Field is one metadata line, "<key><value>".
type Field struct {
	Key   byte
	Value string
}

// Metadata is a message's metadata block (spec §3.3): the magic
// "\n\x01\x03\n", lines "<key><value>\n", an empty line. Fields keeps every
// line in file order, unknown keys and duplicates included; Get returns the
// first, as dbox_file_metadata_get does.
type Metadata struct {
	Fields []Field
}

// Get returns the value of the first field with key.
func (m *Metadata) Get(key byte) (string, bool) {
	for _, f := range m.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// Set replaces the first field with key, or appends one.
func (m *Metadata) Set(key byte, value string) {
	for i := range m.Fields {
		if m.Fields[i].Key == key {
			m.Fields[i].Value = value
			return
		}
	}
	m.Fields = append(m.Fields, Field{key, value})
}

// Hex returns a hex field's value; ok is false when it is absent, err set
// when it is not hex.
func (m *Metadata) Hex(key byte) (v uint64, ok bool, err error) {
	s, ok := m.Get(key)
	if !ok {
		return 0, false, nil
	}
	v, valid := parseHex(s)
	if !valid {
		return 0, true, fmt.Errorf("metadata %c: %q is not a hex number", key, s)
	}
	return v, true, nil
}

// errShort means the block continues past the bytes given.
var errShort = errors.New("dbox: metadata block continues")

// ParseMetadata parses a metadata block at the start of b and returns it
// with the number of bytes it takes, magic and final empty line included.
// Lines are read as Dovecot reads them (dbox_file_metadata_read_at with
// i_stream_read_next_line, as C strings): one CR before the LF is dropped, a
// NUL ends the line, and a line that is then empty or starts with a space
// ends the block.
func ParseMetadata(b []byte) (Metadata, int, error) {
	md, n, err := parseMetadata(b)
	if err == errShort {
		return md, n, errors.New("missing end-of-metadata line")
	}
	return md, n, err
}

func parseMetadata(b []byte) (Metadata, int, error) {
	var md Metadata
	if len(b) < len(MagicPost) {
		if MagicPost[:len(b)] == string(b) {
			return md, 0, errShort
		}
		return md, 0, errors.New("metadata header has bad magic value")
	}
	if string(b[:len(MagicPost)]) != MagicPost {
		return md, 0, errors.New("metadata header has bad magic value")
	}
	pos := len(MagicPost)
	for {
		i := bytes.IndexByte(b[pos:], '\n')
		if i < 0 {
			return md, 0, errShort
		}
		line := b[pos : pos+i]
		pos += i + 1
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if j := bytes.IndexByte(line, 0); j >= 0 {
			line = line[:j]
		}
		if len(line) == 0 || line[0] == ' ' {
			return md, pos, nil
		}
		md.Fields = append(md.Fields, Field{Key: line[0], Value: string(line[1:])})
	}
}

// AppendMetadata appends the block for md: magic, one line per field, the
// empty line. It fails for a field that would not read back the same: a
// key that is a space, LF or NUL, a value with an LF or NUL.
func AppendMetadata(b []byte, md Metadata) ([]byte, error) {
	b = append(b, MagicPost...)
	for _, f := range md.Fields {
		if f.Key == ' ' || f.Key == '\n' || f.Key == 0 || strings.ContainsAny(f.Value, "\n\x00") {
			return b, fmt.Errorf("dbox: metadata line %q cannot be written", string(f.Key)+f.Value)
		}
		b = append(b, f.Key)
		b = append(b, f.Value...)
		if b[len(b)-1] == '\r' {
			// a reader drops one CR before the LF
			b = append(b, '\r')
		}
		b = append(b, '\n')
	}
	return append(b, '\n'), nil
}

// ValidValue tells whether s can be a metadata value Dovecot reads back
// unchanged: no LF, CR or NUL (Dovecot's own writers assert no LF).
func ValidValue(s string) bool { return !strings.ContainsAny(s, "\r\n\x00") }
