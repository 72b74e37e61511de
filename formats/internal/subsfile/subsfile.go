// Package subsfile reads and writes Dovecot's subscriptions file
// (dovecot-storage.md §8.1; dovecot 2.3.19.1 subscription-file.c).
//
// Version 2, which Dovecot writes, starts with the 5-byte header
// "V\t2\n\n"; each following line is one mailbox's storage name with its
// hierarchy levels separated by TAB and each level tab-escaped (0x01 →
// 0x01 '1', TAB → 0x01 't', CR → 0x01 'r', LF → 0x01 'n'). A file without
// the header is version 1: one name per line, levels separated by the
// layout's hierarchy separator.
//
// Names are storage names: the levels as the directories spell them
// (modified UTF-7 unless the location says UTF-8). Converting them to and
// from contract names is the driver's job.
package subsfile

import (
	"bytes"
	"strings"
)

// Header starts a version 2 file.
const Header = "V\t2\n\n"

// Parse returns the subscribed names in data, each as its hierarchy
// levels, in file order. sep is the hierarchy separator used by version 1
// files. Empty lines are skipped, a trailing CR is dropped (CRLF files) and
// so is a trailing separator (old Dovecot versions and other software
// wrote "Work/"). Parse never fails: like Dovecot it takes what it can.
func Parse(data []byte, sep byte) (names [][]string, version int) {
	version = 1
	if bytes.HasPrefix(data, []byte(Header)) {
		version = 2
		data = data[len(Header):]
	}
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if levels := parseLine(line, version, sep); levels != nil {
			names = append(names, levels)
		}
	}
	return names, version
}

func parseLine(line []byte, version int, sep byte) []string {
	if version == 1 {
		line = bytes.TrimSuffix(line, []byte{sep})
		if len(line) == 0 {
			return nil
		}
		return strings.Split(string(line), string(sep))
	}
	if len(line) == 0 {
		return nil
	}
	var levels []string
	for _, l := range bytes.Split(line, []byte{'\t'}) {
		levels = append(levels, Unescape(string(l)))
	}
	if len(levels) > 1 && levels[len(levels)-1] == "" {
		levels = levels[:len(levels)-1]
	}
	return levels
}

// Format writes names as a version 2 file.
func Format(names [][]string) []byte {
	var b bytes.Buffer
	b.WriteString(Header)
	for _, levels := range names {
		b.WriteString(formatLine(levels))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func formatLine(levels []string) string {
	var b strings.Builder
	for i, l := range levels {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(Escape(l))
	}
	return b.String()
}

// Update returns data with the name levels added (subscribe) or removed,
// keeping every other line as it was, and whether anything changed. Like
// Dovecot's subsfile_set_subscribed it keeps a version 1 file at version 1
// (joining the levels with sep) and writes a missing file as version 2.
// INBOX is always spelled "INBOX".
func Update(data []byte, sep byte, levels []string, subscribe bool) ([]byte, bool) {
	if len(levels) == 1 && strings.EqualFold(levels[0], "INBOX") {
		levels = []string{"INBOX"}
	}
	version := 2
	if len(data) > 0 && !bytes.HasPrefix(data, []byte(Header)) {
		version = 1
	}
	var want string
	var b bytes.Buffer
	if version == 2 {
		want = formatLine(levels)
		b.WriteString(Header)
		data = bytes.TrimPrefix(data, []byte(Header))
	} else {
		want = strings.Join(levels, string(sep))
	}
	found, changed := false, false
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if string(line) == want {
			found = true
			if !subscribe {
				changed = true
				continue
			}
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if subscribe && !found {
		b.WriteString(want)
		b.WriteByte('\n')
		changed = true
	}
	return b.Bytes(), changed
}

// Escape tab-escapes one level (dovecot 2.3.19.1 strescape.c:
// str_append_tabescaped).
func Escape(s string) string {
	if !strings.ContainsAny(s, "\x01\t\r\n") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0x01:
			b.WriteString("\x011")
		case '\t':
			b.WriteString("\x01t")
		case '\r':
			b.WriteString("\x01r")
		case '\n':
			b.WriteString("\x01n")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Unescape reverses Escape (str_append_tabunescaped): 0x01 followed by
// '0', '1', 't', 'r' or 'n' is NUL, 0x01, TAB, CR or LF; 0x01 followed by
// any other byte is that byte; a final lone 0x01 is dropped.
func Unescape(s string) string {
	if strings.IndexByte(s, 0x01) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != 0x01 {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(s) {
			break
		}
		switch s[i] {
		case '0':
			b.WriteByte(0)
		case '1':
			b.WriteByte(0x01)
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
