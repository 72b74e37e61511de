package maildir_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// ourRecent is the set of UIDs our driver reports Recent, reading the
// store afresh.
func ourRecent(t *testing.T, loc formats.Location, mailbox string) []formats.UID {
	t.Helper()
	store := openStore(t, loc, formats.OpenOptions{})
	defer store.Close()
	mb, err := store.Open(context.Background(), mailbox)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	var recent []formats.UID
	for m, err := range mb.Messages(context.Background(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		if m.Recent {
			recent = append(recent, m.UID)
		}
		if m.Flags&formats.FlagRecent != 0 {
			t.Errorf("uid %d: FlagRecent in Flags", m.UID)
		}
	}
	return recent
}

// listDir returns the names in a maildir's cur/ and new/ as "cur/NAME"
// and "new/NAME", sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			out = append(out, sub+"/"+e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// TestSaveRecentPlacement saves mail with and without Message.Recent:
// only a Recent message without flags or keywords goes to new/, under
// its bare base name as Dovecot's maildir_get_dest_filename names it
// (a GUID that is a fitting base name included); everything else goes
// to cur/ with ":2,FLAGS". Dovecot reads every message, and reports
// \Recent exactly where we do: the Recent messages, in new/ or cur/
// (first_recent_uid), not the one saved without it.
func TestSaveRecentPlacement(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, "")
	store := openStore(t, loc, formats.OpenOptions{Create: true})
	if err := store.Create(ctx, "INBOX", formats.NewGUID(), 1234567890); err != nil {
		t.Fatal(err)
	}
	body := []byte("Subject: recent\n\nbody\n")
	guidName := fmt.Sprintf("1600000000.M1P2.other,S=%d,W=%d", len(body), formats.VSize(body))
	tests := []struct {
		msg  formats.Message
		want string // "cur/" or "new/" and the part of the name after the base
	}{
		{formats.Message{UID: 1}, "cur/:2,"},
		{formats.Message{UID: 2, Flags: formats.FlagSeen}, "cur/:2,S"},
		{formats.Message{UID: 3, Recent: true}, "new/"},
		{formats.Message{UID: 4, Recent: true, Flags: formats.FlagSeen}, "cur/:2,S"},
		{formats.Message{UID: 5, Recent: true, Keywords: []string{"work"}}, "cur/:2,a"},
		{formats.Message{UID: 6, Recent: true, GUID: guidName}, "new/"},
		{formats.Message{UID: 7, Recent: true, Flags: formats.FlagFlagged | formats.FlagDraft}, "cur/:2,DF"},
		{formats.Message{UID: 8, Recent: true}, "new/"},
	}
	mb, err := store.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		m := tc.msg
		m.Size = int64(len(body))
		if _, err := tx.Save(ctx, m, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The uidlist maps each UID to its base name; the files say where.
	byBase := map[string]string{}
	for _, f := range listDir(t, loc.Path) {
		sub, name, _ := strings.Cut(f, "/")
		base, info, _ := strings.Cut(name, ":")
		if info != "" {
			info = ":" + info
		}
		byBase[base] = sub + "/" + info
	}
	var got []string
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, byBase[m.GUID])
	}
	mb.Close()
	var want []string
	for _, tc := range tests {
		want = append(want, tc.want)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("placement by UID = %q, want %q\nfiles: %q", got, want, listDir(t, loc.Path))
	}
	if _, err := os.Stat(filepath.Join(loc.Path, "new", guidName)); err != nil {
		t.Errorf("the GUID base name is not the new/ file's name: %v", err)
	}
	wantRecent := []formats.UID{3, 4, 5, 6, 7, 8}
	if got := ourRecent(t, loc, "INBOX"); fmt.Sprint(got) != fmt.Sprint(wantRecent) {
		t.Errorf("our Recent UIDs = %v, want %v", got, wantRecent)
	}
	if got := dovecottest.RecentUIDs[formats.UID](t, d, "INBOX"); fmt.Sprint(got) != fmt.Sprint(wantRecent) {
		t.Errorf("Dovecot's \\Recent UIDs = %v, want %v", got, wantRecent)
	}
	compare(t, d, store)
}

// TestRecentAsDovecotCounts places files by hand, as a delivery agent
// and mail clients do, and checks that we report Recent where Dovecot
// reports \Recent: before Dovecot has an index (new/ above the last cur/
// file), after a Dovecot session indexed it (first_recent_uid), after an
// IMAP SELECT claimed \Recent (moving new/ to cur/), after a new
// delivery, and after we saved mail without Recent, which claims it for
// every lower UID as Dovecot's save does.
func TestRecentAsDovecotCounts(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		files []string // in UID order (their names sort that way)
		want  []formats.UID
	}{
		{"new only", []string{"new/1700000001.M1P1.h", "new/1700000002.M1P1.h:2,S"}, []formats.UID{1, 2}},
		{"cur first", []string{"cur/1700000001.M1P1.h:2,", "new/1700000002.M1P1.h", "new/1700000003.M1P1.h:2,S"}, []formats.UID{2, 3}},
		{"cur last", []string{"new/1700000001.M1P1.h", "cur/1700000002.M1P1.h:2,", "new/1700000003.M1P1.h"}, []formats.UID{3}},
		{"cur only", []string{"cur/1700000001.M1P1.h:2,S", "cur/1700000002.M1P1.h:2,"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, loc := interop(t, "")
			dir := loc.Path
			for _, sub := range []string{"cur", "new", "tmp"} {
				if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			for i, f := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(fmt.Sprintf("Subject: %d\n\nbody\n", i)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// We read first: our scan records the UIDs, as a
			// boxsync run on a live Maildir does.
			if got := ourRecent(t, loc, "INBOX"); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("no index: our Recent UIDs = %v, want %v", got, tc.want)
			}
			if got := dovecottest.RecentUIDs[formats.UID](t, d, "INBOX"); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Dovecot's \\Recent UIDs = %v, want %v", got, tc.want)
			}
			if got := ourRecent(t, loc, "INBOX"); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("indexed by Dovecot: our Recent UIDs = %v, want %v", got, tc.want)
			}

			// An IMAP session selects INBOX: \Recent is claimed.
			c := d.Cmd(t, "exec", "imap")
			c.Stdin = strings.NewReader("a select INBOX\r\nb logout\r\n")
			if out, err := c.Output(); err != nil || !strings.Contains(string(out), "a OK") {
				t.Fatalf("imap select: %v\n%s", err, out)
			}
			if got := dovecottest.RecentUIDs[formats.UID](t, d, "INBOX"); len(got) != 0 {
				t.Fatalf("Dovecot's \\Recent UIDs after SELECT = %v, want none", got)
			}
			if got := ourRecent(t, loc, "INBOX"); len(got) != 0 {
				t.Errorf("after SELECT: our Recent UIDs = %v, want none", got)
			}

			// A delivery into new/: recent again, for both.
			next := formats.UID(len(tc.files) + 1)
			if err := os.WriteFile(filepath.Join(dir, "new", "1700000100.M1P1.h"), []byte("Subject: delivered\n\nbody\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			d.Chown(t, dir)
			want := []formats.UID{next}
			if got := ourRecent(t, loc, "INBOX"); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("after delivery: our Recent UIDs = %v, want %v", got, want)
			}
			if got := dovecottest.RecentUIDs[formats.UID](t, d, "INBOX"); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("after delivery: Dovecot's \\Recent UIDs = %v, want %v", got, want)
			}

			// We save one Recent and one not Recent message: the
			// latter claims \Recent of every lower UID.
			store := openStore(t, loc, formats.OpenOptions{})
			mb, err := store.Open(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			tx, err := mb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []formats.Message{{Recent: true}, {Flags: formats.FlagSeen}, {Recent: true}} {
				if _, err := tx.Save(ctx, m, strings.NewReader("Subject: saved\n\nbody\n")); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			mb.Close()
			want = []formats.UID{next + 3}
			if got := ourRecent(t, loc, "INBOX"); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("after our saves: our Recent UIDs = %v, want %v", got, want)
			}
			if got := dovecottest.RecentUIDs[formats.UID](t, d, "INBOX"); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("after our saves: Dovecot's \\Recent UIDs = %v, want %v", got, want)
			}
			compare(t, d, store)
		})
	}
}

// TestRaiseFirstRecentAsDovecot raises first_recent_uid
// (formats.FirstRecentRaiser) over delivered files in new/, with an
// index Dovecot wrote first and with none yet (our commit creates it):
// Dovecot then reports \Recent exactly from the raised UID, the files
// stay in new/, Status reports the UID, a lower raise changes nothing,
// and a new delivery is \Recent again.
func TestRaiseFirstRecentAsDovecot(t *testing.T) {
	ctx := context.Background()
	for _, dovecotFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("dovecot indexed first=%v", dovecotFirst), func(t *testing.T) {
			d, loc := interop(t, "")
			dir := loc.Path
			for _, sub := range []string{"cur", "new", "tmp"} {
				if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			deliver := func(n int) {
				t.Helper()
				name := fmt.Sprintf("new/17000000%02d.M1P1.h", n)
				if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("Subject: %d\n\nbody\n", n)), 0o600); err != nil {
					t.Fatal(err)
				}
				d.Chown(t, dir)
			}
			for n := 1; n <= 4; n++ {
				deliver(n)
			}
			if dovecotFirst {
				if got, want := dovecottest.RecentUIDs[formats.UID](t, d, "INBOX"), []formats.UID{1, 2, 3, 4}; fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("Dovecot's \\Recent UIDs = %v, want %v", got, want)
				}
			}
			raise := func(uid formats.UID) formats.Status {
				t.Helper()
				store := openStore(t, loc, formats.OpenOptions{})
				defer store.Close()
				mb, err := store.Open(ctx, "INBOX")
				if err != nil {
					t.Fatal(err)
				}
				defer mb.Close()
				if _, err := mb.Status(ctx); err != nil {
					t.Fatal(err)
				}
				tx, err := mb.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				if err := tx.(formats.FirstRecentRaiser).RaiseFirstRecentUID(uid); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				st, err := mb.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return st
			}
			check := func(when string, want ...formats.UID) {
				t.Helper()
				if got := ourRecent(t, loc, "INBOX"); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: our Recent UIDs = %v, want %v", when, got, want)
				}
				if got := dovecottest.RecentUIDs[formats.UID](t, d, "INBOX"); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: Dovecot's \\Recent UIDs = %v, want %v", when, got, want)
				}
			}
			if st := raise(3); st.FirstRecentUID != 3 {
				t.Errorf("Status().FirstRecentUID = %d after raising it to 3", st.FirstRecentUID)
			}
			check("raised to 3", 3, 4)
			if st := raise(2); st.FirstRecentUID != 3 {
				t.Errorf("Status().FirstRecentUID = %d after a raise to 2, want 3 still", st.FirstRecentUID)
			}
			check("a lower raise", 3, 4)
			var inNew int
			for _, f := range listDir(t, dir) {
				if strings.HasPrefix(f, "new/") {
					inNew++
				}
			}
			if inNew != 4 {
				t.Errorf("%d files in new/, want all 4 (%q)", inNew, listDir(t, dir))
			}
			deliver(5)
			check("after a delivery", 3, 4, 5)
			d.CheckLogClean(t)
		})
	}
}
