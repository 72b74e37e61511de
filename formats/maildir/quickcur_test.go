package maildir

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// quickMaildir makes an INBOX with messages in cur/ carrying flags and
// keywords, and one delivered into new/, whose index "maildir" header
// records an old cur/ (written by Dovecot's sync when byDovecot, else by
// our own full read): the state in which a fresh scan takes cur/'s names
// from the index (quickcur.go).
func quickMaildir(t *testing.T, byDovecot bool) (*dovecottest.Dovecot, string) {
	t.Helper()
	ctx := context.Background()
	d := dovecottest.New(t, "maildir:~/Maildir")
	root := d.Root()
	_, mb := newInbox(t, formats.Location{Path: root})
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []formats.Message{
		{Flags: formats.FlagSeen},
		{Flags: formats.FlagSeen | formats.FlagAnswered, Keywords: []string{"todo"}},
		{Flags: formats.FlagFlagged, Keywords: []string{"$Label1", "todo"}},
		{},
		{Flags: formats.FlagDraft | formats.FlagDeleted | formats.FlagSeen},
	}
	for i, m := range msgs {
		save(t, tx, m, fmt.Sprintf("Subject: m%d\nMessage-ID: <m%d@x>\n\n%s\n", i, i, sized(10+i)))
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	d.Chown(t, root)
	age(t, root)
	if byDovecot {
		d.MustDoveadm(t, "mailbox", "status", "messages", "INBOX")
	} else {
		m := openBox(t, openStore(t, formats.Location{Path: root}, formats.OpenOptions{}), "INBOX")
		if _, err := m.Status(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if ix, err := index.Open(root, index.Prefix, &index.Options{}); err != nil {
		t.Fatal(err)
	} else if v, err := ix.View(); err != nil {
		t.Fatal(err)
	} else if _, ok := v.MaildirHdr(); !ok {
		t.Fatal("no maildir header in the index")
	}
	// Mail delivered after that sync: new/ changes, cur/ does not.
	deliver(t, d, root, "1700000000.M1P1.mda,S=20")
	return d, root
}

// deliver writes a message into new/ as an MDA does.
func deliver(t *testing.T, d *dovecottest.Dovecot, root, name string) {
	t.Helper()
	tmp := filepath.Join(root, "tmp", name)
	if err := os.WriteFile(tmp, []byte("Subject: delivered\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(root, "new", name)); err != nil {
		t.Fatal(err)
	}
	d.Chown(t, root)
}

// fullList lists the mailbox with a read of cur/, for comparison.
func fullList(t *testing.T, root string) []formats.Message {
	t.Helper()
	m := openBox(t, openStore(t, formats.Location{Path: root}, formats.OpenOptions{ReadOnly: true}), "INBOX")
	m.distrustCur.Store(true)
	out := list(t, m)
	if m.st == nil || m.st.quickCur {
		t.Fatal("the reference listing took cur/ from the index")
	}
	return out
}

// listNoDates is list through MessagesWithoutDates, which opens no file.
func listNoDates(t *testing.T, m *mailbox) []formats.Message {
	t.Helper()
	var out []formats.Message
	for msg, err := range m.MessagesWithoutDates(context.Background(), 1) {
		if err != nil {
			t.Fatalf("MessagesWithoutDates = %v", err)
		}
		out = append(out, msg)
	}
	return out
}

// summary is what a listing says of each message, dates left out.
func summary(ms []formats.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%d %s %v %q modseq=%d size=%d", m.UID, m.GUID, m.Flags, m.Keywords, m.ModSeq, m.Size))
	}
	return out
}

// TestQuickCurMatchesFullRead: with the index's header saying cur/ has
// not changed since a sync that left the index agreeing with it (written
// by Dovecot or by us), a fresh mailbox reads new/ only, and lists and
// reads every message exactly as a read of cur/ does; each body is found
// under the name taken from the index, without reading cur/.
func TestQuickCurMatchesFullRead(t *testing.T) {
	ctx := context.Background()
	for _, byDovecot := range []bool{false, true} {
		t.Run(fmt.Sprintf("header by Dovecot %v", byDovecot), func(t *testing.T) {
			d, root := quickMaildir(t, byDovecot)
			want := summary(fullList(t, root))
			m := openBox(t, openStore(t, formats.Location{Path: root}, formats.OpenOptions{ReadOnly: true}), "INBOX")
			got := summary(list(t, m))
			if !slices.Equal(got, want) {
				t.Fatalf("quick listing\n%q\nfull read\n%q", got, want)
			}
			if !m.st.quickCur {
				t.Fatal("cur/ was read: the index's picture of it was not used")
			}
			if n := m.dirReads.Load(); n != 1 {
				t.Fatalf("%d directories read, want 1 (new/)", n)
			}
			ms := list(t, m)
			reads := m.dirReads.Load()
			for _, msg := range ms {
				if err := m.Body(ctx, msg.UID, func(b formats.Body) error {
					_, err := io.Copy(io.Discard, b)
					return err
				}); err != nil {
					t.Fatalf("Body(%d) = %v", msg.UID, err)
				}
			}
			if n := m.dirReads.Load() - reads; n != 0 || m.distrustCur.Load() || !m.st.quickCur {
				t.Fatalf("reading the bodies read %d directories (distrust %v): a name from the index was wrong", n, m.distrustCur.Load())
			}
			// Dovecot lists the same flags.
			out := d.MustDoveadm(t, "-f", "flow", "fetch", "uid flags", "mailbox", "INBOX", "all")
			for _, msg := range list(t, m) {
				line := ""
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(l, fmt.Sprintf("uid=%d ", msg.UID)) {
						line = l
					}
				}
				for _, f := range msg.Flags.Names() {
					if !strings.Contains(line, f) {
						t.Errorf("uid %d: Dovecot's flags %q lack %s", msg.UID, line, f)
					}
				}
				for _, k := range msg.Keywords {
					if !strings.Contains(line, k) {
						t.Errorf("uid %d: Dovecot's flags %q lack %s", msg.UID, line, k)
					}
				}
			}
		})
	}
}

// TestQuickCurFallsBack: every way the index's picture of cur/ can be
// wrong or unusable ends in a read of cur/ and the same answer a read of
// cur/ gives, never a lost or duplicated message.
func TestQuickCurFallsBack(t *testing.T) {
	ctx := context.Background()
	curFile := func(t *testing.T, root string, suffix string) string {
		t.Helper()
		for _, n := range dirNames(t, filepath.Join(root, "cur")) {
			if strings.HasSuffix(n, suffix) {
				return n
			}
		}
		t.Fatalf("no file in cur/ ends in %q", suffix)
		return ""
	}
	// keepCurMtime runs fn and gives cur/ its mtime back, as if fn had
	// happened within the same mtime tick as the last recorded change.
	keepCurMtime := func(t *testing.T, root string, fn func()) {
		t.Helper()
		fi, err := os.Stat(filepath.Join(root, "cur"))
		if err != nil {
			t.Fatal(err)
		}
		fn()
		if err := os.Chtimes(filepath.Join(root, "cur"), fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	readAll := func(t *testing.T, m *mailbox) {
		t.Helper()
		for _, msg := range list(t, m) {
			err := m.Body(ctx, msg.UID, func(b formats.Body) error {
				_, err := io.Copy(io.Discard, b)
				return err
			})
			if err != nil && formats.KindOf(err) != formats.KindExpunged {
				t.Fatalf("Body(%d) = %v", msg.UID, err)
			}
		}
	}
	cases := []struct {
		name string
		// change alters the Maildir; quickUsed tells whether the
		// first listing still takes cur/ from the index.
		change    func(t *testing.T, d *dovecottest.Dovecot, root string)
		quickUsed bool
	}{
		{"a file in cur/ without :2, (a name the index cannot give)", func(t *testing.T, _ *dovecottest.Dovecot, root string) {
			keepCurMtime(t, root, func() {
				n := curFile(t, root, ":2,")
				if err := os.Rename(filepath.Join(root, "cur", n), filepath.Join(root, "cur", strings.TrimSuffix(n, ":2,"))); err != nil {
					t.Fatal(err)
				}
			})
		}, true},
		{"a flag change in the index not made to the file yet", func(t *testing.T, _ *dovecottest.Dovecot, root string) {
			ix, err := index.Open(root, index.Prefix, &index.Options{})
			if err != nil {
				t.Fatal(err)
			}
			tx := ix.Begin()
			tx.UpdateFlags(1, index.FlagFlagged, 0)
			if _, err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"letters in another order than Dovecot's", func(t *testing.T, _ *dovecottest.Dovecot, root string) {
			keepCurMtime(t, root, func() {
				n := curFile(t, root, ":2,DST")
				if err := os.Rename(filepath.Join(root, "cur", n), filepath.Join(root, "cur", strings.TrimSuffix(n, "DST")+"TSD")); err != nil {
					t.Fatal(err)
				}
			})
		}, true},
		{"a file removed from cur/ in the same tick", func(t *testing.T, _ *dovecottest.Dovecot, root string) {
			keepCurMtime(t, root, func() {
				if err := os.Remove(filepath.Join(root, "cur", curFile(t, root, ":2,S"))); err != nil {
					t.Fatal(err)
				}
			})
		}, true},
		{"Dovecot changes flags (cur/ changes)", func(t *testing.T, d *dovecottest.Dovecot, _ string) {
			d.MustDoveadm(t, "flags", "add", `\Flagged`, "mailbox", "INBOX", "uid", "1")
		}, false},
		{"Dovecot expunges", func(t *testing.T, d *dovecottest.Dovecot, _ string) {
			d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "2")
		}, false},
		{"a file added to cur/ by hand", func(t *testing.T, _ *dovecottest.Dovecot, root string) {
			if err := os.WriteFile(filepath.Join(root, "cur", "1700000001.M2P2.mua:2,S"), []byte("Subject: by hand\n\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"an index message the uidlist does not list", func(t *testing.T, _ *dovecottest.Dovecot, root string) {
			ix, err := index.Open(root, index.Prefix, &index.Options{})
			if err != nil {
				t.Fatal(err)
			}
			v, err := ix.View()
			if err != nil {
				t.Fatal(err)
			}
			tx := ix.Begin()
			tx.Append(v.NextUID()+5, 0)
			tx.SetHeader(index.FieldNextUID, v.NextUID()+6)
			if _, err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, root := quickMaildir(t, false)
			c.change(t, d, root)
			m := openBox(t, openStore(t, formats.Location{Path: root}, formats.OpenOptions{ReadOnly: true}), "INBOX")
			first := listNoDates(t, m)
			if m.st.quickCur != c.quickUsed {
				t.Fatalf("cur/ taken from the index: %v, want %v", m.st.quickCur, c.quickUsed)
			}
			readAll(t, m)
			after := summary(list(t, m))
			if want := summary(fullList(t, root)); !slices.Equal(after, want) {
				t.Fatalf("after reading every body the mailbox lists\n%q\na read of cur/\n%q\n(first listing %q)", after, want, summary(first))
			}
			if c.quickUsed && !m.distrustCur.Load() {
				t.Fatal("a wrong name from the index went unnoticed")
			}
		})
	}
}

// TestQuickCurRemovedFromNew: a recent message the index has (Dovecot
// indexed it in new/) that was removed from new/ without reaching cur/ is
// looked for in cur/, not found, and cur/ is read: the mailbox no longer
// lists it, as doveadm does not (Dovecot reads cur/ when new/ changed
// while recent messages exist). A recent message Dovecot has moved to
// cur/ (claiming it in an IMAP session changes cur/) is read from cur/ as
// well; a recent message still in new/ is found there.
func TestQuickCurRemovedFromNew(t *testing.T) {
	d, root := quickMaildir(t, true)
	const gone = "1700000002.M3P3.mda,S=20"
	deliver(t, d, root, gone)
	d.MustDoveadm(t, "mailbox", "status", "messages", "INBOX") // indexes it, leaves it in new/
	if !slices.Contains(dirNames(t, filepath.Join(root, "new")), gone) {
		t.Fatal("Dovecot moved the delivered file out of new/")
	}
	// Still in new/: found there, cur/ from the index.
	m := openBox(t, openStore(t, formats.Location{Path: root}, formats.OpenOptions{ReadOnly: true}), "INBOX")
	ms := listNoDates(t, m)
	if !m.st.quickCur {
		t.Fatal("cur/ was read while every recent message is in new/")
	}
	if !slices.ContainsFunc(ms, func(msg formats.Message) bool { return msg.GUID == baseOf(gone) }) {
		t.Fatalf("the recent message in new/ is not listed: %q", summary(ms))
	}

	time.Sleep(10 * time.Millisecond)
	if err := os.Remove(filepath.Join(root, "new", gone)); err != nil {
		t.Fatal(err)
	}
	m = openBox(t, openStore(t, formats.Location{Path: root}, formats.OpenOptions{ReadOnly: true}), "INBOX")
	ms = listNoDates(t, m)
	if m.st.quickCur {
		t.Fatal("cur/ taken from the index although a recent message left new/")
	}
	if slices.ContainsFunc(ms, func(msg formats.Message) bool { return msg.GUID == baseOf(gone) }) {
		t.Fatalf("the message removed from new/ is still listed: %q", summary(ms))
	}
	if got, want := summary(ms), summary(fullList(t, root)); !slices.Equal(got, want) {
		t.Fatalf("listing\n%q\nfull read\n%q", got, want)
	}
	out := d.MustDoveadm(t, "-f", "flow", "fetch", "uid", "mailbox", "INBOX", "all")
	if n := strings.Count(out, "uid="); n != len(ms) {
		t.Fatalf("doveadm lists %d messages, we %d: %q", n, len(ms), out)
	}
}

// TestQuickCurExpungeWrongName: a transaction expunging and flagging
// messages whose names the index gave wrong finds their files and
// changes them; Dovecot agrees with the result.
func TestQuickCurExpungeWrongName(t *testing.T) {
	ctx := context.Background()
	d, root := quickMaildir(t, false)
	// Both files lose ":2," by hand within the recorded mtime.
	fi, err := os.Stat(filepath.Join(root, "cur"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range dirNames(t, filepath.Join(root, "cur")) {
		if strings.HasSuffix(n, ":2,S") || strings.HasSuffix(n, ":2,") {
			base, _, _ := strings.Cut(n, ":")
			if err := os.Rename(filepath.Join(root, "cur", n), filepath.Join(root, "cur", base)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chtimes(filepath.Join(root, "cur"), fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	m := openBox(t, openStore(t, formats.Location{Path: root}, formats.OpenOptions{}), "INBOX")
	ms := listNoDates(t, m)
	if !m.st.quickCur {
		t.Fatal("cur/ was read")
	}
	var seen, plain formats.UID
	for _, msg := range ms {
		switch {
		case msg.Flags == formats.FlagSeen && len(msg.Keywords) == 0:
			seen = msg.UID
		case msg.Flags == 0 && len(msg.Keywords) == 0 && plain == 0:
			plain = msg.UID
		}
	}
	if seen == 0 || plain == 0 {
		t.Fatalf("listing %q", summary(ms))
	}
	tx, err := m.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Expunge(seen); err != nil {
		t.Fatal(err)
	}
	if err := tx.SetFlags(plain, formats.FlagFlagged, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := summary(fullList(t, root))
	if len(got) != len(ms)-1 {
		t.Fatalf("after the expunge: %q", got)
	}
	d.Chown(t, root)
	out := d.MustDoveadm(t, "-f", "flow", "fetch", "uid flags", "mailbox", "INBOX", "all")
	if strings.Contains(out, fmt.Sprintf("uid=%d ", seen)) {
		t.Errorf("Dovecot still lists the expunged uid %d: %q", seen, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, fmt.Sprintf("uid=%d ", plain)) && !strings.Contains(l, `\Flagged`) {
			t.Errorf("Dovecot: %q, want \\Flagged", l)
		}
	}
}

// TestQuickCurProperty: random sequences of what happens to a Maildir
// between two syncs (deliveries into new/, Dovecot's flag changes and
// expunges, our own saves, flag changes and expunges, Dovecot's or our
// sync recording the maildir header after a quiet spell) never make a
// fresh mailbox list anything else than a read of cur/ lists, nor other
// flags than Dovecot reports; and cur/ is taken from the index in some
// of the steps. The seed is printed.
func TestQuickCurProperty(t *testing.T) {
	ctx := context.Background()
	quickSteps := 0
	defer func() {
		if !t.Failed() && quickSteps == 0 {
			t.Error("no step took cur/ from the index: the property says nothing about it")
		}
	}()
	for run := range 3 {
		seed := uint64(time.Now().UnixNano()) + uint64(run)
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 0))
			d, root := quickMaildir(t, rng.IntN(2) == 0)
			loc := formats.Location{Path: root}
			uids := func() []formats.UID {
				var out []formats.UID
				for _, m := range fullList(t, root) {
					out = append(out, m.UID)
				}
				return out
			}
			pick := func() (formats.UID, bool) {
				u := uids()
				if len(u) == 0 {
					return 0, false
				}
				return u[rng.IntN(len(u))], true
			}
			flagNames := []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, "todo", "$Label1", "other"}
			quick := 0
			for step := range 14 {
				var did string
				switch op := rng.IntN(7); op {
				case 0:
					name := fmt.Sprintf("17000%05d.M%dP%d.mda,S=20", step, run, rng.IntN(1000))
					deliver(t, d, root, name)
					did = "deliver " + name
				case 1:
					if uid, ok := pick(); ok {
						verb := []string{"add", "remove"}[rng.IntN(2)]
						f := flagNames[rng.IntN(len(flagNames))]
						d.MustDoveadm(t, "flags", verb, f, "mailbox", "INBOX", "uid", fmt.Sprint(uid))
						did = fmt.Sprintf("doveadm flags %s %s %d", verb, f, uid)
					}
				case 2:
					if uid, ok := pick(); ok {
						d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", fmt.Sprint(uid))
						did = fmt.Sprintf("doveadm expunge %d", uid)
					}
				case 3, 4:
					m := openBox(t, openStore(t, loc, formats.OpenOptions{}), "INBOX")
					tx, err := m.Begin(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if uid, ok := pick(); ok && op == 3 {
						if rng.IntN(3) == 0 {
							err = tx.Expunge(uid)
							did = fmt.Sprintf("our expunge %d", uid)
						} else {
							var kws []string
							if rng.IntN(2) == 0 {
								kws = []string{flagNames[5+rng.IntN(3)]}
							}
							fl := formats.Flags(rng.IntN(32)) & formats.SystemFlags
							err = tx.SetFlags(uid, fl, kws)
							did = fmt.Sprintf("our flags %d %v %q", uid, fl, kws)
						}
						if err != nil {
							t.Fatal(err)
						}
					} else {
						msg := formats.Message{Recent: rng.IntN(2) == 0}
						if rng.IntN(2) == 0 {
							msg.Flags = formats.FlagSeen
						}
						save(t, tx, msg, fmt.Sprintf("Subject: step %d\n\nours\n", step))
						did = fmt.Sprintf("our save %+v", msg.Flags)
					}
					if err := tx.Commit(ctx); err != nil {
						t.Fatal(err)
					}
					d.Chown(t, root)
				case 5:
					age(t, root)
					d.MustDoveadm(t, "mailbox", "status", "messages", "INBOX")
					did = "quiet, then Dovecot's sync"
				case 6:
					age(t, root)
					m := openBox(t, openStore(t, loc, formats.OpenOptions{}), "INBOX")
					if _, err := m.Status(ctx); err != nil {
						t.Fatal(err)
					}
					d.Chown(t, root)
					did = "quiet, then our sync"
				}
				if did == "" {
					continue
				}
				m := openBox(t, openStore(t, loc, formats.OpenOptions{}), "INBOX")
				got := listNoDates(t, m)
				if m.st.quickCur {
					quick++
				}
				for _, msg := range got {
					err := m.Body(ctx, msg.UID, func(b formats.Body) error {
						_, err := io.Copy(io.Discard, b)
						return err
					})
					if err != nil {
						t.Fatalf("step %d (%s): Body(%d) = %v", step, did, msg.UID, err)
					}
				}
				d.Chown(t, root)
				want := summary(fullList(t, root))
				if !slices.Equal(summary(got), want) {
					t.Fatalf("step %d (%s, cur/ from the index %v): fresh listing\n%q\na read of cur/\n%q", step, did, m.st.quickCur, summary(got), want)
				}
				out := d.MustDoveadm(t, "-f", "flow", "fetch", "uid flags", "mailbox", "INBOX", "all")
				var dove []string
				for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
					if l == "" {
						continue
					}
					uid, flags, _ := strings.Cut(l, " flags=")
					var names []string
					for _, f := range strings.Fields(flags) {
						if f != `\Recent` {
							names = append(names, f)
						}
					}
					slices.Sort(names)
					dove = append(dove, uid+" "+strings.Join(names, " "))
				}
				var ours []string
				for _, msg := range got {
					names := append(msg.Flags.Names(), msg.Keywords...)
					slices.Sort(names)
					ours = append(ours, fmt.Sprintf("uid=%d %s", msg.UID, strings.Join(names, " ")))
				}
				if !slices.Equal(ours, dove) {
					t.Fatalf("step %d (%s): we list\n%q\nDovecot\n%q", step, did, ours, dove)
				}
			}
			t.Logf("cur/ taken from the index in %d steps", quick)
			quickSteps += quick
		})
	}
}
