package convert

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestWalkCompare: names compare as dsync's depth-first walk over sorted
// siblings meets them.
func TestWalkCompare(t *testing.T) {
	for _, tc := range []struct {
		x, y string
		want int // sign
	}{
		{"A", "B", -1},
		{"Tie1", "Tie2", -1},
		{"Old", "Old/Child", -1},
		{"Old/Other", "Old-x", -1}, // byte-wise '-' < '/', but Old's children come first
		{"Old-x", "Old/Other", 1},
		{"Old/Z", "Old0", -1},
		{"a b/c", "a/b", 1}, // "a" < "a b" as siblings
		{"Same", "Same", 0},
		{"X/Y/Z", "X/Y", 1},
		{"X/Y-1", "X/Y/1", 1},
	} {
		got := walkCompare(tc.x, tc.y)
		if (got < 0) != (tc.want < 0) || (got > 0) != (tc.want > 0) {
			t.Errorf("walkCompare(%q, %q) = %d, want sign %d", tc.x, tc.y, got, tc.want)
		}
	}
}

// TestWalkCompareIsTreeOrder: sorting by walkCompare is the order of a
// depth-first walk that visits siblings sorted byte-wise by their own
// names, for random names over a small alphabet rich in bytes below '/'.
func TestWalkCompareIsTreeOrder(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	const alphabet = " -.0Aa"
	for range 200 {
		set := map[string]bool{}
		for range 1 + rng.IntN(12) {
			var levels []string
			for range 1 + rng.IntN(3) {
				b := make([]byte, 1+rng.IntN(3))
				for i := range b {
					b[i] = alphabet[rng.IntN(len(alphabet))]
				}
				levels = append(levels, string(b))
				set[strings.Join(levels, "/")] = true // parents too, as in a tree
			}
		}
		names := make([]string, 0, len(set))
		for n := range set {
			names = append(names, n)
		}
		got := slices.Clone(names)
		slices.SortFunc(got, walkCompare)
		if want := walkTree(names); !slices.Equal(got, want) {
			t.Fatalf("seed %d: walkCompare order\n%q\nwant the walk's\n%q", seed, got, want)
		}
	}
}

// walkTree lists names (every parent included) in walk order: each level's
// siblings sorted byte-wise, children right after their parent.
func walkTree(names []string) []string {
	children := map[string][]string{}
	for _, n := range names {
		parent := ""
		if i := strings.LastIndexByte(n, '/'); i >= 0 {
			parent = n[:i]
		}
		children[parent] = append(children[parent], n)
	}
	var out []string
	var visit func(parent string)
	visit = func(parent string) {
		kids := children[parent]
		slices.SortFunc(kids, func(a, b string) int {
			return strings.Compare(a[strings.LastIndexByte(a, '/')+1:], b[strings.LastIndexByte(b, '/')+1:])
		})
		for _, k := range kids {
			out = append(out, k)
			visit(k)
		}
	}
	visit("")
	return out
}
