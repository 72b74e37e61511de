package mbox

import (
	"strings"
	"time"
)

// dovecot 2.3.19.1 mbox-from.c.
var (
	weekdays = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	months   = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// fromLine is a parsed From_ line.
type fromLine struct {
	sender string
	date   time.Time
}

// parseFrom parses a From_ line ("From " included, its LF or CRLF
// optional) as Dovecot's mbox_from_parse does, so that boxsync splits a
// file exactly where Dovecot does: a sender (possibly a quoted
// "local part"@domain), then an asctime() date with the variants Dovecot
// accepts: seconds optional, a numeric or named time zone before or after
// the year, or "Thu, 9 Nov 2002 22:33:52". Without a numeric zone the date
// is local time (loc). ok is false for anything else.
//
// Dovecot reads past the line into the buffered bytes after it; every
// such read ends at the LF and fails, so checking the line alone with a
// NUL sentinel gives the same answers.
func parseFrom(line []byte, loc *time.Location) (f fromLine, ok bool) {
	if len(line) < 5 || string(line[:5]) != "From " {
		return f, false
	}
	msg := line[5:]
	end := len(msg)
	at := func(i int) byte {
		if i < 0 || i >= end {
			return 0
		}
		return msg[i]
	}
	digit := func(i int) bool { c := at(i); return c >= '0' && c <= '9' }
	d := func(i int) int { return int(at(i) - '0') }
	p := 0
	// sender
	if at(p) == '"' {
		esc := false
		p++
		for p < end && (msg[p] != '"' || esc) {
			if msg[p] == '\r' || msg[p] == '\n' {
				return f, false
			}
			esc = msg[p] == '\\'
			p++
		}
		p++
	}
	for p < end && msg[p] != ' ' {
		if msg[p] == '\r' || msg[p] == '\n' {
			return f, false
		}
		p++
	}
	senderEnd := min(p, end)
	for p < end && msg[p] == ' ' {
		p++
	}
	// "Thu Nov  9 22:33:52 2001" minus seconds and zone: 21 bytes.
	if p+29-3-5 > end {
		return f, false
	}
	var mon, mday, hour, minute, sec, year int
	month := func(i int) bool {
		for m, name := range months {
			if strings.EqualFold(name, string([]byte{at(i), at(i + 1), at(i + 2)})) {
				mon = m
				return at(i+3) == ' '
			}
		}
		if at(i) == '?' && at(i+1) == '?' && at(i+2) == '?' {
			mon = 0 // Dovecot's hack for one special mbox
			return at(i+3) == ' '
		}
		return false
	}
	yearAt := func(i int) bool {
		if !digit(i) || !digit(i+1) || !digit(i+2) || !digit(i+3) {
			return false
		}
		year = d(i)*1000 + d(i+1)*100 + d(i+2)*10 + d(i+3)
		return true
	}
	p += 4 // weekday, not checked
	alt := false
	if !month(p) {
		// "Thu, 9 Nov 2002 22:33:52"
		alt = true
		p++
		if !digit(p) {
			return f, false
		}
		mday = d(p)
		p++
		if digit(p) {
			mday = mday*10 + d(p)
			p++
		}
		if at(p) != ' ' {
			return f, false
		}
		p++
		if !month(p) {
			return f, false
		}
		p += 4
		if !yearAt(p) {
			return f, false
		}
		p += 5
	} else {
		p += 4
		if at(p) == ' ' {
			p++
		}
		if at(p+1) == ' ' {
			if !digit(p) {
				return f, false
			}
			mday = d(p)
			p += 2
		} else {
			if !digit(p) || !digit(p+1) || at(p+2) != ' ' {
				return f, false
			}
			mday = d(p)*10 + d(p+1)
			p += 3
		}
	}
	if mday == 0 {
		mday = 1
	}
	if !digit(p) || !digit(p+1) || at(p+2) != ':' {
		return f, false
	}
	hour = d(p)*10 + d(p+1)
	p += 3
	if !digit(p) || !digit(p+1) {
		return f, false
	}
	minute = d(p)*10 + d(p+1)
	p += 2
	if at(p) == ':' {
		p++
		if !digit(p) || !digit(p+1) {
			return f, false
		}
		sec = d(p)*10 + d(p+1)
		p += 2
		if !alt {
			if at(p) != ' ' {
				return f, false
			}
			p++
		}
	} else if !alt {
		if at(p) != ' ' {
			return f, false
		}
		p++
	}
	zone, seenZone := 0, false
	switch {
	case alt:
	case !digit(p) || !digit(p+1) || !digit(p+2) || !digit(p+3):
		// A named zone (or a numeric one, which Dovecot then skips
		// too): skip to the next space.
		for p < end && msg[p] != ' ' {
			if msg[p] == '\r' || msg[p] == '\n' {
				return f, false
			}
			p++
		}
		if p+5 > end {
			return f, false
		}
		p++
	}
	if !alt {
		if !yearAt(p) {
			return f, false
		}
		p += 4
	}
	if p != end && at(p) == ' ' && (at(p+1) == '-' || at(p+1) == '+') &&
		digit(p+2) && digit(p+3) && digit(p+4) && digit(p+5) {
		seenZone = true
		zone = d(p+2)*10*3600 + d(p+3)*3600 + d(p+4)*10*60 + d(p+5)*60
		if at(p+1) == '-' {
			zone = -zone
		}
	}
	if seenZone {
		f.date = time.Date(year, time.Month(mon+1), mday, hour, minute, sec, 0, time.UTC).Add(-time.Duration(zone) * time.Second)
	} else {
		f.date = time.Date(year, time.Month(mon+1), mday, hour, minute, sec, 0, loc)
	}
	f.sender = string(msg[:senderEnd])
	return f, true
}

// isFrom tells whether line is a From_ line that separates messages.
func isFrom(line []byte) bool {
	if len(line) < 5 || string(line[:5]) != "From " {
		return false
	}
	_, ok := parseFrom(line, time.UTC)
	return ok
}

// formatFrom renders a From_ line as Dovecot's mbox_from_create does:
// "From <sender>  Www Mmm DD HH:MM:SS YYYY\n" in loc (Dovecot: the
// server's local time). The day is zero-padded, unlike asctime().
func formatFrom(sender string, t time.Time, loc *time.Location) string {
	t = t.In(loc)
	var b strings.Builder
	b.Grow(len(sender) + 32)
	b.WriteString("From ")
	b.WriteString(sender)
	b.WriteString("  ")
	b.WriteString(weekdays[t.Weekday()])
	b.WriteByte(' ')
	b.WriteString(months[t.Month()-1])
	b.WriteByte(' ')
	two := func(n int) { b.WriteByte(byte('0' + n/10)); b.WriteByte(byte('0' + n%10)) }
	two(t.Day())
	b.WriteByte(' ')
	two(t.Hour())
	b.WriteByte(':')
	two(t.Minute())
	b.WriteByte(':')
	two(t.Second())
	b.WriteByte(' ')
	y := t.Year()
	if y < 0 || y > 9999 {
		y = 1970
	}
	b.WriteByte(byte('0' + y/1000))
	b.WriteByte(byte('0' + y/100%10))
	b.WriteByte(byte('0' + y/10%10))
	b.WriteByte(byte('0' + y%10))
	b.WriteByte('\n')
	return b.String()
}

// envelopeSender picks the sender for a new message's From_ line: the
// Return-Path address when it is a plain one, else MAILER-DAEMON (what
// Dovecot writes for an empty envelope sender).
func envelopeSender(returnPath string) string {
	s := strings.TrimSpace(returnPath)
	s = strings.TrimPrefix(s, "<")
	s = strings.TrimSuffix(s, ">")
	if s == "" || len(s) > 256 || strings.ContainsAny(s, " \t\r\n\"<>") {
		return "MAILER-DAEMON"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] >= 0x7f {
			return "MAILER-DAEMON"
		}
	}
	return s
}
