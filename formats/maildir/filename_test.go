package maildir

import (
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

func TestParseFileName(t *testing.T) {
	tests := []struct {
		name  string
		want  fileName
		flags formats.Flags
		kws   uint32
		size  int64 // -1: no S=
		vsize int64 // -1: no W=
	}{
		// dovecot-storage.md Appendix A.4.
		{"1795938769.M323004P10720.vm,S=101,W=107:2,Sab",
			fileName{"1795938769.M323004P10720.vm,S=101,W=107", "2,Sab", true}, formats.FlagSeen, 0b11, 101, 107},
		{"1795938769.M342772P10721.vm,S=53,W=58:2,DFRT",
			fileName{"1795938769.M342772P10721.vm,S=53,W=58", "2,DFRT", true},
			formats.FlagDraft | formats.FlagFlagged | formats.FlagAnswered | formats.FlagDeleted, 0, 53, 58},
		// No ":2,": a message without flags (Dovecot accepts it).
		{"1700000000.M1P2.host", fileName{"1700000000.M1P2.host", "", false}, 0, 0, -1, -1},
		{"1700000000.M1P2.host:2,", fileName{"1700000000.M1P2.host", "2,", true}, 0, 0, -1, -1},
		// Experimental info "1," carries no flags.
		{"x:1,S", fileName{"x", "1,S", true}, 0, 0, -1, -1},
		// Unknown letters (P passed) and a second flag set are ignored.
		{"x,S=5:2,PSz,FT", fileName{"x,S=5", "2,PSz,FT", true}, formats.FlagSeen, 1 << 25, 5, -1},
		// Flags come from the last ':'; the base ends at the first.
		{"a:b:2,F", fileName{"a", "b:2,F", true}, formats.FlagFlagged, 0, -1, -1},
		// A broken size field is no size.
		{"x,S=12a:2,", fileName{"x,S=12a", "2,", true}, 0, 0, -1, -1},
		{"x,W=7,S=3", fileName{"x,W=7,S=3", "", false}, 0, 0, 3, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseFileName(tc.name)
			if got != tc.want {
				t.Errorf("parseFileName(%q) = %+v, want %+v", tc.name, got, tc.want)
			}
			if got.String() != tc.name {
				t.Errorf("parseFileName(%q).String() = %q", tc.name, got.String())
			}
			flags, kws := parseFlags(tc.name)
			if flags != tc.flags || kws != tc.kws {
				t.Errorf("parseFlags(%q) = %s, %b, want %s, %b", tc.name, flags, kws, tc.flags, tc.kws)
			}
			if n, ok := extraSize(got.Base, 'S'); (ok && n != tc.size) || (!ok && tc.size != -1) {
				t.Errorf("extraSize(%q, S) = %d, %v, want %d", got.Base, n, ok, tc.size)
			}
			if n, ok := extraSize(got.Base, 'W'); (ok && n != tc.vsize) || (!ok && tc.vsize != -1) {
				t.Errorf("extraSize(%q, W) = %d, %v, want %d", got.Base, n, ok, tc.vsize)
			}
		})
	}
}

func TestSetFlags(t *testing.T) {
	all := formats.SystemFlags
	tests := []struct {
		name  string
		flags formats.Flags
		kws   uint32
		want  string
	}{
		{"base", formats.FlagSeen, 0, "base:2,S"},
		{"base:2,", all, 0b101, "base:2,DFRSTac"},
		{"base,S=1,W=2:2,S", 0, 0, "base,S=1,W=2:2,"},
		// Unknown letters stay where ASCII order puts them.
		{"b:2,PS", formats.FlagFlagged | formats.FlagSeen, 0, "b:2,FPS"},
		{"b:2,Sa{", formats.FlagDraft, 0b10, "b:2,Db{"},
		// A second flag set is kept verbatim.
		{"b:2,S,xyz", formats.FlagFlagged, 0, "b:2,F,xyz"},
		// Experimental info is replaced.
		{"b:1,abc", formats.FlagSeen, 0, "b:2,S"},
		{"a:b:2,F", formats.FlagSeen, 0, "a:b:2,S"},
	}
	for _, tc := range tests {
		if got := setFlags(tc.name, tc.flags, tc.kws); got != tc.want {
			t.Errorf("setFlags(%q, %s, %b) = %q, want %q", tc.name, tc.flags, tc.kws, got, tc.want)
		}
	}
}

func TestSortCmp(t *testing.T) {
	// Dovecot gives new files UIDs in this order (maildir_filename_sort_cmp).
	names := []string{
		"999.M5P1.host",              // fewer seconds first, though longer numbers sort later as text
		"1000.M2P1.host",             // same second: microseconds decide
		"1000.M10P1.host:2,S",        // 10 > 2 numerically
		"1000.P1Q.host",              // no usecs: base name comparison
		"1000.P2Q.host",              //
		"1700000000.M1P1.host,S=5",   //
		"courier-style-name-no-secs", // 0 seconds: sorts... first
	}
	want := []string{names[6], names[0], names[1], names[2], names[3], names[4], names[5]}
	got := append([]string(nil), names...)
	sortNames(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("sorted = %q\nwant %q", got, want)
	}
}

func sortNames(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && sortCmp(s[j-1], s[j]) > 0; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
}

func TestNewBaseName(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		b := newBaseName()
		if seen[b] {
			t.Fatalf("newBaseName() repeated %q", b)
		}
		seen[b] = true
		if !validBaseName(b) || strings.ContainsAny(b, ",:/") {
			t.Fatalf("newBaseName() = %q: not a valid base name", b)
		}
		if _, ok := tmpOwner(b); !ok {
			t.Fatalf("tmpOwner(%q) failed", b)
		}
	}
	if got := escapeHost("a/b:c,d"); got != `a\057b\072c\054d` {
		t.Errorf("escapeHost = %q", got)
	}
}

// FuzzParseFilename: parse(format(x)) == x, and the flag editor keeps
// what it does not own.
func FuzzParseFilename(f *testing.F) {
	for _, s := range []string{
		"1795938769.M323004P10720.vm,S=101,W=107:2,Sab",
		"1795938769.M342772P10721.vm,S=53,W=58:2,DFRT",
		"1700000000.M1P2.host", "x:1,S", "x,S=5:2,PSz,FT", "a:b:2,F", "",
	} {
		f.Add(s, uint8(0), uint32(0))
	}
	f.Fuzz(func(t *testing.T, name string, flags uint8, kws uint32) {
		fn := parseFileName(name)
		if fn.String() != name {
			t.Fatalf("parseFileName(%q).String() = %q", name, fn.String())
		}
		if again := parseFileName(fn.String()); again != fn {
			t.Fatalf("parse(format(%+v)) = %+v", fn, again)
		}
		extraSize(fn.Base, 'S')
		f0 := formats.Flags(flags) & formats.SystemFlags
		k0 := kws & (1<<maxKeywords - 1)
		set := setFlags(name, f0, k0)
		gf, gk := parseFlags(set)
		if gf != f0 || gk != k0 {
			t.Fatalf("parseFlags(setFlags(%q, %s, %b) = %q) = %s, %b", name, f0, k0, set, gf, gk)
		}
		if again := setFlags(set, f0, k0); again != set {
			t.Fatalf("setFlags is not idempotent: %q then %q", set, again)
		}
		sortCmp(name, set)
	})
}
