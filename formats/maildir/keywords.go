package maildir

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// dovecot-keywords (dovecot-storage.md §6.3; dovecot 2.3.19.1
// maildir-keywords.c): one line "<index> <name>" per keyword; index n is
// the file-name letter 'a'+n.
const keywordsName = "dovecot-keywords"

// keywordList maps letter index to keyword name; "" is a free slot.
type keywordList [maxKeywords]string

// parseKeywords reads a dovecot-keywords file the way Dovecot does
// (maildir_keywords_sync): lines without a space, with a bad or too large
// index, with an empty name, or repeating a name (compared
// case-insensitively, as Dovecot's hash does) are skipped.
func parseKeywords(data []byte) keywordList {
	var kw keywordList
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		sp := bytes.IndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		idx, err := strconv.ParseUint(string(line[:sp]), 10, 32)
		name := string(line[sp+1:])
		// QUIRK: a name we could not write back (CR, NUL) is skipped too.
		if err != nil || idx >= maxKeywords || !validKeyword(name) || kw.lookup(name) >= 0 {
			continue
		}
		kw[idx] = name
	}
	return kw
}

// formatKeywords writes the file (maildir_keywords_write_fd).
func formatKeywords(kw *keywordList) []byte {
	var b bytes.Buffer
	for i, name := range kw {
		if name != "" {
			fmt.Fprintf(&b, "%d %s\n", i, name)
		}
	}
	return b.Bytes()
}

// lookup returns the letter index of name, compared case-insensitively
// like Dovecot (strcase_hash/strcasecmp), or -1.
func (kw *keywordList) lookup(name string) int {
	for i, n := range kw {
		if n != "" && asciiEqualFold(n, name) {
			return i
		}
	}
	return -1
}

// full tells whether every letter a–z has a name: a keyword not in the
// list then gets no letter (maildir_keywords_lookup_or_create).
func (kw *keywordList) full() bool {
	for _, n := range kw {
		if n == "" {
			return false
		}
	}
	return true
}

// unknownKeyword is the name Dovecot gives a letter that dovecot-keywords
// does not name (maildir_keywords_char_idx: "unknown-<n>", with '?'
// appended while that name is taken).
func (kw *keywordList) unknownKeyword(idx int) string {
	name := "unknown-" + strconv.Itoa(idx)
	for kw.lookup(name) >= 0 {
		name += "?"
	}
	return name
}

// validKeyword tells whether name can be stored in dovecot-keywords.
func validKeyword(name string) bool {
	return name != "" && !strings.ContainsAny(name, "\r\n\x00")
}

// asciiEqualFold is strcasecmp(a, b) == 0 in the C locale.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// asciiLower lowercases A-Z, the folding asciiEqualFold compares by.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
