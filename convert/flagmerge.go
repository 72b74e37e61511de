package convert

import (
	"slices"
	"strings"

	"github.com/boxsync/boxsync/formats"
)

// mergeFlags merges the flags and keywords of one message present on both
// sides, from each side's current flags and its changes since the last
// common modseq (formats.ChangeHistory; the zero FlagChange where a side
// has none), as dsync-mailbox-import.c merge_flags and merge_keywords do
// (dsync.md §2.8b), per flag:
//
//   - a flag one side added and the other removed is a conflict: the
//     preferred side's change stands (preferB: the destination's, which
//     has the higher modseq; the source wins ties as dsync's master does);
//   - only flags that differ between the sides change;
//   - what each side then wants is its flags with both sides' adds and
//     without their removes; where that still differs, the preferred
//     side's wins.
//
// So if one side added \Seen and the other \Answered, both survive. Both
// sides get the result: the rule is symmetric, as dsync's two brains must
// agree. Keywords merge the same way, one name at a time (names compare
// case-insensitively, as Dovecot's keyword lookup does).
func mergeFlags(a formats.Message, ha formats.FlagChange, b formats.Message, hb formats.FlagChange, preferB bool) (formats.Flags, []string) {
	flags := formats.Flags(mergeBits(uint64(a.Flags), uint64(ha.Add), uint64(ha.Remove),
		uint64(b.Flags), uint64(hb.Add), uint64(hb.Remove), preferB))

	// Keywords: the names either side has or changed, in the preferred
	// side's order first, so that an unchanged set keeps its order (the
	// stores compare keyword lists in order).
	first, second := a.Keywords, b.Keywords
	if preferB {
		first, second = second, first
	}
	var names []string
	seen := map[string]bool{}
	add := func(ks ...[]string) {
		for _, l := range ks {
			for _, k := range l {
				if f := strings.ToLower(k); !seen[f] {
					seen[f] = true
					names = append(names, k)
				}
			}
		}
	}
	add(first, second, ha.AddKeywords, hb.AddKeywords, ha.RemoveKeywords, hb.RemoveKeywords)
	has := func(l []string, k string) bool {
		return slices.ContainsFunc(l, func(x string) bool { return strings.EqualFold(x, k) })
	}
	bit := func(v bool) uint64 {
		if v {
			return 1
		}
		return 0
	}
	removed := func(h formats.FlagChange, k string) bool {
		return has(h.RemoveKeywords, k) || (h.KeywordsReset && !has(h.AddKeywords, k))
	}
	var kws []string
	for _, k := range names {
		w := mergeBits(bit(has(a.Keywords, k)), bit(has(ha.AddKeywords, k)), bit(removed(ha, k)),
			bit(has(b.Keywords, k)), bit(has(hb.AddKeywords, k)), bit(removed(hb, k)), preferB)
		if w != 0 {
			kws = append(kws, k)
		}
	}
	return flags, kws
}

// mergeBits is merge_flags over bit sets: a's and b's final bits, adds and
// removes; the result is what both sides end with.
func mergeBits(aFinal, aAdd, aRemove, bFinal, bAdd, bRemove uint64, preferB bool) uint64 {
	aAdd &^= aRemove // a net change never both adds and removes
	bAdd &^= bRemove
	if c := aAdd & bRemove; preferB {
		aAdd &^= c
	} else {
		bRemove &^= c
	}
	if c := aRemove & bAdd; preferB {
		aRemove &^= c
	} else {
		bAdd &^= c
	}
	differ := aFinal ^ bFinal
	adds := (aAdd | bAdd) & differ
	removes := (aRemove | bRemove) & differ
	aWant := (aFinal | adds) &^ removes
	bWant := (bFinal | adds) &^ removes
	if preferB {
		return bWant
	}
	return aWant
}

// flagsDiffer tells whether some mail both sides have (common, or linked
// new mail) differs in flags or keywords: only then does the merge need
// the sides' change histories, which can mean reading a whole
// transaction log.
func (m *merger) flagsDiffer() bool {
	kw := m.a.st.Caps.Keywords && m.b.st.Caps.Keywords
	differ := func(x, y formats.Message) bool {
		return x.Flags != y.Flags || (kw && !sameKeywords(x.Keywords, y.Keywords))
	}
	for _, c := range m.common {
		if differ(m.a.msgs[c[0]], m.b.msgs[c[1]]) {
			return true
		}
	}
	for _, e := range m.entries {
		if e.ai >= 0 && e.bi >= 0 && differ(m.a.msgs[e.ai], m.b.msgs[e.bi]) {
			return true
		}
	}
	return false
}

// sameKeywords compares keyword sets, ignoring order and case.
func sameKeywords(x, y []string) bool {
	if len(x) != len(y) {
		return false
	}
	for _, k := range x {
		if !slices.ContainsFunc(y, func(o string) bool { return strings.EqualFold(o, k) }) {
			return false
		}
	}
	return true
}
