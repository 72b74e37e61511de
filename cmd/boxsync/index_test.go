package main

import (
	"strings"
	"testing"
)

func TestIndexDump(t *testing.T) {
	te := newTestEnv(t)
	r := te.run(t, "index", "dump", "../../index/testdata/sdbox-rotated/INBOX")
	r.expect(t, nil, 0)
	for _, want := range []string{"next uid ....... = 5", "highest modseq . = 45", "uid=4 flags=0x01 (\\Answered) modseq=44"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dump lacks %q:\n%s", want, r.stdout)
		}
	}
	te.run(t, "index", "dump").expect(t, nil, 64, "index dump takes one PATH")
	te.run(t, "index", "dump", t.TempDir()+"/nope").expect(t, nil, 75, "nope")
}
