package index

import (
	"errors"
	"io"
	"io/fs"
	"os"

	"github.com/boxsync/boxsync/index/log"
)

// logSet is the chain of transaction log files that are available:
// dovecot.index.log.2 (when it continues into .log) and dovecot.index.log,
// oldest first.
type logSet struct {
	files []*log.File
}

func (ls *logSet) head() *log.File {
	if ls == nil || len(ls.files) == 0 {
		return nil
	}
	return ls.files[len(ls.files)-1]
}

func (ls *logSet) file(seq uint32) *log.File {
	if ls == nil {
		return nil
	}
	for _, f := range ls.files {
		if f.Hdr.FileSeq == seq {
			return f
		}
	}
	return nil
}

// readLog2 reads PATH.2 as the predecessor of head: it must be a different
// file with the sequence head names as previous, and the same indexid.
// Anything else is ignored, as Dovecot ignores a .log.2 it can't use.
func readLog2(path string, head *log.File) (*log.File, error) {
	if head.Hdr.PrevFileSeq == 0 {
		return nil, nil
	}
	fi2, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(head.Path); err == nil && os.SameFile(fi, fi2) {
		// .log and .log.2 are links to one file (rotation in
		// progress): opening and closing it would drop our fcntl lock
		return nil, nil
	}
	f, err := log.ReadFile(path)
	var ce *log.CorruptError
	if errors.As(err, &ce) {
		return nil, nil // Dovecot: "Not found from .log.2"
	}
	if err != nil {
		return nil, err
	}
	if f.Hdr.FileSeq != head.Hdr.PrevFileSeq || f.Hdr.IndexID != head.Hdr.IndexID {
		return nil, nil
	}
	if f.End != head.Hdr.PrevFileOffset {
		return nil, &log.CorruptError{File: path, Offset: int64(f.End),
			Reason: "Invalid transaction log size (" + itoa(f.End) + " vs " + itoa(head.Hdr.PrevFileOffset) + ")"}
	}
	return f, nil
}

func itoa(v uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// start resolves where replaying from pos begins, as
// mail_transaction_log_view_set does: pos may name the end of a file the
// next one continues; a missing file is skipped when a later file starts a
// new index (prev_file_seq 0); the newest such file in the range resets
// the index. Offset 0 means the file's beginning.
func (ls *logSet) start(pos log.Pos) (from log.Pos, reset bool, reason string) {
	for _, f := range ls.files {
		if f.Hdr.PrevFileSeq == pos.FileSeq && f.Hdr.PrevFileOffset == pos.Offset && pos.FileSeq != 0 {
			pos = log.Pos{FileSeq: f.Hdr.FileSeq, Offset: uint32(f.Hdr.HdrSize)}
			break
		}
	}
	i := -1
	for k, f := range ls.files {
		if f.Hdr.FileSeq == pos.FileSeq {
			i = k
			break
		}
	}
	if i < 0 {
		for k, f := range ls.files {
			if f.Hdr.FileSeq >= pos.FileSeq && f.Hdr.PrevFileSeq == 0 {
				i, reset = k, true
				pos = log.Pos{FileSeq: f.Hdr.FileSeq, Offset: uint32(f.Hdr.HdrSize)}
				break
			}
		}
		if i < 0 {
			return pos, false, "Missing log file seq=" + itoa(pos.FileSeq)
		}
	}
	if pos.Offset == 0 {
		pos.Offset = uint32(ls.files[i].Hdr.HdrSize)
	}
	// the newest file that starts a new index resets it
	for k := len(ls.files) - 1; k >= i; k-- {
		f := ls.files[k]
		if f.Hdr.PrevFileSeq == 0 {
			if k != i || pos.Offset == uint32(f.Hdr.HdrSize) {
				return log.Pos{FileSeq: f.Hdr.FileSeq, Offset: uint32(f.Hdr.HdrSize)}, true, ""
			}
			break
		}
	}
	f := ls.files[i]
	if pos.Offset < uint32(f.Hdr.HdrSize) {
		return pos, false, "Invalid min_file_offset " + itoa(pos.Offset) + " < hdr_size"
	}
	if pos.Offset > f.End {
		return pos, false, "Invalid offset " + itoa(pos.Offset) + " > sync_offset " + itoa(f.End)
	}
	return pos, reset, ""
}

// modseqAt returns the modseq counter of f at offset off (after the records
// before it) and whether off is at a record boundary. The records were
// bounds-checked by log.Parse; they are not validated here.
func modseqAt(f *log.File, off uint32) (uint64, bool) {
	return modseqFrom(f, uint32(f.Hdr.HdrSize), f.Hdr.InitialModSeq, off)
}

// modseqFrom is modseqAt from a record boundary o where the counter is m.
func modseqFrom(f *log.File, o uint32, m uint64, off uint32) (uint64, bool) {
	for o < off && o < f.End {
		size := log.DecodeSize(f.Data[o:])
		raw := log.Raw{Word: le.Uint32(f.Data[o+4:]), Payload: f.Data[o+8 : o+size]}
		m = log.NextModSeq(raw, m, f.Hdr.Version())
		o += size
	}
	return m, o == off
}

// entry is one record met while walking the log.
type entry struct {
	raw    log.Raw
	pos    log.Pos
	end    uint32 // offset after the record
	modseq uint64 // log view modseq counter after the record
	file   *log.File
}

// walk calls fn for every record from `from` (a resolved start) up to, not
// including, `to` (zero: the end of the head), continuing the modseq
// counter across files as Dovecot's log view does.
// It returns the counter at the end. m0, when not nil, is the counter at
// from; otherwise it is computed from the file.
func (ls *logSet) walk(from, to log.Pos, m0 *uint64, fn func(e *entry) error) (uint64, error) {
	var started bool
	var m uint64
	var e entry
	for _, f := range ls.files {
		if !started {
			if f.Hdr.FileSeq != from.FileSeq {
				continue
			}
			started = true
			var ok bool
			if m, ok = modseqAt(f, from.Offset); !ok {
				return 0, &log.CorruptError{File: f.Path, Offset: int64(from.Offset),
					Reason: "index points into the middle of a log record (offset " + itoa(from.Offset) + ")"}
			}
			if m0 != nil {
				m = *m0
			}
		}
		r := f.NewReaderAt(from.Offset, m)
		if f.Hdr.FileSeq != from.FileSeq {
			r = f.NewReaderAt(uint32(f.Hdr.HdrSize), m)
		}
		for {
			if to.FileSeq != 0 && !(log.Pos{FileSeq: f.Hdr.FileSeq, Offset: r.Offset()}).Before(to) {
				return r.ModSeq(), nil
			}
			raw, pos, err := r.NextRaw()
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, err
			}
			e = entry{raw: raw, pos: pos, end: r.Offset(), modseq: r.ModSeq(), file: f}
			if err := fn(&e); err != nil {
				return 0, err
			}
		}
		m = r.ModSeq()
	}
	return m, nil
}

// canStart reports whether a log view can start at from.
func (ls *logSet) canStart(from log.Pos) bool {
	if ls == nil || len(ls.files) == 0 {
		return false
	}
	_, _, reason := ls.start(from)
	return reason == ""
}

// scanRange is the catch-up scan's log view: the records from `from` to
// `to`. It reports false (and calls nothing) when the files are missing.
func (ls *logSet) scanRange(from, to log.Pos, fn func(raw log.Raw, modseq uint64)) bool {
	if ls == nil || len(ls.files) == 0 {
		return false
	}
	start, _, reason := ls.start(from)
	if reason != "" {
		return false
	}
	_, err := ls.walk(start, to, nil, func(e *entry) error {
		fn(e.raw, e.modseq)
		return nil
	})
	return err == nil
}
