package mbox

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"hash"
	"strings"

	"github.com/boxsync/boxsync/formats"
)

// Header names Dovecot keeps for itself in an mbox. dovecot 2.3.19.1
// mbox-storage.c mbox_hide_headers: hidden from clients wherever they
// appear, and (mbox_save_drop_headers, which adds X-Delivery-ID) dropped
// from mail being saved.
var hiddenHeaders = map[string]bool{
	"content-length": true,
	"status":         true,
	"x-imap":         true,
	"x-imapbase":     true,
	"x-keywords":     true,
	"x-status":       true,
	"x-uid":          true,
}

// md5Headers are the headers Dovecot's default mbox_md5 = apop3d sums to
// make a message's GUID (mbox-md5-apop3d.c).
var md5Headers = map[string]bool{
	"date": true, "delivered-to": true, "message-id": true, "received": true, "x-delivery-id": true,
}

// maxNameLen: longer "names" are values of nameless lines
// (message-header-parser.c MESSAGE_HEADER_NAME_MAX_LEN).
const maxNameLen = 1000

// maxKeywordLen is Dovecot's default mail_max_keyword_length.
const maxKeywordLen = 50

func isLWSP(c byte) bool { return c == ' ' || c == '\t' }

// headerName returns a header line's name as Dovecot's parser sees it:
// the bytes before the first ':' without trailing blanks, and whether the
// line has a colon at all. Lines without one (and over-long names) have
// the name "".
func headerName(line []byte) (name []byte, valueAt int) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return nil, 0
	}
	if nl := bytes.IndexByte(line[:i], '\n'); nl >= 0 {
		return nil, 0
	}
	j := i
	for j > 0 && isLWSP(line[j-1]) {
		j--
	}
	if j > maxNameLen {
		return nil, 0
	}
	return line[:j], i + 1
}

// trimEOL drops a line's LF and the CR before it.
func trimEOL(line []byte) (body []byte, crlf bool) {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		if n > 1 && line[n-2] == '\r' {
			return line[:n-2], true
		}
		return line[:n-1], false
	}
	return line, false
}

// isKeywordValid is mailbox_keyword_is_valid for a new keyword: an IMAP
// atom of at most 50 bytes.
func isKeywordValid(kw string) bool {
	if kw == "" || len(kw) > maxKeywordLen {
		return false
	}
	for i := 0; i < len(kw); i++ {
		c := kw[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// span is a byte range [start, end) in the mbox file.
type span struct{ start, end int64 }

// imapBase is a parsed X-IMAPbase (or pseudo message X-IMAP) header.
type imapBase struct {
	uidValidity uint32
	lastUID     uint32
	keywords    []string // in header order: the file's keyword order
	// lastUIDOff is the file offset of the 10 last-UID digits, which
	// can be rewritten in place; -1 when they are not exactly 10.
	lastUIDOff int64
}

// fileState is what parsing one message's header needs from the messages
// before it (Dovecot's mbox_sync_context).
type fileState struct {
	base     *imapBase // from the first message, nil in foreign files
	seenBase bool
	known    map[string]bool // keywords X-IMAPbase named
	nextUID  uint32          // the UID the next new message gets
	prevUID  uint32
	seq      int  // messages parsed so far, the pseudo message included
	md5All   bool // mbox_md5 = all (mbox-md5-all.c) instead of apop3d
}

func newFileState() *fileState {
	return &fileState{known: map[string]bool{}, nextUID: 1}
}

// header is what one message's header says, as Dovecot reads it.
type header struct {
	base          *imapBase // X-IMAPbase or X-IMAP of this (first) message
	pseudo        bool      // c-client's "FOLDER INTERNAL DATA" message
	uid           uint32    // the UID: X-UID's when valid, else the next free one
	uidFromHeader bool      // uid came from a valid X-UID
	flags         formats.Flags
	nonRecent     bool     // Status has 'O' (MBOX_NONRECENT_KLUDGE)
	rawKWs        []string // X-Keywords as written, nil when none
	keywords      []string // the ones that count
	contLen       int64    // Content-Length, -1 when absent or invalid
	guid          string   // hex MD5 of the apop3d headers
	hidden        []span   // Dovecot's header lines (and their continuations)
	retPath       string   // Return-Path value (the envelope sender)
	fromLines     []span   // header lines that are valid From_ lines
}

// headerParser parses a message header one line at a time, as Dovecot's
// message_parse_header + mbox_sync_parse_next_mail do.
type headerParser struct {
	st  *fileState
	h   header
	md5 hash.Hash

	seenReceived bool
	uidSet       bool
	kwSet        bool

	// The current field: its name, first line offset, whether it is
	// hidden, its full value so far (Dovecot headers and Return-Path
	// only).
	name     string
	fieldOff int64
	fieldEnd int64
	hide     bool
	full     []byte
	wantFull bool
	lastCRLF bool
	inField  bool
	// The last line fed, processed once the next one shows whether it
	// continues.
	pending    []byte
	pendingAt  int64
	hasPending bool
}

func newHeaderParser(st *fileState) *headerParser {
	p := &headerParser{st: st, md5: md5.New()}
	p.h.contLen = -1
	st.seq++
	return p
}

// line feeds one header line (with its LF or CRLF; the last one may lack
// it) that starts at file offset off. The end-of-header line is not fed.
func (p *headerParser) line(off int64, line []byte) {
	if p.hasPending {
		p.process(p.pendingAt, p.pending, len(line) > 0 && isLWSP(line[0]))
	}
	p.pending = append(p.pending[:0], line...)
	p.pendingAt = off
	p.hasPending = true
}

// process handles one line once it is known whether the next continues it.
func (p *headerParser) process(off int64, line []byte, continues bool) {
	value, crlf := trimEOL(line)
	continued := p.inField && len(line) > 0 && isLWSP(line[0])
	if !continued {
		p.endField()
		name, valueAt := headerName(value)
		p.name = strings.ToLower(string(name))
		p.fieldOff = off
		p.inField = true
		if valueAt > 0 {
			value = value[valueAt:]
			if len(value) > 0 && isLWSP(value[0]) {
				value = value[1:]
			}
		}
		p.hide = hiddenHeaders[p.name]
		p.wantFull = p.hide || p.name == "return-path"
		p.full = p.full[:0]
		if p.wantFull {
			p.full = append(p.full, value...)
		}
		if isFrom(line) {
			p.h.fromLines = append(p.h.fromLines, span{off, off + int64(len(line))})
		}
	} else if p.wantFull {
		if p.lastCRLF {
			p.full = append(p.full, '\r')
		}
		p.full = append(p.full, '\n')
		p.full = append(p.full, value...)
	}
	p.lastCRLF = crlf
	p.fieldEnd = off + int64(len(line))
	if !p.hide {
		if p.st.md5All {
			p.md5.Write(value)
		} else if md5Headers[p.name] {
			p.sum(value, continues)
		}
	}
}

// sum is mbox_md5_apop3d_more.
func (p *headerParser) sum(value []byte, continues bool) {
	switch p.name {
	case "date", "message-id":
		if !p.seenReceived {
			p.md5.Write(value)
		}
	case "delivered-to", "x-delivery-id":
		p.md5.Write(value)
	case "received":
		if !p.seenReceived {
			p.md5.Write(value)
			if !continues {
				p.seenReceived = true
			}
		}
	}
}

// endField applies the field just completed.
func (p *headerParser) endField() {
	if !p.inField {
		return
	}
	p.inField = false
	if p.hide {
		p.h.hidden = append(p.h.hidden, span{p.fieldOff, p.fieldEnd})
		p.dovecotHeader(p.full)
	} else if p.name == "return-path" && p.h.retPath == "" {
		p.h.retPath = string(p.full)
	}
}

func isLWSPLF(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

// dovecotHeader is mbox-sync-parse.c's header_funcs.
func (p *headerParser) dovecotHeader(v []byte) {
	st := p.st
	switch p.name {
	case "content-length":
		if p.h.contLen >= 0 {
			return // duplicate
		}
		n, i := digits(v)
		if !onlyLWSPLF(v[i:]) || i > 18 {
			return
		}
		p.h.contLen = int64(n)
	case "status":
		// dovecot 2.3.19.1 mbox-sync-parse.c mbox_status_flags: 'R' is
		// \Seen, 'O' MBOX_NONRECENT_KLUDGE (the message is not \Recent).
		for _, c := range v {
			switch c {
			case 'R':
				p.h.flags |= formats.FlagSeen
			case 'O':
				p.h.nonRecent = true
			}
		}
	case "x-status":
		for _, c := range v {
			switch c {
			case 'A':
				p.h.flags |= formats.FlagAnswered
			case 'F':
				p.h.flags |= formats.FlagFlagged
			case 'T':
				p.h.flags |= formats.FlagDraft
			case 'D':
				p.h.flags |= formats.FlagDeleted
			}
		}
	case "x-imapbase", "x-imap":
		if st.seq != 1 || st.seenBase {
			return // valid only in the first message
		}
		b, ok := parseIMAPBase(v)
		if !ok {
			return
		}
		b.lastUIDOff = p.lastUIDOffset(v)
		st.seenBase = true
		st.base = b
		p.h.base = b
		if st.nextUID-1 <= b.lastUID {
			st.nextUID = b.lastUID + 1
		}
		for _, kw := range b.keywords {
			if isKeywordValid(kw) {
				st.known[kw] = true
			}
		}
		if p.name == "x-imap" {
			p.h.pseudo = true
		}
	case "x-keywords":
		if p.kwSet {
			return // duplicate
		}
		kws := splitKeywords(v)
		if len(kws) > 0 {
			p.kwSet = true
			p.h.rawKWs = kws
		}
	case "x-uid":
		if p.uidSet {
			return
		}
		n, i := digits(v)
		if !onlyLWSPLF(v[i:]) || i > 10 || n > 0xffffffff {
			return
		}
		value := uint32(n)
		if st.seq == 1 && !st.seenBase {
			return // c-client allows X-UID only after X-IMAPbase
		}
		if value == st.nextUID {
			st.nextUID++
		} else if value > st.nextUID {
			return // too large: untrusted, renumbered
		}
		if value <= st.prevUID {
			return // UIDs must grow
		}
		p.h.uid = value
		p.uidSet = true
	}
}

// lastUIDOffset finds where X-IMAPbase's last-UID digits start in the
// file, when the header is one line and they are exactly 10 digits.
func (p *headerParser) lastUIDOffset(v []byte) int64 {
	if bytes.IndexByte(v, '\n') >= 0 {
		return -1
	}
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	for i < len(v) && isLWSPLF(v[i]) {
		i++
	}
	j := i
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		j++
	}
	if j-i != 10 {
		return -1
	}
	// The field starts at fieldOff; its value is the last len(v) bytes
	// before the line end.
	lineLen := p.fieldEnd - p.fieldOff
	eol := int64(1)
	if p.lastCRLF {
		eol = 2
	}
	if lineLen < int64(len(v))+eol {
		return -1
	}
	return p.fieldEnd - eol - int64(len(v)) + int64(i)
}

func parseIMAPBase(v []byte) (*imapBase, bool) {
	i := 0
	var uv uint64
	for ; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			if v[i] != ' ' {
				return nil, false
			}
			break
		}
		uv = uv*10 + uint64(v[i]-'0')
		if uv > 0xffffffff {
			return nil, false
		}
	}
	if uv == 0 {
		return nil, false
	}
	for i < len(v) && isLWSPLF(v[i]) {
		i++
	}
	var last uint64
	for ; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			if !isLWSPLF(v[i]) {
				return nil, false
			}
			break
		}
		last = last*10 + uint64(v[i]-'0')
		if last > 0xffffffff {
			return nil, false
		}
	}
	return &imapBase{uidValidity: uint32(uv), lastUID: uint32(last), keywords: splitKeywords(v[i:])}, true
}

func splitKeywords(v []byte) []string {
	var out []string
	for _, f := range bytes.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		out = append(out, string(f))
	}
	return out
}

func digits(v []byte) (n uint64, i int) {
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		if n < 1<<60 {
			n = n*10 + uint64(v[i]-'0')
		}
		i++
	}
	return n, i
}

func onlyLWSPLF(v []byte) bool {
	for _, c := range v {
		if !isLWSPLF(c) && c != '\r' {
			return false
		}
	}
	return true
}

// finish ends the header and assigns the message's UID.
func (p *headerParser) finish() *header {
	if p.hasPending {
		p.process(p.pendingAt, p.pending, false)
		p.hasPending = false
	}
	p.endField()
	st := p.st
	if p.h.rawKWs != nil {
		seen := map[string]bool{}
		for _, kw := range p.h.rawKWs {
			if st.base != nil && !st.known[kw] {
				// Dovecot: a keyword X-IMAPbase doesn't list
				// means the header came with the mail; it is
				// ignored as a whole.
				p.h.keywords = nil
				break
			}
			if !seen[kw] && isKeywordValid(kw) {
				seen[kw] = true
				p.h.keywords = append(p.h.keywords, kw)
			}
		}
		p.h.keywords = formats.NormalizeKeywords(p.h.keywords)
	}
	p.h.uidFromHeader = p.h.uid != 0
	if !p.h.pseudo {
		if p.h.uid == 0 {
			p.h.uid = st.nextUID
			st.nextUID++
		}
		st.prevUID = p.h.uid
	}
	p.h.guid = hex.EncodeToString(p.md5.Sum(nil))
	return &p.h
}
