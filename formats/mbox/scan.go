package mbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// Flavour is the kind of mbox a file is, as far as its bytes tell.
type Flavour string

const (
	// FlavourDovecot: the first message carries X-IMAPbase (or the
	// pseudo message X-IMAP). Dovecot writes no From-quoting and a
	// Content-Length for every message.
	FlavourDovecot Flavour = "dovecot"
	// FlavourMboxo: From_ lines split; body lines "From " were quoted
	// as ">From " and can't be told from original ">From " lines: read
	// as they are.
	FlavourMboxo Flavour = "mboxo"
	// FlavourMboxrd: ">From " quoting of every /^>*From / line; one
	// level of '>' is removed on reading. Recognised by a body line
	// ">>From " (mboxo never makes one).
	FlavourMboxrd Flavour = "mboxrd"
	// FlavourMboxcl: every message has a correct Content-Length and
	// body lines "From " are quoted ">From " (read as they are).
	FlavourMboxcl Flavour = "mboxcl"
	// FlavourMboxcl2: every message has a correct Content-Length and
	// body lines "From " are left alone.
	FlavourMboxcl2 Flavour = "mboxcl2"
	// FlavourEmpty: no messages.
	FlavourEmpty Flavour = "empty"
)

// Warning reports a place where splitting the file into messages was a
// guess: a From_ line that ended a message without a Content-Length to
// confirm it and without the blank line or headers around it that a real
// message boundary has, or a line that looks like a boundary but has no
// valid date.
type Warning struct {
	Offset int64  // file offset of the From_ line
	Line   string // its beginning
	Reason string
}

func (w Warning) String() string {
	return fmt.Sprintf("offset %d: %s: %q", w.Offset, w.Reason, w.Line)
}

// message is one message as the scanner found it.
type message struct {
	fromOff int64 // the From_ line
	hdrOff  int64 // the message's first byte (after the From_ line)
	bodyOff int64 // after the end-of-header line; == end without one
	end     int64 // after the message's last byte (the separator not included)
	eoh     bool  // the header has its empty line
	from    fromLine
	hdr     *header
	clUsed  bool // the end was where Content-Length said

	// Lines of the message (From_ line excluded) starting ">From "
	// (quoted), ">>..From " (deep), or "From " inside a body that
	// Content-Length protected (raw).
	quoted, deep, raw int
	// rdLines: lines matching /^>+From / (mboxrd's quoted lines).
	rdLines int
}

// scanner splits an mbox into messages exactly where Dovecot does
// (istream-raw-mbox.c): a message ends before the LF (or CRLF) that
// precedes a valid From_ line, or where a valid Content-Length says,
// when a From_ line (or the end of the file) follows there; the last
// message ends before the file's final LF.
type scanner struct {
	lr       *lineReader
	st       *fileState
	loc      *time.Location
	next     *lineInfo // the From_ line of the next message, already read
	nextData []byte
	started  bool
	warnings []Warning
	// pendingCheck: the last split was a guess; look at the next
	// message's first line to judge it.
	pendingCheck *Warning
}

// keepBody bounds what is kept of a body line: enough for a From_ line.
const keepBody = 1024

// maxHeader bounds a header line kept for parsing (a longer one is cut;
// style: cap header reads at 1 MiB).
const maxHeader = 1 << 20

// readOpts are the settings reading depends on.
type readOpts struct {
	loc    *time.Location // of From_ dates without a zone
	md5All bool           // mbox_md5 = all: GUIDs sum every header
}

func newScanner(src source, o readOpts) (*scanner, error) {
	lr, err := newLineReader(src, 0)
	if err != nil {
		return nil, err
	}
	st := newFileState()
	st.md5All = o.md5All
	return &scanner{lr: lr, st: st, loc: o.loc}, nil
}

// errNotMbox: the file does not start with a From_ line.
var errNotMbox = errors.New("mbox file doesn't begin with a valid 'From ' line")

func (s *scanner) start() error {
	s.started = true
	for {
		li, err := s.lr.next(keepBody)
		if err != nil {
			return err
		}
		if li.n == 0 {
			return nil // empty file
		}
		if li.blank() {
			continue // QUIRK: Dovecot refuses leading blank lines; we skip them
		}
		if !isFrom(li.data) {
			return &formats.Error{Kind: formats.KindInvalidData, Err: fmt.Errorf("%w (offset %d: %q)", errNotMbox, li.start, clip(li.data))}
		}
		s.setNext(li)
		return nil
	}
}

func (s *scanner) setNext(li lineInfo) {
	s.nextData = append(s.nextData[:0], li.data...)
	li.data = s.nextData
	s.next = &li
}

func clip(b []byte) string {
	b, _ = trimEOL(b)
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}

func isQuotedFrom(b []byte) (quoted, deep, rd bool) {
	i := 0
	for i < len(b) && b[i] == '>' {
		i++
	}
	if i == 0 || !bytes.HasPrefix(b[i:], []byte("From ")) {
		return false, false, false
	}
	return i == 1, i > 1, true
}

// nextMessage returns the next message, or io.EOF.
func (s *scanner) nextMessage() (*message, error) {
	if !s.started {
		if err := s.start(); err != nil {
			return nil, err
		}
	}
	if s.next == nil {
		return nil, io.EOF
	}
	m := &message{fromOff: s.next.start, hdrOff: s.next.start + s.next.n}
	m.from, _ = parseFrom(s.next.data, s.loc)
	fromLF := s.next.lf
	s.next = nil
	if !fromLF {
		// The file ends inside the From_ line.
		m.bodyOff, m.end = m.hdrOff, m.hdrOff
		hp := newHeaderParser(s.st)
		m.hdr = hp.finish()
		return m, nil
	}
	hp := newHeaderParser(s.st)
	var prev lineInfo // the line before the current one
	prev.crlf = false
	first := true
	// Header.
	for {
		li, err := s.lr.next(maxHeader)
		if err != nil {
			return nil, err
		}
		if s.pendingCheck != nil {
			s.judgeSplit(li)
		}
		if li.n == 0 {
			m.end = eofEnd(m.hdrOff, prev)
			m.bodyOff = m.end
			m.hdr = hp.finish()
			return m, nil
		}
		if !first && isFrom(li.data) {
			m.end = li.start - 1
			if prev.crlf {
				m.end--
			}
			m.bodyOff = m.end
			m.hdr = hp.finish()
			s.split(m, li, prev)
			return m, nil
		}
		first = false
		if li.blank() {
			m.eoh = true
			m.bodyOff = li.start + li.n
			prev = li
			break
		}
		if q, d, rd := isQuotedFrom(li.data); rd {
			m.rdLines++
			if q {
				m.quoted++
			}
			if d {
				m.deep++
			}
		}
		hp.line(li.start, li.data)
		prev = li
	}
	m.hdr = hp.finish()
	// Body.
	cl := m.hdr.contLen
	q := int64(-1)
	if cl >= 0 {
		q = m.bodyOff + cl
	}
	candidate := int64(-1) // first From_ line inside the Content-Length
	var candPrev lineInfo
	var stats struct{ quoted, deep, raw, rd int }
	for {
		li, err := s.lr.next(keepBody)
		if err != nil {
			return nil, err
		}
		if li.n == 0 {
			end := eofEnd(m.hdrOff, prev)
			switch {
			case q >= 0 && prev.lf && (q == prev.start+prev.n-1 || (prev.crlf && q == prev.start+prev.n-2)):
				// Dovecot: only "\n" or "\r\n" may follow.
				end = q
				m.clUsed = true
			case candidate >= 0:
				return s.rewind(m, candidate, candPrev)
			}
			m.end = end
			break
		}
		from := isFrom(li.data)
		if from && q >= 0 && (q == li.start-1 || (prev.crlf && q == li.start-2)) {
			m.end = q
			m.clUsed = true
			s.setNext(li)
			break
		}
		if q >= 0 && li.start-1 > q {
			// Past where Content-Length pointed, and no boundary
			// there: Dovecot ignores it and ends the message at
			// the first From_ line of the body.
			if candidate >= 0 {
				return s.rewind(m, candidate, candPrev)
			}
			q = -1
		}
		if from {
			if q < 0 {
				m.end = li.start - 1
				if prev.crlf {
					m.end--
				}
				s.split(m, li, prev)
				break
			}
			if candidate < 0 {
				candidate, candPrev = li.start, prev
			}
			stats.raw++
		}
		if qq, d, rd := isQuotedFrom(li.data); rd {
			stats.rd++
			if qq {
				stats.quoted++
			}
			if d {
				stats.deep++
			}
		}
		prev = li
	}
	m.quoted += stats.quoted
	m.deep += stats.deep
	m.rdLines += stats.rd
	if m.clUsed {
		m.raw += stats.raw
	}
	if m.end < m.bodyOff {
		// The blank line was the separator: no end of header.
		m.eoh = false
		m.bodyOff = m.end
	}
	return m, nil
}

// eofEnd is where the last message ends: before the file's final LF (and
// a CR before it), as Dovecot reads it.
func eofEnd(hdrOff int64, last lineInfo) int64 {
	end := last.start + last.n
	if last.n > 0 && last.lf {
		end--
		if last.crlf {
			end--
		}
	}
	return max(end, hdrOff)
}

// rewind ends m at the From_ line found at candidate (Content-Length was
// wrong) and continues scanning there.
func (s *scanner) rewind(m *message, candidate int64, prev lineInfo) (*message, error) {
	if err := s.lr.seek(candidate); err != nil {
		return nil, err
	}
	li, err := s.lr.next(keepBody)
	if err != nil {
		return nil, err
	}
	m.end = candidate - 1
	if prev.crlf {
		m.end--
	}
	m.clUsed = false
	// The statistics of the lines after the candidate belong to the
	// next message; recount this one's body is not worth it.
	m.raw = 0
	if m.end < m.bodyOff {
		m.eoh = false
		m.bodyOff = m.end
	}
	s.split(m, li, prev)
	return m, nil
}

// split records the From_ line li that ended m without Content-Length's
// confirmation, and checks whether it looks like a real boundary.
func (s *scanner) split(m *message, li lineInfo, prev lineInfo) {
	s.setNext(li)
	w := Warning{Offset: li.start, Line: clip(li.data)}
	if !prev.blank() && m.end > m.hdrOff {
		w.Reason = "From_ line not preceded by an empty line"
		s.warnings = append(s.warnings, w)
		return
	}
	s.pendingCheck = &w
}

// judgeSplit looks at the first line after a guessed From_ line: a real
// message starts with a header.
func (s *scanner) judgeSplit(li lineInfo) {
	w := *s.pendingCheck
	s.pendingCheck = nil
	if li.n == 0 || li.blank() {
		return // an empty message, or one without a header: fine
	}
	name, valueAt := headerName(li.data)
	if valueAt > 0 && len(name) > 0 && validFieldName(name) {
		return
	}
	w.Reason = "From_ line not followed by a header"
	s.warnings = append(s.warnings, w)
}

// validFieldName is RFC 5322's field-name: printable ASCII except ':'.
func validFieldName(b []byte) bool {
	for _, c := range b {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// flavourStats gathers what tells a file's flavour from its messages.
type flavourStats struct {
	messages, clUsed, quoted, deep, raw int
	dovecot                             bool
}

func (f *flavourStats) add(m *message) {
	if m.hdr.pseudo {
		return
	}
	f.messages++
	if m.clUsed {
		f.clUsed++
	}
	f.quoted += m.quoted
	f.deep += m.deep
	f.raw += m.raw
}

func (f *flavourStats) flavour() Flavour {
	switch {
	case f.dovecot:
		return FlavourDovecot
	case f.messages == 0:
		return FlavourEmpty
	case f.clUsed == f.messages:
		if f.raw > 0 || f.quoted == 0 {
			return FlavourMboxcl2
		}
		return FlavourMboxcl
	case f.deep > 0:
		return FlavourMboxrd
	}
	return FlavourMboxo
}
