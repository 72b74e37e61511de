package maildir

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// a4Uidlist is the dovecot-uidlist of dovecot-storage.md Appendix A.4.
const a4Uidlist = "3 V1795938769 N3 G20074113d1d90b6be029000083ecc375\n" +
	"1 :1795938769.M323004P10720.vm,S=101,W=107\n" +
	"2 :1795938769.M342772P10721.vm,S=53,W=58\n"

type recView struct {
	UID  uint32
	Ext  string
	Name string
}

func recsOf(t *table) []recView {
	var out []recView
	for i := range t.recs {
		r := &t.recs[i]
		out = append(out, recView{r.uid, t.ext(r), t.name(r)})
	}
	return out
}

func TestParseUidlist(t *testing.T) {
	tests := []struct {
		name string
		data string
		hdr  string // fmt of the header's interesting fields
		recs string
		next uint32
	}{
		{"a4", a4Uidlist, "3 1795938769 3 20074113d1d90b6be029000083ecc375 true \"\"",
			"[{1  1795938769.M323004P10720.vm,S=101,W=107} {2  1795938769.M342772P10721.vm,S=53,W=58}]", 3},
		// Dovecot appends without rewriting the header: N can lag.
		{"appended", "3 V1 N1 G00000000000000000000000000000001\n1 :a\n7 G0123 P:x O3 :b\n", "3 1 1 00000000000000000000000000000001 true \"\"",
			"[{1  a} {7 G0123 P:x O3 b}]", 8},
		// Unknown header fields are kept; invalid record fields dropped.
		{"ext", "3 V5 N9 Gffffffffffffffffffffffffffffffff P%u Xyz\n4 abc W12 :c:2,S\n", "3 5 9 ffffffffffffffffffffffffffffffff true \"P%u Xyz\"",
			"[{4 W12 c:2,S}]", 9},
		{"no guid", "3 V5 N9\n", "3 5 9 00000000000000000000000000000000 false \"\"", "[]", 9},
		{"version 1", "1 12345 20\n3 1035478339.27041_118.foo.org:2,S\n5 x\n", "1 12345 20 00000000000000000000000000000000 false \"\"",
			"[{3  1035478339.27041_118.foo.org:2,S} {5  x}]", 20},
		// The same file twice: the later UID wins.
		{"duplicate", "3 V5 N9 G00000000000000000000000000000001\n1 :a\n2 :b\n3 :a\n", "3 5 9 00000000000000000000000000000001 true \"\"",
			"[{2  b} {3  a}]", 9},
		// A last line without its newline is still being appended.
		{"partial", "3 V5 N2 G00000000000000000000000000000001\n1 :a\n2 :b,S=1", "3 5 2 00000000000000000000000000000001 true \"\"",
			"[{1  a}]", 2},
		{"header without newline", "3 V5 N2 G00000000000000000000000000000001", "3 5 2 00000000000000000000000000000001 true \"\"", "[]", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, tab, next, err := parseUidlist([]byte(tc.data))
			if err != nil {
				t.Fatalf("parseUidlist = %v", err)
			}
			hdr := fmt.Sprintf("%d %d %d %s %v %q", h.Version, h.UIDValidity, h.NextUID, h.GUID, h.HasGUID, h.Ext)
			if hdr != tc.hdr || fmt.Sprint(recsOf(tab)) != tc.recs || next != tc.next {
				t.Errorf("parseUidlist(%q) =\n %s %v next %d\nwant\n %s %s next %d", tc.data, hdr, recsOf(tab), next, tc.hdr, tc.recs, tc.next)
			}
		})
	}
}

func TestParseUidlistBroken(t *testing.T) {
	tests := []struct {
		data string
		line int
		why  string
	}{
		{"", 1, "invalid version"},
		{"x V1 N1\n", 1, "invalid version"},
		{"2 V1 N1\n", 1, "unsupported version 2"},
		{"3 V0 N1 G00000000000000000000000000000001\n", 1, "broken header"},
		{"3 V1 N1 Gxyz\n", 1, "invalid mailbox GUID"},
		{"3 Vx N1\n", 1, "UID_VALIDITY"},
		{"1 5\n", 1, "version 1"},
		{a4Uidlist + "garbage\n", 4, "invalid data"},
		{a4Uidlist + "2 :dup-uid\n", 4, "not ordered"},
		{a4Uidlist + "5 G1\n", 4, "invalid extended fields"},
		{a4Uidlist + "5 :\n", 4, "invalid extended fields"},
		{a4Uidlist + "5 :a/b\n", 4, "broken file name"},
		{a4Uidlist + "4294967295 :x\n", 4, "UID too high"},
		{"1 1 5\n5 x\n", 2, "larger than next_uid"},
	}
	for _, tc := range tests {
		_, _, _, err := parseUidlist([]byte(tc.data))
		var ue *uidlistError
		if !errors.As(err, &ue) || ue.Line != tc.line || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("parseUidlist(%q) = %v, want line %d: %s", tc.data, err, tc.line, tc.why)
		}
	}
}

func TestFormatUidlist(t *testing.T) {
	h, tab, _, err := parseUidlist([]byte(a4Uidlist))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(formatUidlist(h, tab)); got != a4Uidlist {
		t.Errorf("formatUidlist = %q, want %q", got, a4Uidlist)
	}
	// Extension fields and unknown header fields survive a rewrite; the
	// flags part of a version 1 name does not go into the new file.
	in := "3 V5 N9 Gffffffffffffffffffffffffffffffff P%u Xyz\n4 W12 Gabc :c\n6 :d\n"
	h, tab, _, _ = parseUidlist([]byte(in))
	if got := string(formatUidlist(h, tab)); got != in {
		t.Errorf("formatUidlist = %q, want %q", got, in)
	}
	h, tab, _, _ = parseUidlist([]byte("1 12345 20\n3 a:2,S\n"))
	h.GUID, h.HasGUID = [16]byte{1}, true
	if got, want := string(formatUidlist(h, tab)), "3 V12345 N20 G01000000000000000000000000000000\n3 :a\n"; got != want {
		t.Errorf("formatUidlist(v1) = %q, want %q", got, want)
	}
}

// FuzzParseUidlist: parsing never panics, and what parses is written back
// and parsed again to the same records.
func FuzzParseUidlist(f *testing.F) {
	f.Add([]byte(a4Uidlist))
	f.Add([]byte("3 V1 N1 G00000000000000000000000000000001\n1 :a\n7 G0123 P:x O3 :b\n"))
	f.Add([]byte("1 12345 20\n3 1035478339.27041_118.foo.org:2,S\n"))
	f.Add([]byte("3 V5 N9 Gffffffffffffffffffffffffffffffff P%u Xyz\n4 abc W12 :c:2,S\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, tab, next, err := parseUidlist(data)
		if err != nil {
			return
		}
		if !h.HasGUID {
			h.GUID, h.HasGUID = [16]byte{9}, true
		}
		h.NextUID = next
		out := formatUidlist(h, tab)
		h2, tab2, next2, err := parseUidlist(out)
		if err != nil {
			t.Fatalf("reparse of %q: %v", out, err)
		}
		strip := func(v []recView) string {
			for i := range v {
				v[i].Name = baseOf(v[i].Name)
			}
			return fmt.Sprint(v)
		}
		if h2.UIDValidity != h.UIDValidity || next2 != next || h2.GUID != h.GUID || h2.Ext != h.Ext ||
			strip(recsOf(tab2)) != strip(recsOf(tab)) {
			t.Fatalf("round trip of %q:\n%q\n%+v %v\n%+v %v", data, out, h, recsOf(tab), h2, recsOf(tab2))
		}
	})
}
