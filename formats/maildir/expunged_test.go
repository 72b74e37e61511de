package maildir_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

// TestExpungedSinceDovecot: on a Maildir Dovecot indexed, ExpungedSince
// lists a client's expunge (doveadm expunge) as requested with the mail's
// GUID, and a file deleted behind Dovecot's back unrequested without a
// GUID, both before Dovecot noticed (our listing lacks the file the index
// still has) and after (its sync's own record); nothing before the asked modseq, and
// ErrHistoryLost without an index.
func TestExpungedSinceDovecot(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, "")
	for i := 1; i <= 4; i++ {
		d.Save(t, "INBOX", []byte(fmt.Sprintf("Subject: m%d\n\nbody %d\n", i, i)))
	}
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "1")
	out := d.MustDoveadm(t, "-f", "flow", "mailbox", "status", "highestmodseq", "INBOX")
	var mark formats.ModSeq
	if _, err := fmt.Sscanf(strings.TrimSpace(out), "INBOX highestmodseq=%d", &mark); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	guids := map[formats.UID]string{}
	func() {
		s := openStore(t, loc, formats.OpenOptions{ReadOnly: true})
		mb, err := s.Open(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		defer mb.Close()
		for m, err := range mb.Messages(ctx, 1) {
			if err != nil {
				t.Fatal(err)
			}
			guids[m.UID] = m.GUID
		}
	}()
	expunged := func() map[formats.UID]formats.ExpungeRecord {
		t.Helper()
		s := openStore(t, loc, formats.OpenOptions{ReadOnly: true})
		mb, err := s.Open(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		defer mb.Close()
		eh, ok := mb.(formats.ExpungeHistory)
		if !ok {
			t.Fatal("maildir mailbox is no formats.ExpungeHistory")
		}
		got, err := eh.ExpungedSince(ctx, mark)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := expunged(); len(got) != 0 {
		t.Fatalf("nothing since the mark, got %v", got)
	}
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "3")
	files, _ := filepath.Glob(filepath.Join(d.Root(), "*", "*"))
	gone := ""
	for _, f := range files {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), "Subject: m2") {
			gone = f
		}
	}
	if gone == "" {
		t.Fatal("no file for m2")
	}
	os.Remove(gone)
	want := fmt.Sprint(map[formats.UID]formats.ExpungeRecord{2: {}, 3: {GUID: formats.MessageGUID128(guids[3]), Requested: true}})
	if got := expunged(); fmt.Sprint(got) != want {
		t.Errorf("before Dovecot noticed: %v, want %v", got, want)
	}
	d.MustDoveadm(t, "mailbox", "status", "messages", "INBOX") // Dovecot syncs: logs UID 2 gone
	if got := expunged(); fmt.Sprint(got) != want {
		t.Errorf("after Dovecot noticed: %v, want %v", got, want)
	}
	// Without the index there is no history: never "nothing expunged".
	ixFiles, _ := filepath.Glob(filepath.Join(d.Root(), "dovecot.index*"))
	for _, f := range ixFiles {
		os.Remove(f)
	}
	s := openStore(t, loc, formats.OpenOptions{ReadOnly: true})
	mb, err := s.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	if _, err := mb.(formats.ExpungeHistory).ExpungedSince(ctx, mark); !errors.Is(err, formats.ErrHistoryLost) {
		t.Errorf("ExpungedSince without an index = %v, want ErrHistoryLost", err)
	}
	d.CheckLogClean(t)
}
