package index

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

// TestRecordsCopyOnWrite changes records at random (appends, writes,
// expunged ranges) and clones them as states are cloned, checking each
// against a flat copy: the records read what was written, and every
// earlier clone still reads what it held when it was cloned, across chunk
// boundaries.
func TestRecordsCopyOnWrite(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 2))
	for iter := range 10 {
		size := 8 + 4*rng.IntN(9)
		cur := newRecords(size)
		var flat []byte
		type snapshot struct {
			r    records
			flat []byte
		}
		var snaps []snapshot
		check := func(what string, r *records, want []byte) {
			t.Helper()
			if r.n*size != len(want) || !bytes.Equal(r.appendTo(nil), want) {
				t.Fatalf("iter %d (size %d) %s: %d records differ from the model's %d", iter, size, what, r.n, len(want)/size)
			}
			for i := 0; i < r.n; i++ {
				if !bytes.Equal(r.rec(i), want[i*size:(i+1)*size]) {
					t.Fatalf("iter %d %s: record %d differs", iter, what, i)
				}
			}
		}
		for step := range 120 {
			switch op := rng.IntN(10); {
			case op < 3: // a commit's appends, as replay does them
				n := rng.IntN(3 * chunkRecs / 2)
				cur.grow(n)
				for range n {
					rec := cur.appendZero(1)
					for j := range rec {
						rec[j] = byte(rng.Uint32())
					}
					flat = append(flat, rec...)
				}
			case op < 6 && cur.n > 0: // changes in place
				for range 1 + rng.IntN(20) {
					i, j := rng.IntN(cur.n), rng.IntN(size)
					v := byte(rng.Uint32())
					cur.wrec(i)[j] = v
					flat[i*size+j] = v
				}
			case op < 7 && cur.n > 0: // expunges
				var rs [][2]int
				for i := rng.IntN(cur.n); i < cur.n; i += 1 + rng.IntN(cur.n) {
					end := min(cur.n, i+1+rng.IntN(chunkRecs+10))
					rs = append(rs, [2]int{i, end})
					i = end
				}
				var kept []byte
				prev := 0
				for _, x := range rs {
					kept = append(kept, flat[prev*size:x[0]*size]...)
					prev = x[1]
				}
				flat = append(kept, flat[prev*size:]...)
				cur = cur.without(rs)
			default: // publish: the current records become a snapshot, changes go on in a clone
				snaps = append(snaps, snapshot{cur, bytes.Clone(flat)})
				cur = cur.clone()
			}
			check(fmt.Sprintf("step %d", step), &cur, flat)
		}
		for k, s := range snaps {
			check(fmt.Sprintf("snapshot %d", k), &s.r, s.flat)
		}
		fromFile := recordsOf(size, flat)
		check("recordsOf", &fromFile, flat)
	}
}

// writeIndexFile writes a large index's records chunk by chunk and a
// small one's at once; both are the bytes encodeIndexFile gives.
func TestWriteIndexFileChunks(t *testing.T) {
	for _, n := range []int{10, 5000} {
		ix, dir := newTestIndex(t, Options{Extensions: []ExtDef{ExtDefGUID}})
		tx := ix.Begin()
		for uid := range n {
			tx.Append(uint32(uid+1), FlagSeen)
		}
		commit(t, tx)
		st := ix.st
		if big := st.count()*st.recs.size > 64<<10; big != (n == 5000) {
			t.Fatalf("%d messages: %d bytes of records", n, st.count()*st.recs.size)
		}
		path := filepath.Join(dir, "written.index")
		if err := writeIndexFile(path, st, formats.FsyncNever); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, encodeIndexFile(st)) {
			t.Errorf("%d messages: the file differs from encodeIndexFile (%d bytes, want %d)", n, len(got), len(encodeIndexFile(st)))
		}
	}
}

// A commit reads the log once and replays its transaction in that same
// array: it allocates about one log's size, not two (the log read, then
// a copy of it with the transaction appended).
func TestCommitCopiesLogOnce(t *testing.T) {
	ix, dir := newTestIndex(t, Options{Extensions: []ExtDef{ExtDefGUID}, RewriteMaxLogBytes: -1,
		LogRotateMaxSize: 64 << 20})
	uid := uint32(1)
	for range 40 {
		tx := ix.Begin()
		for range 500 {
			tx.Append(uid, 0)
			tx.ExtRecUpdate(ExtGUID, uid, bytes.Repeat([]byte{byte(uid)}, 16))
			uid++
		}
		commit(t, tx)
	}
	fi, err := os.Stat(filepath.Join(dir, Prefix+".log"))
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	tx := ix.Begin()
	tx.UpdateFlags(1, FlagSeen, 0)
	commit(t, tx)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > uint64(fi.Size())*3/2 {
		t.Errorf("a one-flag commit allocated %d bytes with a %d-byte log", got, fi.Size())
	}
}
