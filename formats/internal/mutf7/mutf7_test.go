package mutf7

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEncodeDecode(t *testing.T) {
	tests := []struct{ utf8, mutf7 string }{
		{"", ""},
		{"INBOX", "INBOX"},
		{"Entwürfe", "Entw&APw-rfe"}, // dovecot-storage.md §8.2
		{"R&D", "R&-D"},
		{"&", "&-"},
		{"&&", "&-&-"},
		{"With Space", "With Space"},
		{"日本語", "&ZeVnLIqe-"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"}, // RFC 3501 §5.1.3
		{"äö", "&AOQA9g-"},
		{"ä&ö", "&AOQ-&-&APY-"},
		{"😀", "&2D3eAA-"}, // a surrogate pair
		{"tab\there", "tab&AAk-here"},
		{"del\x7f", "del&AH8-"},
		{"a-b", "a-b"},
	}
	for _, tc := range tests {
		t.Run(tc.utf8, func(t *testing.T) {
			if got := Encode(tc.utf8); got != tc.mutf7 {
				t.Errorf("Encode(%q) = %q, want %q", tc.utf8, got, tc.mutf7)
			}
			got, err := Decode(tc.mutf7)
			if err != nil || got != tc.utf8 {
				t.Errorf("Decode(%q) = %q, %v, want %q", tc.mutf7, got, err, tc.utf8)
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	for _, s := range []string{
		"&",          // no closing '-'
		"&AOQ",       // no closing '-'
		"ü",          // 8-bit byte
		"a\tb",       // control character
		"&AOQ-&APY-", // adjacent runs (Encode merges them)
		"&AGE-",      // encoded 'a'
		"&ACY-",      // encoded '&'
		"&AAA-",      // encoded NUL
		"&A-",        // 6 bits: not a whole UTF-16 unit
		"&AOR-",      // nonzero padding bits
		"&2D0-",      // lone high surrogate
		"&3gA-",      // lone low surrogate
		"&A/Q-",      // '/' is not modified BASE64
		"&AOQA-",     // trailing partial unit
	} {
		if got, err := Decode(s); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("Decode(%q) = %q, %v, want ErrInvalid", s, got, err)
		}
	}
}

// FuzzMUTF7 checks Decode(Encode(x)) == x for valid UTF-8 without NUL and that Decode
// accepts only canonical encodings: Encode(Decode(s)) == s.
func FuzzMUTF7(f *testing.F) {
	for _, s := range []string{"Entw&APw-rfe", "Entwürfe", "Work\tSub", "R&-D", "&ZeVnLIqe-", "&2D3eAA-", "INBOX"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// NUL cannot be in a name (formats.ValidateName) and Dovecot's
		// decoder refuses it, so Decode does too.
		if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
			enc := Encode(s)
			dec, err := Decode(enc)
			if err != nil || dec != s {
				t.Fatalf("Decode(Encode(%q) = %q) = %q, %v", s, enc, dec, err)
			}
		}
		if dec, err := Decode(s); err == nil {
			if !utf8.ValidString(dec) {
				t.Fatalf("Decode(%q) = %q: not UTF-8", s, dec)
			}
			if enc := Encode(dec); enc != s {
				t.Fatalf("Encode(Decode(%q) = %q) = %q: not canonical", s, dec, enc)
			}
		}
	})
}
