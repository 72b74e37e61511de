package convert_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
)

// recentMessages are saved by recentStore: \Recent mail with and without
// flags and keywords after mail that is not.
var recentMessages = []formats.Message{
	{UID: 1, Flags: formats.FlagSeen},
	{UID: 2},
	{UID: 3, Recent: true},
	{UID: 4, Recent: true, Flags: formats.FlagSeen},
	{UID: 5, Recent: true, Keywords: []string{"$Label1"}},
}

// recentStore makes a mem store whose INBOX (GUID and UIDVALIDITY
// fixed, so two such stores hold the same mailbox) has recentMessages,
// with Recent inverted when invert is set.
func recentStore(t *testing.T, invert bool) formats.Store {
	t.Helper()
	var msgs []formats.Message
	var bodies [][]byte
	for _, m := range recentMessages {
		body := fmt.Appendf(nil, "Subject: %d\n\nbody\n", m.UID)
		m.GUID = fmt.Sprintf("%032x", m.UID)
		m.Received = time.Unix(1600000000+int64(m.UID), 0)
		m.Size = int64(len(body))
		m.Recent = m.Recent != invert
		msgs, bodies = append(msgs, m), append(bodies, body)
	}
	return memInbox(t, "0123456789abcdef0123456789abcdef", 4242, msgs, bodies)
}

// memInbox makes a mem store whose INBOX has mailbox GUID guid and
// uidValidity and holds msgs with bodies, saved in one transaction.
func memInbox(t *testing.T, guid string, uidValidity uint32, msgs []formats.Message, bodies [][]byte) formats.Store {
	t.Helper()
	ctx := context.Background()
	s := newStore(t)
	g, err := formats.ParseGUID(guid)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "INBOX", g, uidValidity); err != nil {
		t.Fatal(err)
	}
	mb, err := s.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if _, err := tx.Save(ctx, m, bytes.NewReader(bodies[i])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// recentByUID is "uid:Recent" of every message of INBOX.
func recentByUID(t *testing.T, s formats.Store) string {
	t.Helper()
	mb, err := s.Open(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	out := ""
	for m, err := range mb.Messages(context.Background(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("%d:%v ", m.UID, m.Recent)
	}
	return out
}

// TestRecentCarried: backup, sync and sync -1 give new mail the source's
// Recent, as dsync saves with the exporter's MAIL_RECENT; and a message
// whose Recent alone differs between the sides is no change to sync (a
// Maildir file moving from new/ to cur/ is no flag change, for dsync
// neither), in either direction.
func TestRecentCarried(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []convert.Mode{convert.Backup, convert.Sync, convert.OneWay} {
		t.Run(mode.String(), func(t *testing.T) {
			src := recentStore(t, false)
			dst := newStore(t)
			res, err := convert.Run(ctx, src, dst, convert.Options{Mode: mode})
			if err != nil || len(res.Errors) > 0 {
				t.Fatalf("Run = %v %v", err, res.Errors)
			}
			if got, want := recentByUID(t, dst), recentByUID(t, src); got != want {
				t.Errorf("destination Recent %q, want the source's %q", got, want)
			}
			if res.Messages.Saved != len(recentMessages) {
				t.Errorf("saved %d messages, want %d", res.Messages.Saved, len(recentMessages))
			}

			for _, invertSrc := range []bool{false, true} {
				a, b := recentStore(t, invertSrc), recentStore(t, !invertSrc)
				before := recentByUID(t, a) + "/" + recentByUID(t, b)
				res, err := convert.Run(ctx, a, b, convert.Options{Mode: mode})
				if err != nil || len(res.Errors) > 0 {
					t.Fatalf("Run = %v %v", err, res.Errors)
				}
				if res.Messages.Saved != 0 || res.Messages.Expunged != 0 || res.Messages.FlagsChanged != 0 || res.Desync != "" {
					t.Errorf("Recent differing only: Run did %+v (desync %q), want nothing", res.Messages, res.Desync)
				}
				if after := recentByUID(t, a) + "/" + recentByUID(t, b); after != before {
					t.Errorf("Recent changed: %q, was %q", after, before)
				}
			}
		})
	}
}

// claim raises the first_recent_uid of s's INBOX to uid, as an IMAP
// session that selects it claims \Recent of the mail below.
func claim(t *testing.T, s formats.Store, uid formats.UID) {
	t.Helper()
	ctx := context.Background()
	mb, err := s.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
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
}

// firstRecent is Status().FirstRecentUID of s's INBOX.
func firstRecent(t *testing.T, s formats.Store) formats.UID {
	t.Helper()
	mb, err := s.Open(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	st, err := mb.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.FirstRecentUID
}

// TestFirstRecentRaised: at the end of a mailbox, each side the mode
// writes (Sync: both; Backup and OneWay: the destination) raises its
// first_recent_uid to the other side's, as dsync's importer does, so
// mail one side's IMAP session claimed stops being \Recent on the other:
// in either direction, the lower of the two raised, never lowered, with
// a full merge and with a fast run that skips the pair otherwise.
func TestFirstRecentRaised(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []convert.Mode{convert.Backup, convert.Sync, convert.OneWay} {
		for _, alg := range []convert.Algorithm{convert.Fast, convert.Full} {
			t.Run(fmt.Sprintf("%s/%s", mode, map[convert.Algorithm]string{convert.Fast: "fast", convert.Full: "full"}[alg]), func(t *testing.T) {
				src := recentStore(t, false)
				dst := newStore(t)
				run := func(when string) {
					t.Helper()
					res, err := convert.Run(ctx, src, dst, convert.Options{Mode: mode, Algorithm: alg})
					if err != nil || len(res.Errors) > 0 || res.Desync != "" {
						t.Fatalf("%s: Run = %v %v (desync %q)", when, err, res.Errors, res.Desync)
					}
					if res.Messages.Saved+res.Messages.Expunged+res.Messages.FlagsChanged != 0 && when != "first run" {
						t.Errorf("%s: Run changed mail: %+v", when, res.Messages)
					}
				}
				// check compares both sides' first recent UIDs and
				// Recent per UID (recentMessages: UIDs 1-5, saved
				// Recent from 3).
				check := func(when string, wantSrc, wantDst formats.UID) {
					t.Helper()
					for _, x := range []struct {
						name  string
						s     formats.Store
						first formats.UID
					}{{"source", src, wantSrc}, {"destination", dst, wantDst}} {
						if got := firstRecent(t, x.s); got != x.first {
							t.Errorf("%s: %s first recent UID %d, want %d", when, x.name, got, x.first)
						}
						want := ""
						for uid := formats.UID(1); uid <= 5; uid++ {
							want += fmt.Sprintf("%d:%v ", uid, uid >= max(x.first, 3))
						}
						if got := recentByUID(t, x.s); got != want {
							t.Errorf("%s: %s Recent %q, want %q", when, x.name, got, want)
						}
					}
				}
				run("first run")
				check("first run", 1, 1)

				// The source's session claims 1-3: the destination
				// follows.
				claim(t, src, 4)
				run("source claimed up to 4")
				check("source claimed up to 4", 4, 4)

				// The destination's session claims 4: in a sync
				// the source follows; a backup and sync -1 leave the
				// source alone and never lower the destination.
				claim(t, dst, 5)
				run("destination claimed up to 5")
				if mode == convert.Sync {
					check("destination claimed up to 5", 5, 5)
				} else {
					check("destination claimed up to 5", 4, 5)
				}

				// Everything claimed on the source: raised to its
				// UIDNEXT on the destination.
				claim(t, src, 6)
				run("source claimed all")
				check("source claimed all", 6, 6)
				// A run with nothing to do leaves both alone.
				run("again")
				check("again", 6, 6)
			})
		}
	}
}

// TestFirstRecentNotAcrossConflict: where the two INBOXes' GUIDs and
// UIDVALIDITY differ, mail is merged by content and the UIDs of one side
// say nothing about the other's, so neither side's first_recent_uid is
// raised to the other's: the destination's own mail, and what it gets,
// stays \Recent although the source's session claimed all of its mail.
func TestFirstRecentNotAcrossConflict(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []convert.Mode{convert.Sync, convert.OneWay} {
		t.Run(mode.String(), func(t *testing.T) {
			src := recentStore(t, false)
			claim(t, src, 6)
			body := []byte("Subject: own\n\nbody\n")
			dst := memInbox(t, "fedcba9876543210fedcba9876543210", 99,
				[]formats.Message{{Recent: true, Size: int64(len(body))}}, [][]byte{body})
			if _, err := convert.Run(ctx, src, dst, convert.Options{Mode: mode, Algorithm: convert.Full}); err != nil {
				t.Fatalf("Run = %v", err)
			}
			if got := firstRecent(t, dst); got != 1 {
				t.Errorf("destination first recent UID %d, want 1 (not raised across the conflict)", got)
			}
			if got := recentByUID(t, dst); !strings.HasPrefix(got, "1:true ") {
				t.Errorf("destination Recent %q: its own message 1 lost \\Recent", got)
			}
		})
	}
}
