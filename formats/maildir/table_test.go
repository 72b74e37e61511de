package maildir

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestTableExtend: tables made by extend (expunges, renames, appends)
// list what a flat model of the mailbox lists, names across arena pieces
// included, and every earlier table still lists what it did: extend
// shares pieces but never writes where another table reads, also when
// two tables extend the same one. Once half the
// arena is dead names, extend copies the rest.
func TestTableExtend(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 7))
	type msg struct {
		uid       uint32
		name, ext string
		dir       uint8
	}
	randName := func(uid uint32) string {
		n := fmt.Sprintf("%d.M%dP%d.host", 1700000000+uid, rnd.IntN(1e6), uid)
		n += strings.Repeat("x", rnd.IntN(3000)) // long names reach the next piece sooner
		if rnd.IntN(2) == 0 {
			n += ":2,S"
		}
		return n
	}
	check := func(tb *table, model []msg, when string) {
		t.Helper()
		if len(tb.recs) != len(model) {
			t.Fatalf("%s: %d records, want %d", when, len(tb.recs), len(model))
		}
		for i, m := range model {
			r := &tb.recs[i]
			if r.uid != m.uid || tb.name(r) != m.name || tb.ext(r) != m.ext || r.dir != m.dir || tb.base(r) != baseOf(m.name) {
				t.Fatalf("%s: record %d = uid %d %.40q %q dir %d, want uid %d %.40q %q dir %d",
					when, i, r.uid, tb.name(r), tb.ext(r), r.dir, m.uid, m.name, m.ext, m.dir)
			}
		}
	}
	var tb table
	var model []msg
	uid := uint32(1)
	for range 200 {
		m := msg{uid, randName(uid), "", dirCur}
		if rnd.IntN(3) == 0 {
			m.ext = "GABC" + fmt.Sprint(uid)
		}
		if err := tb.add(m.uid, m.name, m.ext, m.dir); err != nil {
			t.Fatal(err)
		}
		model = append(model, m)
		uid++
	}
	tables, models := []*table{&tb}, [][]msg{model}
	copied := false
	for step := range 60 {
		// Mostly the latest table, sometimes an earlier one (two
		// tables extended from one, as a failed commit's and the next).
		from := len(tables) - 1
		if rnd.IntN(3) == 0 {
			from = rnd.IntN(len(tables))
		}
		cur, curModel := tables[from], models[from]
		gone := map[uint32]bool{}
		renamed := map[uint32]movedTo{}
		var next []msg
		for _, m := range curModel {
			switch rnd.IntN(10) {
			case 0:
				gone[m.uid] = true
				continue
			case 1:
				m.name, m.dir = randName(m.uid), uint8(1+rnd.IntN(2))
				renamed[m.uid] = movedTo{m.name, m.dir}
			}
			next = append(next, m)
		}
		adds := rnd.IntN(30)
		nt, err := cur.extend(gone, renamed, adds)
		if err != nil {
			t.Fatal(err)
		}
		copied = copied || len(nt.arena) == 0 || nt.dead == 0 && cur.dead > 0
		for range adds {
			m := msg{uid, randName(uid), "", dirCur}
			if err := nt.add(m.uid, m.name, m.ext, m.dir); err != nil {
				t.Fatal(err)
			}
			next = append(next, m)
			uid++
		}
		tables, models = append(tables, nt), append(models, next)
		for i := range tables {
			check(tables[i], models[i], fmt.Sprintf("step %d, table %d", step, i))
		}
		if nt.dead*2 > nt.size {
			t.Fatalf("step %d: %d of %d arena bytes dead, more than half", step, nt.dead, nt.size)
		}
	}
	if !copied {
		t.Errorf("extend never copied the names left (dead names never reached half the arena)")
	}
}
