package index

import (
	"slices"
	"sync/atomic"
)

// records are a state's message records (spec §2.3: messages_count
// records of record_size bytes, ascending UIDs) in chunks of chunkRecs
// records, shared copy-on-write between states: a clone copies the list
// of chunks, and a change copies only the chunks it writes. A commit that
// appends 2,000 messages to a 50,000-message map index then copies one or
// two chunks rather than the whole 1 MB (each commit used to), and the
// state it replaces shares everything else with it: issue 4's memory goal.
//
// A chunk belongs to the records whose gen it carries, which may change
// it in place; any other records that hold it only read it. Whoever
// changes a published state clones it first (state.clone), so a state's
// chunks are never written under a reader.
type records struct {
	size   int // record_size
	n      int // messages_count
	chunks []*recChunk
	gen    uint64
}

// recChunk holds up to chunkRecs records.
type recChunk struct {
	gen uint64
	b   []byte // len = records held × size; cap = chunkRecs × size when owned
}

// chunkRecs records make a chunk: 8-24 KiB for the usual record sizes
// (16-48 bytes), small next to a commit, large enough that the chunk list
// of a 50,000-message index is 100 pointers.
const chunkRecs = 512

// recGens hands out generations: each records that may change chunks
// has its own.
var recGens atomic.Uint64

func newRecords(size int) records { return records{size: size, gen: recGens.Add(1)} }

// recordsOf copies data, n records of size bytes, into chunks.
func recordsOf(size int, data []byte) records {
	r := newRecords(size)
	r.grow(len(data) / size)
	for len(data) > 0 {
		k := min(len(data), chunkRecs*size)
		copy(r.appendZero(k/size), data[:k])
		data = data[k:]
	}
	return r
}

// clone returns records that share r's chunks and copy them on write.
func (r *records) clone() records {
	c := *r
	c.chunks = slices.Clone(r.chunks)
	c.gen = recGens.Add(1)
	return c
}

// rec is record i, to read only.
func (r *records) rec(i int) []byte {
	k := (i % chunkRecs) * r.size
	return r.chunks[i/chunkRecs].b[k : k+r.size]
}

// wrec is record i, to change.
func (r *records) wrec(i int) []byte {
	c := r.own(i / chunkRecs)
	k := (i % chunkRecs) * r.size
	return c.b[k : k+r.size]
}

// own makes chunk k r's own, copying it if another records may hold it.
func (r *records) own(k int) *recChunk {
	c := r.chunks[k]
	if c.gen != r.gen {
		c = &recChunk{gen: r.gen, b: append(make([]byte, 0, chunkRecs*r.size), c.b...)}
		r.chunks[k] = c
	}
	return c
}

// grow makes room in the chunk list for n more records.
func (r *records) grow(n int) {
	r.chunks = slices.Grow(r.chunks, (r.n+n+chunkRecs-1)/chunkRecs-len(r.chunks))
}

// appendZero appends up to n zeroed records, as many as fit in the last
// chunk (a new one if it is full), and returns their bytes to fill in.
func (r *records) appendZero(n int) []byte {
	if r.n%chunkRecs == 0 {
		r.chunks = append(r.chunks, &recChunk{gen: r.gen, b: make([]byte, 0, chunkRecs*r.size)})
	}
	c := r.own(len(r.chunks) - 1)
	n = min(n, chunkRecs-r.n%chunkRecs)
	start := len(c.b)
	c.b = c.b[:start+n*r.size]
	clear(c.b[start:])
	r.n += n
	return c.b[start:]
}

// appendRecs appends records of src's size from src, records [i1, i2).
func (r *records) appendRecs(src *records, i1, i2 int) {
	for i1 < i2 {
		b := src.rec(i1)
		k := min(i2-i1, chunkRecs-i1%chunkRecs)
		b = b[: k*src.size : k*src.size] // the run of records within src's chunk
		for len(b) > 0 {
			dst := r.appendZero(len(b) / r.size)
			b = b[copy(dst, b):]
		}
		i1 += k
	}
}

// without returns the records but ranges rs ([i1, i2), ascending, not
// overlapping): the chunks before the first range shared, the rest
// copied into new chunks.
func (r *records) without(rs [][2]int) records {
	kept := r.clone()
	if len(rs) == 0 {
		return kept
	}
	full := rs[0][0] / chunkRecs
	kept.n, kept.chunks = full*chunkRecs, kept.chunks[:full]
	kept.grow(r.n - kept.n)
	kept.appendRecs(r, kept.n, rs[0][0])
	for k, x := range rs {
		end := r.n
		if k+1 < len(rs) {
			end = rs[k+1][0]
		}
		kept.appendRecs(r, x[1], end)
	}
	return kept
}

// appendTo appends every record to out: dovecot.index's record part.
func (r *records) appendTo(out []byte) []byte {
	for _, c := range r.chunks {
		out = append(out, c.b...)
	}
	return out
}
