package convert_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
)

// saveMsg appends a message with a GUID and body to name in s at UIDNEXT.
func saveMsg(t *testing.T, s formats.Store, name, guid string, body []byte) {
	t.Helper()
	ctx := context.Background()
	mb, err := s.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	st, err := mb.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := mb.Begin(ctx)
	m := formats.Message{UID: st.UIDNext, GUID: guid, Received: time.Unix(1e9, 0), Size: int64(len(body))}
	if _, err := tx.Save(ctx, m, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// moveMsg moves the message with guid from one mailbox of s to another, as
// an IMAP MOVE does: a new UID there, the same GUID and bytes.
func moveMsg(t *testing.T, s formats.Store, from, to, guid string) {
	t.Helper()
	ctx := context.Background()
	mb, err := s.Open(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		if m.GUID != guid {
			continue
		}
		var body bytes.Buffer
		if err := mb.Body(ctx, m.UID, func(b formats.Body) error { _, err := body.ReadFrom(b); return err }); err != nil {
			t.Fatal(err)
		}
		saveMsg(t, s, to, guid, body.Bytes())
		tx, _ := mb.Begin(ctx)
		tx.Expunge(m.UID)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no message %s in %s", guid, from)
}

// TestAllMailMoved: with -a, a message moved between mailboxes is saved
// on the destination from the copy the destination already has, and the
// source's body is not read; without -a it is. Both give the same store.
// A copy of a different size (not the same bytes) is never used, and a
// copy the run expunged before it needed it falls back to the source.
func TestAllMailMoved(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		from, to  string
		changeDst func(t *testing.T, dst formats.Store)
		allMail   convert.AllMail
		wantReads int // source bodies read by the second backup
		wantLocal int
	}{
		{"without -a", "INBOX", "Archive", nil, convert.AllMail{}, 1, 0},
		{"virtual all", "INBOX", "Archive", nil, convert.AllMail{Everywhere: true}, 0, 1},
		{"one mailbox", "INBOX", "Archive", nil, convert.AllMail{Mailbox: "INBOX"}, 0, 1},
		{"other mailbox", "INBOX", "Archive", nil, convert.AllMail{Mailbox: "Sent"}, 1, 0},
		{"missing mailbox", "INBOX", "Archive", nil, convert.AllMail{Mailbox: "Nope"}, 1, 0},
		// Archive is synced first: its copy is expunged before INBOX
		// wants it (allmail.go QUIRK).
		{"moved into a later mailbox", "Archive", "INBOX", nil, convert.AllMail{Everywhere: true}, 1, 0},
		{"same GUID, other size", "INBOX", "Archive", func(t *testing.T, dst formats.Store) {
			saveMsg(t, dst, "Sent", "g-moved", []byte("Subject: not the same\n\nlonger body\n"))
		}, convert.AllMail{Mailbox: "Sent"}, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := newStore(t), newStore(t)
			for _, name := range []string{"Archive", "INBOX", "Sent"} {
				if err := src.Create(ctx, name, formats.NewGUID(), 1000); err != nil {
					t.Fatal(err)
				}
			}
			saveMsg(t, src, tc.from, "g-1", []byte("Subject: one\n\n1\n"))
			saveMsg(t, src, tc.from, "g-moved", []byte("Subject: moved\n\nbody\n"))
			saveMsg(t, src, tc.from, "g-3", []byte("Subject: three\n\n3\n"))
			if _, err := convert.Run(ctx, src, dst, convert.Options{Workers: 1}); err != nil {
				t.Fatal(err)
			}
			if tc.changeDst != nil {
				tc.changeDst(t, dst)
			}
			moveMsg(t, src, tc.from, tc.to, "g-moved")

			var listed, bodies int
			res, err := convert.Run(ctx, countingStore{src, &listed, &bodies}, dst, convert.Options{Workers: 1, AllMail: tc.allMail})
			if err != nil || len(res.Errors) > 0 {
				t.Fatal(err, res.Errors)
			}
			if bodies != tc.wantReads || res.Local != tc.wantLocal {
				t.Errorf("source bodies read = %d, local copies = %d; want %d, %d", bodies, res.Local, tc.wantReads, tc.wantLocal)
			}
			if d, s := dump(t, dst), dump(t, src); d != s {
				t.Errorf("destination differs from the source:\n%s\nsource:\n%s", d, s)
			}
		})
	}
}

// TestAllMailSameResult: -a changes where bytes come from, never the
// result. Random trees, random moves, new mail and expunges on the source
// (and in Sync on the destination too), then the same run with and
// without -a from identical copies: the stores come out identical.
func TestAllMailSameResult(t *testing.T) {
	ctx := context.Background()
	seed := testSeed()
	t.Logf("seed %d (BOXSYNC_SEED=%d to replay)", seed, seed)
	for i := range uint64(6) {
		for _, mode := range []convert.Mode{convert.Backup, convert.Sync, convert.OneWay} {
			t.Run(fmt.Sprintf("%d/%s", i, mode), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, i))
				orig := newStore(t)
				populate(t, rng, orig)
				// Two identical pairs (same GUIDs, UIDs, bytes).
				var pairs [2][2]formats.Store
				for p := range pairs {
					for s := range pairs[p] {
						pairs[p][s] = newStore(t)
						if _, err := convert.Run(ctx, orig, pairs[p][s], convert.Options{}); err != nil {
							t.Fatal(err)
						}
					}
				}
				changes := rng.Uint64()
				for p := range pairs {
					shuffleMail(t, rand.New(rand.NewPCG(changes, 1)), pairs[p][0])
					if mode != convert.Backup {
						shuffleMail(t, rand.New(rand.NewPCG(changes, 2)), pairs[p][1])
					}
				}
				var local int
				for p, am := range []convert.AllMail{{}, {Everywhere: true}} {
					res, err := convert.Run(ctx, pairs[p][0], pairs[p][1], convert.Options{Mode: mode, AllMail: am, Workers: 1 + rng.IntN(3)})
					if err != nil || len(res.Errors) > 0 {
						t.Fatal(err, res.Errors)
					}
					local += res.Local
				}
				for s, side := range []string{"source", "destination"} {
					if a, b := dump(t, pairs[0][s]), dump(t, pairs[1][s]); a != b {
						t.Errorf("%s with -a differs from without:\n%s\nwithout:\n%s", side, b, a)
					}
				}
				t.Logf("%d messages from local copies", local)
			})
		}
	}
}

// shuffleMail moves some messages between s's mailboxes, expunges some
// and adds new ones, deterministically for rng: GUIDs come from rng.
func shuffleMail(t *testing.T, rng *rand.Rand, s formats.Store) {
	t.Helper()
	ctx := context.Background()
	boxes, err := s.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		if !b.NoSelect {
			names = append(names, b.Name)
		}
	}
	type msg struct{ box, guid string }
	var all []msg
	for _, name := range names {
		mb, err := s.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for m, err := range mb.Messages(ctx, 1) {
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, msg{name, m.GUID})
		}
		mb.Close()
	}
	for _, m := range all {
		switch rng.IntN(6) {
		case 0, 1:
			moveMsg(t, s, m.box, names[rng.IntN(len(names))], m.guid)
		case 2:
			saveMsg(t, s, names[rng.IntN(len(names))], fmt.Sprintf("%032x", rng.Uint64()), fmt.Appendf(nil, "Subject: new\n\n%x\n", rng.Uint64()))
		}
	}
}
