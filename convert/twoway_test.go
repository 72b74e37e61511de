package convert_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
)

// storeKind makes fresh stores for the two-way property tests.
type storeKind struct {
	name string
	new  func(t *testing.T) formats.Store
}

func storeKinds() []storeKind {
	return []storeKind{
		{"mem", newStore},
		{"maildir", func(t *testing.T) formats.Store {
			return openMaildir(t, filepath.Join(t.TempDir(), "Maildir"), formats.OpenOptions{Create: true})
		}},
	}
}

// scenario builds the same pair of stores for a seed every time: mailbox
// and message GUIDs come from the seeded generator, so replays agree.
type scenario struct {
	rng *rand.Rand
	n   int // body counter, so every body is unique

	// inbox is the first populated INBOX's GUID and UIDVALIDITY, reused
	// by later ones: an INBOX conflict can't converge (INBOX is never
	// deleted), TestSyncInboxConflict covers it.
	inbox   formats.GUID
	inboxUV uint32

	// receivedAfter, when set, dates new mail (UNIX s) after it: mail
	// delivered after the tree changes' logged deletes.
	receivedAfter int64
}

func (sc *scenario) guid() formats.GUID {
	var g formats.GUID
	for i := range g {
		g[i] = byte(sc.rng.UintN(256))
	}
	return g
}

var twoWayKeywords = []string{"$Forwarded", "$Junk", "Important", "work", "$Label1"}

func (sc *scenario) keywords() []string {
	var k []string
	for _, kw := range twoWayKeywords {
		if sc.rng.IntN(4) == 0 {
			k = append(k, kw)
		}
	}
	return k
}

func (sc *scenario) save(t *testing.T, tx formats.Tx, tag string, uid formats.UID) {
	t.Helper()
	sc.n++
	body := fmt.Appendf(nil, "Subject: %s %d\r\nMessage-ID: <%d.%x@test>\r\n\r\n%x\n", tag, sc.n, sc.n, sc.rng.Uint64(), sc.rng.Uint64())
	received := int64(1e9 + sc.rng.IntN(1e8))
	if sc.receivedAfter != 0 {
		received = sc.receivedAfter + 1 + int64(sc.rng.IntN(1000))
	}
	m := formats.Message{UID: uid, GUID: fmt.Sprintf("%032x", sc.rng.Uint64()), Flags: formats.Flags(sc.rng.IntN(32)),
		Keywords: sc.keywords(), Received: time.Unix(received, 0), Size: int64(len(body))}
	if _, err := tx.Save(context.Background(), m, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
}

// populate fills s with a random tree.
func (sc *scenario) populate(t *testing.T, s formats.Store) {
	t.Helper()
	ctx := context.Background()
	names := []string{"INBOX", "Sent", "Entwürfe", "日本語", "R&D", "Lists/dovecot", "Work/Projects 2024", "Work"}
	for _, name := range names[:2+sc.rng.IntN(len(names)-1)] {
		guid, uv := sc.guid(), 1000+sc.rng.Uint32N(1e6)
		if name == "INBOX" {
			if sc.inbox.IsZero() {
				sc.inbox, sc.inboxUV = guid, uv
			}
			guid, uv = sc.inbox, sc.inboxUV
		}
		if err := s.Create(ctx, name, guid, uv); err != nil {
			t.Fatal(err)
		}
		if sc.rng.IntN(2) == 0 {
			s.SetSubscribed(ctx, name, true)
		}
		mb, err := s.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		tx, _ := mb.Begin(ctx)
		uid := formats.UID(0)
		for i := sc.rng.IntN(20); i > 0; i-- {
			uid += formats.UID(1 + sc.rng.IntN(3))
			sc.save(t, tx, name, uid)
		}
		if sc.rng.IntN(3) == 0 {
			tx.SetUIDNext(uid + 5)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		mb.Close()
	}
}

// change makes random user changes to one side: new mail, expunges, flag
// and keyword changes, new mailboxes (sometimes one of the same name as
// the other side creates: a GUID conflict).
func (sc *scenario) change(t *testing.T, s formats.Store, tag string) {
	t.Helper()
	ctx := context.Background()
	boxes, err := s.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range boxes {
		if b.NoSelect {
			continue
		}
		if !formats.IsInbox(b.Name) && sc.rng.IntN(10) == 0 {
			// Sync deletes it on the other side too (the mailbox
			// log says so); sync -1 brings it back.
			if err := s.Delete(ctx, b.Name); err != nil {
				t.Fatal(err)
			}
			continue
		}
		mb, err := s.Open(ctx, b.Name)
		if err != nil {
			t.Fatal(err)
		}
		tx, _ := mb.Begin(ctx)
		for m, err := range mb.Messages(ctx, 1) {
			if err != nil {
				t.Fatal(err)
			}
			switch sc.rng.IntN(6) {
			case 0:
				tx.Expunge(m.UID)
			case 1:
				tx.SetFlags(m.UID, formats.Flags(sc.rng.IntN(32)), sc.keywords())
			}
		}
		for i := sc.rng.IntN(4); i > 0; i-- {
			sc.save(t, tx, tag, 0)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		mb.Close()
	}
	for _, name := range []string{"New/" + tag, "Both new"} {
		if sc.rng.IntN(2) == 0 {
			continue
		}
		if err := s.Create(ctx, name, sc.guid(), 1+sc.rng.Uint32N(1e6)); err != nil {
			t.Fatal(err)
		}
		mb, _ := s.Open(ctx, name)
		tx, _ := mb.Begin(ctx)
		for i := sc.rng.IntN(4); i > 0; i-- {
			sc.save(t, tx, tag+" new box", 0)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		mb.Close()
	}
}

func run(t *testing.T, src, dst formats.Store, opt convert.Options) convert.Result {
	t.Helper()
	res, err := convert.Run(context.Background(), src, dst, opt)
	if err != nil {
		t.Fatalf("Run(%s) = %v", opt.Mode, err)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("Run(%s) errors: %v", opt.Mode, res.Errors)
	}
	return res
}

// bodies maps mailbox name → body hash → count.
func bodies(t *testing.T, s formats.Store) map[string]map[string]int {
	t.Helper()
	ctx := context.Background()
	out := map[string]map[string]int{}
	boxes, err := s.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range boxes {
		if b.NoSelect {
			continue
		}
		out[b.Name] = map[string]int{}
		mb, err := s.Open(ctx, b.Name)
		if err != nil {
			t.Fatal(err)
		}
		for m, err := range mb.Messages(ctx, 1) {
			if err != nil {
				t.Fatal(err)
			}
			err := mb.Body(ctx, m.UID, func(b formats.Body) error {
				h := sha256.New()
				_, err := io.Copy(h, b)
				out[mb.Name()][fmt.Sprintf("%x", h.Sum(nil)[:8])]++
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		mb.Close()
	}
	return out
}

// uidMap lists mailbox → "uid:bodyhash" lines: what must not depend on
// which side is the source.
func uidMap(t *testing.T, s formats.Store) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	boxes, _ := s.Mailboxes(ctx)
	for _, info := range boxes {
		if info.NoSelect {
			continue
		}
		mb, err := s.Open(ctx, info.Name)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := mb.Status(ctx)
		fmt.Fprintf(&b, "%q uidvalidity=%d uidnext=%d guid=%s\n", info.Name, st.UIDValidity, st.UIDNext, st.GUID)
		for m := range mb.Messages(ctx, 1) {
			mb.Body(ctx, m.UID, func(body formats.Body) error {
				h := sha256.New()
				io.Copy(h, body)
				fmt.Fprintf(&b, "  %d %x\n", m.UID, h.Sum(nil)[:8])
				return nil
			})
		}
		mb.Close()
	}
	return b.String()
}

func noOp(res convert.Result) bool {
	return res.Messages.Saved+res.Messages.Expunged+res.Messages.FlagsChanged+res.Mailboxes.Created+res.Mailboxes.Deleted == 0
}

// twoWayPair builds stores A and B for seed i: A populated, a first sync,
// then independent changes on both sides. It returns the bodies of the
// synced state (base) for expunge accounting.
func twoWayPair(t *testing.T, k storeKind, seed uint64, i int, mode convert.Mode) (a, b formats.Store, base map[string]map[string]int) {
	t.Helper()
	sc := &scenario{rng: rand.New(rand.NewPCG(seed, uint64(i)))}
	a, b = k.new(t), k.new(t)
	sc.populate(t, a)
	first := convert.Backup
	if mode == convert.Sync && i%3 == 2 {
		// Start from two populated trees that never met.
		sc.populate(t, b)
		first = convert.Sync
	}
	run(t, a, b, convert.Options{Mode: first, Algorithm: convert.Full, Workers: 1 + i%3})
	base = bodies(t, b)
	sc.change(t, a, "A")
	sc.change(t, b, "B")
	return a, b, base
}

// checkKept verifies that after holds every body of before on any side
// except expunged ones, no body twice, and nothing that was not there.
func checkKept(t *testing.T, what string, after map[string]map[string]int, expunged map[string]map[string]bool, before ...map[string]map[string]int) {
	t.Helper()
	for name, hs := range after {
		for h, n := range hs {
			if n > 1 {
				t.Fatalf("%s: mailbox %q holds body %s %d times", what, name, h, n)
			}
			found := false
			for _, bf := range before {
				for _, bhs := range bf {
					found = found || bhs[h] > 0
				}
			}
			if !found {
				t.Fatalf("%s: mailbox %q holds body %s that no side had", what, name, h)
			}
		}
	}
	for _, bf := range before {
		for name, hs := range bf {
			for h := range hs {
				if after[name][h] == 0 && !expunged[name][h] {
					t.Fatalf("%s: mailbox %q lost body %s", what, name, h)
				}
			}
		}
	}
}

// expungedSince lists bodies of base missing from any of the stores' states.
func expungedSince(base map[string]map[string]int, states ...map[string]map[string]int) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for name, hs := range base {
		out[name] = map[string]bool{}
		for h := range hs {
			for _, st := range states {
				if st[name][h] == 0 {
					out[name][h] = true
				}
			}
		}
	}
	return out
}

// TestSyncConverges is the two-way property: after random changes on
// both sides, one sync makes both dumps equal, loses and duplicates no
// mail, a second sync changes nothing, and swapping source and destination
// gives the same UIDs (flags may differ: equal modseqs go to the source,
// as in dsync).
func TestSyncConverges(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			seed := testSeed()
			t.Logf("seed %d (BOXSYNC_SEED=%d to replay)", seed, seed)
			n := 30
			if k.name != "mem" {
				n = 8
			}
			for i := range n {
				a, b, base := twoWayPair(t, k, seed, i, convert.Sync)
				ba, bb := bodies(t, a), bodies(t, b)
				exp := expungedSince(base, ba, bb)
				goneBoxes(exp, base, ba, bb)
				run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Full, Workers: 1 + i%3})
				da, db := dump(t, a), dump(t, b)
				if d := formatstest.Diff(da, db); d != "" {
					t.Fatalf("seed %d/%d: sides differ after sync:\n%s", seed, i, d)
				}
				checkKept(t, fmt.Sprintf("seed %d/%d", seed, i), bodies(t, a), exp, ba, bb)
				if res := run(t, a, b, convert.Options{Mode: convert.Sync}); !noOp(res) {
					t.Fatalf("seed %d/%d: second sync was not a no-op: %+v", seed, i, res)
				}
				if d := formatstest.Diff(da, dump(t, a)); d != "" {
					t.Fatalf("seed %d/%d: second sync changed A:\n%s", seed, i, d)
				}
				// The same start, synced the other way round.
				a2, b2, _ := twoWayPair(t, k, seed, i, convert.Sync)
				run(t, b2, a2, convert.Options{Mode: convert.Sync, Algorithm: convert.Full})
				if d := formatstest.Diff(uidMap(t, a), uidMap(t, a2)); d != "" {
					t.Fatalf("seed %d/%d: sync(A,B) and sync(B,A) differ:\n%s", seed, i, d)
				}
			}
		})
	}
}

// TestSyncOneWay is sync -1 (and the migration pattern: backup, both sides
// used, sync -1): the source is untouched, the destination keeps its own
// new mail and receives all the source's, no UID the two had in common
// changes, and a second run is a no-op.
func TestSyncOneWay(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			seed := testSeed()
			t.Logf("seed %d (BOXSYNC_SEED=%d to replay)", seed, seed)
			n := 30
			if k.name != "mem" {
				n = 8
			}
			for i := range n {
				a, b, base := twoWayPair(t, k, seed, i, convert.OneWay)
				srcBefore := dump(t, a)
				ba, bb := bodies(t, a), bodies(t, b)
				common := commonUIDs(t, a, b)
				run(t, a, b, convert.Options{Mode: convert.OneWay, Algorithm: convert.Full, Workers: 1 + i%3})
				if d := formatstest.Diff(srcBefore, dump(t, a)); d != "" {
					t.Fatalf("seed %d/%d: sync -1 changed the source:\n%s", seed, i, d)
				}
				after := bodies(t, b)
				// The destination's own new mail stays, the source's
				// arrives; mail either side expunged may go (as in
				// doveadm sync -1, which expunges what the source did).
				checkKept(t, fmt.Sprintf("seed %d/%d", seed, i), after, expungedSince(base, ba, bb), ba, bb)
				for name, uids := range common {
					now := commonUIDs(t, a, b)[name]
					for uid, h := range uids {
						if now[uid] != h {
							t.Fatalf("seed %d/%d: mailbox %q: common UID %d was renumbered", seed, i, name, uid)
						}
					}
				}
				dd := dump(t, b)
				if res := run(t, a, b, convert.Options{Mode: convert.OneWay}); !noOp(res) {
					t.Fatalf("seed %d/%d: second sync -1 was not a no-op: %+v", seed, i, res)
				}
				if d := formatstest.Diff(dd, dump(t, b)); d != "" {
					t.Fatalf("seed %d/%d: second sync -1 changed the destination:\n%s", seed, i, d)
				}
			}
		})
	}
}

// commonUIDs maps mailbox → UID → body hash for UIDs that hold the same
// body on both stores.
func commonUIDs(t *testing.T, a, b formats.Store) map[string]map[formats.UID]string {
	t.Helper()
	ua, ub := uidBodies(t, a), uidBodies(t, b)
	out := map[string]map[formats.UID]string{}
	for name, m := range ua {
		out[name] = map[formats.UID]string{}
		for uid, h := range m {
			if ub[name][uid] == h {
				out[name][uid] = h
			}
		}
	}
	return out
}

func uidBodies(t *testing.T, s formats.Store) map[string]map[formats.UID]string {
	t.Helper()
	out := map[string]map[formats.UID]string{}
	var cur map[formats.UID]string
	for _, line := range strings.Split(uidMap(t, s), "\n") {
		switch {
		case line == "":
		case !strings.HasPrefix(line, "  "):
			name, _ := strconv.Unquote(line[:strings.LastIndex(line, " uidvalidity=")])
			cur = map[formats.UID]string{}
			out[name] = cur
		default:
			var uid formats.UID
			var h string
			fmt.Sscanf(line, "  %d %s", &uid, &h)
			cur[uid] = h
		}
	}
	return out
}

// TestSyncUIDConflict is dsync's observed case: both sides saved a
// different mail as the same UID; both end with the two mails under new
// UIDs from max(UIDNEXT), and sync -1 does the same on the destination
// only (§1.1: "UID 8 became 9 and 10 on the destination").
func TestSyncUIDConflict(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []convert.Mode{convert.Sync, convert.OneWay} {
		a, b := newStore(t), newStore(t)
		sc := &scenario{rng: rand.New(rand.NewPCG(7, 7))}
		a.Create(ctx, "INBOX", sc.guid(), 42)
		mb, _ := a.Open(ctx, "INBOX")
		tx, _ := mb.Begin(ctx)
		for uid := formats.UID(1); uid <= 7; uid++ {
			sc.save(t, tx, "old", uid)
		}
		tx.Commit(ctx)
		mb.Close()
		run(t, a, b, convert.Options{})
		for _, s := range []formats.Store{a, b} {
			mb, _ := s.Open(ctx, "INBOX")
			tx, _ := mb.Begin(ctx)
			sc.save(t, tx, "new", 8)
			tx.Commit(ctx)
			mb.Close()
		}
		run(t, a, b, convert.Options{Mode: mode, Algorithm: convert.Full})
		want := map[convert.Mode][2]string{
			convert.Sync:   {"1 2 3 4 5 6 7 9 10", "1 2 3 4 5 6 7 9 10"},
			convert.OneWay: {"1 2 3 4 5 6 7 8", "1 2 3 4 5 6 7 9 10"},
		}[mode]
		for i, s := range []formats.Store{a, b} {
			var got []string
			mb, _ := s.Open(ctx, "INBOX")
			for m := range mb.Messages(ctx, 1) {
				got = append(got, fmt.Sprint(m.UID))
			}
			mb.Close()
			if strings.Join(got, " ") != want[i] {
				t.Errorf("%s: side %d has UIDs %v, want %s", mode, i, got, want[i])
			}
		}
	}
}

// TestSyncInboxConflict: two INBOXes that never met (different GUIDs and
// UIDVALIDITY) can't converge on one identity, since INBOX is never
// deleted; each side gets the other's mail by content, nothing is lost or
// duplicated, the run reports a desync and the next run saves nothing.
func TestSyncInboxConflict(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			ctx := context.Background()
			a, b := k.new(t), k.new(t)
			sc := &scenario{rng: rand.New(rand.NewPCG(3, 4))}
			for _, s := range []formats.Store{a, b} {
				s.Create(ctx, "INBOX", sc.guid(), 1+sc.rng.Uint32N(1000))
				mb, _ := s.Open(ctx, "INBOX")
				tx, _ := mb.Begin(ctx)
				for i := 1 + sc.rng.IntN(5); i > 0; i-- {
					sc.save(t, tx, "inbox", 0)
				}
				tx.Commit(ctx)
				mb.Close()
			}
			ba, bb := bodies(t, a), bodies(t, b)
			res := run(t, a, b, convert.Options{Mode: convert.Sync})
			if res.Desync == "" {
				t.Errorf("no desync reported for an INBOX GUID conflict")
			}
			checkKept(t, "A", bodies(t, a), nil, ba, bb)
			checkKept(t, "B", bodies(t, b), nil, ba, bb)
			if res := run(t, a, b, convert.Options{Mode: convert.Sync}); !noOp(res) || res.Desync != "" {
				t.Errorf("second sync was not a clean no-op: %+v", res)
			}
		})
	}
}

// TestSyncHeaderHash merges mem with mbox, which can't keep message GUIDs:
// mail is matched by dsync's header hash and size (dsync.md §2.9).
func TestSyncHeaderHash(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []convert.Mode{convert.Sync, convert.OneWay} {
		t.Run(mode.String(), func(t *testing.T) {
			a := newStore(t)
			b := openLoc(t, "mbox:"+filepath.Join(t.TempDir(), "mail")+":INBOX="+filepath.Join(t.TempDir(), "inbox"), formats.OpenOptions{Create: true})
			sc := &scenario{rng: rand.New(rand.NewPCG(11, uint64(mode)))}
			for _, name := range []string{"INBOX", "Sent", "Archive"} {
				a.Create(ctx, name, sc.guid(), 100)
				mb, _ := a.Open(ctx, name)
				tx, _ := mb.Begin(ctx)
				for i := 5 + sc.rng.IntN(5); i > 0; i-- {
					sc.save(t, tx, name, 0)
				}
				tx.Commit(ctx)
				mb.Close()
			}
			run(t, a, b, convert.Options{})
			base := bodies(t, b)
			sc.change(t, a, "A")
			sc.change(t, b, "B")
			ba, bb := bodies(t, a), bodies(t, b)
			srcBefore := dump(t, a)
			run(t, a, b, convert.Options{Mode: mode, Algorithm: convert.Full})
			if mode == convert.Sync {
				checkKept(t, "A", bodies(t, a), expungedSince(base, ba, bb), ba, bb)
				checkKept(t, "B", bodies(t, b), expungedSince(base, ba, bb), ba, bb)
				f := formatstest.FieldsBackup &^ (formatstest.FieldGUID | formatstest.FieldVSize)
				da, _ := formatstest.Dump(ctx, a, f)
				db, _ := formatstest.Dump(ctx, b, f)
				if d := formatstest.Diff(da, db); d != "" {
					t.Fatalf("sides differ after sync:\n%s", d)
				}
			} else {
				if d := formatstest.Diff(srcBefore, dump(t, a)); d != "" {
					t.Fatalf("sync -1 changed the source:\n%s", d)
				}
				checkKept(t, "B", bodies(t, b), expungedSince(base, bb), ba, bb)
			}
			if res := run(t, a, b, convert.Options{Mode: mode, Algorithm: convert.Full}); !noOp(res) {
				t.Fatalf("second run was not a no-op: %+v", res)
			}
		})
	}
}

// TestSyncFlagsModSeq: without per-flag history the side whose copy has
// the higher modseq wins, the source on a tie (dsync.md §2.8b).
func TestSyncFlagsModSeq(t *testing.T) {
	ctx := context.Background()
	a, b := newStore(t), newStore(t)
	sc := &scenario{rng: rand.New(rand.NewPCG(5, 6))}
	a.Create(ctx, "INBOX", sc.guid(), 9)
	mb, _ := a.Open(ctx, "INBOX")
	tx, _ := mb.Begin(ctx)
	sc.save(t, tx, "x", 1)
	sc.save(t, tx, "x", 2)
	tx.Commit(ctx)
	mb.Close()
	run(t, a, b, convert.Options{})
	setFlags := func(s formats.Store, uid formats.UID, f formats.Flags, kw []string, times int) {
		mb, _ := s.Open(ctx, "INBOX")
		defer mb.Close()
		for range times {
			tx, _ := mb.Begin(ctx)
			tx.SetFlags(uid, f, kw)
			tx.Commit(ctx)
		}
	}
	// UID 1: B changed it later (more commits, higher modseq) → B wins.
	setFlags(a, 1, formats.FlagSeen, nil, 1)
	setFlags(b, 1, formats.FlagFlagged, []string{"Important"}, 5)
	// UID 2: A's is newer.
	setFlags(b, 2, formats.FlagDraft, nil, 1)
	setFlags(a, 2, formats.FlagAnswered, nil, 6)
	run(t, a, b, convert.Options{Mode: convert.Sync})
	for _, s := range []formats.Store{a, b} {
		mb, _ := s.Open(ctx, "INBOX")
		for m := range mb.Messages(ctx, 1) {
			want := map[formats.UID]formats.Flags{1: formats.FlagFlagged, 2: formats.FlagAnswered}[m.UID]
			if m.Flags != want {
				t.Errorf("uid %d: flags %s, want %s", m.UID, m.Flags, want)
			}
			if m.UID == 1 && !formats.EqualKeywords(m.Keywords, []string{"Important"}) {
				t.Errorf("uid 1: keywords %v, want [Important]", m.Keywords)
			}
		}
		mb.Close()
	}
}

// TestSyncFlagsAfterSync: a sync leaves both sides with the same
// HIGHESTMODSEQ, so a single later change wins over a copy that had many
// changes before the sync.
func TestSyncFlagsAfterSync(t *testing.T) {
	ctx := context.Background()
	a, b := newStore(t), newStore(t)
	sc := &scenario{rng: rand.New(rand.NewPCG(8, 9))}
	a.Create(ctx, "INBOX", sc.guid(), 9)
	mb, _ := a.Open(ctx, "INBOX")
	tx, _ := mb.Begin(ctx)
	sc.save(t, tx, "x", 1)
	tx.Commit(ctx)
	for range 10 {
		tx, _ := mb.Begin(ctx)
		tx.SetFlags(1, formats.FlagSeen, []string{"a"})
		tx.Commit(ctx)
	}
	mb.Close()
	run(t, a, b, convert.Options{Mode: convert.Sync})
	mb, _ = b.Open(ctx, "INBOX")
	tx, _ = mb.Begin(ctx)
	tx.SetFlags(1, formats.FlagFlagged, []string{"b"})
	tx.Commit(ctx)
	mb.Close()
	run(t, a, b, convert.Options{Mode: convert.Sync})
	for _, s := range []formats.Store{a, b} {
		mb, _ := s.Open(ctx, "INBOX")
		for m := range mb.Messages(ctx, 1) {
			if m.Flags != formats.FlagFlagged || !formats.EqualKeywords(m.Keywords, []string{"b"}) {
				t.Errorf("flags %s %v, want the later change: \\Flagged [b]", m.Flags, m.Keywords)
			}
		}
		mb.Close()
	}
	if res := run(t, a, b, convert.Options{Mode: convert.Sync}); res.Mailboxes.Skipped != 1 {
		t.Errorf("a synced pair was not skipped by a fast sync: %+v", res)
	}
}
