package mbox

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFrom(t *testing.T) {
	est := time.FixedZone("local", -5*3600)
	tests := []struct {
		line   string
		ok     bool
		sender string
		date   string // RFC 3339
	}{
		{"From a@b  Sun Nov 29 07:53:44 2026\n", true, "a@b", "2026-11-29T07:53:44-05:00"},
		{"From a@b Mon Jan  1 00:00:00 2001", true, "a@b", "2001-01-01T00:00:00-05:00"},
		{"From a@b Mon Jan 1 00:00:00 2001\r\n", true, "a@b", "2001-01-01T00:00:00-05:00"},
		{"From a Thu, 9 Nov 2002 22:33:52\n", true, "a", "2002-11-09T22:33:52-05:00"},
		{"From a Thu Nov  9 22:33 2001\n", true, "a", "2001-11-09T22:33:00-05:00"},
		{"From a Thu Nov  9 22:33:52 2001 +0300\n", true, "a", "2001-11-09T19:33:52Z"},
		{"From a Thu Nov  9 22:33:52 2001 -0130\n", true, "a", "2001-11-10T00:03:52Z"},
		{"From a Thu Nov  9 22:33:52 EST 2001\n", true, "a", "2001-11-09T22:33:52-05:00"},
		{"From a Thu Nov  9 22:33:52 +0300 2001\n", true, "a", "2001-11-09T22:33:52-05:00"},
		{"From 1767023596823156925@xxx Mon Apr 26 17:14:46 +0000 2021\n", true, "1767023596823156925@xxx", "2021-04-26T17:14:46-05:00"},
		{"From \"quoted sender\"@x Mon Jan  1 00:00:00 2001\n", true, "\"quoted sender\"@x", "2001-01-01T00:00:00-05:00"},
		{"From - Thu Feb 16 09:15:00 2023\n", true, "-", "2023-02-16T09:15:00-05:00"},
		{"From  Thu Feb 16 09:15:00 2023\n", true, "", "2023-02-16T09:15:00-05:00"},
		{"From MAILER_DAEMON  Sat ??? 16 09:15:00 2023\n", true, "MAILER_DAEMON", "2023-01-16T09:15:00-05:00"},
		{"From a@b Mon Jan  1 00:00:00 2001 and more\n", true, "a@b", "2001-01-01T00:00:00-05:00"},
		{"From here\n", false, "", ""},
		{"From me to you, with love\n", false, "", ""},
		{"From a@b Mon Jan  1 00:00:00 20\n", false, "", ""},
		{"From a@b Mon Jan  1 0:00:00 2001\n", false, "", ""},
		{"From a@b Mon Foo  1 00:00:00 2001\n", false, "", ""},
		{"from a@b Mon Jan  1 00:00:00 2001\n", false, "", ""},
		{"From: a@b Mon Jan  1 00:00:00 2001\n", false, "", ""},
		{"From a@b\nMon Jan  1 00:00:00 2001\n", false, "", ""},
	}
	for _, tc := range tests {
		f, ok := parseFrom([]byte(tc.line), est)
		if ok != tc.ok {
			t.Errorf("parseFrom(%q) ok = %v, want %v", tc.line, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if f.sender != tc.sender || f.date.Format(time.RFC3339) != tc.date {
			t.Errorf("parseFrom(%q) = %q %s, want %q %s", tc.line, f.sender, f.date.Format(time.RFC3339), tc.sender, tc.date)
		}
	}
}

func TestFormatFrom(t *testing.T) {
	d := time.Date(2026, 11, 29, 7, 3, 4, 0, time.UTC)
	if got, want := formatFrom("a@b", d, time.UTC), "From a@b  Sun Nov 29 07:03:04 2026\n"; got != want {
		t.Errorf("formatFrom = %q, want %q", got, want)
	}
	if got, want := formatFrom("x", time.Date(2001, 1, 2, 3, 4, 5, 0, time.UTC), time.UTC), "From x  Tue Jan 02 03:04:05 2001\n"; got != want {
		t.Errorf("formatFrom = %q, want %q", got, want)
	}
	for _, s := range []string{"<a@b>", "", "<>", "a b@c", "MAILER-DAEMON"} {
		if got := envelopeSender(s); strings.ContainsAny(got, " <>") || got == "" {
			t.Errorf("envelopeSender(%q) = %q", s, got)
		}
	}
}

// FuzzFromLine: parseFrom never panics, and what formatFrom writes parses
// back to the same sender and second.
func FuzzFromLine(f *testing.F) {
	for _, s := range []string{"From a@b  Sun Nov 29 07:53:44 2026\n", "From a Thu, 9 Nov 2002 22:33:52",
		"From a Thu Nov  9 22:33:52 EST 2001", "From \"x y\"@z Mon Jan  1 00:00:00 2001 +0100", "From "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		p, ok := parseFrom(line, time.UTC)
		if !ok || strings.ContainsAny(p.sender, " \r\n") || p.sender == "" {
			return
		}
		if y := p.date.Year(); y < 1000 || y > 9999 {
			return
		}
		out := formatFrom(p.sender, p.date, time.UTC)
		q, ok := parseFrom([]byte(out), time.UTC)
		if !ok || q.sender != p.sender || !q.date.Equal(p.date.Truncate(time.Second)) {
			t.Fatalf("parseFrom(formatFrom(%q, %s) = %q) = %q %s %v", p.sender, p.date, out, q.sender, q.date, ok)
		}
	})
}

// bytesSource serves a byte slice as a source.
type bytesSource []byte

func (b bytesSource) at(off int64) (io.Reader, error) {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	return bytes.NewReader(b[off:]), nil
}

func (bytesSource) Close() error { return nil }

// scanAll splits data into messages and returns each one's Body bytes.
func scanAll(t *testing.T, data []byte) ([]*message, [][]byte, Flavour, error) {
	t.Helper()
	src := bytesSource(data)
	sc, err := newScanner(src, readOpts{loc: time.UTC})
	if err != nil {
		return nil, nil, "", err
	}
	var msgs []*message
	var stats flavourStats
	for {
		m, err := sc.nextMessage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, "", err
		}
		if len(msgs) == 0 && m.hdr.base != nil {
			stats.dovecot = true
		}
		if m.hdr.pseudo {
			continue
		}
		stats.add(m)
		msgs = append(msgs, m)
	}
	fl := stats.flavour()
	var bodies [][]byte
	for _, m := range msgs {
		lay, err := messageLayout(src, m.hdrOff, m.end)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := segmentReader(src, lay.segs)
		if fl == FlavourMboxrd {
			r = newUnquoter(r)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	return msgs, bodies, fl, nil
}

// FuzzSplit: the splitter never panics, messages are in order, inside the
// file and with ascending UIDs; writing them as a Dovecot mbox and
// splitting that again gives the same messages, UIDs and flags.
func FuzzSplit(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.mbox"))
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("From a Mon Jan  1 00:00:00 2001\nX-IMAPbase: 5 0000000009 kw\nX-UID: 3\nX-Keywords: kw\nStatus: RO\nContent-Length: 3\n\nab\n\n" +
		"From b Mon Jan  1 00:00:00 2001\nX-UID: 9\nX-Status: AD\n\nFrom c Mon Jan  1 00:00:00 2001\n\n"))
	f.Add([]byte("From a Mon Jan  1 00:00:00 2001\r\nSubject: x\r\nContent-Length: 0\r\n\r\n\r\nFrom b Mon Jan  1 00:00:00 2001\r\n x\r\n"))
	f.Add([]byte("From a Mon Jan  1 00:00:00 2001\nFrom b Mon Jan  1 00:00:00 2001\n"))
	f.Add([]byte("From MAILER_DAEMON  Mon Jan  1 00:00:00 2001\nX-IMAP: 7 0000000004\nStatus: RO\n\npseudo\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, bodies, fl, err := scanAll(t, data)
		if err != nil {
			return
		}
		var prevEnd int64
		var prevUID uint32
		for i, m := range msgs {
			if m.fromOff < prevEnd || m.hdrOff > m.end || m.end > int64(len(data)) || m.bodyOff > m.end || m.bodyOff < m.hdrOff {
				t.Fatalf("message %d: offsets %d %d %d %d (prev end %d, file %d)", i, m.fromOff, m.hdrOff, m.bodyOff, m.end, prevEnd, len(data))
			}
			if m.hdr.uid <= prevUID {
				t.Fatalf("message %d: uid %d after %d", i, m.hdr.uid, prevUID)
			}
			if len(m.hdr.guid) != 32 {
				t.Fatalf("guid %q", m.hdr.guid)
			}
			if _, err := hex.DecodeString(m.hdr.guid); err != nil {
				t.Fatal(err)
			}
			prevEnd, prevUID = m.end, m.hdr.uid
		}
		// Write them the way a commit's rewrite does.
		var out bytes.Buffer
		w, _ := newMboxWriter(&out, 0, 0)
		snap := &snapshot{flavour: fl}
		src := bytesSource(data)
		for i, m := range msgs {
			e := &entry{uid: m.hdr.uid, from: m.fromOff, hdr: m.hdrOff, end: m.end, size: int64(len(bodies[i]))}
			h := dovecotHeaders{uid: m.hdr.uid, flags: m.hdr.flags, keywords: m.hdr.keywords}
			if i == 0 {
				h.base = &imapBase{uidValidity: 1, lastUID: prevUID, keywords: m.hdr.keywords}
			}
			if err := copyMessage(w, src, snap, e, h); err != nil {
				t.Fatalf("copyMessage %d: %v", i, err)
			}
		}
		w.close()
		msgs2, bodies2, _, err := scanAll(t, out.Bytes())
		if err != nil {
			t.Fatalf("rescan: %v\n%q", err, out.Bytes())
		}
		if len(msgs2) != len(msgs) {
			if lossy(bodies) {
				return
			}
			t.Fatalf("rescan: %d messages, want %d\n%q\nfrom\n%q", len(msgs2), len(msgs), out.Bytes(), data)
		}
		for i := range msgs {
			if lossy(bodies[i : i+1]) {
				continue
			}
			if !bytes.Equal(bodies2[i], bodies[i]) || msgs2[i].hdr.uid != msgs[i].hdr.uid || msgs2[i].hdr.flags != msgs[i].hdr.flags {
				t.Fatalf("message %d: %q uid %d %s, rewritten %q uid %d %s\nfile\n%q", i, bodies[i], msgs[i].hdr.uid, msgs[i].hdr.flags,
					bodies2[i], msgs2[i].hdr.uid, msgs2[i].hdr.flags, out.Bytes())
			}
		}
	})
}

// lossy tells whether one of the bodies is a shape the mbox format can't
// keep (doc.go): a header-only message that starts with a blank or a
// From_ line and doesn't end in LF, that ends in CR, or whose last line
// lacks its LF and would be a From_ line with one.
func lossy(bodies [][]byte) bool {
	for _, b := range bodies {
		headerOnly := !bytes.HasPrefix(b, []byte("\n")) && !bytes.HasPrefix(b, []byte("\r\n")) &&
			!bytes.Contains(b, []byte("\n\n")) && !bytes.Contains(b, []byte("\n\r\n"))
		if !headerOnly {
			continue
		}
		if mustNotLead(b) && (len(b) == 0 || b[len(b)-1] != '\n') {
			return true
		}
		if len(b) > 0 && b[len(b)-1] == '\r' {
			return true
		}
		if last := b[bytes.LastIndexByte(b, '\n')+1:]; len(last) > 0 && isFrom(append(last[:len(last):len(last)], '\n')) {
			return true // the separator LF makes it a From_ line
		}
	}
	return false
}

// FuzzHeader: the header parser never panics, its hidden spans lie in the
// header in order, and the GUID is an MD5.
func FuzzHeader(f *testing.F) {
	f.Add([]byte("X-IMAPbase: 1 0000000002 a b\nX-UID: 2\nStatus: RO\nX-Status: AFTD\nX-Keywords: a\nContent-Length: 4\n"))
	f.Add([]byte("Received: from a\n\tby b\nDate: x\nMessage-ID: <y>\nX-Keywords: a\n b\n"))
	f.Add([]byte(" starts with a blank\nX-UID: 99999999999\nContent-Length: 12a\n"))
	f.Fuzz(func(t *testing.T, hdr []byte) {
		st := newFileState()
		p := newHeaderParser(st)
		var off int64
		for len(hdr) > 0 {
			i := bytes.IndexByte(hdr, '\n')
			line := hdr
			if i >= 0 {
				line, hdr = hdr[:i+1], hdr[i+1:]
			} else {
				hdr = nil
			}
			p.line(off, line)
			off += int64(len(line))
		}
		h := p.finish()
		var last int64
		for _, s := range h.hidden {
			if s.start < last || s.end < s.start || s.end > off {
				t.Fatalf("hidden span %+v (last %d, header %d)", s, last, off)
			}
			last = s.end
		}
		if len(h.guid) != 32 || (h.uid == 0 && !h.pseudo) {
			t.Fatalf("guid %q uid %d", h.guid, h.uid)
		}
		if h.contLen < -1 {
			t.Fatalf("content length %d", h.contLen)
		}
	})
}
