package index

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/index/log"
)

var update = flag.Bool("update", false, "rewrite the golden .dump files in testdata")

// fixtureCases lists testdata/<case>/ directories (made by Dovecot, see
// MANIFEST.md).
func fixtureCases(t testing.TB) []string {
	ents, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && e.Name() != "fuzz" {
			if _, err := os.Stat(filepath.Join("testdata", e.Name(), "doveadm.txt")); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no fixtures in testdata")
	}
	return out
}

// expected is what doveadm reported for one mailbox.
type expected struct {
	status map[string]string
	msgs   []expectedMsg
}

type expectedMsg struct {
	uid      uint32
	flags    []string // system flags without \Recent
	keywords []string
	modseq   uint64
}

func parseDoveadm(t testing.TB, path string) map[string]*expected {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*expected{}
	var cur *expected
	var msg *expectedMsg
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "mailbox "):
			cur = &expected{status: map[string]string{}}
			out[strings.TrimPrefix(line, "mailbox ")] = cur
			if !sc.Scan() {
				t.Fatalf("%s: status line missing", path)
			}
			for _, f := range strings.Fields(sc.Text())[1:] {
				k, v, _ := strings.Cut(f, "=")
				cur.status[k] = v
			}
		case strings.HasPrefix(line, "uid: "):
			u, _ := strconv.ParseUint(strings.TrimPrefix(line, "uid: "), 10, 32)
			cur.msgs = append(cur.msgs, expectedMsg{uid: uint32(u)})
			msg = &cur.msgs[len(cur.msgs)-1]
		case strings.HasPrefix(line, "flags:"):
			for _, f := range strings.Fields(strings.TrimPrefix(line, "flags:")) {
				switch {
				case f == `\Recent`:
				case strings.HasPrefix(f, `\`):
					msg.flags = append(msg.flags, f)
				default:
					msg.keywords = append(msg.keywords, f)
				}
			}
		case strings.HasPrefix(line, "modseq: "):
			msg.modseq, _ = strconv.ParseUint(strings.TrimPrefix(line, "modseq: "), 10, 64)
		}
	}
	return out
}

// systemFlagNames lists the IMAP system flags in f as doveadm prints them.
func systemFlagNames(f uint8) []string {
	var out []string
	for _, x := range []struct {
		f uint8
		n string
	}{{FlagAnswered, `\Answered`}, {FlagFlagged, `\Flagged`}, {FlagDeleted, `\Deleted`}, {FlagSeen, `\Seen`}, {FlagDraft, `\Draft`}} {
		if f&x.f != 0 {
			out = append(out, x.n)
		}
	}
	return out
}

// TestFixtureViews reads every Dovecot-made index and compares it with
// what doveadm reported for it.
func TestFixtureViews(t *testing.T) {
	for _, c := range fixtureCases(t) {
		t.Run(c, func(t *testing.T) {
			dir := filepath.Join("testdata", c)
			want := parseDoveadm(t, filepath.Join(dir, "doveadm.txt"))
			for box, w := range want {
				ix, err := Open(filepath.Join(dir, box), Prefix, nil)
				if err != nil {
					t.Fatalf("%s: %v", box, err)
				}
				v, err := ix.View()
				if err != nil {
					t.Fatal(err)
				}
				checkView(t, box, v, w)
			}
			if _, err := os.Stat(filepath.Join(dir, "storage")); err == nil {
				ix, err := Open(filepath.Join(dir, "storage"), MapPrefix, nil)
				if err != nil {
					t.Fatalf("map: %v", err)
				}
				v, err := ix.View()
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := v.MapHdr(); !ok {
					t.Errorf("map index without map header")
				}
				for i := range v.Count() {
					if _, ok := v.MapRec(i); !ok {
						t.Errorf("map uid %d without map record", v.Message(i).UID)
					}
					if _, ok := v.RefCount(i); !ok {
						t.Errorf("map uid %d without refcount", v.Message(i).UID)
					}
				}
			}
		})
	}
}

func checkView(t *testing.T, box string, v *View, w *expected) {
	t.Helper()
	got := map[string]string{
		"messages":      strconv.Itoa(v.Count()),
		"uidnext":       strconv.FormatUint(uint64(v.NextUID()), 10),
		"uidvalidity":   strconv.FormatUint(uint64(v.UIDValidity()), 10),
		"highestmodseq": strconv.FormatUint(v.HighestModSeq(), 10),
	}
	for k, want := range w.status {
		if got[k] != want {
			t.Errorf("%s: %s = %s, want %s", box, k, got[k], want)
		}
	}
	if v.Count() != len(w.msgs) {
		t.Fatalf("%s: %d messages, want %d", box, v.Count(), len(w.msgs))
	}
	for i, wm := range w.msgs {
		m := v.Message(i)
		gm := expectedMsg{uid: m.UID, flags: systemFlagNames(m.Flags), keywords: m.Keywords, modseq: m.ModSeq}
		slices.Sort(gm.keywords)
		slices.Sort(wm.keywords)
		if fmt.Sprint(gm) != fmt.Sprint(wm) {
			t.Errorf("%s: message %d = %+v, want %+v", box, i, gm, wm)
		}
	}
}

// TestGoldenDumps compares Dump of every fixture file with
// testdata/<case>.dump; -update rewrites them.
func TestGoldenDumps(t *testing.T) {
	for _, c := range fixtureCases(t) {
		t.Run(c, func(t *testing.T) {
			got := dumpTree(t, filepath.Join("testdata", c))
			golden := filepath.Join("testdata", c+".dump")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("dump of %s differs from %s (go test -update rewrites it):\n%s", c, golden, lineDiff(string(want), string(got)))
			}
		})
	}
}

// dumpTree dumps every index file under dir, sorted by path, then the
// replayed view of each index.
func dumpTree(t testing.TB, dir string) []byte {
	var files []string
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.Contains(e.Name(), ".index") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	var b bytes.Buffer
	dirs := map[string]bool{}
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(&b, "==== %s\n", filepath.ToSlash(rel))
		if err := Dump(&b, f); err != nil {
			t.Fatalf("Dump(%s): %v", f, err)
		}
		b.WriteString("\n")
		dirs[filepath.Dir(f)] = true
	}
	for _, d := range slices.Sorted(func(yield func(string) bool) {
		for d := range dirs {
			if !yield(d) {
				return
			}
		}
	}) {
		rel, _ := filepath.Rel(dir, d)
		fmt.Fprintf(&b, "==== %s/ (replayed)\n", filepath.ToSlash(rel))
		if err := Dump(&b, d); err != nil {
			t.Fatalf("Dump(%s): %v", d, err)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// lineDiff shows the first differing lines.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	n := 0
	for i := 0; i < max(len(al), len(bl)) && n < 20; i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			fmt.Fprintf(&out, "line %d:\n- %s\n+ %s\n", i+1, x, y)
			n++
		}
	}
	return out.String()
}

// TestIndexBytesMatchDovecot replays the log from its start up to where
// Dovecot wrote dovecot.index, encodes the state and compares it with
// Dovecot's file byte for byte.
func TestIndexBytesMatchDovecot(t *testing.T) {
	for _, c := range []string{"sdbox-index", "sdbox-rotated"} {
		t.Run(c, func(t *testing.T) {
			dir := filepath.Join("testdata", c, "INBOX")
			want, err := os.ReadFile(filepath.Join(dir, Prefix))
			if err != nil {
				t.Fatal(err)
			}
			wantSt, err := parseIndexFile("dovecot.index", want)
			if err != nil {
				t.Fatal(err)
			}
			var files []*log.File
			for _, n := range []string{Prefix + ".log.2", Prefix + ".log"} {
				f, err := log.ReadFile(filepath.Join(dir, n))
				if err == nil {
					files = append(files, f)
				}
			}
			// the log file the index was written from, cut at its head
			seq, head := wantSt.get(offLogFileSeq), wantSt.get(offLogFileHeadOffset)
			var ls logSet
			for _, f := range files {
				if f.Hdr.FileSeq < seq {
					ls.files = append(ls.files, f)
				} else if f.Hdr.FileSeq == seq && head > uint32(f.Hdr.HdrSize) {
					g := *f
					g.End = head
					ls.files = append(ls.files, &g)
				}
			}
			last := ls.files[len(ls.files)-1]
			st := newState(last.Hdr.IndexID)
			from, _, reason := ls.start(log.Pos{FileSeq: 1})
			if reason != "" {
				t.Fatal(reason)
			}
			r := newReplay(st, &ls)
			m, err := ls.walk(from, log.Pos{}, nil, func(e *entry) error { return r.apply(e.raw, e.file.Path, e.pos, e.modseq) })
			if err != nil {
				t.Fatal(err)
			}
			tail, err := last.Tail(0)
			if err != nil {
				t.Fatal(err)
			}
			hm, _ := modseqAt(last, last.End)
			if err := r.finish(log.Pos{FileSeq: last.Hdr.FileSeq, Offset: last.End}, m, hm, tail); err != nil {
				t.Fatal(err)
			}
			if last.Hdr.FileSeq != seq {
				// Dovecot rotated, then wrote the index pointing at the
				// new log's start (mail_index_write)
				st.put(offLogFileSeq, seq)
				st.put(offLogFileHeadOffset, head)
				st.put(offLog2RotateTime, wantSt.get(offLog2RotateTime))
			}
			got := encodeIndexFile(st)
			if !bytes.Equal(got, want) {
				for i := range min(len(got), len(want)) {
					if got[i] != want[i] {
						t.Fatalf("dovecot.index differs at byte %d (of %d/%d): got %x, want %x", i, len(got), len(want),
							got[i:min(i+16, len(got))], want[i:min(i+16, len(want))])
					}
				}
				t.Fatalf("dovecot.index: %d bytes, want %d", len(got), len(want))
			}
		})
	}
}

// TestDumpCorrupt: a broken file is dumped as far as it reads, then a
// CORRUPTED line names the offset; the error is a *log.CorruptError.
func TestDumpCorrupt(t *testing.T) {
	src := filepath.Join("testdata", "sdbox", "INBOX", Prefix+".log")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	data[300+4] = 0x01 // the append record at 300 becomes an expunge without protection bits
	p := filepath.Join(t.TempDir(), Prefix+".log")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	err = Dump(&b, p)
	var ce *log.CorruptError
	if !errors.As(err, &ce) || ce.Offset != 300 {
		t.Fatalf("Dump error = %v", err)
	}
	out := b.String()
	if !strings.Contains(out, "record: offset=288, type=boundary") || !strings.Contains(out, "CORRUPTED: ") ||
		!strings.Contains(out, "at offset 300") {
		t.Errorf("dump:\n%s", out)
	}
	// a broken dovecot.index
	idx, err := os.ReadFile(filepath.Join("testdata", "sdbox-index", "INBOX", Prefix))
	if err != nil {
		t.Fatal(err)
	}
	le.PutUint32(idx[offSeenMessagesCount:], 3)
	p = filepath.Join(t.TempDir(), Prefix)
	os.WriteFile(p, idx, 0o600)
	b.Reset()
	if err := Dump(&b, p); !errors.As(err, &ce) || !strings.Contains(b.String(), "RECORD: seq=4") {
		t.Errorf("Dump(broken index) = %v\n%s", err, b.String())
	}
}
