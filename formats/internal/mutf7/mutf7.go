// Package mutf7 converts mailbox names between UTF-8 and IMAP's modified
// UTF-7 (RFC 3501 §5.1.3), the encoding Dovecot uses for mailbox names on
// disk unless a location says UTF-8 (dovecot-storage.md §8.2).
//
// Encode is total on valid UTF-8. Decode is strict: it accepts exactly the
// strings Encode produces, so a name read from disk and written back gives
// the same bytes (Encode(Decode(s)) == s whenever Decode succeeds).
package mutf7

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// RFC 3501 §5.1.3: modified BASE64 with ',' instead of '/'.
const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"

var b64dec = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(b64); i++ {
		t[b64[i]] = byte(i)
	}
	return t
}()

// direct tells whether c stands for itself: printable US-ASCII except '&'.
// Like Dovecot's imap_utf8_to_utf7, control characters and DEL are encoded.
func direct(c byte) bool { return c >= 0x20 && c <= 0x7e && c != '&' }

// Encode converts UTF-8 to modified UTF-7. Invalid UTF-8 bytes are encoded
// as U+FFFD, and a NUL is encoded although Decode refuses it; callers
// validate names first (formats.ValidateName).
func Encode(s string) string {
	i := 0
	for i < len(s) && direct(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	var units []uint16
	for i < len(s) {
		c := s[i]
		if c == '&' {
			b.WriteString("&-")
			i++
			continue
		}
		if direct(c) {
			b.WriteByte(c)
			i++
			continue
		}
		units = units[:0]
		for i < len(s) && !direct(s[i]) && s[i] != '&' {
			r, n := utf8.DecodeRuneInString(s[i:])
			units = utf16.AppendRune(units, r)
			i += n
		}
		encodeUnits(&b, units)
	}
	return b.String()
}

func encodeUnits(b *strings.Builder, units []uint16) {
	b.WriteByte('&')
	var acc uint32
	bits := 0
	for _, u := range units {
		acc = acc<<16 | uint32(u)
		bits += 16
		for bits >= 6 {
			bits -= 6
			b.WriteByte(b64[(acc>>bits)&0x3f])
		}
		acc &= 1<<bits - 1
	}
	if bits > 0 {
		b.WriteByte(b64[(acc<<(6-bits))&0x3f])
	}
	b.WriteByte('-')
}

// ErrInvalid is wrapped by every Decode error.
var ErrInvalid = errors.New("invalid modified UTF-7")

func invalid(s string, pos int, why string) error {
	return fmt.Errorf("%w: %q at byte %d: %s", ErrInvalid, s, pos, why)
}

// Decode converts modified UTF-7 to UTF-8. It rejects everything Encode
// would not have produced: bytes outside printable US-ASCII, a '&' without
// a closing '-', bad BASE64, nonzero padding bits, an encoded NUL or
// printable ASCII character, unpaired surrogates, and two adjacent encoded
// runs.
func Decode(s string) (string, error) {
	i := strings.IndexByte(s, '&')
	for j := 0; j < len(s); j++ {
		if s[j] < 0x20 || s[j] > 0x7e {
			return "", invalid(s, j, "byte outside printable US-ASCII")
		}
	}
	if i < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for i < len(s) {
		c := s[i]
		if c != '&' {
			b.WriteByte(c)
			i++
			continue
		}
		start := i
		i++
		end := strings.IndexByte(s[i:], '-')
		if end < 0 {
			return "", invalid(s, start, "'&' without closing '-'")
		}
		if end == 0 {
			b.WriteByte('&')
			i++
			continue
		}
		if err := decodeRun(&b, s, i, i+end); err != nil {
			return "", err
		}
		i += end + 1
		if i < len(s) && s[i] == '&' && (i+1 >= len(s) || s[i+1] != '-') {
			return "", invalid(s, i, "adjacent encoded runs")
		}
	}
	return b.String(), nil
}

// decodeRun decodes the BASE64 between s[from] and s[to] (exclusive).
func decodeRun(b *strings.Builder, s string, from, to int) error {
	var acc uint32
	bits := 0
	var units []uint16
	for j := from; j < to; j++ {
		v := b64dec[s[j]]
		if v == 0xff {
			return invalid(s, j, "bad modified BASE64 character")
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 16 {
			bits -= 16
			units = append(units, uint16(acc>>bits))
			acc &= 1<<bits - 1
		}
	}
	if bits >= 6 || acc != 0 {
		return invalid(s, to, "BASE64 run does not end on a UTF-16 boundary")
	}
	for k := 0; k < len(units); k++ {
		u := units[k]
		var r rune
		switch {
		case utf16.IsSurrogate(rune(u)):
			if k+1 >= len(units) {
				return invalid(s, from, "unpaired surrogate")
			}
			r = utf16.DecodeRune(rune(u), rune(units[k+1]))
			if r == utf8.RuneError {
				return invalid(s, from, "unpaired surrogate")
			}
			k++
		case u == 0:
			return invalid(s, from, "encoded NUL")
		case u < 0x80 && (direct(byte(u)) || u == '&'):
			return invalid(s, from, "encoded printable ASCII character")
		default:
			r = rune(u)
		}
		b.WriteRune(r)
	}
	return nil
}
