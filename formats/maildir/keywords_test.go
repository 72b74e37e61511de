package maildir

import (
	"testing"
)

func TestParseKeywords(t *testing.T) {
	tests := []struct {
		name, data string
		want       keywordList
	}{
		{"a4", "0 $Label1\n1 Junk\n", keywordList{0: "$Label1", 1: "Junk"}},
		{"gaps", "3 d\n25 last\n", keywordList{3: "d", 25: "last"}},
		// Skipped like Dovecot skips them: no space (a .customflags
		// header), index too large or not a number, empty name, a name
		// already seen (case-insensitively).
		{"junk", "customflags\n26 x\n-1 y\nq z\n2 \n0 Junk\n1 junk\n4 two words\n", keywordList{0: "Junk", 4: "two words"}},
		{"no final newline", "0 a", keywordList{0: "a"}},
		{"empty", "", keywordList{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseKeywords([]byte(tc.data)); got != tc.want {
				t.Errorf("parseKeywords(%q) = %q, want %q", tc.data, got, tc.want)
			}
		})
	}
	kw := keywordList{0: "$Label1", 1: "Junk"}
	if got := string(formatKeywords(&kw)); got != "0 $Label1\n1 Junk\n" {
		t.Errorf("formatKeywords = %q", got)
	}
	if i := kw.lookup("junk"); i != 1 {
		t.Errorf("lookup(junk) = %d, want 1 (case-insensitive like Dovecot)", i)
	}
	if got := kw.unknownKeyword(5); got != "unknown-5" {
		t.Errorf("unknownKeyword(5) = %q", got)
	}
	kw[3] = "Unknown-5"
	if got := kw.unknownKeyword(5); got != "unknown-5?" {
		t.Errorf("unknownKeyword(5) with the name taken = %q, want unknown-5?", got)
	}
}

// FuzzParseKeywords: parsing never panics, and a parsed list written back
// parses to itself.
func FuzzParseKeywords(f *testing.F) {
	f.Add([]byte("0 $Label1\n1 Junk\n"))
	f.Add([]byte("customflags\n26 x\n2 \n0 Junk\n1 junk\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kw := parseKeywords(data)
		if again := parseKeywords(formatKeywords(&kw)); again != kw {
			t.Fatalf("parseKeywords(formatKeywords(%q)) = %q", kw, again)
		}
	})
}
