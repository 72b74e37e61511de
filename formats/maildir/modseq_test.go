package maildir_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// dovecotModSeqs returns doveadm's per-UID modseqs and HIGHESTMODSEQ of box.
func dovecotModSeqs(t *testing.T, d *dovecottest.Dovecot, box string) (map[formats.UID]formats.ModSeq, formats.ModSeq) {
	t.Helper()
	out := d.MustDoveadm(t, "fetch", "uid modseq", "mailbox", box, "all")
	got := map[formats.UID]formats.ModSeq{}
	var uid uint64
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(strings.ReplaceAll(l, "\f", ""))
		if v, ok := strings.CutPrefix(l, "uid: "); ok {
			uid, _ = strconv.ParseUint(v, 10, 32)
		} else if v, ok := strings.CutPrefix(l, "modseq: "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("doveadm fetch: %q", l)
			}
			got[formats.UID(uid)] = formats.ModSeq(n)
		}
	}
	st := strings.TrimSpace(d.MustDoveadm(t, "mailbox", "status", "highestmodseq", box))
	_, v, _ := strings.Cut(st, "highestmodseq=")
	h, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("doveadm mailbox status: %q", st)
	}
	return got, formats.ModSeq(h)
}

// ourModSeqs reads box through a fresh read-only store.
func ourModSeqs(t *testing.T, loc formats.Location, box string) (map[formats.UID]formats.ModSeq, formats.ModSeq, formats.Caps) {
	t.Helper()
	ctx := context.Background()
	s := openStore(t, loc, formats.OpenOptions{ReadOnly: true})
	mb, err := s.Open(ctx, box)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	st, err := mb.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[formats.UID]formats.ModSeq{}
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		got[m.UID] = m.ModSeq
	}
	if ie, ok := mb.(interface{ IndexError() error }); ok && ie.IndexError() != nil {
		t.Errorf("IndexError: %v", ie.IndexError())
	}
	return got, st.HighestModSeq, st.Caps
}

func fmtModSeqs(m map[formats.UID]formats.ModSeq, h formats.ModSeq) string {
	var b strings.Builder
	for uid := formats.UID(1); uid < 1000; uid++ {
		if v, ok := m[uid]; ok {
			fmt.Fprintf(&b, "%d:%d ", uid, v)
		}
	}
	fmt.Fprintf(&b, "highest=%d", h)
	return b.String()
}

// sameAsDovecot checks that we read box's modseqs as doveadm reports them.
func sameAsDovecot(t *testing.T, d *dovecottest.Dovecot, loc formats.Location, box string) (map[formats.UID]formats.ModSeq, formats.ModSeq) {
	t.Helper()
	theirs, th := dovecotModSeqs(t, d, box)
	ours, oh, caps := ourModSeqs(t, loc, box)
	if a, b := fmtModSeqs(theirs, th), fmtModSeqs(ours, oh); a != b {
		t.Errorf("modseqs: Dovecot %s, we %s", a, b)
	}
	if !caps.ModSeqs {
		t.Errorf("Status.Caps.ModSeqs false on a mailbox with an index")
	}
	return theirs, th
}

// TestModSeqsKept saves messages with chosen modseqs and checks that
// Dovecot reports exactly them, that changes made by Dovecot and by us
// afterwards go above them, and that we read what Dovecot reports.
func TestModSeqsKept(t *testing.T) {
	ctx := context.Background()
	for _, lay := range append(interopLayouts, struct{ name, opts string }{"index", ":INDEX=~/index"}) {
		t.Run(lay.name, func(t *testing.T) {
			d, loc := interop(t, lay.opts)
			store := openStore(t, loc, formats.OpenOptions{Create: true})
			for _, box := range []string{"INBOX", "Work/Sub"} {
				if err := store.Create(ctx, box, formats.GUID{}, 4242); err != nil {
					t.Fatal(err)
				}
				mb, err := store.Open(ctx, box)
				if err != nil {
					t.Fatal(err)
				}
				tx, err := mb.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				want := []struct {
					uid    formats.UID
					modseq formats.ModSeq
					flags  formats.Flags
					kws    []string
				}{
					{3, 5, formats.FlagSeen, nil},
					{7, 17, 0, []string{"$Label1"}},
					{8, 100, formats.FlagFlagged | formats.FlagAnswered, []string{"$Label1", "Work"}},
					{20, 120, 0, nil},
				}
				for _, w := range want {
					body := fmt.Appendf(nil, "Subject: %d\n\nbody\n", w.uid)
					if _, err := tx.Save(ctx, formats.Message{UID: w.uid, ModSeq: w.modseq, Flags: w.flags, Keywords: w.kws}, bytes.NewReader(body)); err != nil {
						t.Fatal(err)
					}
				}
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				mb.Close()

				got, h := sameAsDovecot(t, d, loc, box)
				for _, w := range want {
					if got[w.uid] != w.modseq {
						t.Errorf("%s uid %d: Dovecot modseq %d, want %d", box, w.uid, got[w.uid], w.modseq)
					}
				}
				if h != 120 {
					t.Errorf("%s: Dovecot HIGHESTMODSEQ %d, want 120", box, h)
				}
				flags := d.MustDoveadm(t, "fetch", "uid flags", "mailbox", box, "uid", "8")
				if !strings.Contains(flags, `\Answered \Flagged`) || !strings.Contains(flags, "$Label1") || !strings.Contains(flags, "Work") {
					t.Errorf("%s uid 8 flags: %q", box, flags)
				}
				d.CheckLogClean(t)

				// Dovecot changes a flag: modseqs go on above ours.
				d.MustDoveadm(t, "flags", "add", `\Deleted`, "mailbox", box, "uid", "3")
				got, h = sameAsDovecot(t, d, loc, box)
				if got[3] <= 120 || h != got[3] || got[7] != 17 {
					t.Errorf("%s after doveadm flags add: %s", box, fmtModSeqs(got, h))
				}

				// We change flags and expunge: above Dovecot's.
				prev := h
				mb, err = store.Open(ctx, box)
				if err != nil {
					t.Fatal(err)
				}
				tx, err = mb.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := tx.SetFlags(7, formats.FlagSeen, []string{"Work"}); err != nil {
					t.Fatal(err)
				}
				if err := tx.Expunge(20); err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Save(ctx, formats.Message{UID: 30, ModSeq: 3}, strings.NewReader("Subject: new\n\nx\n")); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				mb.Close()
				got, h = sameAsDovecot(t, d, loc, box)
				if _, ok := got[20]; ok {
					t.Errorf("%s: uid 20 not expunged", box)
				}
				if got[7] <= prev || got[30] <= prev || h < got[7] || got[8] != 100 {
					t.Errorf("%s after our changes (previous highest %d): %s", box, prev, fmtModSeqs(got, h))
				}
				flags = d.MustDoveadm(t, "fetch", "uid flags", "mailbox", box, "uid", "7")
				if !strings.Contains(flags, `\Seen`) || strings.Contains(flags, "$Label1") || !strings.Contains(flags, "Work") {
					t.Errorf("%s uid 7 flags: %q", box, flags)
				}
				d.CheckLogClean(t)
			}
			if lay.name == "index" {
				for _, p := range []string{"index/.INBOX/dovecot.index.log", "index/.Work.Sub/dovecot.index.log"} {
					if _, err := os.Stat(filepath.Join(d.Home(), p)); err != nil {
						t.Errorf("INDEX=: %v", err)
					}
				}
				if _, err := os.Stat(filepath.Join(d.Root(), "dovecot.index.log")); err == nil {
					t.Errorf("INDEX=: dovecot.index.log in the maildir")
				}
			}
			compare(t, d, store)
		})
	}
}

// TestModSeqsReadDovecots reads the modseqs of a Maildir Dovecot wrote
// and indexed, including files it has not indexed yet.
func TestModSeqsReadDovecots(t *testing.T) {
	d, loc := interop(t, "")
	for i := range 4 {
		d.Save(t, "INBOX", fmt.Appendf(nil, "Subject: %d\n\nbody\n", i))
	}
	d.MustDoveadm(t, "flags", "add", `\Seen $Label2`, "mailbox", "INBOX", "uid", "2")
	d.MustDoveadm(t, "flags", "add", `\Flagged`, "mailbox", "INBOX", "uid", "4")
	sameAsDovecot(t, d, loc, "INBOX")

	// A file Dovecot has not seen: we must not report less than it
	// will assign.
	ours, oh, _ := ourModSeqs(t, loc, "INBOX")
	name := "1700000000.M1P1.other,S=16,W=17:2,S"
	if err := os.WriteFile(filepath.Join(d.Root(), "cur", name), []byte("Subject: x\n\nbody"), 0o600); err != nil {
		t.Fatal(err)
	}
	ours2, oh2, _ := ourModSeqs(t, loc, "INBOX")
	theirs, th := dovecotModSeqs(t, d, "INBOX")
	if oh2 <= oh || oh2 < th || ours2[5] < theirs[5] || ours2[1] != ours[1] {
		t.Errorf("unindexed file: we said %s, Dovecot then %s", fmtModSeqs(ours2, oh2), fmtModSeqs(theirs, th))
	}
	sameAsDovecot(t, d, loc, "INBOX")
	d.CheckLogClean(t)
}

// TestModSeqsCorruptIndex: a broken index leaves modseqs unknown and the
// mailbox readable.
func TestModSeqsCorruptIndex(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "Maildir")
	loc := formats.Location{Driver: "maildir", Path: dir}
	s := openStore(t, loc, formats.OpenOptions{Create: true})
	if err := s.Create(ctx, "INBOX", formats.GUID{}, 0); err != nil {
		t.Fatal(err)
	}
	mb, err := s.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := mb.Begin(ctx)
	if _, err := tx.Save(ctx, formats.Message{ModSeq: 9}, strings.NewReader("Subject: a\n\nb\n")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	mb.Close()
	logPath := filepath.Join(dir, "dovecot.index.log")
	before, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	got, h, caps := ourModSeqs(t, loc, "INBOX")
	if got[1] != 9 || h != 9 || !caps.ModSeqs {
		t.Fatalf("before: %s caps %v", fmtModSeqs(got, h), caps.ModSeqs)
	}
	if after, _ := os.ReadFile(logPath); !bytes.Equal(before, after) {
		t.Error("reading changed dovecot.index.log")
	}
	if _, err := os.Stat(filepath.Join(dir, "dovecot.index")); err == nil {
		t.Error("reading wrote dovecot.index")
	}
	if err := os.WriteFile(filepath.Join(dir, "dovecot.index.log"), []byte("garbage garbage garbage garbage garbage garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, loc, formats.OpenOptions{ReadOnly: true})
	mb2, err := s2.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	st, err := mb2.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m, err := range mb2.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if m.ModSeq != 0 {
			t.Errorf("modseq %d from a corrupt index", m.ModSeq)
		}
	}
	if n != 1 || st.HighestModSeq != 0 || st.Caps.ModSeqs {
		t.Errorf("corrupt index: %d messages, highest %d, caps.ModSeqs %v", n, st.HighestModSeq, st.Caps.ModSeqs)
	}
	if ie := mb2.(interface{ IndexError() error }).IndexError(); ie == nil {
		t.Error("IndexError() = nil for a corrupt index")
	}
}

// TestModSeqsExtendDovecots saves with modseqs into a mailbox Dovecot
// indexed without modseq tracking: we enable it, as Dovecot does.
func TestModSeqsExtendDovecots(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, "")
	d.Save(t, "INBOX", []byte("Subject: 1\n\nbody\n"))
	d.Save(t, "INBOX", []byte("Subject: 2\n\nbody\n"))
	d.MustDoveadm(t, "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "1")
	store := openStore(t, loc, formats.OpenOptions{})
	mb, err := store.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Save(ctx, formats.Message{UID: 10, ModSeq: 50, Keywords: []string{"$Label3"}}, strings.NewReader("Subject: 3\n\nbody\n")); err != nil {
		t.Fatal(err)
	}
	if err := tx.SetFlags(2, formats.FlagFlagged, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	mb.Close()
	got, h := sameAsDovecot(t, d, loc, "INBOX")
	if got[10] != 50 || h != 50 || got[2] == 0 || got[2] > 50 {
		t.Errorf("Dovecot: %s, want uid 10 at 50 = HIGHESTMODSEQ", fmtModSeqs(got, h))
	}
	flags := d.MustDoveadm(t, "fetch", "uid flags", "mailbox", "INBOX", "all")
	if !strings.Contains(flags, "$Label3") || !strings.Contains(flags, `\Flagged`) {
		t.Errorf("flags: %q", flags)
	}
	d.CheckLogClean(t)
}

// TestModSeqsConcurrentDovecot commits saves with modseqs while Dovecot
// saves and changes flags in the same mailbox: Dovecot's log stays clean,
// no saved message ends below its source modseq, and we read what
// Dovecot reports.
func TestModSeqsConcurrentDovecot(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, "")
	d.Save(t, "INBOX", []byte("Subject: first\n\nbody\n"))
	d.Snapshot(t) // hand the tree to Dovecot's uid
	// As root, let Dovecot (user nobody) use the files we make meanwhile.
	if err := os.Chmod(loc.Path, 0o777); err != nil {
		t.Fatal(err)
	}
	store := openStore(t, loc, formats.OpenOptions{})
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 8 && err == nil; i++ {
			cmd := d.Cmd(t, "save", "-m", "INBOX")
			cmd.Stdin = strings.NewReader(fmt.Sprintf("Subject: dovecot %d\n\nbody\n", i))
			if err = cmd.Run(); err == nil {
				_, err = d.Doveadm("flags", "add", `\Seen`, "mailbox", "INBOX", "all")
			}
		}
		done <- err
	}()
	want := map[string]formats.ModSeq{}
	for i := 0; i < 8; i++ {
		mb, err := store.Open(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		tx, err := mb.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 3; j++ {
			guid := fmt.Sprintf("%032x", i*10+j+1)
			ms := formats.ModSeq(1000 + i*10 + j)
			want[guid] = ms
			if _, err := tx.Save(ctx, formats.Message{GUID: guid, ModSeq: ms}, strings.NewReader("Subject: ours\n\nbody\n")); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if ie := mb.(interface{ IndexError() error }).IndexError(); ie != nil {
			t.Logf("commit %d: %v", i, ie)
		}
		mb.Close()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	theirs, _ := sameAsDovecot(t, d, loc, "INBOX")
	guids := d.MustDoveadm(t, "fetch", "uid guid", "mailbox", "INBOX", "all")
	var uid uint64
	seen := 0
	for _, l := range strings.Split(guids, "\n") {
		l = strings.TrimSpace(strings.ReplaceAll(l, "\f", ""))
		if v, ok := strings.CutPrefix(l, "uid: "); ok {
			uid, _ = strconv.ParseUint(v, 10, 32)
		} else if g, ok := strings.CutPrefix(l, "guid: "); ok {
			if w, ok := want[g]; ok {
				seen++
				if theirs[formats.UID(uid)] < w {
					t.Errorf("uid %d (guid %s): Dovecot modseq %d below the source's %d", uid, g, theirs[formats.UID(uid)], w)
				}
			}
		}
	}
	if seen != len(want) {
		t.Errorf("Dovecot lists %d of our %d messages", seen, len(want))
	}
	d.CheckLogClean(t)
}
