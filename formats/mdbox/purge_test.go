package mdbox_test

import (
	"bytes"
	"context"
	"fmt"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/mdbox"
	"github.com/boxsync/boxsync/formats/mem"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// purgeBody is message n's body: a unique marker, so that a purge can be
// seen to have dropped exactly the expunged messages' bytes.
func purgeBody(n int) []byte {
	return []byte(fmt.Sprintf("Subject: msg %d\nMessage-ID: <%d@purge>\n\nmarker-%03d-end\n%s\n", n, n, n, strings.Repeat("x", 50*n)))
}

// saveBodies saves messages first..last of purgeBody into name, with
// flags, keywords and GUIDs.
func saveBodies(t *testing.T, s formats.Store, name string, first, last int) {
	t.Helper()
	ctx := context.Background()
	mb, err := s.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for n := first; n <= last; n++ {
		b := purgeBody(n)
		m := formats.Message{UID: formats.UID(n), GUID: fmt.Sprintf("%032x", n), Size: int64(len(b)),
			Received: time.Date(2021, 3, n%28+1, 0, 0, 0, 0, time.UTC), Flags: formats.Flags(n) & formats.SystemFlags}
		if n%3 == 0 {
			m.Keywords = []string{"$Label" + fmt.Sprint(n%5), "Junk"}
		}
		if _, err := tx.Save(ctx, m, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func expunge(t *testing.T, s formats.Store, name string, uids ...formats.UID) {
	t.Helper()
	ctx := context.Background()
	mb, err := s.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	tx, _ := mb.Begin(ctx)
	defer tx.Rollback()
	for _, u := range uids {
		if err := tx.Expunge(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// storageFiles lists storage/m.* with their sizes, and their bytes joined.
func storageFiles(t *testing.T, root string) (string, int64, []byte) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "storage", "m.*"))
	sort.Strings(files)
	var list []string
	var total int64
	var all []byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, fmt.Sprintf("%s=%d", filepath.Base(f), len(data)))
		total += int64(len(data))
		all = append(all, data...)
	}
	return strings.Join(list, " "), total, all
}

// TestPurge: boxsync writes an mdbox by backup; the source expunges and
// a second backup expunges in the mdbox; Dovecot expunges more; our
// purge drops exactly those messages' bytes, the storage shrinks, and
// Dovecot then reads every remaining message byte for byte with its
// UID, GUID, flags, keywords, dates and modseq, without complaint;
// `doveadm purge` finds nothing left to do; we read it back equal.
func TestPurge(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, "")
	mem.Reset()
	src, _ := mem.Driver{}.Open(ctx, formats.Location{Driver: "mem", Path: "/purge"}, formats.OpenOptions{Create: true})
	for _, name := range []string{"INBOX", "Work"} {
		src.Create(ctx, name, formats.GUID{}, 0)
	}
	saveBodies(t, src, "INBOX", 1, 20)
	saveBodies(t, src, "Work", 21, 30)
	// a small rotate size spreads the mail over several files
	store, err := mdbox.Driver{RotateSize: 4 << 10}.Open(ctx, loc, formats.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	backup(t, src, store)

	expunge(t, src, "INBOX", 2, 3, 4, 11, 20)
	expunge(t, src, "Work", 21)
	backup(t, src, store)
	d.MustDoveadm(t, "expunge", "mailbox", "Work", "uid", "25:26")
	gone := []int{2, 3, 4, 11, 20, 21, 25, 26}

	want := d.Snapshot(t)
	beforeList, before, beforeBytes := storageFiles(t, loc.Path)
	for _, n := range gone {
		if !bytes.Contains(beforeBytes, []byte(fmt.Sprintf("marker-%03d-end", n))) {
			t.Fatalf("message %d is not in storage before the purge", n)
		}
	}

	st, err := store.(formats.Purger).Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	afterList, after, afterBytes := storageFiles(t, loc.Path)
	t.Logf("purge: %+v; storage %d -> %d bytes\nbefore: %s\nafter:  %s", st, before, after, beforeList, afterList)
	if st.Messages != len(gone) || after >= before || st.Freed != before-after || st.Files == 0 {
		t.Errorf("purge stats %+v, storage %d -> %d bytes; want %d messages dropped and the storage smaller by Freed",
			st, before, after, len(gone))
	}
	for n := 1; n <= 30; n++ {
		has := bytes.Contains(afterBytes, []byte(fmt.Sprintf("marker-%03d-end", n)))
		if dropped := contains(gone, n); has == dropped {
			t.Errorf("message %d: in storage after the purge = %v, expunged = %v", n, has, dropped)
		}
	}
	got := d.Snapshot(t)
	if diff := dovecottest.Diff(want, got); diff != "" {
		t.Errorf("Dovecot sees the store differently after our purge (a=before b=after):\n%s", diff)
	}
	compare(t, d, store)

	// nothing left for Dovecot's purge, nor for ours
	d.MustDoveadm(t, "purge")
	if again, _, _ := storageFiles(t, loc.Path); again != afterList {
		t.Errorf("doveadm purge changed the storage after ours:\nours:    %s\ndoveadm: %s", afterList, again)
	}
	if st, err := store.(formats.Purger).Purge(ctx); err != nil || st != (formats.PurgeStats{}) {
		t.Errorf("second Purge() = %+v, %v; want nothing done", st, err)
	}
	compare(t, d, store)

	// the store stays usable by both
	saveBodies(t, store, "INBOX", 31, 33)
	d.Save(t, "Work", purgeBody(40))
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "31")
	if _, err := store.(formats.Purger).Purge(ctx); err != nil {
		t.Fatal(err)
	}
	compare(t, d, store)
	d.MustDoveadm(t, "purge")
	compare(t, d, store)
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestPurgeDovecotWritten: mail Dovecot saved and expunged, purged by us.
func TestPurgeDovecotWritten(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, "")
	for n := 1; n <= 12; n++ {
		d.Save(t, "INBOX", purgeBody(n))
	}
	d.MustDoveadm(t, "mailbox", "create", "Other")
	d.MustDoveadm(t, "copy", "Other", "mailbox", "INBOX", "uid", "1:4") // shared map UIDs
	d.MustDoveadm(t, "flags", "add", `\Seen Junk`, "mailbox", "INBOX", "uid", "5:8")
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "1:2,6,9")
	want := d.Snapshot(t)
	_, before, _ := storageFiles(t, loc.Path)
	store := openStore(t, loc, formats.OpenOptions{})
	st, err := store.(formats.Purger).Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, after, all := storageFiles(t, loc.Path)
	// 1 and 2 live on in Other; 6 and 9 are gone
	if st.Messages != 2 || after >= before {
		t.Errorf("purge %+v, storage %d -> %d; want 2 dropped, smaller", st, before, after)
	}
	for n, want := range map[int]bool{1: true, 2: true, 6: false, 9: false, 12: true} {
		if got := bytes.Contains(all, []byte(fmt.Sprintf("marker-%03d-end", n))); got != want {
			t.Errorf("message %d in storage = %v, want %v", n, got, want)
		}
	}
	if diff := dovecottest.Diff(want, d.Snapshot(t)); diff != "" {
		t.Errorf("Dovecot sees the store differently after our purge:\n%s", diff)
	}
	compare(t, d, store)
}

// TestPurgeReadOnly: a read-only store is not purged.
func TestPurgeReadOnly(t *testing.T) {
	ctx := context.Background()
	s, loc := newStore(t, mdbox.Driver{})
	s.Create(ctx, "INBOX", formats.GUID{}, 0)
	saveBodies(t, s, "INBOX", 1, 2)
	expunge(t, s, "INBOX", 1)
	ro := openStore(t, loc, formats.OpenOptions{ReadOnly: true})
	if _, err := ro.(formats.Purger).Purge(ctx); formats.KindOf(err) != formats.KindNotPossible {
		t.Errorf("Purge(read-only) = %v, want NotPossible", err)
	}
}

// TestPurgeAlt: m.* files `doveadm altmove` put in ALT storage are purged
// too; their live mail moves to primary storage, as with Dovecot's
// default mdbox_purge_preserve_alt = no.
func TestPurgeAlt(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, ":ALT=~/alt")
	for n := 1; n <= 8; n++ {
		d.Save(t, "INBOX", purgeBody(n))
	}
	d.MustDoveadm(t, "altmove", "mailbox", "INBOX", "all")
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "2,5")
	altBefore, _, _ := storageFiles(t, loc.Alt)
	if altBefore == "" {
		t.Fatal("altmove left no m.* file in ALT storage")
	}
	want := d.Snapshot(t)
	store := openStore(t, loc, formats.OpenOptions{})
	st, err := store.(formats.Purger).Purge(ctx)
	if err != nil || st.Messages != 2 {
		t.Fatalf("Purge() = %+v, %v; want 2 messages dropped", st, err)
	}
	_, _, primary := storageFiles(t, loc.Path)
	_, _, alt := storageFiles(t, loc.Alt)
	for n := 1; n <= 8; n++ {
		marker := []byte(fmt.Sprintf("marker-%03d-end", n))
		if got, wantIn := bytes.Contains(append(primary, alt...), marker), n != 2 && n != 5; got != wantIn {
			t.Errorf("message %d in storage = %v, want %v", n, got, wantIn)
		}
	}
	if diff := dovecottest.Diff(want, d.Snapshot(t)); diff != "" {
		t.Errorf("Dovecot sees the store differently after our purge:\n%s", diff)
	}
	compare(t, d, store)
	d.MustDoveadm(t, "purge")
	compare(t, d, store)
}

// TestPurgeWhileDovecotWrites purges again and again while Dovecot saves
// and expunges in the same store: nothing is lost, and Dovecot finds no
// corruption.
func TestPurgeWhileDovecotWrites(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, "")
	for n := 1; n <= 10; n++ {
		d.Save(t, "INBOX", purgeBody(n))
	}
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "2:4")
	// as root, let Dovecot (user nobody) use the files we make meanwhile
	if err := os.Chmod(loc.Path, 0o777); err != nil {
		t.Fatal(err)
	}
	defer syscall.Umask(syscall.Umask(0))
	store := openStore(t, loc, formats.OpenOptions{})
	var cmds []*exec.Cmd // made here: Cmd may fail the test
	for n := 11; n <= 30; n++ {
		c := d.Cmd(t, "save", "-m", "INBOX")
		c.Stdin = bytes.NewReader(purgeBody(n))
		cmds = append(cmds, c)
		if n%3 == 0 {
			cmds = append(cmds, d.Cmd(t, "expunge", "mailbox", "INBOX", "uid", fmt.Sprint(n-5)))
		}
	}
	done := make(chan error, 1)
	go func() {
		for _, c := range cmds {
			if err := c.Run(); err != nil { // stderr goes to Dovecot's log
				done <- fmt.Errorf("%s: %v", c.Args, err)
				return
			}
		}
		done <- nil
	}()
	purges, dropped := 0, 0
	for running := true; running; purges++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		st, err := store.(formats.Purger).Purge(ctx)
		if err != nil {
			t.Fatalf("Purge() while Dovecot writes = %v", err)
		}
		dropped += st.Messages
		time.Sleep(time.Millisecond)
	}
	t.Logf("%d purges dropped %d messages", purges, dropped)
	if dropped == 0 {
		t.Errorf("nothing purged")
	}
	compare(t, d, store)
	// 10 saved, 3 expunged, then 20 saved and 7 expunged
	if n := dboxtest.CountMessages(t, store, "INBOX"); n != 20 {
		t.Errorf("%d messages, want 20", n)
	}
	d.MustDoveadm(t, "purge")
	compare(t, d, store)
}
