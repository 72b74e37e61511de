package log

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

func TestSizeEncoding(t *testing.T) {
	// spec §2.6.2 examples
	tests := []struct {
		n    uint32
		want [4]byte
	}{
		{12, [4]byte{0x80, 0x80, 0x80, 0x83}},
		{16, [4]byte{0x80, 0x80, 0x80, 0x84}},
		{36, [4]byte{0x80, 0x80, 0x80, 0x89}},
		{512, [4]byte{0x80, 0x80, 0x81, 0x80}},
		{MaxRecordSize, [4]byte{0xff, 0xff, 0xff, 0xff}},
	}
	for _, tc := range tests {
		if got := EncodeSize(tc.n); got != tc.want {
			t.Errorf("EncodeSize(%d) = % x, want % x", tc.n, got, tc.want)
		}
		if got := DecodeSize(tc.want[:]); got != tc.n {
			t.Errorf("DecodeSize(% x) = %d, want %d", tc.want, got, tc.n)
		}
	}
	if got := DecodeSize([]byte{0x80, 0x80, 0x00, 0x83}); got != 0 {
		t.Errorf("DecodeSize without 0x80 = %d, want 0", got)
	}
}

// allRecords has one record of every type, with flags.
func allRecords() []Record {
	ext := Hdr{Flags: External}
	return []Record{
		&Expunge{Hdr: ext, Ranges: []UIDRange{{1, 2}, {5, 5}}},
		&ExpungeGUID{Hdr: Hdr{Flags: External | Sync}, Entries: []GUIDExpunge{{UID: 3, GUID: [16]byte{1, 2, 3}}}},
		&Append{Hdr: ext, Recs: []AppendRec{{UID: 1, Flags: 0x08}, {UID: 2}}},
		&FlagUpdate{Changes: []FlagChange{{UID1: 1, UID2: 1, Add: 8, Remove: 2}, {UID1: 3, UID2: 9, Add: 0x40, ModSeqInc: 1}}},
		&HeaderUpdate{Hdr: ext, Changes: []HdrChange{{Offset: 24, Data: []byte{1, 2, 3, 4}}, {Offset: 88, Data: []byte{9}}}},
		&ExtIntro{ExtID: ExtIDNamed, HdrSize: 24, Name: "dbox-hdr"},
		&ExtIntro{Hdr: ext, ExtID: 2, ResetID: 7, RecordSize: 4, RecordAlign: 4, IntroFlags: IntroNoShrink},
		&ExtReset{NewResetID: 9, PreserveData: true},
		&ExtHdrUpdate{Changes: []HdrChange{{Offset: 0, Data: []byte{1, 0, 0, 0, 5}}}},
		&ExtHdrUpdate{Wide: true, Changes: []HdrChange{{Offset: 70000, Data: []byte{1}}}},
		&ExtRecUpdate{Recs: []ExtRec{{UID: 1, Data: []byte{1, 2, 3, 4, 5, 6}}, {UID: 4, Data: []byte{0, 0, 0, 0, 0, 7}}}},
		&ExtAtomicInc{Incs: []AtomicInc{{UID: 1, Diff: -1}, {UID: 2, Diff: 5}}},
		&KeywordUpdate{Name: "$Label1", Ranges: []UIDRange{{1, 1}, {3, 4}}},
		&KeywordUpdate{Remove: true, Name: "Junk", Ranges: []UIDRange{{2, 2}}},
		&KeywordReset{Ranges: []UIDRange{{1, 10}}},
		&ModSeqUpdate{Entries: []ModSeqEntry{{UID: 1, ModSeq: 1<<40 + 5}, {UID: 0, ModSeq: 77}}},
		&IndexDeleted{Hdr: ext},
		&IndexUndeleted{},
		&Boundary{Hdr: ext, Size: 96},
		&AttributeUpdate{Changes: []AttrChange{{Set: true, Private: true, Key: "comment", Timestamp: 5, ValueLen: 11}, {Key: "x", Timestamp: 6}}},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, rec := range allRecords() {
		b, err := AppendRecord(nil, rec)
		if err != nil {
			t.Fatalf("AppendRecord(%T): %v", rec, err)
		}
		if len(b)%4 != 0 || DecodeSize(b) != uint32(len(b)) {
			t.Fatalf("%T: size word %d for %d bytes", rec, DecodeSize(b), len(b))
		}
		extSize := -1
		if u, ok := rec.(*ExtRecUpdate); ok {
			extSize = len(u.Recs[0].Data)
		}
		got, err := Decode(Raw{Word: le.Uint32(b[4:]), Payload: b[8:]}, extSize)
		if err != nil {
			t.Fatalf("Decode(%T): %v", rec, err)
		}
		if !reflect.DeepEqual(got, rec) {
			t.Errorf("Decode(AppendRecord(%#v)) = %#v", rec, got)
		}
	}
}

// TestDovecotBytes checks encodings against bytes Dovecot wrote (spec
// Appendix A.2).
func TestDovecotBytes(t *testing.T) {
	intro := &ExtIntro{ExtID: ExtIDNamed, HdrSize: 24, Name: "dbox-hdr"}
	b, _ := AppendRecord(nil, intro)
	want := []byte{0x80, 0x80, 0x80, 0x89, 0x40, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x18, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 8, 0, 'd', 'b', 'o', 'x', '-', 'h', 'd', 'r'}
	if !bytes.Equal(b, want) {
		t.Errorf("ext intro = % x\nwant          % x", b, want)
	}
	tail := &HeaderUpdate{Hdr: Hdr{Flags: External}, Changes: []HdrChange{{Offset: 64, Data: []byte{0x38, 0, 0, 0}}}}
	b, _ = AppendRecord(nil, tail)
	want = []byte{0x80, 0x80, 0x80, 0x84, 0x20, 0, 0, 0x10, 0x40, 0, 4, 0, 0x38, 0, 0, 0}
	if !bytes.Equal(b, want) {
		t.Errorf("tail update = % x, want % x", b, want)
	}
	ex := &ExpungeGUID{Hdr: Hdr{Flags: External}, Entries: []GUIDExpunge{{UID: 3}}}
	b, _ = AppendRecord(nil, ex)
	if !bytes.Equal(b[4:8], []byte{0x90, 0xed, 0, 0x10}) {
		t.Errorf("expunge guid type word = % x, want 90 ed 00 10", b[4:8])
	}
}

func testHeader() Header {
	return Header{Major: 1, Minor: 3, HdrSize: HeaderSize, IndexID: 1234, FileSeq: 2, CreateStamp: 1234,
		InitialModSeq: 1, CompatFlags: 1}
}

func logBytes(t *testing.T, h Header, recs ...Record) []byte {
	t.Helper()
	b := h.Encode()
	tr, err := EncodeTransaction(recs)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, tr...)
}

func TestReaderModSeqs(t *testing.T) {
	// spec §2.6.5 example: initial 1; APPEND of uids 1-3 -> 2; keyword on
	// uid 1 -> 3; \Seen on uid 2 -> 4; flag 0x40 on uid 3 -> no change
	ext := Hdr{Flags: External}
	data := logBytes(t, testHeader(),
		&Append{Hdr: ext, Recs: []AppendRec{{UID: 1}, {UID: 2}, {UID: 3}}},
		&KeywordUpdate{Hdr: ext, Name: "kw", Ranges: []UIDRange{{1, 1}}},
		&FlagUpdate{Hdr: ext, Changes: []FlagChange{{UID1: 2, UID2: 2, Add: 0x08}}},
		&FlagUpdate{Hdr: ext, Changes: []FlagChange{{UID1: 3, UID2: 3, Add: 0x40}}},
		&Expunge{Ranges: []UIDRange{{1, 1}}}, // a request: no modseq
		&ModSeqUpdate{Hdr: ext, Entries: []ModSeqEntry{{UID: 0, ModSeq: 3}}},
	)
	f, err := Parse("test", data)
	if err != nil {
		t.Fatal(err)
	}
	r := f.NewReader()
	var got []uint64
	for {
		_, _, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.ModSeq())
	}
	want := []uint64{1, 2, 3, 4, 4, 4, 4} // boundary first
	if !reflect.DeepEqual(got, want) {
		t.Errorf("modseqs = %v, want %v", got, want)
	}
}

func TestPartialTransaction(t *testing.T) {
	ext := Hdr{Flags: External}
	full := logBytes(t, testHeader(), &Append{Hdr: ext, Recs: []AppendRec{{UID: 1}}})
	tr, _ := EncodeTransaction([]Record{
		&Append{Hdr: ext, Recs: []AppendRec{{UID: 2}}},
		&FlagUpdate{Hdr: ext, Changes: []FlagChange{{UID1: 2, UID2: 2, Add: 1}}},
	})
	for cut := 1; cut < len(tr); cut++ {
		data := append(append([]byte(nil), full...), tr[:cut]...)
		f, err := Parse("test", data)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if f.End != uint32(len(full)) {
			t.Errorf("cut %d: End = %d, want %d (partial transaction ignored)", cut, f.End, len(full))
		}
	}
	// a size word not yet written
	data := append(append([]byte(nil), full...), 0x80, 0x80, 0, 0, 1, 2, 3, 4)
	if f, err := Parse("test", data); err != nil || f.End != uint32(len(full)) || f.Garbage() != 8 {
		t.Errorf("unfinished record: End %v, err %v", f, err)
	}
}

func TestCorrupt(t *testing.T) {
	h := testHeader()
	good := h.Encode()
	rec := func(word uint32, payload ...byte) []byte {
		b := EncodeSize(uint32(8 + len(payload)))
		out := append(b[:], le.AppendUint32(nil, word)...)
		return append(out, payload...)
	}
	tests := []struct {
		name string
		data []byte
		off  int64
	}{
		{"bad major", append([]byte{2}, good[1:]...), 0},
		{"short header", good[:20], 20},
		{"hdr size", append(append([]byte{}, good[:2]...), append([]byte{10, 0}, good[4:]...)...), 2},
		{"indexid 0", append(append([]byte{}, good[:4]...), append([]byte{0, 0, 0, 0}, good[8:]...)...), 4},
		{"compat", append(append([]byte{}, good[:32]...), append([]byte{2}, good[33:]...)...), 32},
		{"size too small", append(append([]byte{}, good...), 0x80, 0x80, 0x80, 0x81, 0, 0, 0, 0), 40},
		{"expunge without prot", append(append([]byte{}, good...), rec(0x10000001, 1, 0, 0, 0, 1, 0, 0, 0)...), 40},
		{"empty payload", append(append([]byte{}, good...), rec(0x2)...), 40},
		{"unsorted ranges", append(append([]byte{}, good...), rec(0x800, 5, 0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0)...), 40},
		{"uid range 0", append(append([]byte{}, good...), rec(0x800, 0, 0, 0, 0, 6, 0, 0, 0)...), 40},
		{"append size", append(append([]byte{}, good...), rec(0x2, 1, 0, 0, 0)...), 40},
		{"empty keyword", append(append([]byte{}, good...), rec(0x400, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0)...), 40},
		{"intro name size", append(append([]byte{}, good...), rec(0x40, append(make([]byte, 18), 8, 0)...)...), 40},
		{"guid uid 0", append(append([]byte{}, good...), rec(0x2000|0xcd90, make([]byte, 20)...)...), 40},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("test.log", tc.data)
			if err == nil {
				r := f.NewReader()
				for err == nil {
					_, _, err = r.Next()
				}
				if err == io.EOF {
					t.Fatalf("no error")
				}
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want *CorruptError", err, err)
			}
			if ce.File != "test.log" || ce.Offset != tc.off {
				t.Errorf("CorruptError at %s:%d, want offset %d (%v)", ce.File, ce.Offset, tc.off, err)
			}
			if !errors.Is(err, ErrCorrupt) || formats.KindOf(err) != formats.KindTemp {
				t.Errorf("classification: Is(ErrCorrupt)=%v Kind=%v", errors.Is(err, ErrCorrupt), formats.KindOf(err))
			}
		})
	}
}

func TestTail(t *testing.T) {
	ext := Hdr{Flags: External}
	tail := &HeaderUpdate{Hdr: ext, Changes: []HdrChange{{Offset: 64, Data: le.AppendUint32(nil, 56)}}}
	data := logBytes(t, testHeader(), tail)
	tr, _ := EncodeTransaction([]Record{&Append{Hdr: ext, Recs: []AppendRec{{UID: 1}}}})
	data = append(data, tr...)
	f, err := Parse("t", data)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Tail(0); got != f.End {
		t.Errorf("tail = %d, want %d (external records advance it)", got, f.End)
	}
	// a non-external record stops the tail
	tr, _ = EncodeTransaction([]Record{&Expunge{Ranges: []UIDRange{{1, 1}}}})
	f, _ = Parse("t", append(data, tr...))
	if got, _ := f.Tail(0); got != uint32(len(data)) {
		t.Errorf("tail = %d, want %d", got, len(data))
	}
	// without the first tail record the tail stays at 0
	f, _ = Parse("t", logBytes(t, testHeader(), &Append{Hdr: ext, Recs: []AppendRec{{UID: 1}}}))
	if got, _ := f.Tail(0); got != 0 {
		t.Errorf("tail = %d, want 0", got)
	}
}

func TestWriterLockAndRotate(t *testing.T) {
	for _, m := range []LockMethod{LockFcntl, LockFlock, LockDotlock} {
		t.Run(m.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "dovecot.index.log")
			opt := WriterOptions{LockMethod: m, Fsync: formats.FsyncNever}
			w, err := Create(path, testHeader(), nil, opt)
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			if _, err := Create(path, testHeader(), nil, opt); !errors.Is(err, os.ErrExist) {
				t.Fatalf("second Create: %v, want ErrExist", err)
			}
			// concurrent writers serialize: every append is complete
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 10 {
						w, err := OpenWriter(path, opt)
						if err != nil {
							t.Error(err)
							return
						}
						uid := uint32(g*100 + i + 1)
						if _, err := w.Append([]Record{
							&Append{Hdr: Hdr{Flags: External}, Recs: []AppendRec{{UID: uid}}},
							&FlagUpdate{Hdr: Hdr{Flags: External}, Changes: []FlagChange{{UID1: uid, UID2: uid, Add: 1}}},
						}); err != nil {
							t.Error(err)
						}
						w.Close()
					}
				}()
			}
			wg.Wait()
			f, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for r := f.NewReader(); ; n++ {
				if _, _, err := r.Next(); err != nil {
					if err != io.EOF {
						t.Fatal(err)
					}
					break
				}
			}
			if n != 8*10*3 || f.Garbage() != 0 {
				t.Errorf("%d records, %d garbage bytes; want 240, 0", n, f.Garbage())
			}
			if m == LockDotlock {
				if _, err := os.Stat(path + ".lock"); err == nil {
					t.Error("dotlock left behind")
				}
			}
			// rotate
			w, err = OpenWriter(path, opt)
			if err != nil {
				t.Fatal(err)
			}
			h := testHeader()
			h.FileSeq, h.PrevFileSeq, h.PrevFileOffset = 3, 2, w.File().End
			if err := w.Rotate(h, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Append([]Record{&Boundary{Hdr: Hdr{Flags: External}, Size: 12}}); err != nil {
				t.Fatal(err)
			}
			w.Close()
			old, err := ReadFile(path + ".2")
			if err != nil || old.Hdr.FileSeq != 2 {
				t.Fatalf(".log.2: %v %v", old, err)
			}
			cur, err := ReadFile(path)
			if err != nil || cur.Hdr.FileSeq != 3 || cur.Hdr.PrevFileOffset != old.End || cur.End != HeaderSize+12 {
				t.Fatalf(".log after rotation: %+v %v", cur, err)
			}
		})
	}
}

func TestLockTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.log")
	opt := WriterOptions{LockMethod: LockDotlock, LockTimeout: 50 * time.Millisecond}
	w, err := Create(path, testHeader(), nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	start := time.Now()
	w2, err := OpenWriter(path, opt)
	if err == nil {
		w2.Close()
		t.Fatal("second writer got the lock")
	}
	if formats.KindOf(err) != formats.KindTemp || time.Since(start) > 5*time.Second {
		t.Errorf("err = %v (kind %v) after %v", err, formats.KindOf(err), time.Since(start))
	}
	// a dotlock left by a process that is gone is overridden
	w.Close()
	if err := os.WriteFile(path+".lock", []byte("999999999:"+hostname(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	w3, err := OpenWriter(path, opt)
	if err != nil {
		t.Fatalf("stale dotlock not overridden: %v", err)
	}
	w3.Close()
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// FuzzRecord decodes arbitrary payloads: no panic, and what decodes
// re-encodes to something that decodes the same.
func FuzzRecord(f *testing.F) {
	for _, r := range allRecords() {
		b, _ := AppendRecord(nil, r)
		f.Add(le.Uint32(b[4:]), b[8:], 6)
	}
	f.Fuzz(func(t *testing.T, word uint32, payload []byte, extSize int) {
		if extSize < -1 || extSize > 1000 {
			extSize = -1
		}
		rec, err := Decode(Raw{Word: word, Payload: payload}, extSize)
		if err != nil {
			return
		}
		b, err := AppendRecord(nil, rec)
		if err != nil {
			return // e.g. an ExtRecUpdate with a zero record size
		}
		rec2, err := Decode(Raw{Word: le.Uint32(b[4:]), Payload: b[8:]}, extSize)
		if err != nil {
			t.Fatalf("re-decode of %#v: %v", rec, err)
		}
		if !reflect.DeepEqual(rec, rec2) {
			t.Fatalf("round trip:\n%#v\n%#v", rec, rec2)
		}
	})
}

// FuzzParse reads arbitrary log files: no panic, only *CorruptError.
func FuzzParse(f *testing.F) {
	for _, p := range fixtureLogs(f) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lf, err := Parse("fuzz.log", data)
		for err == nil {
			r := lf.NewReader()
			for err == nil {
				_, _, err = r.Next()
			}
			if err == io.EOF {
				err = nil
				_, err = lf.Tail(0)
				break
			}
		}
		var ce *CorruptError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("error %T: %v", err, err)
		}
	})
}

func fixtureLogs(t testing.TB) []string {
	paths, err := filepath.Glob("../testdata/*/*/*.log*")
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// TestReadWaitsForWriter: closing any descriptor of a file drops the
// process's fcntl locks on it, so in-process reads wait for the Writer.
func TestReadWaitsForWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dovecot.index.log")
	w, err := Create(path, testHeader(), nil, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadFile(path)
		done <- err
	}()
	select {
	case <-done:
		t.Fatal("ReadFile did not wait for the Writer")
	case <-time.After(100 * time.Millisecond):
	}
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestWriterKnown: a Writer given the File an earlier Writer left
// (WriterOptions.Known) sees exactly what a Writer reading the whole file
// sees, whether others appended meanwhile, a partial write was left, or
// the log was rotated or replaced; and it reads only the new bytes when
// the file is Known's, grown.
func TestWriterKnown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dovecot.index.log")
	opt := WriterOptions{Fsync: formats.FsyncNever}
	w, err := Create(path, testHeader(), nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	appendOne := func(t *testing.T, o WriterOptions, uid uint32) *File {
		t.Helper()
		w, err := OpenWriter(path, o)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if _, err := w.Append([]Record{
			&Append{Hdr: Hdr{Flags: External}, Recs: []AppendRec{{UID: uid}}},
			&FlagUpdate{Hdr: Hdr{Flags: External}, Changes: []FlagChange{{UID1: uid, UID2: uid, Add: 1}}},
		}); err != nil {
			t.Fatal(err)
		}
		return w.File()
	}
	// same checks what a Writer given known reads against a whole read.
	same := func(t *testing.T, what string, known *File, wantReuse bool) *File {
		t.Helper()
		o := opt
		o.Known = known
		w, err := OpenWriter(path, o)
		if err != nil {
			t.Fatal(err)
		}
		got := w.File()
		w.Close()
		whole, err := OpenWriter(path, opt)
		if err != nil {
			t.Fatal(err)
		}
		want := whole.File()
		whole.Close()
		if got.End != want.End || got.Hdr != want.Hdr || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("%s: with Known: End %d, %d bytes; whole read: End %d, %d bytes", what, got.End, len(got.Data), want.End, len(want.Data))
		}
		if reused := len(known.Data) > 0 && len(got.Data) > 0 && &got.Data[0] == &known.Data[0]; reused != wantReuse {
			t.Errorf("%s: Known's array reused: %v, want %v", what, reused, wantReuse)
		}
		return got
	}
	var known *File
	for i := range 20 {
		known = appendOne(t, WriterOptions{Fsync: formats.FsyncNever, Known: known}, uint32(2*i+1))
		if i%2 == 0 {
			appendOne(t, opt, uint32(2*i+2)) // another writer, as Dovecot
		}
		if i > 0 {
			same(t, fmt.Sprintf("after append %d", i), known, known.fi != nil && cap(known.Data) >= len(known.Data)+200)
		}
	}
	// Nothing new: the same bytes.
	known = same(t, "unchanged", known, true)

	// A partial write after End: Known saw none; the next Writer sees
	// the garbage (and truncates it), its array is a copy when Known's
	// File itself had garbage.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0x40, 0, 0, 0, 1}); err != nil { // a record header cut short
		t.Fatal(err)
	}
	f.Close()
	withGarbage := same(t, "partial write", known, true)
	if withGarbage.Garbage() == 0 {
		t.Fatal("the partial write was not seen")
	}
	same(t, "Known with garbage", withGarbage, false)

	// A rotated log: another file, read whole.
	w, err = OpenWriter(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	h := testHeader()
	h.FileSeq, h.PrevFileSeq, h.PrevFileOffset = 3, 2, w.File().End
	if err := w.Rotate(h, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	same(t, "rotated", known, false)

	// The same inode with another header (a log rewritten in place):
	// read whole.
	cur := appendOne(t, opt, 100)
	hdr := h
	hdr.CreateStamp++
	if err := os.WriteFile(path, append(hdr.Encode(), cur.Data[HeaderSize:cur.End]...), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := same(t, "header rewritten", cur, false); got.Hdr.CreateStamp != hdr.CreateStamp {
		t.Fatalf("header rewritten: CreateStamp %d, want %d", got.Hdr.CreateStamp, hdr.CreateStamp)
	}
}
