package imapc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// This file is the IMAP4rev1 response parser (RFC 3501 §7, §9) and the
// few encoders commands need. It reads straight from a bufio.Reader with no
// goroutine of its own: the connection's owner reads the responses to the
// commands it sent. A BODY[] literal is never buffered: the parser hands it
// to a callback as an io.Reader limited to the literal's length.

const (
	maxLine    = 1 << 20 // one response line (without literals)
	maxLiteral = 1 << 20 // a literal that is not a message body
	maxDepth   = 32      // nesting of parenthesized lists
)

// ProtocolError is a response the parser could not make sense of. The
// connection is unusable afterwards.
type ProtocolError struct {
	What string
	Near string // a few bytes of context (never the command we sent)
}

func (e *ProtocolError) Error() string {
	if e.Near == "" {
		return "imapc: protocol error: " + e.What
	}
	return fmt.Sprintf("imapc: protocol error: %s near %q", e.What, e.Near)
}

// nilValue is IMAP's NIL.
type nilValue struct{}

// response is one server response (untagged, tagged or continuation). Data
// of FETCH responses is in fetch; bodies went to the body callback.
type response struct {
	tag  string // "*" untagged, "+" continuation, else the command's tag
	num  uint32 // the number of "* n EXISTS|EXPUNGE|FETCH|RECENT"
	kind string // upper case: OK NO BAD BYE PREAUTH CAPABILITY LIST LSUB STATUS FETCH EXISTS ...
	// Status responses (OK NO BAD BYE PREAUTH) and continuations.
	code     string // response code name, upper case ("APPENDUID")
	codeArgs string // the rest of the code, raw
	text     string
	// Other untagged data: the values after the kind, parsed.
	values []any
	fetch  *fetchData
}

// fetchData is what one FETCH response said about a message.
type fetchData struct {
	seq          uint32
	uid          uint32
	flags        []string
	hasFlags     bool
	internalDate time.Time
	size         int64 // RFC822.SIZE, -1 if absent
	modseq       uint64
	guid         string // X-GUID or X-GM-MSGID
	saveDate     time.Time
	bodyNil      bool // BODY[] was NIL
	gotBody      bool
}

// bodyFunc receives a FETCH body section. It must not keep r.
type bodyFunc func(fd *fetchData, section string, r io.Reader, size int64) error

// reader parses responses.
type reader struct {
	br   *bufio.Reader
	body bodyFunc // set by the command in progress; nil discards bodies
	// bodyErr is the first error a bodyFunc returned; the literal was
	// still consumed, so the connection stays in sync.
	bodyErr error
}

func (r *reader) protoErr(what string) error {
	near, _ := r.br.Peek(min(r.br.Buffered(), 40))
	return &ProtocolError{What: what, Near: string(near)}
}

func (r *reader) peek() (byte, error) {
	b, err := r.br.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (r *reader) expect(c byte) error {
	b, err := r.br.ReadByte()
	if err != nil {
		return err
	}
	if b != c {
		r.br.UnreadByte()
		return r.protoErr(fmt.Sprintf("want %q, got %q", c, b))
	}
	return nil
}

func (r *reader) crlf() error {
	b, err := r.br.ReadByte()
	if err != nil {
		return err
	}
	if b == '\r' {
		if b, err = r.br.ReadByte(); err != nil {
			return err
		}
	}
	if b != '\n' {
		r.br.UnreadByte()
		return r.protoErr("want end of line")
	}
	return nil
}

// atom reads atom characters. With fetchName it also reads a "[...]"
// section (spaces inside) and a "<n>" partial, as in BODY[HEADER.FIELDS (A B)]<0>.
func (r *reader) atom(fetchName bool) (string, error) {
	var b strings.Builder
	for {
		c, err := r.peek()
		if err != nil {
			return "", err
		}
		switch {
		case c == '[' && fetchName:
			for {
				c, err := r.br.ReadByte()
				if err != nil {
					return "", err
				}
				b.WriteByte(c)
				if c == ']' {
					break
				}
				if b.Len() > maxLine {
					return "", r.protoErr("section too long")
				}
			}
			continue
		case c == ' ' || c == '(' || c == ')' || c == '\r' || c == '\n' || c == '{' || c == '"' || c < 0x20 || c == 0x7f:
			if b.Len() == 0 {
				return "", r.protoErr("want an atom")
			}
			return b.String(), nil
		case c == ']' && !fetchName:
			if b.Len() == 0 {
				return "", r.protoErr("want an atom")
			}
			return b.String(), nil
		}
		r.br.ReadByte()
		b.WriteByte(c)
		if b.Len() > maxLine {
			return "", r.protoErr("atom too long")
		}
	}
}

func (r *reader) quoted() (string, error) {
	if err := r.expect('"'); err != nil {
		return "", err
	}
	var b strings.Builder
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			return "", err
		}
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if c, err = r.br.ReadByte(); err != nil {
				return "", err
			}
		case '\r', '\n':
			return "", r.protoErr("line break in quoted string")
		}
		b.WriteByte(c)
		if b.Len() > maxLine {
			return "", r.protoErr("quoted string too long")
		}
	}
}

// literalSize reads "{n}" or "~{n}" and the CRLF after it.
func (r *reader) literalSize() (int64, error) {
	if c, _ := r.peek(); c == '~' {
		r.br.ReadByte()
	}
	if err := r.expect('{'); err != nil {
		return 0, err
	}
	s, err := r.br.ReadString('}')
	if err != nil {
		return 0, err
	}
	s = strings.TrimSuffix(strings.TrimSuffix(s, "}"), "+")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, r.protoErr("bad literal size")
	}
	return n, r.crlf()
}

func (r *reader) literal() (string, error) {
	n, err := r.literalSize()
	if err != nil {
		return "", err
	}
	if n > maxLiteral {
		return "", r.protoErr(fmt.Sprintf("literal of %d bytes where a short string belongs", n))
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return "", err
	}
	return string(buf), nil
}

// value reads one value: NIL, a number or atom (string), a quoted string
// or literal (string), or a parenthesized list ([]any).
func (r *reader) value(depth int) (any, error) {
	c, err := r.peek()
	if err != nil {
		return nil, err
	}
	switch c {
	case '(':
		if depth > maxDepth {
			return nil, r.protoErr("lists nested too deep")
		}
		r.br.ReadByte()
		var list []any
		for {
			c, err := r.peek()
			if err != nil {
				return nil, err
			}
			if c == ')' {
				r.br.ReadByte()
				if list == nil {
					list = []any{}
				}
				return list, nil
			}
			if len(list) > 0 {
				if err := r.expect(' '); err != nil {
					return nil, err
				}
			}
			v, err := r.value(depth + 1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
	case '"':
		return r.quoted()
	case '{', '~':
		return r.literal()
	}
	a, err := r.atom(false)
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(a, "NIL") {
		return nilValue{}, nil
	}
	return a, nil
}

// restValues reads values separated by spaces up to the end of the line.
func (r *reader) restValues() ([]any, error) {
	var out []any
	for {
		c, err := r.peek()
		if err != nil {
			return nil, err
		}
		if c == '\r' || c == '\n' {
			return out, r.crlf()
		}
		if c == ' ' {
			r.br.ReadByte()
			continue
		}
		v, err := r.value(0)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

// line reads the rest of a line.
func (r *reader) line() (string, error) {
	var b strings.Builder
	for {
		s, err := r.br.ReadSlice('\n')
		b.Write(s)
		if b.Len() > maxLine {
			return "", r.protoErr("line too long")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		return strings.TrimRight(b.String(), "\r\n"), nil
	}
}

// respText parses "[CODE args] text" into resp.
func (resp *response) respText(s string) {
	s = strings.TrimPrefix(s, " ")
	if strings.HasPrefix(s, "[") {
		if end := strings.IndexByte(s, ']'); end > 0 {
			code := s[1:end]
			name, args, _ := strings.Cut(code, " ")
			resp.code, resp.codeArgs = strings.ToUpper(name), args
			s = strings.TrimPrefix(s[end+1:], " ")
		}
	}
	resp.text = s
}

// read reads one complete response.
func (r *reader) read() (*response, error) {
	resp := &response{}
	c, err := r.peek()
	if err != nil {
		return nil, err
	}
	if c == '+' {
		r.br.ReadByte()
		s, err := r.line()
		if err != nil {
			return nil, err
		}
		resp.tag = "+"
		resp.text = strings.TrimPrefix(s, " ")
		return resp, nil
	}
	tag, err := r.atom(false)
	if err != nil {
		return nil, err
	}
	resp.tag = tag
	if err := r.expect(' '); err != nil {
		return nil, err
	}
	word, err := r.atom(false)
	if err != nil {
		return nil, err
	}
	if tag == "*" {
		if n, err := strconv.ParseUint(word, 10, 32); err == nil {
			resp.num = uint32(n)
			if err := r.expect(' '); err != nil {
				return nil, err
			}
			if word, err = r.atom(false); err != nil {
				return nil, err
			}
			resp.kind = strings.ToUpper(word)
			if resp.kind == "FETCH" {
				if err := r.expect(' '); err != nil {
					return nil, err
				}
				fd, err := r.fetch(resp.num)
				if err != nil {
					return nil, err
				}
				resp.fetch = fd
				return resp, r.crlf()
			}
			resp.values, err = r.restValues()
			return resp, err
		}
	}
	resp.kind = strings.ToUpper(word)
	switch resp.kind {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		s, err := r.line()
		if err != nil {
			return nil, err
		}
		resp.respText(s)
		return resp, nil
	case "CAPABILITY", "SEARCH", "ENABLED":
		s, err := r.line()
		if err != nil {
			return nil, err
		}
		for _, f := range strings.Fields(s) {
			resp.values = append(resp.values, f)
		}
		return resp, nil
	}
	if tag != "*" {
		return nil, r.protoErr("tagged response " + resp.kind)
	}
	resp.values, err = r.restValues()
	return resp, err
}

// fetch parses the msg-att list of a FETCH response (RFC 3501 §7.4.2),
// streaming body sections to r.body.
func (r *reader) fetch(seq uint32) (*fetchData, error) {
	fd := &fetchData{seq: seq, size: -1}
	if err := r.expect('('); err != nil {
		return nil, err
	}
	for first := true; ; first = false {
		c, err := r.peek()
		if err != nil {
			return nil, err
		}
		if c == ')' {
			r.br.ReadByte()
			return fd, nil
		}
		if !first {
			if err := r.expect(' '); err != nil {
				return nil, err
			}
		}
		name, err := r.atom(true)
		if err != nil {
			return nil, err
		}
		if err := r.expect(' '); err != nil {
			return nil, err
		}
		uname := strings.ToUpper(name)
		if strings.HasPrefix(uname, "BODY[") || strings.HasPrefix(uname, "BINARY[") || uname == "RFC822" {
			if err := r.fetchBody(fd, uname); err != nil {
				return nil, err
			}
			continue
		}
		v, err := r.value(0)
		if err != nil {
			return nil, err
		}
		if err := fd.set(uname, v); err != nil {
			return nil, r.protoErr(err.Error())
		}
	}
}

func (r *reader) fetchBody(fd *fetchData, section string) error {
	c, err := r.peek()
	if err != nil {
		return err
	}
	var src io.Reader
	var size int64
	switch c {
	case '{', '~':
		if size, err = r.literalSize(); err != nil {
			return err
		}
		src = io.LimitReader(r.br, size)
	case '"':
		s, err := r.quoted()
		if err != nil {
			return err
		}
		src, size = strings.NewReader(s), int64(len(s))
	default:
		a, err := r.atom(false)
		if err != nil {
			return err
		}
		if !strings.EqualFold(a, "NIL") {
			return r.protoErr("bad body section value")
		}
		fd.bodyNil = true
		return nil
	}
	fd.gotBody = true
	if r.body != nil && r.bodyErr == nil {
		r.bodyErr = r.body(fd, section, src, size)
	}
	// Whatever the callback left unread is skipped, so the next response
	// starts where it should.
	_, err = io.Copy(io.Discard, src)
	return err
}

func (fd *fetchData) set(name string, v any) error {
	str, _ := v.(string)
	num := func() (uint64, error) {
		n, err := strconv.ParseUint(str, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: want a number", name)
		}
		return n, nil
	}
	switch name {
	case "UID":
		n, err := num()
		if err != nil || n > 0xffffffff {
			return fmt.Errorf("UID: want a 32-bit number")
		}
		fd.uid = uint32(n)
	case "FLAGS":
		list, ok := v.([]any)
		if !ok {
			return fmt.Errorf("FLAGS: want a list")
		}
		fd.hasFlags = true
		for _, f := range list {
			if s, ok := f.(string); ok {
				fd.flags = append(fd.flags, s)
			}
		}
	case "INTERNALDATE":
		t, err := time.Parse("_2-Jan-2006 15:04:05 -0700", str)
		if err != nil {
			return fmt.Errorf("INTERNALDATE %q: %w", str, err)
		}
		fd.internalDate = t
	case "RFC822.SIZE":
		n, err := num()
		if err != nil {
			return err
		}
		fd.size = int64(n)
	case "MODSEQ":
		list, ok := v.([]any)
		if !ok || len(list) != 1 {
			return fmt.Errorf("MODSEQ: want (n)")
		}
		str, _ = list[0].(string)
		n, err := num()
		if err != nil {
			return err
		}
		fd.modseq = n
	case "X-GUID", "X-GM-MSGID":
		fd.guid = str
	case "SAVEDATE":
		if str != "" {
			if t, err := time.Parse("_2-Jan-2006 15:04:05 -0700", str); err == nil {
				fd.saveDate = t
			}
		}
	}
	return nil
}

// quote encodes s as an IMAP quoted string. Mailbox names (modified UTF-7)
// and flags are 7-bit without line breaks, so a quoted string always works
// for them; callers check that s has no CR, LF or NUL.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// quotable tells whether s can go in a quoted string.
func quotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '\r' || s[i] == '\n' || s[i] == 0 || s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// imapDate formats t as an IMAP date-time (RFC 3501 §9 date-time).
func imapDate(t time.Time) string {
	return t.Format("02-Jan-2006 15:04:05 -0700")
}

// uidSet formats ascending UIDs as a compact sequence set ("1:3,7").
func uidSet(uids []uint32) string {
	var b strings.Builder
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(uids[i]), 10))
		if j > i {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(uids[j]), 10))
		}
		i = j + 1
	}
	return b.String()
}

// parseSeqSet parses a sequence set without '*' ("1:3,7") into UIDs. max
// bounds the expansion.
func parseSeqSet(s string, max int) ([]uint32, error) {
	var out []uint32
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("sequence set %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				return nil, fmt.Errorf("sequence set %q: %w", s, err)
			}
		}
		if a > b {
			a, b = b, a
		}
		if int(b-a) >= max-len(out) {
			return nil, errors.New("sequence set too large")
		}
		for u := a; u <= b; u++ {
			out = append(out, uint32(u))
		}
	}
	return out, nil
}
