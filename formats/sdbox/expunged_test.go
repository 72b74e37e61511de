package sdbox_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

// TestExpungedSinceDovecot: Dovecot's expunge of an sdbox mail (doveadm
// expunge, as a client's) is listed as requested (without a GUID: sdbox
// writes none), only when it is after the asked modseq.
func TestExpungedSinceDovecot(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, "")
	for i := 1; i <= 3; i++ {
		d.Save(t, "INBOX", []byte(fmt.Sprintf("Subject: m%d\n\nbody %d\n", i, i)))
	}
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "1")
	out := d.MustDoveadm(t, "-f", "flow", "mailbox", "status", "highestmodseq", "INBOX")
	var mark formats.ModSeq
	if _, err := fmt.Sscanf(strings.TrimSpace(out), "INBOX highestmodseq=%d", &mark); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	read := func() (map[formats.UID]formats.ExpungeRecord, map[formats.UID]string) {
		t.Helper()
		s := openStore(t, loc, formats.OpenOptions{ReadOnly: true})
		mb, err := s.Open(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		defer mb.Close()
		guids := map[formats.UID]string{}
		for m, err := range mb.Messages(ctx, 1) {
			if err != nil {
				t.Fatal(err)
			}
			guids[m.UID] = m.GUID
		}
		got, err := mb.(formats.ExpungeHistory).ExpungedSince(ctx, mark)
		if err != nil {
			t.Fatal(err)
		}
		return got, guids
	}
	got, guids := read()
	if len(got) != 0 || len(guids) != 2 {
		t.Fatalf("before: expunged %v, messages %v", got, guids)
	}
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "3")
	got, _ = read()
	// Dovecot 2.3.19's sdbox requests carry no GUID [observed: doveadm
	// dump shows uid=3 (guid 000…) for the request and the expunge].
	if want := fmt.Sprint(map[formats.UID]formats.ExpungeRecord{3: {Requested: true}}); fmt.Sprint(got) != want || guids[3] == "" {
		t.Errorf("after Dovecot's expunge: %v, want %v", got, want)
	}
	d.CheckLogClean(t)
}
