package maildir

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestScanReusesUnchangedDirs: a scan takes new/ and cur/ from the
// mailbox's previous scan only while the directory's mtime is unchanged
// and was old at that scan (state.dirUnchanged); every change a mail
// client or Dovecot makes by hand between two reads (a file renamed for
// a flag change, added, removed, moved from new/ to cur/) is seen by the
// next read of the same open mailbox, right after the change.
func TestScanReusesUnchangedDirs(t *testing.T) {
	ctx := context.Background()
	type hand func(t *testing.T, root string, names map[string]string) (wantUIDs int, check func([]formats.Message) error)
	onlyCur := func(names map[string]string) string {
		for base, n := range names {
			if strings.HasPrefix(n, "cur/") {
				return base
			}
		}
		return ""
	}
	cases := []struct {
		name string
		do   hand
	}{
		{"rename in cur/ (flag change)", func(t *testing.T, root string, names map[string]string) (int, func([]formats.Message) error) {
			base := onlyCur(names)
			from := filepath.Join(root, names[base])
			to := filepath.Join(root, "cur", base+":2,FS")
			if err := os.Rename(from, to); err != nil {
				t.Fatal(err)
			}
			return 3, func(ms []formats.Message) error {
				for _, m := range ms {
					if m.GUID == base && m.Flags != formats.FlagSeen|formats.FlagFlagged {
						return fmt.Errorf("%s has flags %v after a rename to :2,FS", base, m.Flags)
					}
				}
				return nil
			}
		}},
		{"file added to cur/", func(t *testing.T, root string, _ map[string]string) (int, func([]formats.Message) error) {
			if err := os.WriteFile(filepath.Join(root, "cur", "1700000000.M1P1.mua:2,S"), []byte("Subject: by hand\n\nx\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return 4, nil
		}},
		{"file added to new/", func(t *testing.T, root string, _ map[string]string) (int, func([]formats.Message) error) {
			if err := os.WriteFile(filepath.Join(root, "new", "1700000000.M2P1.mda"), []byte("Subject: delivered\n\nx\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return 4, nil
		}},
		{"file removed from cur/", func(t *testing.T, root string, names map[string]string) (int, func([]formats.Message) error) {
			base := onlyCur(names)
			if err := os.Remove(filepath.Join(root, names[base])); err != nil {
				t.Fatal(err)
			}
			return 2, func(ms []formats.Message) error {
				if slices.ContainsFunc(ms, func(m formats.Message) bool { return m.GUID == base }) {
					return fmt.Errorf("%s still listed after its file was removed", base)
				}
				return nil
			}
		}},
		{"dovecot-uidlist replaced (a GUID set)", func(t *testing.T, root string, names map[string]string) (int, func([]formats.Message) error) {
			return 3, setGUID(t, root, onlyCur(names), true)
		}},
		{"dovecot-uidlist rewritten in place (a GUID set)", func(t *testing.T, root string, names map[string]string) (int, func([]formats.Message) error) {
			return 3, setGUID(t, root, onlyCur(names), false)
		}},
		{"moved from new/ to cur/", func(t *testing.T, root string, names map[string]string) (int, func([]formats.Message) error) {
			for base, n := range names {
				if strings.HasPrefix(n, "new/") {
					if err := os.Rename(filepath.Join(root, n), filepath.Join(root, "cur", base+":2,S")); err != nil {
						t.Fatal(err)
					}
					return 3, func(ms []formats.Message) error {
						for _, m := range ms {
							if m.GUID == base && m.Flags != formats.FlagSeen {
								return fmt.Errorf("%s has flags %v after a move to cur/ as :2,S", base, m.Flags)
							}
						}
						return nil
					}
				}
			}
			t.Fatal("no message in new/")
			return 0, nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "Maildir")
			loc := formats.Location{Path: root}
			_, mb := newInbox(t, loc)
			tx, err := mb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				save(t, tx, formats.Message{}, "Subject: "+sized(i+1)+"\n\nbody\n")
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			// One message as an MDA leaves it in new/.
			if err := os.WriteFile(filepath.Join(root, "new", "1600000000.M9P9.mda"), []byte("Subject: new\n\nx\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			age(t, root)

			box := openBox(t, openStore(t, loc, formats.OpenOptions{}), "INBOX")
			names := map[string]string{}
			st, err := box.load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range st.t.recs {
				r := &st.t.recs[i]
				names[st.t.base(r)] = subdir(r.dir) + "/" + st.t.name(r)
			}
			if len(names) != 3 {
				t.Fatalf("first read found %v", names)
			}
			// Nothing changed: the next read takes both directories
			// from the first (the shortcut is in use, so the rest of
			// the test is not vacuous).
			reads := box.dirReads.Load()
			if _, err := box.load(ctx); err != nil {
				t.Fatal(err)
			}
			if got := box.dirReads.Load() - reads; got != 0 {
				t.Fatalf("an unchanged Maildir was read again (%d directories)", got)
			}

			want, check := c.do(t, root, names)
			ms := list(t, box)
			if len(ms) != want {
				t.Fatalf("after the change: %d messages, want %d: %+v", len(ms), want, ms)
			}
			if check != nil {
				if err := check(ms); err != nil {
					t.Fatal(err)
				}
			}
			// A fresh store agrees with the shortcut.
			fresh := list(t, openBox(t, openStore(t, loc, formats.OpenOptions{}), "INBOX"))
			if !slices.EqualFunc(ms, fresh, func(a, b formats.Message) bool {
				return a.UID == b.UID && a.GUID == b.GUID && a.Flags == b.Flags
			}) {
				t.Fatalf("the open mailbox lists %+v, a fresh one %+v", ms, fresh)
			}
		})
	}
}

// TestScanRereadsRecentDirs: a directory changed shortly before a read
// may change again within the same mtime tick, so the next read does
// not trust its unchanged mtime: here a file is added and the mtime put
// back to what it was, as a second change in the same tick would leave
// it, and the next read still finds the file.
func TestScanRereadsRecentDirs(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "Maildir")
	_, mb := newInbox(t, formats.Location{Path: root})
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	save(t, tx, formats.Message{}, "Subject: one\n\nbody\n")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"cur", "new"} {
		recent := time.Now().Add(-reuseMargin / 4) // changed "just now"
		dir := filepath.Join(root, sub)
		if err := os.Chtimes(dir, recent, recent); err != nil {
			t.Fatal(err)
		}
		if _, err := mb.load(ctx); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("1700000000.M%dP1.mua", len(sub))
		if err := os.WriteFile(filepath.Join(dir, name), []byte("Subject: same tick\n\nx\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(dir, recent, recent); err != nil {
			t.Fatal(err)
		}
		st, err := mb.load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(st.t.recs, func(r rec) bool { return st.t.base(&r) == name }) {
			t.Fatalf("%s/%s, added within the mtime tick of the last read, was not found", sub, name)
		}
	}
}

// TestScanSeesDovecotBetweenReads: Dovecot changes the mailbox while we
// hold it open and have read it twice (the second read took both
// directories and dovecot-uidlist from the first): a delivery, a flag
// change and an expunge, each of which rewrites dovecot-uidlist or
// renames in cur/ or new/. The next read of the same open mailbox lists
// exactly what doveadm lists, UIDs and flags included.
func TestScanSeesDovecotBetweenReads(t *testing.T) {
	d := dovecottest.New(t, "maildir:~/Maildir")
	for i := range 4 {
		d.Save(t, "INBOX", []byte(fmt.Sprintf("Subject: m%d\nMessage-ID: <m%d@x>\n\nbody %d\n", i, i, i)))
	}
	d.MustDoveadm(t, "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "1")
	root := d.Root()
	age(t, root)
	box := openBox(t, openStore(t, formats.Location{Path: root}, formats.OpenOptions{ReadOnly: true}), "INBOX")
	if got := len(list(t, box)); got != 4 {
		t.Fatalf("first read: %d messages", got)
	}
	reads := box.dirReads.Load()
	if got := len(list(t, box)); got != 4 {
		t.Fatalf("second read: %d messages", got)
	}
	if box.dirReads.Load() != reads {
		t.Fatal("the second read of an unchanged Maildir read its directories again")
	}

	d.Save(t, "INBOX", []byte("Subject: m4\nMessage-ID: <m4@x>\n\nbody 4\n"))
	d.MustDoveadm(t, "flags", "add", `\Flagged`, "mailbox", "INBOX", "uid", "2")
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "3")

	var got []string
	for _, m := range list(t, box) {
		got = append(got, fmt.Sprintf("%d %s", m.UID, strings.Join(m.Flags.Names(), " ")))
	}
	var want []string
	out := d.MustDoveadm(t, "-f", "flow", "fetch", "uid flags", "mailbox", "INBOX", "all")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var uid int
		var flags string
		if i := strings.Index(line, " flags="); i >= 0 {
			flags = strings.TrimSpace(strings.ReplaceAll(line[i+len(" flags="):], `\Recent`, ""))
			flags = strings.Join(strings.Fields(flags), " ")
			line = line[:i]
		}
		if _, err := fmt.Sscanf(line, "uid=%d", &uid); err != nil {
			t.Fatalf("doveadm fetch line %q: %v", line, err)
		}
		want = append(want, fmt.Sprintf("%d %s", uid, flags))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after Dovecot's changes the open mailbox lists\n%q\ndoveadm lists\n%q", got, want)
	}
	d.CheckLogClean(t)
}

// setGUID gives base a G field in dovecot-uidlist, by rename as Dovecot
// does or in place, and returns the check that the listing shows it.
func setGUID(t *testing.T, root, base string, rename bool) func([]formats.Message) error {
	t.Helper()
	const guid = "0123456789abcdef0123456789abcdef"
	path := filepath.Join(root, uidlistName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	found := false
	for i, l := range lines {
		if uid, rest, ok := strings.Cut(l, " :"); ok && rest == base {
			lines[i] = uid + " G" + guid + " :" + base
			found = true
		}
	}
	if !found {
		t.Fatalf("%s not in %q", base, data)
	}
	out := []byte(strings.Join(lines, "\n"))
	if rename {
		if err := os.WriteFile(path+".tmp", out, 0o600); err != nil {
			t.Fatal(err)
		}
		err = os.Rename(path+".tmp", path)
	} else {
		err = os.WriteFile(path, out, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
	return func(ms []formats.Message) error {
		if !slices.ContainsFunc(ms, func(m formats.Message) bool { return m.GUID == guid }) {
			return fmt.Errorf("no message has GUID %s after dovecot-uidlist gave %s one: %+v", guid, base, ms)
		}
		return nil
	}
}

// TestMessagesWithoutDates: MessagesWithoutDates lists what Messages
// lists with zero dates, and Dates gives each message's dates as
// Messages does, also for a file without ,S= (looked at for its size)
// and after a mail client renamed the file; a removed file is
// KindExpunged.
func TestMessagesWithoutDates(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "Maildir")
	_, mb := newInbox(t, formats.Location{Path: root})
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, rcv := range []int64{1e9, 1.1e9} {
		save(t, tx, formats.Message{Received: time.Unix(rcv, 0), Flags: formats.Flags(i) * formats.FlagSeen}, "Subject: "+sized(i+1)+"\n\nbody\n")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(root, "new", "1700000000.M1P1.mda") // no ,S=
	if err := os.WriteFile(plain, []byte("Subject: plain\n\nx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1.2e9, 0)
	if err := os.Chtimes(plain, old, old); err != nil {
		t.Fatal(err)
	}

	full := list(t, mb)
	var lazy []formats.Message
	for m, err := range mb.MessagesWithoutDates(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		lazy = append(lazy, m)
	}
	if len(full) != 3 || len(lazy) != 3 {
		t.Fatalf("Messages %d, MessagesWithoutDates %d, want 3", len(full), len(lazy))
	}
	for i, f := range full {
		l := lazy[i]
		if !l.Received.IsZero() || !l.Saved.IsZero() {
			t.Errorf("UID %d: MessagesWithoutDates gave dates %v %v", l.UID, l.Received, l.Saved)
		}
		f.Received, f.Saved = time.Time{}, time.Time{}
		if fmt.Sprint(f) != fmt.Sprint(l) {
			t.Errorf("UID %d: MessagesWithoutDates %+v, Messages %+v", l.UID, l, f)
		}
		rcv, svd, err := mb.Dates(ctx, f.UID)
		if err != nil || !rcv.Equal(full[i].Received) || !svd.Equal(full[i].Saved) {
			t.Errorf("Dates(%d) = %v, %v, %v; Messages: %v, %v", f.UID, rcv, svd, err, full[i].Received, full[i].Saved)
		}
	}
	if want := []time.Time{time.Unix(1e9, 0), time.Unix(1.1e9, 0), old}; !full[0].Received.Equal(want[0]) || !full[1].Received.Equal(want[1]) || !full[2].Received.Equal(want[2]) {
		t.Errorf("Received = %v %v %v, want %v", full[0].Received, full[1].Received, full[2].Received, want)
	}

	// A mail client sets a flag on UID 1 (its file is renamed), and
	// removes UID 2's.
	st, err := mb.current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range st.t.recs {
		r := &st.t.recs[i]
		p := mb.path(st, r)
		switch r.uid {
		case 1:
			if err := os.Rename(p, filepath.Join(root, "cur", st.t.base(r)+":2,F")); err != nil {
				t.Fatal(err)
			}
		case 2:
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if rcv, _, err := mb.Dates(ctx, 1); err != nil || !rcv.Equal(time.Unix(1e9, 0)) {
		t.Errorf("Dates(1) after a rename = %v, %v", rcv, err)
	}
	if _, _, err := mb.Dates(ctx, 2); formats.KindOf(err) != formats.KindExpunged {
		t.Errorf("Dates(2) after its file was removed = %v, want KindExpunged", err)
	}
}
