package subsfile

import (
	"fmt"
	"reflect"
	"testing"
)

// a4 is the subscriptions file of dovecot-storage.md Appendix A.4, as
// Dovecot 2.3.19.1 wrote it.
const a4 = "V\t2\n\nWork\tSub\nINBOX\nEntw&APw-rfe\n"

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		sep     byte
		want    [][]string
		version int
	}{
		{"a4", a4, '.', [][]string{{"Work", "Sub"}, {"INBOX"}, {"Entw&APw-rfe"}}, 2},
		{"empty", "", '.', nil, 1},
		{"header only", Header, '.', nil, 2},
		{"v1 maildir++", "INBOX\nWork.Sub\nTrash.\n", '.', [][]string{{"INBOX"}, {"Work", "Sub"}, {"Trash"}}, 1},
		{"v1 fs", "Work/Sub\n\nA", '/', [][]string{{"Work", "Sub"}, {"A"}}, 1},
		{"escapes", "V\t2\n\na\x01tb\tc\x01nd\x011\x01re\x01x\x010\n", '.', [][]string{{"a\tb", "c\nd\x01\re" + "x\x00"}}, 2},
		{"crlf", "V\t2\n\nA\tB\r\nC\r\n", '.', [][]string{{"A", "B"}, {"C"}}, 2},
		{"trailing tab", "V\t2\n\nA\t\n", '.', [][]string{{"A"}}, 2},
		{"no final newline", "V\t2\n\nA", '.', [][]string{{"A"}}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, v := Parse([]byte(tc.data), tc.sep)
			if !reflect.DeepEqual(got, tc.want) || v != tc.version {
				t.Errorf("Parse(%q) = %q, %d, want %q, %d", tc.data, got, v, tc.want, tc.version)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	got := string(Format([][]string{{"Work", "Sub"}, {"INBOX"}, {"Entw&APw-rfe"}}))
	if got != a4 {
		t.Errorf("Format = %q, want %q", got, a4)
	}
	if got := string(Format([][]string{{"a\tb\x01", "c\r\n"}})); got != "V\t2\n\na\x01tb\x011\tc\x01r\x01n\n" {
		t.Errorf("Format(escapes) = %q", got)
	}
}

func TestUpdate(t *testing.T) {
	tests := []struct {
		name      string
		data      string
		levels    []string
		subscribe bool
		want      string
		changed   bool
	}{
		{"new file", "", []string{"Work", "Sub"}, true, "V\t2\n\nWork\tSub\n", true},
		{"add", a4, []string{"Trash"}, true, a4 + "Trash\n", true},
		{"already there", a4, []string{"INBOX"}, true, a4, false},
		{"inbox spelling", a4, []string{"inbox"}, true, a4, false},
		{"remove", a4, []string{"Work", "Sub"}, false, "V\t2\n\nINBOX\nEntw&APw-rfe\n", true},
		{"remove missing", a4, []string{"Nope"}, false, a4, false},
		{"v1 stays v1", "INBOX\nWork.Sub\n", []string{"A", "B"}, true, "INBOX\nWork.Sub\nA.B\n", true},
		{"v1 remove", "INBOX\nWork.Sub\n", []string{"Work", "Sub"}, false, "INBOX\n", true},
		{"keeps odd lines", "V\t2\n\n\nX\x01q\n", []string{"Y"}, true, "V\t2\n\n\nX\x01q\nY\n", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := Update([]byte(tc.data), '.', tc.levels, tc.subscribe)
			if string(got) != tc.want || changed != tc.changed {
				t.Errorf("Update(%q, %q, %v) = %q, %v, want %q, %v", tc.data, tc.levels, tc.subscribe, got, changed, tc.want, tc.changed)
			}
		})
	}
}

// FuzzSubscriptions: Parse never panics, and Parse(Format(x)) == x for
// names whose levels are non-empty.
func FuzzSubscriptions(f *testing.F) {
	f.Add([]byte(a4), "Work", "Sub")
	f.Add([]byte("INBOX\nWork.Sub\n"), "a\tb", "\x01")
	f.Add([]byte("V\t2\n\nx\x01"), "c\r\n", "d")
	f.Fuzz(func(t *testing.T, data []byte, l1, l2 string) {
		Parse(data, '.')
		Update(data, '.', []string{l1, l2}, true)
		if l1 == "" || l2 == "" {
			return
		}
		names := [][]string{{l1, l2}, {l2}}
		got, v := Parse(Format(names), '.')
		if v != 2 || !reflect.DeepEqual(got, names) {
			t.Fatalf("Parse(Format(%q)) = %q, %d", names, got, v)
		}
		out, _ := Update(Format(names[1:]), '.', names[0], true)
		if got, _ := Parse(out, '.'); fmt.Sprint(got) != fmt.Sprint([][]string{names[1], names[0]}) {
			t.Fatalf("Update added %q: Parse = %q", names[0], got)
		}
	})
}
