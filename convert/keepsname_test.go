package convert

import (
	"testing"

	"github.com/boxsync/boxsync/formats"
)

// TestKeepsName: which side keeps its name for a mailbox the two sides
// name differently, as dsync's walk decides it at the name it meets
// first (dsync.md §2.4 step 3), with this run's temporary names oldest.
func TestKeepsName(t *testing.T) {
	g, lower, higher := formats.GUID{0x80}, formats.GUID{0x10}, formats.GUID{0xf0}
	type node struct {
		name string
		guid formats.GUID // zero: a directory
		age  int64
	}
	side := func(idx int, nodes ...node) *treeSide {
		s := &treeSide{idx: idx, label: label(idx), byName: map[string]formats.MailboxInfo{},
			byGUID: map[formats.GUID]string{}, renamed: map[string]int64{}}
		for _, n := range nodes {
			s.byName[n.name] = formats.MailboxInfo{Name: n.name, GUID: n.guid, NoSelect: n.guid.IsZero()}
			if !n.guid.IsZero() {
				s.byGUID[n.guid] = n.name
			}
			s.renamed[n.name] = n.age
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		a, b  []node // g is the mailbox both have
		wantA bool   // a keeps its name for g
	}{
		{"newer name wins", []node{{"X", g, 5}}, []node{{"Y", g, 3}}, true},
		{"older name loses", []node{{"X", g, 3}}, []node{{"Y", g, 5}}, false},
		{"tie: the name the walk meets first", []node{{"B", g, 5}}, []node{{"A", g, 5}}, false},
		{"a temporary name loses to an unlogged one", []node{{"A-temp-1", g, temporaryAge}}, []node{{"Z", g, 0}}, false},
		{"a temporary name loses to a later one", []node{{"Z-temp-1", g, temporaryAge}}, []node{{"A", g, 9}}, false},
		// b's own name for g is newer, but the walk meets a's name first
		// and finds another mailbox of b there: that clash decides (both
		// sides' newest nodes tie, the lower GUID there is a's).
		{"another mailbox at the first name",
			[]node{{"Other", g, 0}, {"Y", higher, 7}},
			[]node{{"Other", higher, 7}, {"Y", g, 7}}, true},
		{"another mailbox at the first name, higher GUID",
			[]node{{"Other", g, 0}, {"Y", lower, 7}},
			[]node{{"Other", lower, 7}, {"Y", g, 7}}, false},
		// A directory at the first name counts with its own age.
		{"directory at the first name is newer", []node{{"D", g, 5}}, []node{{"D", formats.GUID{}, 7}, {"E", g, 4}}, false},
		{"directory at the first name is older", []node{{"D", g, 5}}, []node{{"D", formats.GUID{}, 2}, {"E", g, 4}}, true},
	} {
		a, b := side(srcIdx, tc.a...), side(dstIdx, tc.b...)
		an, bn := a.byGUID[g], b.byGUID[g]
		if got := keepsName(a, an, b, bn, g) == a; got != tc.wantA {
			t.Errorf("%s: keepsName(a %q, b %q): a keeps = %v, want %v", tc.name, an, bn, got, tc.wantA)
		}
		// The rule is symmetric: both brains decide alike.
		if got := keepsName(b, bn, a, an, g) == a; got != tc.wantA {
			t.Errorf("%s: keepsName(b %q, a %q): a keeps = %v, want %v", tc.name, bn, an, got, tc.wantA)
		}
	}
}
