package convert_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/boxsync/boxsync/convert"
)

// Progress reports grow monotonically and end at the run's Result, in
// every mode.
func TestProgress(t *testing.T) {
	for _, mode := range []convert.Mode{convert.Backup, convert.Sync, convert.OneWay} {
		t.Run(mode.String(), func(t *testing.T) {
			seed := rand.Uint64()
			t.Logf("seed %d", seed)
			src, dst := newStore(t), newStore(t)
			populate(t, rand.New(rand.NewPCG(seed, 1)), src)
			var (
				mu   sync.Mutex
				seen []convert.Progress
			)
			res, err := convert.Run(context.Background(), src, dst, convert.Options{Mode: mode, Workers: 3,
				Progress: func(p convert.Progress) {
					mu.Lock()
					seen = append(seen, p)
					mu.Unlock()
				}})
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) == 0 {
				t.Fatal("no progress reported")
			}
			// Reports race with each other, so compare the maxima.
			var top convert.Progress
			for _, p := range seen {
				top.Mailboxes = max(top.Mailboxes, p.Mailboxes)
				top.MailboxesDone = max(top.MailboxesDone, p.MailboxesDone)
				top.Saved = max(top.Saved, p.Saved)
				top.Bytes = max(top.Bytes, p.Bytes)
			}
			if top.Saved != res.Messages.Saved || top.Bytes != res.Bytes {
				t.Errorf("progress ended at %d saved, %d bytes; result %d, %d", top.Saved, top.Bytes, res.Messages.Saved, res.Bytes)
			}
			if done := res.Mailboxes.Synced + res.Mailboxes.Skipped; top.MailboxesDone != done || top.Mailboxes < done || top.Mailboxes == 0 {
				t.Errorf("progress: %d of %d mailboxes done, result %d done", top.MailboxesDone, top.Mailboxes, done)
			}
			if res.Messages.Saved == 0 {
				t.Errorf("nothing saved: the test proves nothing")
			}
		})
	}
}
