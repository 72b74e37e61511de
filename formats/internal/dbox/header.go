package dbox

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Dovecot's constants (dovecot 2.3.19.1 dbox-file.h).
const (
	// Version is the file version Dovecot writes (DBOX_VERSION); version 1
	// files are read too.
	Version = 2
	// MsgHeaderSize is sizeof(struct dbox_message_header): the "M1e"
	// every writer puts in the file header.
	MsgHeaderSize = 30
	// MagicPre starts every message header (DBOX_MAGIC_PRE).
	MagicPre = "\x01\x02"
	// MagicPost starts every metadata block (DBOX_MAGIC_POST); its first
	// LF follows the message bytes.
	MagicPost = "\n\x01\x03\n"
	// TypeNormal is the message type Dovecot writes
	// (DBOX_MESSAGE_TYPE_NORMAL).
	TypeNormal = 'N'
)

// File header keys (enum dbox_header_key).
const (
	HeaderMsgHeaderSize = 'M' // message header size, hex (required)
	HeaderCreateStamp   = 'C' // creation UNIX time, hex
	HeaderOldV1Append   = 'A' // old v1 append offset, ignored
)

// MaxHeaderLine caps the file header line. Dovecot writes about 20 bytes.
const MaxHeaderLine = 4096

// HeaderField is one "<key><value>" token of the file header line.
type HeaderField struct {
	Key   byte
	Value string
}

// FileHeader is the first line of a dbox file (spec §3.1):
// "<version> <key><value> [<key><value>…]\n", e.g. "2 M1e C6b0bd91a\n".
// Fields keeps every token in order, unknown ones included.
type FileHeader struct {
	Version int
	Fields  []HeaderField
}

// NewFileHeader returns the header Dovecot writes for a new file created
// at t: "2 M1e C<hex unix time>".
func NewFileHeader(t time.Time) FileHeader {
	return FileHeader{Version: Version, Fields: []HeaderField{
		{HeaderMsgHeaderSize, strconv.FormatUint(MsgHeaderSize, 16)},
		{HeaderCreateStamp, strconv.FormatInt(t.Unix(), 16)},
	}}
}

// Get returns the value of the first field with key.
func (h FileHeader) Get(key byte) (string, bool) {
	for _, f := range h.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// MsgHeaderSize returns the 'M' field: the size of each message header.
func (h FileHeader) MsgHeaderSize() int {
	v, _ := h.Get(HeaderMsgHeaderSize)
	n, _ := parseHex(v)
	return int(n)
}

// CreateStamp returns the 'C' field, or the zero time.
func (h FileHeader) CreateStamp() time.Time {
	v, ok := h.Get(HeaderCreateStamp)
	if !ok {
		return time.Time{}
	}
	n, _ := parseHex(v)
	return time.Unix(int64(n), 0)
}

// ParseFileHeader parses a file header line without its final LF. Like
// Dovecot, which reads it as a C string with i_stream_read_next_line, one
// trailing CR is dropped and a NUL ends the line. It checks what
// dbox_file_parse_header checks: a version digit 1 or 2 followed by a
// space, hex 'M' (nonzero) and 'C' values. Empty tokens are skipped.
func ParseFileHeader(line []byte) (FileHeader, error) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	if bytes.IndexByte(line, '\n') >= 0 {
		return FileHeader{}, errors.New("file header is not one line")
	}
	if len(line) < 2 || line[0] < '0' || line[0] > '9' || line[1] != ' ' {
		return FileHeader{}, errors.New("invalid dbox version")
	}
	h := FileHeader{Version: int(line[0] - '0')}
	if h.Version != 1 && h.Version != Version {
		return FileHeader{}, fmt.Errorf("invalid dbox version %d", h.Version)
	}
	for _, tok := range bytes.Split(line[2:], []byte(" ")) {
		if len(tok) == 0 {
			continue
		}
		f := HeaderField{Key: tok[0], Value: string(tok[1:])}
		switch f.Key {
		case HeaderMsgHeaderSize:
			if n, ok := parseHex(f.Value); !ok || n > 1<<20 {
				return FileHeader{}, errors.New("invalid message header size")
			}
		case HeaderCreateStamp:
			if _, ok := parseHex(f.Value); !ok {
				return FileHeader{}, errors.New("invalid create time stamp")
			}
		}
		h.Fields = append(h.Fields, f)
	}
	if h.MsgHeaderSize() == 0 {
		return FileHeader{}, errors.New("missing message header size")
	}
	return h, nil
}

// AppendFileHeader appends h's line, LF included. It fails for a header
// that would not parse back the same (a key or value with a space, LF or
// NUL).
func AppendFileHeader(b []byte, h FileHeader) ([]byte, error) {
	if h.Version < 0 || h.Version > 9 {
		return b, fmt.Errorf("dbox: file version %d is not one digit", h.Version)
	}
	b = append(b, byte('0'+h.Version))
	for _, f := range h.Fields {
		if f.Key == ' ' || f.Key == '\n' || f.Key == 0 || strings.ContainsAny(f.Value, " \n\x00") {
			return b, fmt.Errorf("dbox: file header field %q cannot be written", string(f.Key)+f.Value)
		}
		b = append(b, ' ', f.Key)
		b = append(b, f.Value...)
	}
	if b[len(b)-1] == '\r' {
		// a reader drops one CR before the LF
		b = append(b, '\r')
	}
	return append(b, '\n'), nil
}

// parseHex parses a hex number as Dovecot's str_to_uintmax_hex does: one
// or more hex digits of either case, nothing else, no overflow.
func parseHex(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		if n > math.MaxUint64>>4 {
			return 0, false
		}
		n = n<<4 | uint64(d)
	}
	return n, true
}
