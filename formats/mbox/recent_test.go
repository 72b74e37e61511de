package mbox_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// ourRecent is the UIDs our driver reports Recent in mailbox, and
// Status().FirstRecentUID.
func ourRecent(t *testing.T, loc formats.Location, mailbox string) ([]formats.UID, formats.UID) {
	t.Helper()
	ctx := context.Background()
	s := newStore(t, loc, formats.OpenOptions{ReadOnly: true})
	defer s.Close()
	mb, err := s.Open(ctx, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	var recent []formats.UID
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		if m.Recent {
			recent = append(recent, m.UID)
		}
	}
	st, err := mb.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return recent, st.FirstRecentUID
}

// mboxMessage is one hand-written message: status is its Status header
// line ("" for none).
func mboxMessage(i int, status string) string {
	m := fmt.Sprintf("From sender@example.com  Mon Jan  1 00:00:%02d 2001\nSubject: %d\nMessage-ID: <%d@x>\n", i, i, i)
	if status != "" {
		m += status + "\n"
	}
	return m + "\nbody\n\n"
}

// TestRecentAsDovecotCounts writes mbox files by hand, as a delivery
// agent and mail clients (mutt: "Status: O", "Status: RO") do, with and
// without Dovecot's X-IMAPbase/X-UID, and checks that we report Recent
// (and Status().FirstRecentUID) where Dovecot reports \Recent: before
// Dovecot has an index (after the last message whose Status has 'O'),
// after a Dovecot session indexed it (first_recent_uid), after an IMAP
// SELECT claimed \Recent (first_recent_uid raised; 'O' perhaps not yet
// written, mbox_lazy_writes), after a delivery appended to the file,
// and after we saved mail with and without Recent (a save without it
// claims \Recent of every lower UID, as in Dovecot).
func TestRecentAsDovecotCounts(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name           string
		status         []string // Status lines, one message each
		dovecotHeaders bool
		want           []formats.UID
	}{
		{"no Status", []string{"", "", ""}, false, []formats.UID{1, 2, 3}},
		{"read, not old", []string{"Status: R", "Status: R"}, false, []formats.UID{1, 2}},
		{"first old", []string{"Status: O", "", "Status: R"}, false, []formats.UID{2, 3}},
		// 'O' on the second: the first, without it, is not recent
		// either (mbox-sync.c last_nonrecent_uid).
		{"middle old", []string{"", "Status: RO", ""}, false, []formats.UID{3}},
		{"all old", []string{"Status: RO", "Status: O"}, false, nil},
		{"Dovecot's headers", []string{"Status: O", "Status: ", "Status: R"}, true, []formats.UID{2, 3}},
		{"Dovecot's, all recent", []string{"Status: ", "Status: "}, true, []formats.UID{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := dovecottest.New(t, dovecotLocation)
			loc := location(d)
			if err := os.MkdirAll(loc.Path, 0o700); err != nil {
				t.Fatal(err)
			}
			var file strings.Builder
			for i, st := range tc.status {
				if tc.dovecotHeaders {
					st = fmt.Sprintf("X-UID: %d\n%s", i+1, st)
					if i == 0 {
						st = fmt.Sprintf("X-IMAPbase: 1600000000 %010d\n%s", len(tc.status), st)
					}
				}
				file.WriteString(mboxMessage(i+1, st))
			}
			if err := os.WriteFile(loc.Inbox, []byte(file.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			d.Chown(t, loc.Path)
			check := func(when string, want []formats.UID, next formats.UID) {
				t.Helper()
				got, first := ourRecent(t, loc, "INBOX")
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: our Recent UIDs = %v, want %v", when, got, want)
				}
				if wantFirst := next; len(want) > 0 && want[0] < next {
					wantFirst = want[0]
					if first > wantFirst {
						t.Errorf("%s: Status().FirstRecentUID = %d, above the first Recent UID %d", when, first, wantFirst)
					}
				} else if first != next {
					t.Errorf("%s: Status().FirstRecentUID = %d, want UIDNEXT %d (nothing Recent)", when, first, next)
				}
				if got := dovecottest.RecentUIDs[formats.UID](t, d, "INBOX"); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: Dovecot's \\Recent UIDs = %v, want %v", when, got, want)
				}
			}
			n := formats.UID(len(tc.status))
			// We read first (no index), Dovecot then indexes it.
			check("no index", tc.want, n+1)
			if _, err := os.Stat(filepath.Join(loc.Path, ".imap", "INBOX", "dovecot.index.log")); err != nil {
				t.Fatalf("Dovecot wrote no index where we look for it: %v", err)
			}
			got, _ := ourRecent(t, loc, "INBOX")
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("indexed by Dovecot: our Recent UIDs = %v, want %v", got, tc.want)
			}

			d.IMAPSelect(t, "INBOX", "")
			check("after SELECT", nil, n+1)

			// A delivery agent appends a message without Status.
			f, err := os.OpenFile(loc.Inbox, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(mboxMessage(50, "")); err != nil {
				t.Fatal(err)
			}
			f.Close()
			check("after a delivery", []formats.UID{n + 1}, n+2)

			// We save Recent, not Recent, Recent: the second claims
			// \Recent of every lower UID.
			s := newStore(t, loc, formats.OpenOptions{})
			mb, err := s.Open(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			tx, err := mb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range []formats.Message{{Recent: true}, {Flags: formats.FlagSeen}, {Recent: true, Flags: formats.FlagSeen}} {
				if _, err := tx.Save(ctx, m, strings.NewReader(fmt.Sprintf("Subject: saved %d\n\nbody\n", i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			mb.Close()
			s.Close()
			check("after our saves", []formats.UID{n + 4}, n+5)
			d.CheckLogClean(t)
		})
	}
}

// TestRewriteKeepsRecent expunges the last message with 'O' and changes
// flags (a rewrite): the messages before it, which had no 'O', stay not
// Recent (they get one) and the ones after it stay Recent, in our
// reading and in the file's Status lines.
func TestRewriteKeepsRecent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	inbox := filepath.Join(dir, "inbox")
	file := mboxMessage(1, "") + mboxMessage(2, "Status: RO") + mboxMessage(3, "") + mboxMessage(4, "Status: R")
	if err := os.WriteFile(inbox, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	loc := formats.Location{Driver: "mbox", Path: dir, Inbox: inbox}
	if got, first := ourRecent(t, loc, "INBOX"); fmt.Sprint(got) != "[3 4]" || first != 3 {
		t.Fatalf("before: Recent UIDs %v, first recent %d, want [3 4] 3", got, first)
	}
	s := newStore(t, loc, formats.OpenOptions{})
	mb, err := s.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Expunge(2); err != nil {
		t.Fatal(err)
	}
	if err := tx.SetFlags(3, formats.FlagFlagged, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	mb.Close()
	// The last 'O' is on 1 now: the first recent UID is 2, which is
	// gone (Dovecot without an index says the same).
	if got, first := ourRecent(t, loc, "INBOX"); fmt.Sprint(got) != "[3 4]" || first != 2 {
		t.Errorf("after the rewrite: Recent UIDs %v, first recent %d, want [3 4] 2", got, first)
	}
	data, err := os.ReadFile(inbox)
	if err != nil {
		t.Fatal(err)
	}
	var status []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "Status:") {
			status = append(status, line)
		}
	}
	if want := []string{"Status: O", "Status: ", "Status: R"}; fmt.Sprint(status) != fmt.Sprint(want) {
		t.Errorf("Status lines %q, want %q", status, want)
	}
}
