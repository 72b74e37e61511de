package index

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index/log"
)

var seedFlag = flag.Uint64("seed", 0, "seed for the property tests (0: time-based)")

func testSeed(t *testing.T) uint64 {
	s := *seedFlag
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed %d)", s, s)
	return s
}

// viewText is a canonical description of a view, for comparisons.
func viewText(t testing.TB, v *View) string {
	var b bytes.Buffer
	if err := v.dump(&b, "view"); err != nil {
		t.Fatal(err)
	}
	// the log position differs between a log-only and an index-only read
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if !strings.HasPrefix(l, "log position") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// model is what a test expects an index to hold.
type model struct {
	uidValidity, nextUID uint32
	highest              uint64
	msgs                 map[uint32]*modelMsg
}

type modelMsg struct {
	flags    uint8
	keywords map[string]bool
	modseq   uint64
	guid     [16]byte
}

func (m *model) check(t *testing.T, v *View) {
	t.Helper()
	if v.UIDValidity() != m.uidValidity || v.NextUID() != m.nextUID || v.HighestModSeq() != m.highest {
		t.Errorf("uidvalidity %d next %d hms %d, want %d %d %d", v.UIDValidity(), v.NextUID(), v.HighestModSeq(),
			m.uidValidity, m.nextUID, m.highest)
	}
	if v.Count() != len(m.msgs) {
		t.Fatalf("%d messages, want %d", v.Count(), len(m.msgs))
	}
	for i, msg := range v.Messages() {
		w := m.msgs[msg.UID]
		if w == nil {
			t.Fatalf("message %d: unexpected uid %d", i, msg.UID)
		}
		kws := slices.Sorted(func(yield func(string) bool) {
			for k := range w.keywords {
				if !yield(k) {
					return
				}
			}
		})
		got := slices.Clone(msg.Keywords)
		slices.Sort(got)
		if msg.Flags != w.flags || msg.ModSeq != w.modseq || !slices.Equal(got, kws) {
			t.Errorf("uid %d: flags %#x modseq %d keywords %v, want %#x %d %v", msg.UID, msg.Flags, msg.ModSeq, got,
				w.flags, w.modseq, kws)
		}
		if g, ok := v.GUID(i); !ok || g != w.guid {
			t.Errorf("uid %d: guid %x, want %x", msg.UID, g, w.guid)
		}
	}
}

// TestRoundTripProperty writes random mailboxes through transactions and
// reads them back: from the log, from a dovecot.index written from the
// view, and after reopening — read(write(view)) == view.
func TestRoundTripProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 1))
	pool := []string{"$Label1", "$Label2", "Junk", "NonJunk", "$Forwarded", "Important", "work", "x-y_z"}
	for iter := range 25 {
		dir := t.TempDir()
		m := &model{uidValidity: rng.Uint32N(1<<31) + 1, msgs: map[uint32]*modelMsg{}}
		opt := Options{UIDValidity: m.uidValidity, Fsync: formats.FsyncNever,
			Extensions: []ExtDef{DboxHdr{MailboxGUID: [16]byte{byte(iter)}}.Ext(), ExtDefGUID}}
		if iter%3 == 0 {
			// small thresholds: rotation and index rewrites happen
			opt.LogRotateMinSize, opt.LogRotateMaxSize, opt.LogRotateMinAge = 1, 800, -1
			opt.RewriteMaxLogBytes = 300
		}
		ix, err := Create(dir, Prefix, opt)
		if err != nil {
			t.Fatal(err)
		}
		m.highest, m.nextUID = 1, 1
		uid := uint32(0)
		for range 1 + rng.IntN(6) {
			tx := ix.Begin()
			n := rng.IntN(30)
			for range n {
				uid += 1 + rng.Uint32N(5)
				msg := &modelMsg{flags: uint8(rng.IntN(32)), keywords: map[string]bool{}}
				for _, k := range pool {
					if rng.IntN(4) == 0 {
						msg.keywords[k] = true
					}
				}
				for j := range msg.guid {
					msg.guid[j] = byte(rng.Uint32())
				}
				m.msgs[uid] = msg
				tx.Append(uid, msg.flags)
				tx.UpdateKeywords(uid, KeywordsAdd, slices.Sorted(mapKeys(msg.keywords))...)
				tx.ExtRecUpdate(ExtGUID, uid, msg.guid[:])
			}
			// changes to existing messages
			for u, msg := range m.msgs {
				switch rng.IntN(6) {
				case 0:
					add, rm := uint8(rng.IntN(32)), uint8(rng.IntN(32))
					tx.UpdateFlags(u, add, rm)
					msg.flags = msg.flags&^rm | add
				case 1:
					k := pool[rng.IntN(len(pool))]
					if rng.IntN(2) == 0 {
						tx.UpdateKeywords(u, KeywordsRemove, k)
						delete(msg.keywords, k)
					} else {
						tx.UpdateKeywords(u, KeywordsReplace, k)
						msg.keywords = map[string]bool{k: true}
					}
				case 2:
					if n == 0 { // not in a transaction that appends (uid order)
						tx.Expunge(u, msg.guid)
						delete(m.msgs, u)
					}
				}
			}
			// exact modseqs: above anything natural
			base := m.highest + 1000
			for u, msg := range m.msgs {
				msg.modseq = max(msg.modseq, base+uint64(rng.IntN(100)))
				tx.SetModSeq(u, msg.modseq)
				m.highest = max(m.highest, msg.modseq)
			}
			m.highest++
			tx.SetModSeq(0, m.highest)
			m.nextUID = max(m.nextUID, uid+1+rng.Uint32N(3))
			uid = m.nextUID - 1
			tx.SetHeader(FieldNextUID, m.nextUID)
			if _, err := tx.Commit(); err != nil {
				t.Fatalf("iteration %d: commit: %v", iter, err)
			}
		}
		v, err := ix.View()
		if err != nil {
			t.Fatal(err)
		}
		m.check(t, v)

		// a fresh reader sees the same
		ix2, err := Open(dir, Prefix, nil)
		if err != nil {
			t.Fatal(err)
		}
		v2, err := ix2.View()
		if err != nil {
			t.Fatal(err)
		}
		if a, b := viewText(t, v), viewText(t, v2); a != b {
			t.Fatalf("reopened view differs:\n%s", lineDiff(a, b))
		}

		// write(view) as an index-only mailbox, read it back
		dir3 := t.TempDir()
		st := v.st.clone()
		if err := writeIndexFile(filepath.Join(dir3, Prefix), st, formats.FsyncNever); err != nil {
			t.Fatal(err)
		}
		ix3, err := Open(dir3, Prefix, nil)
		if err != nil {
			t.Fatal(err)
		}
		v3, err := ix3.View()
		if err != nil {
			t.Fatal(err)
		}
		if a, b := viewText(t, v), viewText(t, v3); a != b {
			t.Fatalf("index-only view differs:\n%s", lineDiff(a, b))
		}
		// and a transaction on the index-only mailbox starts a new log
		tx := ix3.Begin()
		tx.SetHeader(FieldNextUID, m.nextUID+1)
		if _, err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		v4, err := ix3.View()
		if err != nil || v4.NextUID() != m.nextUID+1 {
			t.Fatalf("after commit on index-only: %v next %d", err, v4.NextUID())
		}
		ix5, err := Open(dir3, Prefix, nil)
		if err != nil {
			t.Fatal(err)
		}
		if v5, err := ix5.View(); err != nil || v5.NextUID() != m.nextUID+1 {
			t.Fatalf("reopened index-only+log: %v", err)
		}
	}
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func newTestIndex(t *testing.T, opt Options) (*Index, string) {
	t.Helper()
	dir := t.TempDir()
	opt.Fsync = formats.FsyncNever
	if opt.UIDValidity == 0 {
		opt.UIDValidity = 100
	}
	ix, err := Create(dir, Prefix, opt)
	if err != nil {
		t.Fatal(err)
	}
	return ix, dir
}

func commit(t *testing.T, tx *Tx) {
	t.Helper()
	if _, err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestChanges(t *testing.T) {
	ix, _ := newTestIndex(t, Options{})
	tx := ix.BeginFlags(log.External) // a "user" change
	for u := uint32(1); u <= 5; u++ {
		tx.Append(u, 0)
	}
	commit(t, tx)
	v, _ := ix.View()
	mark := v.HighestModSeq()

	tx = ix.BeginFlags(log.External)
	tx.UpdateFlags(1, FlagSeen, 0)
	tx.UpdateKeywords(2, KeywordsAdd, "Junk")
	commit(t, tx)
	tx = ix.BeginFlags(log.External)
	tx.UpdateFlags(1, FlagFlagged, FlagSeen)
	tx.UpdateKeywords(2, KeywordsRemove, "Junk")
	tx.UpdateKeywords(3, KeywordsReplace, "Work")
	tx.Expunge(4, [16]byte{4})
	tx.Append(6, FlagDraft)
	commit(t, tx)
	tx = ix.Begin() // boxsync's own (SYNC) changes
	tx.UpdateFlags(5, FlagAnswered, 0)
	tx.Expunge(3, [16]byte{3})
	commit(t, tx)

	got, err := ix.Changes(mark, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, c := range got {
		fmt.Fprintf(&b, "%d %s add=%#x rm=%#x reset=%v kw=%v guid=%x own=%v flags=%#x\n", c.UID, c.Type, c.AddFlags, c.RemoveFlags,
			c.KeywordsReset, c.Keywords, c.GUID[:1], c.Own, c.Flags)
	}
	want := `1 flags add=0x2 rm=0x8 reset=false kw=[] guid=00 own=false flags=0x0
2 flags add=0x0 rm=0x0 reset=false kw=[-Junk] guid=00 own=false flags=0x0
3 expunge add=0x0 rm=0x0 reset=false kw=[] guid=03 own=true flags=0x0
4 expunge add=0x0 rm=0x0 reset=false kw=[] guid=04 own=false flags=0x0
6 append add=0x0 rm=0x0 reset=false kw=[] guid=00 own=false flags=0x10
`
	if b.String() != want {
		t.Errorf("Changes:\n%s\nwant:\n%s", b.String(), want)
	}
	// with own changes
	got, err = ix.Changes(mark, &ChangesOptions{IncludeOwn: true, MaxUID: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[4].UID != 5 || !got[4].Own || got[4].AddFlags != FlagAnswered {
		t.Errorf("Changes(IncludeOwn) = %+v", got)
	}
	// nothing after the end
	v, _ = ix.View()
	if got, err := ix.Changes(v.HighestModSeq(), nil); err != nil || len(got) != 0 {
		t.Errorf("Changes(highest) = %v, %v", got, err)
	}
	// everything since the start
	if got, err := ix.Changes(0, &ChangesOptions{IncludeOwn: true}); err != nil || len(got) != 6 {
		t.Errorf("Changes(0) = %d changes, %v", len(got), err)
	}
}

func TestChangesHistoryLost(t *testing.T) {
	ix, dir := newTestIndex(t, Options{LogRotateMinSize: 1, LogRotateMaxSize: 200, LogRotateMinAge: -1})
	tx := ix.Begin()
	tx.Append(1, 0)
	commit(t, tx)
	var marks []uint64
	for i := range 20 {
		v, _ := ix.View()
		marks = append(marks, v.HighestModSeq())
		tx := ix.Begin()
		tx.UpdateFlags(1, uint8(1<<(i%5)), 0)
		commit(t, tx)
	}
	if _, err := os.Stat(filepath.Join(dir, Prefix+".log.2")); err != nil {
		t.Fatal("no rotation happened")
	}
	if _, err := ix.Changes(marks[0], nil); !errors.Is(err, ErrHistoryLost) {
		t.Errorf("Changes(oldest) error = %v, want ErrHistoryLost", err)
	}
	if _, err := ix.FlagChanges(formats.ModSeq(marks[0]), false); !errors.Is(err, formats.ErrHistoryLost) {
		t.Errorf("FlagChanges(oldest) error = %v, want formats.ErrHistoryLost", err)
	}
	last := marks[len(marks)-1]
	got, err := ix.Changes(last, &ChangesOptions{IncludeOwn: true})
	if err != nil || len(got) != 1 || got[0].UID != 1 {
		t.Errorf("Changes(recent) = %+v, %v", got, err)
	}
}

func TestCommitRefusesCorruption(t *testing.T) {
	ix, dir := newTestIndex(t, Options{})
	tx := ix.Begin()
	tx.Append(5, 0)
	commit(t, tx)
	before, _ := os.ReadFile(filepath.Join(dir, Prefix+".log"))
	tests := []struct {
		name string
		fn   func(tx *Tx)
	}{
		{"append below next uid", func(tx *Tx) { tx.Append(3, 0) }},
		{"ext record of unknown ext", func(tx *Tx) { tx.ExtRecUpdate("nosuch", 5, []byte{1}) }},
		{"keywords intro", func(tx *Tx) { tx.ExtIntro(ExtDef{Name: ExtKeywords, HdrSize: 4}) }},
		{"ext record for a uid not yet appended", func(tx *Tx) {
			tx.ExtIntro(ExtDef{Name: "x", RecordSize: 4, RecordAlign: 4})
			tx.ExtRecUpdate("x", 99, []byte{1})
		}},
		{"ext header outside", func(tx *Tx) {
			tx.ExtIntro(ExtDef{Name: "y", HdrSize: 4})
			tx.ExtHdrUpdate("y", 2, []byte{1, 2, 3})
		}},
		{"bad keyword", func(tx *Tx) { tx.UpdateKeywords(5, KeywordsAdd, "a b") }},
	}
	for _, tc := range tests {
		tx := ix.Begin()
		tc.fn(tx)
		if _, err := tx.Commit(); err == nil {
			t.Errorf("%s: commit succeeded", tc.name)
		}
	}
	after, _ := os.ReadFile(filepath.Join(dir, Prefix+".log"))
	if !bytes.Equal(before, after) {
		t.Errorf("refused commits changed the log")
	}
}

func TestModSeqWithoutExtension(t *testing.T) {
	ix, _ := newTestIndex(t, Options{NoModSeq: true})
	tx := ix.Begin()
	tx.Append(1, 0)
	commit(t, tx)
	tx = ix.Begin()
	tx.SetModSeq(1, 50)
	if _, err := tx.Commit(); err == nil || !errors.Is(err, log.ErrCorrupt) {
		t.Errorf("modseq update without the modseq extension: %v", err)
	}
	v, _ := ix.View()
	// without the extension every message has the log's modseq
	if m := v.Message(0); m.ModSeq != v.HighestModSeq() || v.HighestModSeq() != 2 {
		t.Errorf("modseq %d, highest %d", m.ModSeq, v.HighestModSeq())
	}
}

// TestConcurrentWriters: two Index values on one mailbox see each
// other's commits.
func TestConcurrentWriters(t *testing.T) {
	ix, dir := newTestIndex(t, Options{})
	ix2, err := Open(dir, Prefix, &Options{Fsync: formats.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	tx := ix.Begin()
	tx.Append(1, 0)
	commit(t, tx)
	tx = ix2.Begin()
	tx.Append(2, FlagSeen) // ix2 must first read uid 1
	commit(t, tx)
	tx = ix.Begin()
	tx.UpdateFlags(2, FlagFlagged, 0)
	commit(t, tx)
	for _, x := range []*Index{ix, ix2} {
		v, err := x.View()
		if err != nil {
			t.Fatal(err)
		}
		if v.Count() != 2 || v.Message(1).Flags != FlagSeen|FlagFlagged {
			t.Errorf("view: %d messages, uid 2 flags %#x", v.Count(), v.Message(1).Flags)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.TempDir(), Prefix, nil); !errors.Is(err, formats.ErrNotFound) {
		t.Errorf("empty dir: %v, want ErrNotFound", err)
	}
	ix, dir := newTestIndex(t, Options{})
	if _, err := Create(dir, Prefix, Options{}); !errors.Is(err, formats.ErrExists) {
		t.Errorf("Create twice: %v, want ErrExists", err)
	}
	tx := ix.Begin()
	tx.Append(1, 0)
	commit(t, tx)
	if err := ix.WriteIndex(); err != nil {
		t.Fatal(err)
	}
	// indexid mismatch between index and log
	data, _ := os.ReadFile(filepath.Join(dir, Prefix))
	le.PutUint32(data[offIndexID:], 7)
	os.WriteFile(filepath.Join(dir, Prefix), data, 0o600)
	_, err := Open(dir, Prefix, nil)
	var ce *log.CorruptError
	if !errors.As(err, &ce) || formats.KindOf(err) != formats.KindTemp || !strings.Contains(err.Error(), "force-resync") {
		t.Errorf("indexid mismatch: %v", err)
	}
}

// TestCorruptIndexFiles: broken dovecot.index files give typed errors with
// offsets.
func TestCorruptIndexFiles(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "sdbox-index", "INBOX", Prefix))
	if err != nil {
		t.Fatal(err)
	}
	mod := func(off int, b ...byte) []byte {
		d := slices.Clone(good)
		copy(d[off:], b)
		return d
	}
	tests := map[string][]byte{
		"truncated":          good[:60],
		"major":              mod(0, 8),
		"compat":             mod(offCompatFlags, 2),
		"header size":        mod(offHeaderSize, 0xff, 0xff),
		"record size":        mod(offRecordSize, 4, 0, 0, 0),
		"messages count":     mod(offMessagesCount, 0xff),
		"seen count":         mod(offSeenMessagesCount, 3),
		"next uid":           mod(offNextUID, 2, 0, 0, 0),
		"first recent":       mod(offFirstRecentUID, 0, 0, 0, 0),
		"ext name":           mod(120+16, '!'),
		"ext hdr size":       mod(120, 0xff, 0xff, 0xff),
		"ext record outside": mod(bytes.Index(good, []byte("cache"))-16+8, 0xf0),
		"ext misaligned":     mod(bytes.Index(good, []byte("cache"))-16+8, 0x11),
		"keywords header":    mod(bytes.Index(good, []byte("keywords"))+8, 0xff),
		"records":            good[:len(good)-4],
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := parseIndexFile("x/dovecot.index", data)
			var ce *log.CorruptError
			if !errors.As(err, &ce) || ce.File != "x/dovecot.index" {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// FuzzIndexFile parses arbitrary dovecot.index bytes: no panic, only
// *CorruptError, and a file that parses re-encodes to one that parses to
// the same.
func FuzzIndexFile(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*/*/dovecot*.index")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseIndexFile("fuzz", data)
		if err != nil {
			var ce *log.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T: %v", err, err)
			}
			return
		}
		enc := encodeIndexFile(st)
		st2, err := parseIndexFile("fuzz", enc)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !bytes.Equal(encodeIndexFile(st2), enc) {
			t.Fatal("encoding not stable")
		}
		var b bytes.Buffer
		newView(st, "").dump(&b, "fuzz")
	})
}

// FuzzLogReplay replays arbitrary log bytes as a log-only index: no panic,
// only *CorruptError.
func FuzzLogReplay(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*/*/dovecot*.log*")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		data = slices.Clone(data)
		if len(data) >= 16 {
			le.PutUint32(data[12:], 0) // prev_file_seq 0: it starts an index
		}
		lf, err := log.Parse("fuzz.log", data)
		if err == nil {
			ix := &Index{dir: "/nonexistent-boxsync-fuzz", prefix: Prefix}
			_, err = ix.load(lf)
		}
		var ce *log.CorruptError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("error %T: %v", err, err)
		}
	})
}

// BenchmarkOpen50k opens a 50,000-message index with about 1 MB of log to
// replay.
func BenchmarkOpen50k(b *testing.B) {
	dir := b.TempDir()
	opt := Options{UIDValidity: 1, Fsync: formats.FsyncNever, RewriteMaxLogBytes: -1,
		Extensions: []ExtDef{DboxHdr{MailboxGUID: [16]byte{1}}.Ext()}}
	ix, err := Create(dir, Prefix, opt)
	if err != nil {
		b.Fatal(err)
	}
	const n = 50000
	tx := ix.Begin()
	for u := uint32(1); u <= n; u++ {
		tx.Append(u, uint8(u%16))
		if u%10 == 0 {
			tx.UpdateKeywords(u, KeywordsAdd, "$Label1")
		}
		tx.SetModSeq(u, 1000+uint64(u))
	}
	if _, err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if err := ix.WriteIndex(); err != nil {
		b.Fatal(err)
	}
	logPath := filepath.Join(dir, Prefix+".log")
	for i := 0; ; i++ {
		fi, err := os.Stat(logPath)
		if err != nil {
			b.Fatal(err)
		}
		if fi.Size() >= 1<<20+len64(ix) {
			break
		}
		tx := ix.Begin()
		for j := range 500 {
			u := uint32(1 + (i*500+j*97)%n)
			tx.UpdateFlags(u, FlagSeen, FlagFlagged)
			if j%5 == 0 {
				tx.UpdateKeywords(u, KeywordsAdd, "Work")
			}
		}
		if _, err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	fi, _ := os.Stat(logPath)
	replay := fi.Size() - len64(ix)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ix, err := Open(dir, Prefix, nil)
		if err != nil {
			b.Fatal(err)
		}
		ix.mu.Lock()
		if ix.st.count() != n {
			b.Fatalf("%d messages", ix.st.count())
		}
		ix.mu.Unlock()
	}
	b.ReportMetric(float64(replay), "log-bytes-replayed")
}

// len64 is the size of the log already used by the 50k appends.
func len64(ix *Index) int64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return int64(ix.indexTail)
}

// TestParallelCommits: goroutines committing through two Index values of
// one mailbox all land in the log.
func TestParallelCommits(t *testing.T) {
	ix, dir := newTestIndex(t, Options{LogRotateMinSize: 1, LogRotateMaxSize: 2000, LogRotateMinAge: -1})
	ix2, err := Open(dir, Prefix, &Options{Fsync: formats.FsyncNever, LogRotateMinSize: 1, LogRotateMaxSize: 2000, LogRotateMinAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	tx := ix.Begin()
	for u := uint32(1); u <= 8; u++ {
		tx.Append(u, 0)
	}
	commit(t, tx)
	done := make(chan error, 8)
	for g := range 8 {
		go func() {
			x := ix
			if g%2 == 1 {
				x = ix2
			}
			for i := range 10 {
				tx := x.Begin()
				tx.UpdateKeywords(uint32(g+1), KeywordsAdd, fmt.Sprintf("k%d", i))
				if _, err := tx.Commit(); err != nil {
					done <- err
					return
				}
				if _, err := x.View(); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	ix3, err := Open(dir, Prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ix3.View()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range v.Messages() {
		if len(m.Keywords) != 10 {
			t.Errorf("uid %d (%d): %d keywords, want 10", m.UID, i, len(m.Keywords))
		}
	}
}

// TestFlagChanges is Changes as formats.ChangeHistory sees it: net flag
// and keyword changes of messages that still exist, without boxsync's own
// (SYNC) writes, and a lost modseq as formats.ErrHistoryLost.
func TestFlagChanges(t *testing.T) {
	ix, _ := newTestIndex(t, Options{})
	tx := ix.BeginFlags(log.External)
	for u := uint32(1); u <= 4; u++ {
		tx.Append(u, 0)
	}
	commit(t, tx)
	v, _ := ix.View()
	mark := v.HighestModSeq()
	tx = ix.BeginFlags(log.External)
	tx.UpdateFlags(1, FlagSeen, 0)
	tx.UpdateKeywords(2, KeywordsAdd, "Junk", "Work")
	commit(t, tx)
	tx = ix.BeginFlags(log.External)
	tx.UpdateFlags(1, FlagFlagged, FlagSeen)
	tx.UpdateKeywords(2, KeywordsRemove, "Work")
	tx.Expunge(3, [16]byte{3})
	commit(t, tx)
	tx = ix.Begin() // boxsync's own
	tx.UpdateFlags(4, FlagAnswered, 0)
	commit(t, tx)

	got, err := ix.FlagChanges(formats.ModSeq(mark), false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[formats.UID]formats.FlagChange{
		1: {Add: formats.FlagFlagged, Remove: formats.FlagSeen},
		2: {AddKeywords: []string{"Junk"}, RemoveKeywords: []string{"Work"}},
	}
	if len(got) != len(want) {
		t.Fatalf("FlagChanges = %+v, want %+v", got, want)
	}
	if own, err := ix.FlagChanges(formats.ModSeq(mark), true); err != nil || own[4].Add != formats.FlagAnswered || len(own) != 3 {
		t.Errorf("FlagChanges(own) = %+v, %v; want UID 4's own \\Answered too", own, err)
	}
	for uid, w := range want {
		g := got[uid]
		if g.Add != w.Add || g.Remove != w.Remove || !slices.Equal(g.AddKeywords, w.AddKeywords) ||
			!slices.Equal(g.RemoveKeywords, w.RemoveKeywords) || g.ModSeq <= formats.ModSeq(mark) {
			t.Errorf("FlagChanges[%d] = %+v, want %+v with a modseq above %d", uid, g, w, mark)
		}
	}
}

// TestUpdate: writers that each append the view's next UID never collide
// when the view is read under the log lock (Update), from two Index
// handles of the same index; a fill that fails writes nothing.
func TestUpdate(t *testing.T) {
	ix, dir := newTestIndex(t, Options{LogRotateMinSize: 1, LogRotateMaxSize: 4000, LogRotateMinAge: -1})
	ix2, err := Open(dir, Prefix, &Options{Fsync: formats.FsyncNever, LogRotateMinSize: 1, LogRotateMaxSize: 4000, LogRotateMinAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 10
	done := make(chan error, writers)
	for g := range writers {
		go func() {
			x := ix
			if g%2 == 1 {
				x = ix2
			}
			for range each {
				_, err := x.Update(func(v *View, tx *Tx) error {
					tx.Append(v.NextUID(), 0)
					return nil
				})
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range writers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	if _, err := ix.Update(func(v *View, tx *Tx) error {
		tx.Append(v.NextUID(), 0)
		return boom
	}); err != boom {
		t.Errorf("Update(failing fill) = %v, want its error", err)
	}
	v, err := ix2.View()
	if err != nil {
		t.Fatal(err)
	}
	if v.Count() != writers*each || v.NextUID() != writers*each+1 {
		t.Errorf("%d messages, next UID %d; want %d and %d", v.Count(), v.NextUID(), writers*each, writers*each+1)
	}
}

// TestExpungedSince: the expunges after a modseq, each writer's, with the
// GUID the record carried (zero when none) and whether it was requested,
// and ErrHistoryLost once the log no longer reaches back.
func TestExpungedSince(t *testing.T) {
	ix, _ := newTestIndex(t, Options{})
	tx := ix.BeginFlags(log.External)
	for u := uint32(1); u <= 7; u++ {
		tx.Append(u, 0)
	}
	commit(t, tx)
	tx = ix.BeginFlags(log.External)
	tx.Expunge(1, [16]byte{1}) // before the mark: not listed
	commit(t, tx)
	v, _ := ix.View()
	mark := v.HighestModSeq()
	tx = ix.BeginFlags(log.External)
	tx.Expunge(2, [16]byte{2})
	tx.Expunge(3, [16]byte{})
	tx.UpdateFlags(7, FlagSeen, 0)
	commit(t, tx)
	tx = ix.Begin() // boxsync's own: carried out at once
	tx.Expunge(4, [16]byte{4})
	commit(t, tx)
	tx = ix.BeginFlags(0) // a client's request...
	tx.Expunge(5, [16]byte{5})
	tx.Expunge(6, [16]byte{6})
	commit(t, tx)
	tx = ix.BeginFlags(log.External) // ...that the sync carries out for 5
	tx.Expunge(5, [16]byte{})
	commit(t, tx)
	got, err := ix.ExpungedSince(mark)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, uid := range sortedKeys(got) {
		c := got[uid]
		fmt.Fprintf(&b, "%d guid=%x requested=%v; ", uid, c.GUID[:1], c.Requested)
	}
	// 2, 3 and 4 as a sync records them (EXTERNAL), 5 requested and
	// carried out (the request's GUID kept), 6 only requested (not yet
	// expunged: not listed).
	if want := "2 guid=02 requested=false; 3 guid=00 requested=false; 4 guid=04 requested=false; 5 guid=05 requested=true; "; b.String() != want {
		t.Errorf("ExpungedSince(mark) = %s, want %s", b.String(), want)
	}
	v, _ = ix.View()
	if got, err := ix.ExpungedSince(v.HighestModSeq()); err != nil || len(got) != 0 {
		t.Errorf("ExpungedSince(highest) = %v, %v", got, err)
	}

	ix, _ = newTestIndex(t, Options{LogRotateMinSize: 1, LogRotateMaxSize: 200, LogRotateMinAge: -1})
	tx = ix.Begin()
	tx.Append(1, 0)
	tx.Append(2, 0)
	commit(t, tx)
	v, _ = ix.View()
	old := v.HighestModSeq()
	for i := range 20 {
		tx := ix.Begin()
		tx.UpdateFlags(1, uint8(1<<(i%5)), 0)
		commit(t, tx)
	}
	if _, err := ix.ExpungedSince(old); !errors.Is(err, ErrHistoryLost) {
		t.Errorf("ExpungedSince(rotated away) error = %v, want ErrHistoryLost", err)
	}
}

// TestViewIsSnapshot: a View shares its Index's state instead of copying
// it, so nothing the Index does later (appends, flag and keyword changes,
// expunges, log rotations and dovecot.index rewrites) may show through an
// older View, nor through the View an Update's fill got.
func TestViewIsSnapshot(t *testing.T) {
	ix, _ := newTestIndex(t, Options{LogRotateMinSize: 1, LogRotateMaxSize: 2000, LogRotateMinAge: -1,
		RewriteMinLogBytes: 1, RewriteMaxLogBytes: 1})
	type snap struct {
		count, next int
		recs        [][]byte
		kw          []string
	}
	take := func(v *View) snap {
		s := snap{count: v.Count(), next: int(v.NextUID()), kw: v.Keywords()}
		for i := range v.Count() {
			s.recs = append(s.recs, slices.Clone(v.Record(i)))
		}
		return s
	}
	check := func(what string, v *View, want snap) {
		t.Helper()
		if got := take(v); got.count != want.count || got.next != want.next || !slices.Equal(got.kw, want.kw) ||
			!slices.EqualFunc(got.recs, want.recs, bytes.Equal) {
			t.Errorf("%s: view changed after later commits: %d messages (next %d), want %d (next %d)",
				what, got.count, got.next, want.count, want.next)
		}
	}
	var views []*View
	var snaps []snap
	uid := uint32(1)
	for round := range 6 {
		tx := ix.BeginFlags(log.External)
		for range 300 { // 1,800 messages in all: several record chunks (records.go)
			tx.Append(uid, 0)
			uid++
		}
		tx.UpdateFlags(uint32(round*300+1), FlagSeen, 0)
		tx.UpdateKeywords(uint32(round*300+2), KeywordsAdd, fmt.Sprintf("kw%d", round))
		if round > 0 {
			tx.Expunge(uint32(round*300-3), [16]byte{byte(round)})
		}
		commit(t, tx)
		v, err := ix.View()
		if err != nil {
			t.Fatal(err)
		}
		views, snaps = append(views, v), append(snaps, take(v))
		if _, err := ix.Update(func(v *View, tx *Tx) error {
			s := take(v)
			tx.UpdateFlags(uint32(round*300+3), FlagFlagged, 0)
			tx.Append(v.NextUID(), 0)
			uid = v.NextUID() + 1
			views, snaps = append(views, v), append(snaps, s)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range views {
		check(fmt.Sprintf("view %d", i), v, snaps[i])
	}
}

// TestScanHeadResumes: the memo of the head log's modseq counter and
// tail offset (scanHead) gives what a scan of the whole file gives, as
// the log grows under commits of two handles and rotates.
func TestScanHeadResumes(t *testing.T) {
	ix, dir := newTestIndex(t, Options{LogRotateMinSize: 1, LogRotateMaxSize: 2000, LogRotateMinAge: -1})
	ix2, err := Open(dir, Prefix, &Options{Fsync: formats.FsyncNever, LogRotateMinSize: 1, LogRotateMaxSize: 2000, LogRotateMinAge: -1})
	if err != nil {
		t.Fatal(err)
	}
	// One memo per initial tail offset: none, and the first record's.
	memos := map[uint32]*Index{0: {}, log.HeaderSize: {}}
	resumed, rotated := 0, 0
	lastSeq := uint32(0)
	for i := range 120 {
		x := ix
		if i%3 == 2 {
			x = ix2
		}
		tx := x.Begin()
		tx.Append(uint32(i+1), uint8(i%16))
		if i > 0 {
			tx.UpdateFlags(uint32(i), FlagSeen, 0)
		}
		commit(t, tx)
		head, err := log.ReadFile(filepath.Join(dir, Prefix+".log"))
		if err != nil {
			t.Fatal(err)
		}
		if head.Hdr.FileSeq != lastSeq {
			rotated++
			lastSeq = head.Hdr.FileSeq
		} else if memos[0].scan.fileSeq == head.Hdr.FileSeq {
			resumed++
		}
		for init, memo := range memos {
			m, tail, err := memo.scanHead(head, init)
			if err != nil {
				t.Fatal(err)
			}
			wantM, _ := modseqAt(head, head.End)
			wantTail, err := head.Tail(init)
			if err != nil {
				t.Fatal(err)
			}
			if m != wantM || tail != wantTail {
				t.Fatalf("commit %d (log seq %d, %d bytes): resumed scan gives modseq %d, tail %d; a whole scan %d, %d",
					i, head.Hdr.FileSeq, head.End, m, tail, wantM, wantTail)
			}
		}
	}
	if resumed < 50 || rotated < 2 {
		t.Errorf("%d scans resumed, %d rotations: the test does not test the memo", resumed, rotated)
	}
}
