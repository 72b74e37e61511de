package maildir

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/boxsync/boxsync/formats"
)

// dovecot-uidlist (dovecot-storage.md §6.4; dovecot 2.3.19.1
// maildir-uidlist.c, maildir-uidlist.h):
//
//	3 V<uidvalidity> N<next uid> G<mailbox guid>[ <key><value>...]
//	<uid>[ <key><value>...] :<base name>
//
// Version 1 (Courier's courierimapuiddb too) is "1 <uidvalidity> <next
// uid>" then "<uid> <file name>".
const (
	uidlistName    = "dovecot-uidlist"
	uidlistVersion = 3
)

// Record extension keys (enum maildir_uidlist_rec_ext_key).
const (
	extPSize     = 'S' // physical size, when not in the file name
	extVSize     = 'W' // virtual size, when not in the file name
	extPOP3UIDL  = 'P'
	extPOP3Order = 'O'
	extGUID      = 'G' // message GUID; default is the base name
)

// uidlistHeader is the first line of a dovecot-uidlist.
type uidlistHeader struct {
	Version     int
	UIDValidity uint32
	NextUID     uint32 // as in the header; see table.nextUID
	GUID        formats.GUID
	HasGUID     bool
	Ext         string // other header fields ("P..."), kept on rewrite
}

// rec is one message of a mailbox, 20 bytes: its strings live in the
// owning table's arena, so a 50,000-message mailbox costs about 1 MB of
// records plus its names.
type rec struct {
	uid     uint32
	nameOff uint32 // file name (base[:info]) in the arena
	nameLen uint16
	baseLen uint16
	extOff  uint32 // record extensions, "Kvalue Kvalue", in the arena
	extLen  uint16
	dir     uint8 // dirNone, dirNew, dirCur
}

const (
	dirNone uint8 = iota // listed in dovecot-uidlist, not (yet) seen on disk
	dirNew
	dirCur
)

// table is a mailbox's messages: records sorted by UID and the arena their
// strings point into. A table is never changed once built; a sync makes a
// new one.
//
// The arena is in pieces of up to arenaPiece bytes, a string never spans
// two, and an offset is piece<<16 | position. A commit's table takes the
// pieces of the table it extends, shared (see extend), instead of a copy
// of every name: a commit to a large mailbox (15,000 names, 1 MB) holds
// the names once.
type table struct {
	arena [][]byte
	recs  []rec
	want  int // bytes the arena is still expected to take (sizes new pieces)
	dead  int // bytes of names no record refers to any more (see extend)
	size  int // bytes of strings in the arena
}

const arenaPiece = 1 << 16

// bytes returns the n bytes at off, without copying.
func (t *table) bytes(off uint32, n uint16) []byte {
	if n == 0 {
		return nil
	}
	p, o := t.arena[off>>16], off&0xffff
	return p[o : o+uint32(n)]
}

func (t *table) name(r *rec) string { return string(t.bytes(r.nameOff, r.nameLen)) }

// nameBytes is name without a copy: valid as long as t (tables are never
// changed once built).
func (t *table) nameBytes(r *rec) []byte { return t.bytes(r.nameOff, r.nameLen) }
func (t *table) base(r *rec) string      { return string(t.bytes(r.nameOff, r.baseLen)) }
func (t *table) ext(r *rec) string       { return string(t.bytes(r.extOff, r.extLen)) }

// baseBytes returns the base name without copying.
func (t *table) baseBytes(r *rec) []byte { return t.bytes(r.nameOff, r.baseLen) }
func (t *table) extBytes(r *rec) []byte  { return t.bytes(r.extOff, r.extLen) }

// reserve tells the arena that n more bytes of strings are coming: the
// pieces it then makes hold them with little to spare.
func (t *table) reserve(n int) { t.want = n }

// put copies b into the arena and returns its offset.
func (t *table) put(b []byte) (uint32, error) {
	if len(b) == 0 {
		return 0, nil
	}
	last := len(t.arena) - 1
	if last < 0 || cap(t.arena[last])-len(t.arena[last]) < len(b) {
		if len(t.arena) >= 1<<16 {
			return 0, errors.New("file names exceed the table's 65,536 arena pieces")
		}
		// Sized for what is expected, else twice the last piece
		// (a table of a few names stays small).
		c := 1024
		if last >= 0 {
			c = 2 * cap(t.arena[last])
		}
		t.arena = append(t.arena, make([]byte, 0, min(arenaPiece, max(t.want, len(b), c))))
		last++
	}
	p := t.arena[last]
	off := uint32(last)<<16 | uint32(len(p))
	t.arena[last] = append(p, b...)
	t.want -= len(b)
	t.size += len(b)
	return off, nil
}

// movedTo is where a commit renamed a message's file.
type movedTo struct {
	name string
	dir  uint8
}

// extend returns a table with t's records but those with a UID in gone,
// renamed ones under their new names, and room for n more records. Its
// arena shares t's pieces: the last one with its capacity cut, so that
// neither table ever writes where the other reads. Names of records left
// out stay in the shared pieces; once they are half the arena, extend
// copies the names that are left instead.
func (t *table) extend(gone map[uint32]bool, renamed map[uint32]movedTo, n int) (*table, error) {
	nt := &table{recs: make([]rec, 0, len(t.recs)+n)}
	dead := t.dead
	for i := range t.recs {
		r := &t.recs[i]
		if _, ok := renamed[r.uid]; ok || gone[r.uid] {
			dead += int(r.nameLen)
			if gone[r.uid] {
				dead += int(r.extLen)
			}
		}
	}
	if dead*2 > t.size {
		// Copy what is left.
		nt.reserve(t.size - dead)
		for i := range t.recs {
			r := &t.recs[i]
			if gone[r.uid] {
				continue
			}
			name, dir := t.bytes(r.nameOff, r.nameLen), r.dir
			if mv, ok := renamed[r.uid]; ok {
				name, dir = []byte(mv.name), mv.dir
			}
			if err := nt.addBytes(r.uid, name, t.extBytes(r), dir); err != nil {
				return nil, err
			}
		}
		return nt, nil
	}
	nt.arena = slices.Clone(t.arena)
	if last := len(nt.arena) - 1; last >= 0 {
		nt.arena[last] = slices.Clip(nt.arena[last])
	}
	nt.dead, nt.size = dead, t.size
	for i := range t.recs {
		r := t.recs[i]
		if gone[r.uid] {
			continue
		}
		if mv, ok := renamed[r.uid]; ok {
			off, err := nt.put([]byte(mv.name))
			if err != nil {
				return nil, err
			}
			r.nameOff, r.nameLen, r.dir = off, uint16(len(mv.name)), mv.dir
			r.baseLen = r.nameLen
			if i := strings.IndexByte(mv.name, infoSep); i >= 0 {
				r.baseLen = uint16(i)
			}
		}
		nt.recs = append(nt.recs, r)
	}
	return nt, nil
}

// find returns the index of uid, or -1.
func (t *table) find(uid uint32) int {
	lo, hi := 0, len(t.recs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.recs[m].uid < uid {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(t.recs) && t.recs[lo].uid == uid {
		return lo
	}
	return -1
}

// lowerBound returns the index of the first record with UID >= uid.
func (t *table) lowerBound(uid uint32) int {
	lo, hi := 0, len(t.recs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.recs[m].uid < uid {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// add appends a record with the given strings copied into the arena.
func (t *table) add(uid uint32, name, ext string, dir uint8) error {
	return t.addBytes(uid, []byte(name), []byte(ext), dir)
}

func (t *table) addBytes(uid uint32, name, ext []byte, dir uint8) error {
	if len(name) > 0xffff || len(ext) > 0xffff {
		return errors.New("file name or uidlist record too long")
	}
	r := rec{uid: uid, dir: dir}
	var err error
	if r.nameOff, err = t.put(name); err != nil {
		return err
	}
	r.nameLen = uint16(len(name))
	r.baseLen = uint16(len(name))
	if i := bytes.IndexByte(name, infoSep); i >= 0 {
		r.baseLen = uint16(i)
	}
	if r.extOff, err = t.put(ext); err != nil {
		return err
	}
	r.extLen = uint16(len(ext))
	t.recs = append(t.recs, r)
	return nil
}

// extValue returns the value of key in an extension string.
func extValue(ext string, key byte) (string, bool) {
	for ext != "" {
		f := ext
		if i := strings.IndexByte(ext, ' '); i >= 0 {
			f, ext = ext[:i], ext[i+1:]
		} else {
			ext = ""
		}
		if f != "" && f[0] == key {
			return f[1:], true
		}
	}
	return "", false
}

// validExtValue tells whether v can be written as a uidlist field value.
func validExtValue(v string) bool {
	return !strings.ContainsAny(v, " \r\n\x00")
}

// uidlistError is a broken line, as Dovecot reports it ("Broken file
// <path> line <n>: <why>").
type uidlistError struct {
	Line int
	Why  string
}

func (e *uidlistError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Why) }

// parseUidlistHeader parses the first line (without its newline).
func parseUidlistHeader(line []byte) (uidlistHeader, error) {
	var h uidlistHeader
	bad := func(format string, args ...any) (uidlistHeader, error) {
		return uidlistHeader{}, &uidlistError{Line: 1, Why: fmt.Sprintf(format, args...)}
	}
	if len(line) < 2 || line[0] < '0' || line[0] > '9' || line[1] != ' ' {
		return bad("corrupted header (invalid version number)")
	}
	h.Version = int(line[0] - '0')
	rest := string(line[2:])
	switch h.Version {
	case 1:
		f := strings.Fields(rest)
		if len(f) < 2 {
			return bad("corrupted header (version 1)")
		}
		v, err1 := strconv.ParseUint(f[0], 10, 32)
		n, err2 := strconv.ParseUint(f[1], 10, 32)
		if err1 != nil || err2 != nil {
			return bad("corrupted header (version 1)")
		}
		h.UIDValidity, h.NextUID = uint32(v), uint32(n)
	case uidlistVersion:
		var ext []string
		for _, f := range strings.Split(rest, " ") {
			if f == "" {
				continue
			}
			key, val := f[0], f[1:]
			switch key {
			case 'V', 'N':
				n, err := strconv.ParseUint(val, 10, 32)
				if err != nil {
					if key == 'V' {
						return bad("invalid mailbox UID_VALIDITY: %q", val)
					}
					return bad("invalid mailbox NEXT_UID: %q", val)
				}
				if key == 'V' {
					h.UIDValidity = uint32(n)
				} else {
					h.NextUID = uint32(n)
				}
			case 'G':
				g, err := formats.ParseGUID(val)
				if err != nil {
					return bad("invalid mailbox GUID: %q", val)
				}
				h.GUID, h.HasGUID = g, true
			default:
				ext = append(ext, f)
			}
		}
		h.Ext = strings.Join(ext, " ")
	default:
		return bad("unsupported version %d", h.Version)
	}
	if h.UIDValidity == 0 || h.NextUID == 0 {
		return bad("broken header (uidvalidity = %d, next_uid = %d)", h.UIDValidity, h.NextUID)
	}
	return h, nil
}

// parseUidlist parses a whole dovecot-uidlist into a table whose records
// have dir == dirNone. A final record line without a newline is ignored. next is Dovecot's next UID: max(N, last UID + 1).
// As Dovecot does (maildir_uidlist_next), fields with an invalid (not A–Z)
// key are dropped and, when two lines name the same file, the later UID
// wins.
func parseUidlist(data []byte) (h uidlistHeader, t *table, next uint32, err error) {
	line, rest := cutLine(data)
	// Dovecot appends records in place under the lock, and readers do
	// not lock: a last line without its newline is still being written
	// and is ignored, as i_stream_read_next_line ignores it.
	if i := bytes.LastIndexByte(rest, '\n'); i < 0 {
		rest = nil
	} else {
		rest = rest[:i+1]
	}
	if h, err = parseUidlistHeader(line); err != nil {
		return h, nil, 0, err
	}
	t = &table{}
	t.reserve(len(rest))
	var prev uint32
	var scratch []byte
	for n := 2; len(rest) > 0; n++ {
		line, rest = cutLine(rest)
		uid, ext, name, err := parseUidlistRec(line, h.Version, prev, h.NextUID, scratch[:0])
		if err != nil {
			return h, nil, 0, &uidlistError{Line: n, Why: err.Error()}
		}
		scratch = ext
		prev = uid
		if name[0] == infoSep {
			// QUIRK: an empty base name can match no file (the scan
			// skips such files, Dovecot renames them): drop it.
			continue
		}
		if err := t.addBytes(uid, name, ext, dirNone); err != nil {
			return h, nil, 0, &uidlistError{Line: n, Why: err.Error()}
		}
	}
	next = h.NextUID
	if prev >= next {
		next = prev + 1
	}
	t.dropDuplicateBases()
	return h, t, next, nil
}

// cutLine splits off the first line; like i_stream_next_line it drops
// the newline and a CR before it.
func cutLine(data []byte) (line, rest []byte) {
	line = data
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		line, rest = data[:i], data[i+1:]
	}
	return bytes.TrimSuffix(line, []byte{'\r'}), rest
}

// parseUidlistRec parses one record line. ext is built in buf.
func parseUidlistRec(line []byte, version int, prev, hdrNext uint32, buf []byte) (uid uint32, ext, name []byte, err error) {
	i := 0
	var u uint64
	for i < len(line) && line[i] >= '0' && line[i] <= '9' {
		u = u*10 + uint64(line[i]-'0')
		if u >= 0xffffffff {
			return 0, nil, nil, fmt.Errorf("UID too high: %q", line)
		}
		i++
	}
	if u == 0 || i >= len(line) || line[i] != ' ' {
		return 0, nil, nil, fmt.Errorf("invalid data: %q", line)
	}
	uid = uint32(u)
	if uid <= prev {
		return 0, nil, nil, fmt.Errorf("UIDs not ordered (%d after %d)", uid, prev)
	}
	if version == 1 && uid >= hdrNext {
		return 0, nil, nil, fmt.Errorf("UID larger than next_uid (%d >= %d)", uid, hdrNext)
	}
	for i < len(line) && line[i] == ' ' {
		i++
	}
	ext = buf
	if version == uidlistVersion {
		// Extension fields until the ':' that starts the file name.
		for i < len(line) && line[i] != ':' {
			start := i
			for i < len(line) && line[i] != ' ' {
				i++
			}
			// QUIRK: Dovecot drops a field with an invalid key (and
			// rewrites the file); we drop it from what we keep.
			if line[start] >= 'A' && line[start] <= 'Z' {
				if len(ext) > 0 {
					ext = append(ext, ' ')
				}
				ext = append(ext, line[start:i]...)
			}
			for i < len(line) && line[i] == ' ' {
				i++
			}
		}
		if i+1 >= len(line) {
			return 0, nil, nil, fmt.Errorf("invalid extended fields: %q", line)
		}
		i++ // ':'
	}
	name = line[i:]
	if len(name) == 0 {
		return 0, nil, nil, fmt.Errorf("no file name: %q", line)
	}
	if bytes.IndexByte(name, '/') >= 0 {
		return 0, nil, nil, fmt.Errorf("broken file name: %q", name)
	}
	return uid, ext, name, nil
}

// formatUidlist writes a version 3 dovecot-uidlist (maildir_uidlist_write_fd):
// the header, then each record's UID, extensions and base name.
func formatUidlist(h uidlistHeader, t *table) []byte {
	var b bytes.Buffer
	b.Grow(64 + len(t.recs)*64)
	writeUidlist(&b, h, t)
	return b.Bytes()
}

// writeUidlist writes what formatUidlist returns to w through a 32 KiB
// buffer: a large mailbox's uidlist is never in memory whole.
func writeUidlist(w io.Writer, h uidlistHeader, t *table) error {
	b := bufio.NewWriterSize(w, 32<<10)
	fmt.Fprintf(b, "%d V%d N%d G%s", uidlistVersion, h.UIDValidity, h.NextUID, h.GUID)
	if h.Ext != "" {
		b.WriteByte(' ')
		b.WriteString(h.Ext)
	}
	b.WriteByte('\n')
	var num [10]byte
	for i := range t.recs {
		r := &t.recs[i]
		b.Write(strconv.AppendUint(num[:0], uint64(r.uid), 10))
		if r.extLen > 0 {
			b.WriteByte(' ')
			b.Write(t.extBytes(r))
		}
		b.WriteString(" :")
		b.Write(t.baseBytes(r))
		b.WriteByte('\n')
	}
	return b.Flush()
}

// baseIndex finds a table's records by base name. Its order is by a hash
// of the base name, then the name, then UID: a record's base is found by
// comparing hashes, not names (most of building one used to be comparing
// names with long common prefixes), and records of one base are
// adjacent, in UID order.
type baseIndex struct {
	hash []uint64 // entry k's hash, ascending
	pos  []int32  // entry k's position in t.recs
}

// baseSeed keys the base name hash: any fixed seed works within a process,
// and the index is never stored.
var baseSeed = maphash.MakeSeed()

// byBase indexes t.recs by base name.
func (t *table) byBase() baseIndex {
	n := len(t.recs)
	byRec := make([]uint64, n)
	pos := make([]int32, n)
	for i := range t.recs {
		byRec[i] = maphash.Bytes(baseSeed, t.baseBytes(&t.recs[i]))
		pos[i] = int32(i)
	}
	slices.SortFunc(pos, func(a, b int32) int {
		if c := cmp.Compare(byRec[a], byRec[b]); c != 0 {
			return c
		}
		if c := bytes.Compare(t.baseBytes(&t.recs[a]), t.baseBytes(&t.recs[b])); c != 0 {
			return c
		}
		return cmp.Compare(t.recs[a].uid, t.recs[b].uid)
	})
	hash := make([]uint64, n)
	for k, i := range pos {
		hash[k] = byRec[i]
	}
	return baseIndex{hash: hash, pos: pos}
}

// lookupBase finds base in idx (from byBase) and returns the record index
// with the highest UID of that base, or -1.
func (t *table) lookupBase(idx baseIndex, base string) int {
	h := maphash.String(baseSeed, base) // equal to maphash.Bytes of the same bytes
	k, _ := slices.BinarySearch(idx.hash, h)
	j := -1
	for ; k < len(idx.hash) && idx.hash[k] == h; k++ {
		if i := idx.pos[k]; string(t.baseBytes(&t.recs[i])) == base {
			j = int(i)
		}
	}
	return j
}

// dropDuplicateBases removes all but the highest-UID record of each base
// name: when a line repeats a file name with a new UID, Dovecot replaces
// the old record (maildir_uidlist_next: "Duplicate file entry").
func (t *table) dropDuplicateBases() {
	idx := t.byBase().pos
	var drop []int32
	for i := 1; i < len(idx); i++ {
		if bytes.Equal(t.baseBytes(&t.recs[idx[i-1]]), t.baseBytes(&t.recs[idx[i]])) {
			drop = append(drop, idx[i-1])
		}
	}
	if len(drop) == 0 {
		return
	}
	slices.Sort(drop)
	out := t.recs[:0]
	for i, r := range t.recs {
		if len(drop) > 0 && drop[0] == int32(i) {
			drop = drop[1:]
			continue
		}
		out = append(out, r)
	}
	t.recs = out
}

// compareBytesString is bytes.Compare(a, []byte(b)) without the copy.
func compareBytesString(a []byte, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return cmp.Compare(len(a), len(b))
}
