package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestGetoptArgs(t *testing.T) {
	global := optionSpec{"c": true, "o": true, "D": false, "v": false}
	commands := map[string]optionSpec{"backup": {
		"f": false, "R": false, "P": false, "m": true, "x": true, "u": true, "l": true,
		"source": true, "mailbox": true, "full-sync": false,
	}}
	tests := []struct{ in, want string }{
		{"boxsync", "boxsync"},
		{"boxsync -Dv backup x", "boxsync -D -v backup x"},
		{"boxsync -cfile -o a=b backup x", "boxsync -c file -o a=b backup x"},
		{"boxsync backup -fR x", "boxsync backup -f -R x"},
		{"boxsync backup -mINBOX x", "boxsync backup -m INBOX x"},
		{"boxsync backup -fm INBOX x", "boxsync backup -f -m INBOX x"},
		{"boxsync backup -m -x x", "boxsync backup -m -x x"},
		{"boxsync backup -fq x", "boxsync backup -f -q x"},
		{"boxsync backup --source s -f x", "boxsync backup --source s -f x"},
		{"boxsync backup --source=s -fR x", "boxsync backup --source=s -f -R x"},
		{"boxsync backup --full-sync -fR x", "boxsync backup --full-sync -f -R x"},
		{"boxsync backup x -fR", "boxsync backup x -fR"},   // options end at the first operand
		{"boxsync backup -- -fR", "boxsync backup -- -fR"}, // and at --
		{"boxsync backup - x", "boxsync backup - x"},       // "-" is an operand
		{"boxsync unknown -fR", "boxsync unknown -fR"},     // unknown commands are left alone
		{"boxsync -o", "boxsync -o"},                       // a missing value is flag's to report
		{"boxsync backup -u jane -l30 -x Spam -x Trash x", "boxsync backup -u jane -l 30 -x Spam -x Trash x"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got := getoptArgs(strings.Fields(tc.in), global, commands)
			if want := strings.Fields(tc.want); !reflect.DeepEqual(got, want) {
				t.Errorf("getoptArgs(%q) = %q, want %q", tc.in, got, want)
			}
		})
	}
	// Empty values survive.
	got := getoptArgs([]string{"boxsync", "backup", "-m", "", "x"}, global, commands)
	if want := []string{"boxsync", "backup", "-m", "", "x"}; !reflect.DeepEqual(got, want) {
		t.Errorf("getoptArgs(-m '') = %q, want %q", got, want)
	}
}
