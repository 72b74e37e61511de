package convert_test

import (
	"context"
	"fmt"
	"iter"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/convert/state"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
)

// statefulPair is twoWayPair whose first sync also prints a state.
func statefulPair(t *testing.T, k storeKind, seed uint64, i int) (a, b formats.Store, st state.State, base map[string]map[string]int, baseFlags map[string]map[string]msgFlags) {
	t.Helper()
	sc := &scenario{rng: rand.New(rand.NewPCG(seed, uint64(i)))}
	a, b = k.new(t), k.new(t)
	sc.populate(t, a)
	first := convert.Backup
	if i%3 == 2 {
		sc.populate(t, b)
		first = convert.Sync
	}
	res := run(t, a, b, convert.Options{Mode: first, Algorithm: convert.Full, State: state.State{}})
	if first == convert.Sync && res.Desync != "" {
		// A GUID conflict settled in this run: its mailboxes have no
		// entry; a rerun gives the state the scenario starts from.
		res = run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Full, State: state.State{}})
	}
	st = decodeState(t, res.State)
	base = bodies(t, b)
	baseFlags = flagsOf(t, b)
	sc.change(t, a, "A")
	sc.change(t, b, "B")
	return a, b, st, base, baseFlags
}

// msgFlags are one message's flags and keywords.
type msgFlags struct {
	flags formats.Flags
	kws   map[string]bool
}

// flagsOf maps mailbox → message GUID → flags and keywords.
func flagsOf(t *testing.T, s formats.Store) map[string]map[string]msgFlags {
	t.Helper()
	ctx := context.Background()
	out := map[string]map[string]msgFlags{}
	boxes, err := s.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range boxes {
		if b.NoSelect {
			continue
		}
		mb, err := s.Open(ctx, b.Name)
		if err != nil {
			t.Fatal(err)
		}
		out[b.Name] = map[string]msgFlags{}
		for m, err := range mb.Messages(ctx, 1) {
			if err != nil {
				t.Fatal(err)
			}
			f := msgFlags{flags: m.Flags, kws: map[string]bool{}}
			for _, k := range m.Keywords {
				f.kws[k] = true
			}
			out[b.Name][m.GUID] = f
		}
		mb.Close()
	}
	return out
}

// checkPerFlag checks the per-flag merge of stores that keep change
// histories: a flag or keyword only one side changed since the base has
// that side's value afterwards. (Without histories the merge is per
// message, and a message set to the flags it had counts as changed.)
func checkPerFlag(t *testing.T, what string, base, fa, fb, after map[string]map[string]msgFlags) {
	t.Helper()
	for box, msgs := range base {
		for guid, bf := range msgs {
			af, okA := fa[box][guid]
			bfl, okB := fb[box][guid]
			rf, okR := after[box][guid]
			if !okA || !okB || !okR {
				continue
			}
			for bit := formats.Flags(1); bit < formats.FlagRecent; bit <<= 1 {
				bv, av, b2, rv := bf.flags&bit, af.flags&bit, bfl.flags&bit, rf.flags&bit
				if av == bv && rv != b2 || b2 == bv && rv != av {
					t.Fatalf("%s: %q %s flag %v: base %v, A %v, B %v, after %v", what, box, guid, bit, bv != 0, av != 0, b2 != 0, rv != 0)
				}
			}
			names := map[string]bool{}
			for _, f := range []msgFlags{bf, af, bfl, rf} {
				for k := range f.kws {
					names[k] = true
				}
			}
			for k := range names {
				bv, av, b2, rv := bf.kws[k], af.kws[k], bfl.kws[k], rf.kws[k]
				if av == bv && rv != b2 || b2 == bv && rv != av {
					t.Fatalf("%s: %q %s keyword %s: base %v, A %v, B %v, after %v", what, box, guid, k, bv, av, b2, rv)
				}
			}
		}
	}
}

func decodeState(t *testing.T, s string) state.State {
	t.Helper()
	st, err := state.Decode(s)
	if err != nil || s == "" {
		t.Fatalf("state %q: %v", s, err)
	}
	return st
}

// TestStatefulEqualsFull is the stateful property: from the same start
// (a synced pair with its state, then random changes on both sides), a
// stateful sync converges, keeps every mail no side expunged and drops
// every one a side expunged, and gives the same stores as a full sync
// wherever the full one could tell expunges too (a stateless merge brings
// back mail expunged above the common prefix: it can't tell "expunged"
// from "never there"). Then a second stateful run with the new state
// changes nothing and skips every mailbox: its cost is one Status per
// mailbox and side.
func TestStatefulEqualsFull(t *testing.T) {
	ctx := context.Background()
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			seed := testSeed()
			t.Logf("seed %d", seed)
			n := 30
			if k.name != "mem" {
				n = 8
			}
			for i := range n {
				what := fmt.Sprintf("seed %d/%d", seed, i)
				a, b, st, base, baseFlags := statefulPair(t, k, seed, i)
				ba, bb := bodies(t, a), bodies(t, b)
				fa, fb := flagsOf(t, a), flagsOf(t, b)
				exp := expungedSince(base, ba, bb)
				goneBoxes(exp, base, ba, bb) // the tree sync deletes them on the other side
				// One worker: maildir's Mailboxes trips over a mailbox
				// another worker deletes to settle a GUID conflict
				// (a stat race of the driver, not of the state).
				res := run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Stateful, State: st, Workers: 1})
				da, db := dump(t, a), dump(t, b)
				if d := formatstest.Diff(da, db); d != "" {
					t.Fatalf("%s: sides differ after a stateful sync:\n%s", what, d)
				}
				after := bodies(t, a)
				checkKept(t, what, after, exp, ba, bb)
				for name, hs := range exp {
					if ba[name] == nil || bb[name] == nil {
						continue // deleted on one side: deleted on both now
					}
					for h := range hs {
						if after[name][h] > 0 {
							t.Fatalf("%s: mailbox %q still holds body %s, expunged on one side", what, name, h)
						}
					}
				}

				// Flags: per flag (the maildir stores keep histories; a
				// stateful run counts every change after the state,
				// these tests' changes being written through the
				// driver as a sync would write them).
				if k.name == "maildir" {
					checkPerFlag(t, what, baseFlags, fa, fb, flagsOf(t, a))
				}

				// Mail and UIDs: the same as a full sync's.
				a2, b2, _, _, _ := statefulPair(t, k, seed, i)
				run(t, a2, b2, convert.Options{Mode: convert.Sync, Algorithm: convert.Full})
				if fmt.Sprint(bodies(t, a2)) == fmt.Sprint(after) {
					if d := formatstest.Diff(uidMap(t, a2), uidMap(t, a)); d != "" {
						t.Fatalf("%s: full (-) and stateful (+) syncs differ:\n%s", what, d)
					}
				}

				if res.Desync != "" {
					continue // no state to go on with (a GUID conflict)
				}
				st2 := decodeState(t, res.State)
				boxes, _ := a.Mailboxes(ctx)
				selectable := 0
				for _, bx := range boxes {
					if !bx.NoSelect {
						selectable++
						mb, _ := a.Open(ctx, bx.Name)
						s, _ := mb.Status(ctx)
						mb.Close()
						if _, ok := st2[s.GUID]; !ok {
							t.Fatalf("%s: the new state lacks %q (%s)", what, bx.Name, s.GUID)
						}
					}
				}
				if len(st2) != selectable {
					t.Fatalf("%s: the new state has %d mailboxes, the store %d", what, len(st2), selectable)
				}
				res2 := run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Stateful, State: st2})
				if !noOp(res2) || res2.Mailboxes.Skipped != selectable || res2.Desync != "" {
					t.Fatalf("%s: a stateful rerun was not a skipping no-op: %+v", what, res2)
				}
				if res2.State != res.State {
					t.Fatalf("%s: a stateful rerun changed the state:\n%v\n%v", what, st2, decodeState(t, res2.State))
				}
			}
		})
	}
}

// TestStatefulDestinationOnly: a change made only on the destination
// after a stateful sync is found by the next stateful run (dsync's
// stateful runs compare only the source's status and miss it, dsync.md
// §6; TestCLIStateDestinationOnly shows doveadm doing so).
func TestStatefulDestinationOnly(t *testing.T) {
	ctx := context.Background()
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			a, b := k.new(t), k.new(t)
			sc := &scenario{rng: rand.New(rand.NewPCG(1, 2))}
			if err := a.Create(ctx, "INBOX", sc.guid(), 7); err != nil {
				t.Fatal(err)
			}
			mb, _ := a.Open(ctx, "INBOX")
			tx, _ := mb.Begin(ctx)
			for uid := formats.UID(1); uid <= 3; uid++ {
				sc.save(t, tx, "x", uid)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			mb.Close()
			res := run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Full, State: state.State{}})
			st := decodeState(t, res.State)

			for _, change := range []func(tx formats.Tx){
				func(tx formats.Tx) { tx.SetFlags(2, formats.FlagFlagged, []string{"dest-only"}) },
				func(tx formats.Tx) { tx.Expunge(1) },
				func(tx formats.Tx) { sc.save(t, tx, "dest-only", 0) },
			} {
				mb, _ := b.Open(ctx, "INBOX")
				tx, _ := mb.Begin(ctx)
				change(tx)
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				mb.Close()
				res := run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Stateful, State: st})
				if res.Mailboxes.Skipped != 0 {
					t.Fatalf("the destination's change was skipped: %+v", res)
				}
				if d := formatstest.Diff(dump(t, a), dump(t, b)); d != "" {
					t.Fatalf("sides differ after a stateful sync:\n%s", d)
				}
				st = decodeState(t, res.State)
			}
		})
	}
}

// testSeed is the property tests' seed: $BOXSYNC_SEED to replay one.
func testSeed() uint64 {
	if s, err := strconv.ParseUint(os.Getenv("BOXSYNC_SEED"), 10, 64); err == nil {
		return s
	}
	return uint64(time.Now().UnixNano())
}

// countingStore counts the messages listed and bodies read through it.
type countingStore struct {
	formats.Store
	listed, bodies *int
}

func (s countingStore) Open(ctx context.Context, name string) (formats.Mailbox, error) {
	mb, err := s.Store.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return countingMailbox{mb, s.listed, s.bodies}, nil
}

type countingMailbox struct {
	formats.Mailbox
	listed, bodies *int
}

func (m countingMailbox) Messages(ctx context.Context, from formats.UID) iter.Seq2[formats.Message, error] {
	return func(yield func(formats.Message, error) bool) {
		for msg, err := range m.Mailbox.Messages(ctx, from) {
			*m.listed++
			if !yield(msg, err) {
				return
			}
		}
	}
}

func (m countingMailbox) Body(ctx context.Context, uid formats.UID, fn func(formats.Body) error) error {
	*m.bodies++
	return m.Mailbox.Body(ctx, uid, fn)
}

// TestStatefulCost: a stateful run of an unchanged pair lists no message
// and reads no body however big the mailboxes are (one Status per
// mailbox and side), and with one mailbox changed on one side it lists
// that mailbox's messages only: O(changed mailboxes), not O(messages).
func TestStatefulCost(t *testing.T) {
	ctx := context.Background()
	for _, perBox := range []int{20, 400} {
		t.Run(strconv.Itoa(perBox), func(t *testing.T) {
			sc := &scenario{rng: rand.New(rand.NewPCG(3, uint64(perBox)))}
			a, b := newStore(t), newStore(t)
			names := []string{"INBOX", "Archive", "Lists", "Sent", "Work"}
			for _, name := range names {
				if err := a.Create(ctx, name, sc.guid(), 1000); err != nil {
					t.Fatal(err)
				}
				mb, _ := a.Open(ctx, name)
				tx, _ := mb.Begin(ctx)
				for range perBox {
					sc.save(t, tx, name, 0)
				}
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				mb.Close()
			}
			res := run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Full, State: state.State{}})
			st := decodeState(t, res.State)

			var listed, bodies int
			ca, cb := countingStore{a, &listed, &bodies}, countingStore{b, &listed, &bodies}
			res = run(t, ca, cb, convert.Options{Mode: convert.Sync, Algorithm: convert.Stateful, State: st})
			if listed != 0 || bodies != 0 || res.Mailboxes.Skipped != len(names) {
				t.Fatalf("unchanged pair: %d messages listed, %d bodies read, %d of %d mailboxes skipped",
					listed, bodies, res.Mailboxes.Skipped, len(names))
			}

			mb, _ := b.Open(ctx, "Lists")
			tx, _ := mb.Begin(ctx)
			tx.SetFlags(1, formats.FlagSeen, nil)
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			mb.Close()
			res = run(t, ca, cb, convert.Options{Mode: convert.Sync, Algorithm: convert.Stateful, State: decodeState(t, res.State)})
			if listed != 2*perBox || bodies != 0 || res.Mailboxes.Skipped != len(names)-1 {
				t.Fatalf("one mailbox changed: %d messages listed (want %d), %d bodies read, %d skipped",
					listed, 2*perBox, bodies, res.Mailboxes.Skipped)
			}
		})
	}
}

// treeCountingStore counts the tree listings and mailbox log reads
// through it, and keeps the store's renames and directories, so the
// tree sync (tree.go) runs through it.
type treeCountingStore struct {
	formats.Store
	lists, logs *atomic.Int32
}

func (s treeCountingStore) Mailboxes(ctx context.Context) ([]formats.MailboxInfo, error) {
	s.lists.Add(1)
	return s.Store.Mailboxes(ctx)
}

func (s treeCountingStore) MailboxLog(ctx context.Context) ([]formats.MailboxLogRecord, error) {
	s.logs.Add(1)
	return s.Store.(formats.MailboxLogger).MailboxLog(ctx)
}

func (s treeCountingStore) Rename(ctx context.Context, from, to string) error {
	return s.Store.(formats.Renamer).Rename(ctx, from, to)
}

func (s treeCountingStore) CreateDir(ctx context.Context, name string) error {
	return s.Store.(formats.DirCreator).CreateDir(ctx, name)
}

// listCountingStore counts the tree listings of a store without a
// mailbox log.
type listCountingStore struct {
	formats.Store
	lists *atomic.Int32
}

func (s listCountingStore) Mailboxes(ctx context.Context) ([]formats.MailboxInfo, error) {
	s.lists.Add(1)
	return s.Store.Mailboxes(ctx)
}

// treeCounter wraps s to count its listings (and log reads).
type treeCounter struct{ lists, logs atomic.Int32 }

func (c *treeCounter) wrap(s formats.Store) formats.Store {
	_, logs := s.(formats.MailboxLogger)
	_, ren := s.(formats.Renamer)
	_, dirs := s.(formats.DirCreator)
	if logs && ren && dirs {
		return treeCountingStore{s, &c.lists, &c.logs}
	}
	return listCountingStore{s, &c.lists}
}

// TestStatefulListsTreeOnce: a Sync lists each store's mailbox tree (and
// reads its mailbox log) once per run when the run changes no tree: the
// tree sync, the merge and the state share the listing. A run that
// creates, renames or subscribes reads the changed tree again: the state
// it prints has the mailboxes it created and renamed (a stale listing
// would leave them out), and the next run skips them all.
func TestStatefulListsTreeOnce(t *testing.T) {
	ctx := context.Background()
	for _, k := range treeKinds() {
		t.Run(k.name, func(t *testing.T) {
			sc := &scenario{rng: rand.New(rand.NewPCG(5, 0))}
			a, b := k.new(t), k.new(t)
			for _, name := range []string{"INBOX", "Lists", "Lists/Go", "Work"} {
				if err := a.Create(ctx, name, sc.guid(), 1000); err != nil {
					t.Fatal(err)
				}
				mb, _ := a.Open(ctx, name)
				tx, _ := mb.Begin(ctx)
				for range 3 {
					sc.save(t, tx, name, 0)
				}
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				mb.Close()
			}
			if err := a.SetSubscribed(ctx, "Lists/Go", true); err != nil {
				t.Fatal(err)
			}
			res := run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Full, State: state.State{}})
			_, logs := a.(formats.MailboxLogger)

			// stateful runs the pair through counting wrappers and
			// checks the counts of an unchanged pair.
			stateful := func(what string, unchanged bool) convert.Result {
				t.Helper()
				var ca, cb treeCounter
				res = run(t, ca.wrap(a), cb.wrap(b), convert.Options{Mode: convert.Sync, Algorithm: convert.Stateful, State: decodeState(t, res.State)})
				if d := formatstest.Diff(dump(t, a), dump(t, b)); d != "" {
					t.Fatalf("%s: sides differ:\n%s", what, d)
				}
				boxes, err := a.Mailboxes(ctx)
				if err != nil {
					t.Fatal(err)
				}
				st, selectable := decodeState(t, res.State), 0
				for _, bx := range boxes {
					if bx.NoSelect {
						continue
					}
					selectable++
					if _, ok := st[bx.GUID]; !ok {
						t.Fatalf("%s: the new state lacks %q (%s): %v", what, bx.Name, bx.GUID, st)
					}
				}
				if len(st) != selectable {
					t.Fatalf("%s: the state has %d mailboxes, the store %d", what, len(st), selectable)
				}
				if !unchanged {
					return res
				}
				wantLogs := int32(0)
				if logs {
					wantLogs = 1
				}
				for _, c := range []struct {
					side string
					n    *treeCounter
				}{{"source", &ca}, {"destination", &cb}} {
					if l, g := c.n.lists.Load(), c.n.logs.Load(); l != 1 || g != wantLogs {
						t.Errorf("%s: the %s's tree was listed %d times and its mailbox log read %d times, want 1 and %d", what, c.side, l, g, wantLogs)
					}
				}
				if !noOp(res) || res.Mailboxes.Skipped != selectable || res.Desync != "" {
					t.Fatalf("%s: not a skipping no-op: %+v", what, res)
				}
				return res
			}
			stateful("unchanged", true)

			// Tree changes on both sides: a new mailbox on b, a rename
			// on a (stores with a log), a subscription on b.
			if err := b.Create(ctx, "New", sc.guid(), 2000); err != nil {
				t.Fatal(err)
			}
			mb, _ := b.Open(ctx, "New")
			tx, _ := mb.Begin(ctx)
			sc.save(t, tx, "New", 0) // an empty Maildir mailbox is merged each run, not skipped
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			mb.Close()
			if ren, ok := a.(formats.Renamer); ok && logs {
				if err := ren.Rename(ctx, "Work", "Job"); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.SetSubscribed(ctx, "Lists", true); err != nil {
				t.Fatal(err)
			}
			stateful("tree changed", false)
			stateful("unchanged after the tree changes", true)
		})
	}
}
