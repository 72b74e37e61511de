package index

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestManyKeywords grows the keyword bitmap from one byte to six (45
// keywords, spec §2.4: the record's keywords extension is resized as
// names are added) over transactions that rotate the log and rewrite
// dovecot.index, and checks that a reopened index and the real Dovecot
// both see every message with exactly the keywords written (Maildir
// keeps keywords beyond its 26 file name letters only here).
func TestManyKeywords(t *testing.T) {
	d := dovecottest.New(t, "sdbox:~/mail")
	dir := filepath.Join(d.Root(), "mailboxes", "INBOX", "dbox-Mails")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	msgs := testMessages()
	for i := range msgs {
		msgs[i].keywords = nil
		writeDboxFile(t, dir, msgs[i].uid, msgBody(msgs[i].uid))
	}
	opt := Options{UIDValidity: 42, Extensions: []ExtDef{DboxHdr{MailboxGUID: [16]byte{1}}.Ext()},
		LogRotateMinSize: 1, LogRotateMaxSize: 900, LogRotateMinAge: -1, RewriteMaxLogBytes: 400}
	ix, err := Create(dir, Prefix, opt)
	if err != nil {
		t.Fatal(err)
	}
	writeMessages(t, ix, msgs, 10, 90, nil)
	want := map[uint32][]string{}
	const total = 45
	for k := 0; k < total; k += 5 {
		tx := ix.Begin()
		for j := k; j < k+5; j++ {
			name := fmt.Sprintf("kw%02d", j)
			// message i gets keyword j when bit i of j is set, and
			// the first message gets every keyword
			var uids []uint32
			for i, m := range msgs {
				if i == 0 || j&(1<<(i-1)) != 0 {
					uids = append(uids, m.uid)
					want[m.uid] = append(want[m.uid], name)
				}
			}
			for _, u := range uids {
				tx.UpdateKeywords(u, KeywordsAdd, name)
			}
		}
		if k == 30 {
			// a removal past the fourth bitmap byte
			tx.UpdateKeywords(msgs[0].uid, KeywordsRemove, "kw33")
			want[msgs[0].uid] = slices.DeleteFunc(want[msgs[0].uid], func(s string) bool { return s == "kw33" })
		}
		if _, err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.WriteIndex(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{Prefix, Prefix + ".log", Prefix + ".log.2"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("after rotation: %v", err)
		}
	}
	ix2, err := Open(dir, Prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ix2.View()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(v.Keywords()); n != total {
		t.Errorf("%d keyword names, want %d", n, total)
	}
	for i, m := range v.Messages() {
		if got, w := slices.Sorted(slices.Values(m.Keywords)), want[m.UID]; !slices.Equal(got, w) {
			t.Errorf("uid %d keywords = %q, want %q", m.UID, got, w)
		}
		msgs[i].keywords = m.Keywords
		msgs[i].modseq = m.ModSeq
	}
	if len(want[msgs[0].uid]) != total-1 {
		t.Fatalf("first message has %d keywords", len(want[msgs[0].uid]))
	}
	checkDovecot(t, d, "INBOX", msgs, 42, 10, v.HighestModSeq())
	if out := d.MustDoveadm(t, "dump", filepath.Join(dir, Prefix)); !strings.Contains(out, "kw44") {
		t.Errorf("doveadm dump of our dovecot.index lacks kw44:\n%s", out)
	}
}
