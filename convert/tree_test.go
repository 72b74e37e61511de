package convert_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
)

// goneBoxes marks as expunged every body of a mailbox that one side
// deleted after the base sync: Sync deletes it on the other side too,
// with any mail it got meanwhile (dsync's TWOWAY delete).
func goneBoxes(exp map[string]map[string]bool, base map[string]map[string]int, states ...map[string]map[string]int) {
	for name := range base {
		deleted := false
		for _, st := range states {
			if _, ok := st[name]; !ok {
				deleted = true
			}
		}
		if !deleted {
			continue
		}
		if exp[name] == nil {
			exp[name] = map[string]bool{}
		}
		for _, st := range states {
			for h := range st[name] {
				exp[name][h] = true
			}
		}
	}
}

// treeKinds are the stores that keep a mailbox log and can rename.
func treeKinds() []storeKind {
	kinds := storeKinds()
	for _, f := range []string{"sdbox", "mdbox"} {
		kinds = append(kinds, storeKind{f, func(t *testing.T) formats.Store {
			return openLoc(t, f+":"+filepath.Join(t.TempDir(), f), formats.OpenOptions{Create: true})
		}})
	}
	kinds = append(kinds, storeKind{"maildir-fs", func(t *testing.T) formats.Store {
		return openLoc(t, "maildir:"+filepath.Join(t.TempDir(), "Maildir")+":LAYOUT=fs", formats.OpenOptions{Create: true})
	}})
	return kinds
}

// setClock makes mailbox log records carry the time sec (UNIX s), so a
// replayed history has the same timestamps.
func setClock(t *testing.T, sec int64) {
	t.Helper()
	formats.MailboxLogNow = func() time.Time { return time.Unix(sec, 0) }
	t.Cleanup(func() { formats.MailboxLogNow = time.Now })
}

// treeChange makes random tree changes on one side: renames of mailboxes
// (nested and top level; whole subtrees move) to names of the side's own
// or to "Clash", deletes, and a new mailbox, sometimes at "Clash" too;
// then sc.change's message changes.
func (sc *scenario) treeChange(t *testing.T, s formats.Store, tag string) {
	t.Helper()
	ctx := context.Background()
	boxes, err := s.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exists := map[string]bool{}
	for _, b := range boxes {
		exists[b.Name] = true
	}
	n := 0
	for _, b := range boxes {
		if b.NoSelect || formats.IsInbox(b.Name) || !exists[b.Name] {
			continue
		}
		switch sc.rng.IntN(8) {
		case 0, 1:
			n++
			to := []string{fmt.Sprintf("Ren %s%d", tag, n), fmt.Sprintf("Moved %s/Sub %d", tag, n), "Clash"}[sc.rng.IntN(3)]
			if exists[to] {
				continue
			}
			if err := s.(formats.Renamer).Rename(ctx, b.Name, to); err != nil {
				t.Fatalf("%s: Rename(%q, %q) = %v", tag, b.Name, to, err)
			}
			for name := range exists {
				if name == b.Name || len(name) > len(b.Name) && name[:len(b.Name)+1] == b.Name+"/" {
					delete(exists, name)
				}
			}
			exists[to] = true
		case 2:
			if err := s.Delete(ctx, b.Name); err != nil {
				t.Fatalf("%s: Delete(%q) = %v", tag, b.Name, err)
			}
			delete(exists, b.Name)
		}
	}
	if name := []string{"Clash", "Created " + tag}[sc.rng.IntN(2)]; !exists[name] && sc.rng.IntN(2) == 0 {
		if err := s.Create(ctx, name, sc.guid(), 1+sc.rng.Uint32N(1e6)); err != nil {
			t.Fatal(err)
		}
		mb, _ := s.Open(ctx, name)
		tx, _ := mb.Begin(ctx)
		sc.save(t, tx, tag+" created", 0)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		mb.Close()
	}
	sc.change(t, s, tag)
}

// treePair builds stores A and B for seed i: A populated and backed up to
// B, then tree and mail changes on both sides, each at its own logged
// time (sometimes the same second, sometimes not).
func treePair(t *testing.T, k storeKind, seed uint64, i int) (a, b formats.Store, base map[formats.GUID]map[string]int) {
	t.Helper()
	sc := &scenario{rng: rand.New(rand.NewPCG(seed, uint64(i)))}
	clock := int64(1_700_000_000)
	setClock(t, clock)
	a, b = k.new(t), k.new(t)
	sc.populate(t, a)
	run(t, a, b, convert.Options{Mode: convert.Backup, Algorithm: convert.Full})
	base = guidBodies(t, b)
	sc.receivedAfter = clock + 12 // new mail arrives after the deletes
	setClock(t, clock+10+sc.rng.Int64N(2))
	sc.treeChange(t, a, "A")
	setClock(t, clock+10+sc.rng.Int64N(2))
	sc.treeChange(t, b, "B")
	setClock(t, clock+20)
	return a, b, base
}

// guidBodies maps mailbox GUID → body hash → count.
func guidBodies(t *testing.T, s formats.Store) map[formats.GUID]map[string]int {
	t.Helper()
	boxes, err := s.Mailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byName := bodies(t, s)
	out := map[formats.GUID]map[string]int{}
	for _, b := range boxes {
		if !b.NoSelect {
			out[b.GUID] = byName[b.Name]
		}
	}
	return out
}

// treeKept checks the tree-sync property: every body either side had
// after its changes is in the synced tree exactly once, unless it was
// expunged on a side or its mailbox was deleted on a side (then the other
// side's copy of the mail both had goes too, as with dsync's TWOWAY
// delete, but not the mail the other side got after the delete: boxsync
// keeps it where dsync loses it; the scenarios date new mail after the
// logged deletes); and nothing is there that no side had. It reports
// whether a mailbox deleted on one side had new mail on the other.
func treeKept(t *testing.T, what string, after formats.Store, base map[formats.GUID]map[string]int, states ...map[formats.GUID]map[string]int) (keptNew bool) {
	t.Helper()
	mayGo := map[string]bool{}
	for g, hs := range base {
		for _, st := range states {
			if _, ok := st[g]; !ok {
				for _, st2 := range states {
					for h := range st2[g] {
						if hs[h] > 0 {
							mayGo[h] = true
						} else {
							keptNew = true
						}
					}
				}
			}
			for h := range hs {
				if st[g][h] == 0 {
					mayGo[h] = true
				}
			}
		}
	}
	had := map[string]bool{}
	for _, st := range states {
		for _, hs := range st {
			for h := range hs {
				had[h] = true
			}
		}
	}
	seen := map[string]string{}
	for name, hs := range bodies(t, after) {
		for h, n := range hs {
			if n > 1 || seen[h] != "" {
				t.Fatalf("%s: body %s is duplicated (%q and %q, %d times)", what, h, seen[h], name, n)
			}
			seen[h] = name
			if !had[h] {
				t.Fatalf("%s: mailbox %q holds body %s that no side had", what, name, h)
			}
		}
	}
	var lost []string
	for h := range had {
		if seen[h] == "" && !mayGo[h] {
			lost = append(lost, h)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		t.Fatalf("%s: lost bodies %v", what, lost)
	}
	return keptNew
}

// TestSyncTreeConverges is the convergence property with mailbox creates,
// renames (subtrees included, both sides renaming the same mailbox,
// rename targets the other side created) and deletes on both sides, over
// every store that keeps a mailbox log: after one sync both dumps are
// equal, no mail is lost or duplicated, a second sync changes nothing,
// and sync(B,A) builds the same tree with the same UIDs as sync(A,B).
func TestSyncTreeConverges(t *testing.T) {
	for _, k := range treeKinds() {
		t.Run(k.name, func(t *testing.T) {
			seed := testSeed()
			t.Logf("seed %d (BOXSYNC_SEED=%d to replay)", seed, seed)
			n := 30
			if k.name != "mem" {
				n = 6
			}
			if v := os.Getenv("BOXSYNC_TREE_N"); v != "" {
				n, _ = strconv.Atoi(v)
			}
			renamed, deleted, keptNew := 0, 0, 0
			for i := range n {
				what := fmt.Sprintf("seed %d/%d", seed, i)
				a, b, base := treePair(t, k, seed, i)
				ga, gb := guidBodies(t, a), guidBodies(t, b)
				res := run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Full, Workers: 1 + i%3})
				renamed += res.Mailboxes.Renamed
				deleted += res.Mailboxes.Deleted
				da, db := dump(t, a), dump(t, b)
				if d := formatstest.Diff(da, db); d != "" {
					t.Fatalf("%s: sides differ after sync:\n%s", what, d)
				}
				if treeKept(t, what, a, base, ga, gb) {
					keptNew++
				}
				if res := run(t, a, b, convert.Options{Mode: convert.Sync}); !noOp(res) || res.Mailboxes.Renamed > 0 {
					t.Fatalf("%s: second sync was not a no-op: %+v", what, res)
				}
				if d := formatstest.Diff(da, dump(t, a)); d != "" {
					t.Fatalf("%s: second sync changed A:\n%s", what, d)
				}
				a2, b2, _ := treePair(t, k, seed, i)
				run(t, b2, a2, convert.Options{Mode: convert.Sync, Algorithm: convert.Full})
				if d := formatstest.Diff(uidMap(t, a), uidMap(t, a2)); d != "" {
					t.Fatalf("%s: sync(A,B) and sync(B,A) differ:\n%s", what, d)
				}
			}
			t.Logf("%d syncs: %d mailboxes renamed, %d deleted; %d syncs kept new mail of a mailbox deleted on the other side", n, renamed, deleted, keptNew)
			if renamed == 0 || deleted+keptNew == 0 {
				t.Errorf("the scenarios renamed %d and deleted %d mailboxes and kept new mail in %d: they test nothing", renamed, deleted, keptNew)
			}
		})
	}
}

// TestSyncOneWayTree is sync -1 after tree changes on both sides, over
// every store that can rename: the source is untouched; the destination
// loses no mailbox (sync -1 never deletes), has every source mailbox under
// the source's name, holds no mail twice (a renamed mailbox is renamed,
// not copied again), and a second run changes nothing.
func TestSyncOneWayTree(t *testing.T) {
	for _, k := range treeKinds() {
		t.Run(k.name, func(t *testing.T) {
			seed := testSeed()
			t.Logf("seed %d (BOXSYNC_SEED=%d to replay)", seed, seed)
			n := 30
			if k.name != "mem" {
				n = 6
			}
			if v := os.Getenv("BOXSYNC_TREE_N"); v != "" {
				n, _ = strconv.Atoi(v)
			}
			renamed := 0
			for i := range n {
				what := fmt.Sprintf("seed %d/%d", seed, i)
				a, b, _ := treePair(t, k, seed, i)
				srcBefore := dump(t, a)
				dstBefore := guidBodies(t, b)
				res := run(t, a, b, convert.Options{Mode: convert.OneWay, Algorithm: convert.Full, Workers: 1 + i%3})
				renamed += res.Mailboxes.Renamed
				if res.Mailboxes.Deleted != 0 {
					t.Fatalf("%s: sync -1 deleted %d mailboxes", what, res.Mailboxes.Deleted)
				}
				if d := formatstest.Diff(srcBefore, dump(t, a)); d != "" {
					t.Fatalf("%s: sync -1 changed the source:\n%s", what, d)
				}
				dstAfter := guidBodies(t, b)
				for g := range dstBefore {
					if _, ok := dstAfter[g]; !ok {
						t.Fatalf("%s: destination mailbox %s is gone", what, g)
					}
				}
				srcBoxes, _ := a.Mailboxes(context.Background())
				dstBoxes, _ := b.Mailboxes(context.Background())
				dstNames := map[string]bool{}
				for _, x := range dstBoxes {
					dstNames[x.Name] = !x.NoSelect
				}
				for _, x := range srcBoxes {
					if !x.NoSelect && !dstNames[x.Name] {
						t.Fatalf("%s: source mailbox %q missing on the destination", what, x.Name)
					}
				}
				seen := map[string]string{}
				for name, hs := range bodies(t, b) {
					for h, c := range hs {
						if c > 1 || seen[h] != "" {
							t.Fatalf("%s: body %s twice on the destination (%q, %q)", what, h, seen[h], name)
						}
						seen[h] = name
					}
				}
				if res := run(t, a, b, convert.Options{Mode: convert.OneWay}); !noOp(res) || res.Mailboxes.Renamed > 0 {
					t.Fatalf("%s: second sync -1 was not a no-op: %+v", what, res)
				}
			}
			if renamed == 0 {
				t.Errorf("the scenarios renamed nothing: they test nothing")
			}
		})
	}
}
