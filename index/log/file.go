package log

import (
	"io"
	"os"
)

// HeaderSize is the size of the file header this package writes (struct
// mail_transaction_log_header); files with a larger header are read, their
// extra fields ignored.
const HeaderSize = 40

// MinHeaderSize is the smallest hdr_size Dovecot accepts
// (MAIL_TRANSACTION_LOG_HEADER_MIN_SIZE).
const MinHeaderSize = 24

// Version of the log format this package writes (1.3).
const (
	MajorVersion = 1
	MinorVersion = 3
)

// CompatLittleEndian is the only compat_flags value Dovecot accepts on
// little-endian machines (MAIL_INDEX_COMPAT_LITTLE_ENDIAN).
const CompatLittleEndian = 0x01

// Header is the log file header. Spec §2.6.1, dovecot 2.3.19.1
// mail-transaction-log.h: struct mail_transaction_log_header.
type Header struct {
	Major, Minor uint8
	HdrSize      uint16 // records start here
	IndexID      uint32 // must equal dovecot.index's indexid; 0 = marked corrupted
	FileSeq      uint32
	// PrevFileSeq/PrevFileOffset name the previous log and its size at
	// rotation; PrevFileSeq 0 means this log starts a fresh index.
	PrevFileSeq    uint32
	PrevFileOffset uint32
	CreateStamp    uint32 // UNIX time
	InitialModSeq  uint64 // modseq at the start of the file
	CompatFlags    uint8
}

// Version is major<<8|minor, comparable like MAIL_TRANSACTION_LOG_VERSION_FULL.
func (h Header) Version() uint16 { return uint16(h.Major)<<8 | uint16(h.Minor) }

// hideInternalModSeqs is log format 1.3: flag updates that touch only the
// backend bits don't bump the modseq.
const hideInternalModSeqs = 1<<8 | 3

// Encode returns the 40-byte header (hdr_size is always written as 40).
func (h Header) Encode() []byte {
	b := make([]byte, 0, HeaderSize)
	b = append(b, h.Major, h.Minor)
	b = le.AppendUint16(b, HeaderSize)
	b = le.AppendUint32(b, h.IndexID)
	b = le.AppendUint32(b, h.FileSeq)
	b = le.AppendUint32(b, h.PrevFileSeq)
	b = le.AppendUint32(b, h.PrevFileOffset)
	b = le.AppendUint32(b, h.CreateStamp)
	b = le.AppendUint64(b, h.InitialModSeq)
	b = append(b, h.CompatFlags, 0, 0, 0, 0, 0, 0, 0)
	return b
}

// parseHeader checks the header as mail_transaction_log_file_read_hdr does.
func parseHeader(path string, data []byte) (Header, error) {
	var h Header
	var buf [HeaderSize]byte
	n := copy(buf[:], data)
	if n >= 1 && buf[0] != MajorVersion {
		return h, corruptf(path, 0, "unsupported transaction log version %d.%d (Dovecot recreates the file)", buf[0], buf[1])
	}
	if n < MinHeaderSize {
		return h, corruptf(path, int64(n), "unexpected end of file while reading header")
	}
	h = Header{
		Major: buf[0], Minor: buf[1], HdrSize: le.Uint16(buf[2:]),
		IndexID: le.Uint32(buf[4:]), FileSeq: le.Uint32(buf[8:]),
		PrevFileSeq: le.Uint32(buf[12:]), PrevFileOffset: le.Uint32(buf[16:]),
		CreateStamp: le.Uint32(buf[20:]),
	}
	if h.HdrSize < MinHeaderSize {
		return h, corruptf(path, 2, "Header size too small (%d)", h.HdrSize)
	}
	// a smaller header means the missing fields are 0
	if h.HdrSize >= 32 && n >= 32 {
		h.InitialModSeq = le.Uint64(buf[24:])
	}
	if h.HdrSize >= 33 && n >= 33 {
		h.CompatFlags = buf[32]
	}
	if h.Version() >= 1<<8|2 && h.CompatFlags != CompatLittleEndian {
		return h, corruptf(path, 32, "compat flags %#x: CPU architecture changed", h.CompatFlags)
	}
	if int(h.HdrSize) > len(data) {
		return h, corruptf(path, int64(len(data)), "header size %d is larger than the file", h.HdrSize)
	}
	if h.IndexID == 0 {
		return h, corruptf(path, 4, "marked corrupted (indexid 0)")
	}
	return h, nil
}

// File is one transaction log file read into memory.
type File struct {
	Path string
	Hdr  Header
	Data []byte // the whole file
	// End is where reading stops (Dovecot's sync_offset): after the last
	// complete record, before a record whose size word is not fully
	// written and before a transaction whose boundary extends past the
	// end of the file. Bytes after End are garbage a writer truncates.
	End uint32

	fi os.FileInfo // the file read, for WriterOptions.Known; nil: unknown
}

// ReadFile reads and parses a log file. It waits while a Writer of this
// process holds the log: POSIX fcntl locks are per process, and closing
// any descriptor of the file would release that Writer's lock.
func ReadFile(path string) (*File, error) {
	pl, err := processLock(path, DefaultLockTimeout)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	<-pl
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses a log file's bytes (path is only for errors). It checks the
// header and finds End; records are checked as a Reader returns them.
func Parse(path string, data []byte) (*File, error) {
	h, err := parseHeader(path, data)
	if err != nil {
		return nil, err
	}
	f := &File{Path: path, Hdr: h, Data: data}
	f.End, err = scanEnd(path, data, uint32(h.HdrSize))
	if err != nil {
		return nil, err
	}
	return f, nil
}

// scanEnd walks the record headers from off (mail_transaction_log_file_sync).
func scanEnd(path string, data []byte, off uint32) (uint32, error) {
	for uint64(off)+RecordHeaderSize <= uint64(len(data)) {
		size := DecodeSize(data[off:])
		if size == 0 {
			break // unfinished or corrupted: a writer truncates it
		}
		if size < RecordHeaderSize {
			return off, corruptf(path, int64(off), "hdr.size too small (%d)", size)
		}
		if uint64(off)+uint64(size) > uint64(len(data)) {
			break
		}
		word := le.Uint32(data[off+4:])
		if TypeFlags(word)&External != 0 && typeOf(word) == TypeBoundary && size >= RecordHeaderSize+4 {
			// the full transaction hasn't been written yet
			if uint64(off)+uint64(le.Uint32(data[off+8:])) > uint64(len(data)) {
				break
			}
		}
		off += size
	}
	return off, nil
}

// Garbage reports whether bytes follow End (a partial write).
func (f *File) Garbage() int { return len(f.Data) - int(f.End) }

// Tail returns the tail offset (how far the backend has applied this log,
// spec §2.6.6) after reading the whole file, starting from initial (the
// index's log_file_tail_offset when it points into this file, else 0).
// It follows log_file_track_sync: an EXTERNAL header update of
// log_file_tail_offset moves the tail, and every EXTERNAL record starting
// exactly at the tail advances it.
func (f *File) Tail(initial uint32) (uint32, error) {
	s, err := f.TailFrom(f.TailStart(initial))
	return s.MaxTail, err
}

// TailScan is how far a scan for the tail offset got (Tail): the offset
// of the next record and the scan's state there. A log file only grows
// until it is rotated, so a later scan of the same file, grown, resumes
// from it with the same result as a scan from the start.
type TailScan struct {
	Off, LastRead, MaxTail uint32
}

// TailStart is the state of a scan for the tail offset at the first
// record, starting from initial (see Tail).
func (f *File) TailStart(initial uint32) TailScan {
	return TailScan{Off: uint32(f.Hdr.HdrSize), LastRead: initial, MaxTail: initial}
}

// TailFrom scans the records from s to End for the tail offset (see
// Tail) and returns the scan's state at End; its MaxTail is the tail.
func (f *File) TailFrom(s TailScan) (TailScan, error) {
	lastRead, maxTail, off := s.LastRead, s.MaxTail, s.Off
	for off < f.End {
		size := DecodeSize(f.Data[off:])
		word := le.Uint32(f.Data[off+4:])
		next := off + size
		if TypeFlags(word)&External != 0 {
			if typeOf(word) == TypeHeaderUpdate {
				p := f.Data[off+RecordHeaderSize : next]
				if len(p) < 4 || len(p) < 4+int(le.Uint16(p[2:])) {
					return TailScan{}, corruptf(f.Path, int64(off), "header update extends beyond record size")
				}
				uo, us := uint32(le.Uint16(p)), uint32(le.Uint16(p[2:]))
				if uo <= tailOffsetPos && uo+us >= tailOffsetPos+4 {
					t := le.Uint32(p[4+tailOffsetPos-uo:])
					if t > next {
						return TailScan{}, corruptf(f.Path, int64(off), "log_file_tail_offset %d goes past sync offset %d", t, next)
					}
					if t >= lastRead {
						lastRead = t
						maxTail = max(maxTail, t)
					}
					off = next
					continue
				}
			}
			if maxTail == off {
				maxTail = next
			}
		}
		off = next
	}
	return TailScan{Off: off, LastRead: lastRead, MaxTail: maxTail}, nil
}

// tailOffsetPos is offsetof(struct mail_index_header, log_file_tail_offset).
const tailOffsetPos = 64

// Reader reads the records of a File in order, counting modseqs.
type Reader struct {
	f          *File
	off        uint32
	prev       uint32
	modseq     uint64
	introRecSz int // record_size of the last EXT_INTRO, -1 before one
}

// NewReader starts at the first record, with the modseq counter at the
// file's initial_modseq.
func (f *File) NewReader() *Reader {
	return &Reader{f: f, off: uint32(f.Hdr.HdrSize), prev: uint32(f.Hdr.HdrSize),
		modseq: f.Hdr.InitialModSeq, introRecSz: -1}
}

// NewReaderAt starts at offset off (a record boundary) with the modseq
// counter at modseq. The ExtRecUpdate record size is unknown until the
// next ExtIntro.
func (f *File) NewReaderAt(off uint32, modseq uint64) *Reader {
	return &Reader{f: f, off: off, prev: off, modseq: modseq, introRecSz: -1}
}

// File returns the file being read.
func (r *Reader) File() *File { return r.f }

// Offset is the offset of the next record (after the last one returned).
func (r *Reader) Offset() uint32 { return r.off }

// ModSeq is the modseq counter after the last record returned (§2.6.5).
func (r *Reader) ModSeq() uint64 { return r.modseq }

// SetModSeq sets the counter, to continue counting across files as
// Dovecot's log view does.
func (r *Reader) SetModSeq(m uint64) { r.modseq = m }

// IntroRecordSize is the record_size of the last ExtIntro read, -1 if none.
func (r *Reader) IntroRecordSize() int { return r.introRecSz }

// NextRaw returns the next record undecoded but validated, and its
// position. At End it returns io.EOF; an invalid record is a
// *CorruptError with its offset.
func (r *Reader) NextRaw() (Raw, Pos, error) {
	if r.off >= r.f.End {
		return Raw{}, Pos{}, io.EOF
	}
	off := r.off
	size := DecodeSize(r.f.Data[off:]) // End guarantees a complete record
	raw := Raw{Word: le.Uint32(r.f.Data[off+4:]), Payload: r.f.Data[off+RecordHeaderSize : off+size]}
	t, reason := checkRaw(raw)
	if reason != "" {
		return Raw{}, Pos{}, corruptf(r.f.Path, int64(off), "%s", reason)
	}
	if t == TypeExtIntro {
		r.introRecSz = int(le.Uint16(raw.Payload[12:]))
	}
	r.modseq = NextModSeq(raw, r.modseq, r.f.Hdr.Version())
	r.prev, r.off = off, off+size
	return raw, Pos{FileSeq: r.f.Hdr.FileSeq, Offset: off}, nil
}

// Next returns the next record decoded.
func (r *Reader) Next() (Record, Pos, error) {
	introBefore := r.introRecSz
	raw, pos, err := r.NextRaw()
	if err != nil {
		return nil, pos, err
	}
	rec, err := Decode(raw, introBefore)
	if err != nil {
		return nil, pos, corruptf(r.f.Path, int64(pos.Offset), "%s", err.Error())
	}
	return rec, pos, nil
}

// NextModSeq returns the modseq counter after a record
// (mail_transaction_update_modseq, spec §2.6.5). version is the file
// header's Version().
func NextModSeq(r Raw, cur uint64, version uint16) uint64 {
	t := r.Type()
	if cur == 0 {
		// modseqs not tracked yet: only a "modseq" introduction starts them
		if t == TypeExtIntro && len(r.Payload) >= introSize+6 &&
			le.Uint16(r.Payload[18:]) == 6 && string(r.Payload[introSize:introSize+6]) == "modseq" {
			return 1
		}
		return 0
	}
	switch t {
	case TypeExpunge, TypeExpungeGUID:
		if r.Flags()&External == 0 {
			return cur // expunge requests don't count
		}
		return cur + 1
	case TypeAppend, TypeKeywordUpdate, TypeKeywordReset, TypeAttributeUpdate:
		return cur + 1
	case TypeFlagUpdate:
		if version < hideInternalModSeqs {
			return cur + 1
		}
		p := r.Payload
		for i := 0; i+12 <= len(p); i += 12 {
			if (p[i+8]|p[i+9])&0x1f != 0 || p[i+10] != 0 {
				return cur + 1
			}
		}
		return cur
	case TypeModSeqUpdate:
		p := r.Payload
		for i := 0; i+12 <= len(p); i += 12 {
			m := uint64(le.Uint32(p[i+4:])) | uint64(le.Uint32(p[i+8:]))<<32
			cur = max(cur, m)
		}
	}
	return cur
}
