package convert

import (
	"testing"

	"github.com/boxsync/boxsync/formats"
)

// TestFirstRecentRaise checks dsync's rule for the first_recent_uid an
// importer raises its side to: min(last common UID + 1, the other
// side's), whichever of the two is lower, never a lowering, and nothing
// where either side keeps none.
func TestFirstRecentRaise(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		own, lastCommonUID, their formats.UID
		want                      formats.UID
	}{
		{"theirs is lower", 1, 9, 5, 5},
		{"last common UID + 1 is lower", 1, 3, 8, 4},
		{"equal", 1, 4, 5, 5},
		{"own already there", 5, 9, 5, 0},
		{"own higher: never lowered", 7, 9, 5, 0},
		{"own higher than last common UID + 1", 5, 3, 8, 0},
		{"other side keeps none", 1, 9, 0, 0},
		{"own side keeps none", 0, 9, 5, 0},
		{"empty mailboxes", 1, 0, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := firstRecentRaise(formats.Status{FirstRecentUID: tc.own}, tc.lastCommonUID, tc.their)
			if got != tc.want {
				t.Errorf("firstRecentRaise(own %d, last common %d, theirs %d) = %d, want %d", tc.own, tc.lastCommonUID, tc.their, got, tc.want)
			}
		})
	}
}
