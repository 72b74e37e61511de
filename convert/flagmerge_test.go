package convert

import (
	"slices"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

func TestMergeFlags(t *testing.T) {
	const (
		seen  = formats.FlagSeen
		ans   = formats.FlagAnswered
		flag  = formats.FlagFlagged
		draft = formats.FlagDraft
	)
	msg := func(f formats.Flags, kws ...string) formats.Message { return formats.Message{Flags: f, Keywords: kws} }
	for _, tc := range []struct {
		name      string
		a         formats.Message
		ha        formats.FlagChange
		b         formats.Message
		hb        formats.FlagChange
		preferB   bool
		wantFlags formats.Flags
		wantKws   []string
	}{
		{name: "both added different flags", a: msg(seen), ha: formats.FlagChange{Add: seen},
			b: msg(ans), hb: formats.FlagChange{Add: ans}, preferB: true, wantFlags: seen | ans},
		{name: "no history: the preferred side wins", a: msg(seen), b: msg(ans), preferB: true, wantFlags: ans},
		{name: "no history: the source wins ties", a: msg(seen), b: msg(ans), wantFlags: seen},
		{name: "one side's history only", a: msg(seen | flag), ha: formats.FlagChange{Add: seen},
			b: msg(0), preferB: true, wantFlags: seen},
		{name: "add vs remove: preferred remove", a: msg(seen), ha: formats.FlagChange{Add: seen},
			b: msg(0), hb: formats.FlagChange{Remove: seen}, preferB: true, wantFlags: 0},
		{name: "add vs remove: preferred add", a: msg(seen), ha: formats.FlagChange{Add: seen},
			b: msg(0), hb: formats.FlagChange{Remove: seen}, preferB: false, wantFlags: seen},
		{name: "removed on one side, other added another", a: msg(draft), ha: formats.FlagChange{Remove: flag},
			b: msg(flag | draft | ans), hb: formats.FlagChange{Add: ans}, preferB: true, wantFlags: draft | ans},
		{name: "keywords from both sides", a: msg(0, "kwA"), ha: formats.FlagChange{AddKeywords: []string{"kwA"}},
			b: msg(0, "kwB"), hb: formats.FlagChange{AddKeywords: []string{"kwB"}}, preferB: true, wantKws: []string{"kwB", "kwA"}},
		{name: "keyword removed vs kept", a: msg(0, "x", "y"), b: msg(0, "y"), hb: formats.FlagChange{RemoveKeywords: []string{"x"}},
			wantKws: []string{"y"}},
		{name: "keyword reset", a: msg(0, "x", "y"), b: msg(0, "z"), hb: formats.FlagChange{KeywordsReset: true, AddKeywords: []string{"z"}},
			wantKws: []string{"z"}},
		{name: "unchanged keywords keep the preferred order", a: msg(0, "x", "y"), b: msg(0, "y", "x"), preferB: true,
			wantKws: []string{"y", "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, k := mergeFlags(tc.a, tc.ha, tc.b, tc.hb, tc.preferB)
			if f != tc.wantFlags || !slices.Equal(k, tc.wantKws) {
				t.Errorf("mergeFlags = %v %q, want %v %q", f, k, tc.wantFlags, tc.wantKws)
			}
			// Symmetric: merged from the other side it is the same.
			f2, k2 := mergeFlags(tc.b, tc.hb, tc.a, tc.ha, !tc.preferB)
			if f2 != f || !sameSet(k2, k) {
				t.Errorf("mirrored mergeFlags = %v %q, want %v %q", f2, k2, f, k)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
