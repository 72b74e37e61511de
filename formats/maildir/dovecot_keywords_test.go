package maildir_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

// TestDovecotManyKeywords: keywords beyond the 26 file name letters go to
// the index, where Dovecot keeps them too: what we save and set, Dovecot
// shows (doveadm fetch flags), and what Dovecot sets, we read, modseqs
// included, with the index next to the mail, under INDEX= and with
// CONTROL=.
func TestDovecotManyKeywords(t *testing.T) {
	ctx := context.Background()
	kws := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s%02d", prefix, i)
		}
		return out
	}
	for _, lay := range []struct{ name, opts string }{
		{"maildir++", ""},
		{"index", ":INDEX=~/index"},
		{"control", ":CONTROL=~/control:LAYOUT=fs"},
	} {
		t.Run(lay.name, func(t *testing.T) {
			d, loc := interop(t, lay.opts)
			store := openStore(t, loc, formats.OpenOptions{Create: true})
			if err := store.Create(ctx, "INBOX", formats.NewGUID(), 1234567890); err != nil {
				t.Fatal(err)
			}
			mb, err := store.Open(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			tx, err := mb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []formats.Message{
				{Flags: formats.FlagSeen, Keywords: kws("kw", 40)},
				{},
				{Flags: formats.FlagFlagged, Keywords: append(kws("kw", 3), "extra1", "extra2", "kw39")},
			} {
				body := "Subject: keywords\n\nbody\n"
				m.Size = int64(len(body))
				if _, err := tx.Save(ctx, m, strings.NewReader(body)); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			compare(t, d, store)
			if got := d.MustDoveadm(t, "fetch", "flags", "mailbox", "INBOX", "uid", "1"); len(strings.Fields(got)) != 1+1+40 {
				t.Errorf("doveadm fetch flags uid 1 = %q, want \\Seen and 40 keywords", got)
			}

			// Dovecot changes index-only keywords and letters alike.
			d.MustDoveadm(t, "flags", "remove", "kw30 kw31 kw02", "mailbox", "INBOX", "uid", "1")
			d.MustDoveadm(t, "flags", "replace", strings.Join(kws("dc", 30), " "), "mailbox", "INBOX", "uid", "2")
			compare(t, d, store)

			// We change them again.
			tx, err = mb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.SetFlags(2, formats.FlagAnswered, append(kws("dc", 10), "kw35", "ours")); err != nil {
				t.Fatal(err)
			}
			if err := tx.SetFlags(3, 0, kws("kw", 40)); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			compare(t, d, store)
		})
	}
}
