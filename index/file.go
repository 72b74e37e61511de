package index

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index/log"
)

// parseIndexFile parses dovecot.index (spec §2.1–2.4) as
// mail_index_read_map, mail_index_map_check_header,
// mail_index_map_parse_extensions and mail_index_map_parse_keywords do.
func parseIndexFile(path string, data []byte) (*state, error) {
	bad := func(off int, format string, args ...any) error {
		return &log.CorruptError{File: path, Offset: int64(off), Reason: fmt.Sprintf(format, args...)}
	}
	if len(data) < 1 {
		return nil, bad(0, "empty file")
	}
	if data[offMajor] != MajorVersion {
		return nil, bad(0, "Major version changed (%d != %d)", data[offMajor], MajorVersion)
	}
	if len(data) < BaseHeaderSize {
		return nil, bad(len(data), "file too small for the base header (%d < %d)", len(data), BaseHeaderSize)
	}
	h := decodeHeader(data)
	if h.Flags&HdrFlagCorrupted != 0 {
		return nil, bad(offFlags, "Header's corrupted flag is set")
	}
	if h.CompatFlags != 1 {
		return nil, bad(offCompatFlags, "CPU architecture changed (compat flags %#x)", h.CompatFlags)
	}
	if h.BaseHeaderSize < BaseHeaderSize || h.HeaderSize < uint32(h.BaseHeaderSize) {
		return nil, bad(offBaseHeaderSize, "Corrupted header sizes (base %d, full %d)", h.BaseHeaderSize, h.HeaderSize)
	}
	if uint64(h.HeaderSize) > uint64(len(data)) {
		return nil, bad(offHeaderSize, "Header size is larger than file (%d > %d)", h.HeaderSize, len(data))
	}
	if h.RecordSize < 8 {
		return nil, bad(offRecordSize, "record_size too small (%d < 8)", h.RecordSize)
	}
	recBytes := uint64(len(data)) - uint64(h.HeaderSize)
	if recBytes/uint64(h.RecordSize) < uint64(h.MessagesCount) {
		return nil, bad(len(data), "messages_count %d, but the file holds only %d records", h.MessagesCount, recBytes/uint64(h.RecordSize))
	}
	s := &state{
		base: slices.Clone(data[:h.BaseHeaderSize]),
		recs: recordsOf(int(h.RecordSize), data[h.HeaderSize:uint64(h.HeaderSize)+uint64(h.MessagesCount)*uint64(h.RecordSize)]),
	}
	if h.Minor < 3 {
		// pre-v2.2: the old unused fields are cleared (v1.x \Recent
		// flags are not supported)
		s.put(offUnusedOldSyncSize, 0)
		s.put(offLog2RotateTime, 0)
		s.put(offLastTempFileScan, 0)
	}
	// extensions start 8-aligned after the base header
	hdrEnd := int(h.HeaderSize)
	for off, i := pad8(int(h.BaseHeaderSize)), 0; off < hdrEnd; i++ {
		if off+extHeaderSize >= hdrEnd {
			return nil, bad(off, "Header extension #%d goes outside header", i)
		}
		b := data[off:]
		e := &ext{hdrSize: le.Uint32(b), resetID: le.Uint32(b[4:]), recOffset: le.Uint16(b[8:]),
			recSize: le.Uint16(b[10:]), recAlign: le.Uint16(b[12:])}
		nameSize := int(le.Uint16(b[14:]))
		hdrOff := off + pad8(extHeaderSize+nameSize)
		if hdrOff > hdrEnd {
			return nil, bad(off, "Header extension #%d goes outside header", i)
		}
		e.name = string(b[extHeaderSize : extHeaderSize+nameSize])
		end := uint64(hdrOff) + uint64(pad8(int(min(e.hdrSize, maxExtHdrSize+1))))
		if end > uint64(hdrEnd) || e.hdrSize > maxExtHdrSize {
			return nil, bad(off, "Header extension #%d (%s) goes outside header", i, e.name)
		}
		if reason := checkExtDef(e.name, e.hdrSize, e.recSize, e.recAlign); reason != "" {
			return nil, bad(off, "Broken extension #%d (%s): %s", i, e.name, reason)
		}
		if e.recSize != 0 && e.recOffset != 0 {
			switch {
			case int(e.recOffset)+int(e.recSize) > int(h.RecordSize):
				return nil, bad(off, "Broken extension #%d (%s): Record field points outside record size (%d+%d > %d)",
					i, e.name, e.recOffset, e.recSize, h.RecordSize)
			case e.recOffset%e.recAlign != 0:
				return nil, bad(off, "Broken extension #%d (%s): Record field alignment %d not used", i, e.name, e.recAlign)
			case h.RecordSize%uint32(e.recAlign) != 0:
				return nil, bad(off, "Broken extension #%d (%s): Record size not aligned by %d as required by extension",
					i, e.name, e.recAlign)
			}
		}
		if e.recSize != 0 && e.recOffset < 5 {
			return nil, bad(off, "Broken extension #%d (%s): record offset %d overlaps the base record", i, e.name, e.recOffset)
		}
		if s.extIndex(e.name) >= 0 {
			return nil, bad(off, "Duplicate header extension %s", e.name)
		}
		e.hdr = slices.Clone(data[hdrOff:end])
		s.exts = append(s.exts, e)
		off = int(end)
	}
	if reason := s.checkHeader(); reason != "" {
		return nil, bad(0, "%s", reason)
	}
	var reason string
	if s.kw, reason = parseKeywords(s.ext(ExtKeywords), nil); reason != "" {
		return nil, bad(0, "%s", reason)
	}
	if e := s.ext(ExtKeywords); e != nil && len(s.kw) > int(e.recSize)*8 {
		return nil, bad(0, "keywords extension records too small for %d keywords", len(s.kw))
	}
	if reason := s.checkRecords(); reason != "" {
		return nil, bad(int(h.HeaderSize), "%s", reason)
	}
	return s, nil
}

// encodeIndexFile returns dovecot.index for s, as mail_index_recreate
// writes it: the tail offset is set to the head offset.
func encodeIndexFile(s *state) []byte {
	return s.recs.appendTo(encodeIndexHeader(s))
}

// encodeIndexHeader is dovecot.index up to the records.
func encodeIndexHeader(s *state) []byte {
	out := slices.Clone(s.base)
	hs := s.headerSize()
	le.PutUint32(out[offHeaderSize:], uint32(hs))
	le.PutUint32(out[offRecordSize:], uint32(s.recs.size))
	le.PutUint32(out[offMessagesCount:], uint32(s.count()))
	le.PutUint32(out[offLogFileTailOffset:], le.Uint32(out[offLogFileHeadOffset:]))
	if len(s.exts) > 0 {
		for len(out)%8 != 0 {
			out = append(out, 0)
		}
	}
	// extension blocks, spec §2.2: the 16-byte header, the name, pad8,
	// the header data, pad8; then the records (§2.3)
	for _, e := range s.exts {
		start := len(out)
		out = le.AppendUint32(out, e.hdrSize)
		out = le.AppendUint32(out, e.resetID)
		out = le.AppendUint16(out, e.recOffset)
		out = le.AppendUint16(out, e.recSize)
		out = le.AppendUint16(out, e.recAlign)
		out = le.AppendUint16(out, uint16(len(e.name)))
		out = append(out, e.name...)
		for (len(out)-start)%8 != 0 {
			out = append(out, 0)
		}
		out = append(out, e.hdr[:pad8(int(e.hdrSize))]...)
	}
	return out
}

// writeIndexFile writes dovecot.index as Dovecot does: PATH.tmp, fsync
// (unless FsyncNever), rename; then the directory is synced.
func writeIndexFile(path string, s *state, mode formats.FsyncMode) (err error) {
	tmp := path + ".tmp"
	perm := log.CreateMode(filepath.Dir(path))
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		// stale temp file: unlink and recreate rather than overwrite
		if err := os.Remove(tmp); err != nil {
			return err
		}
		f, err = os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	}
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// A large index's records go chunk by chunk, not through one more
	// copy of them in memory; a small index in one write.
	hdr := encodeIndexHeader(s)
	if s.recs.n*s.recs.size <= 64<<10 {
		_, err = f.Write(s.recs.appendTo(hdr))
	} else {
		_, err = f.Write(hdr)
		for _, c := range s.recs.chunks {
			if err == nil {
				_, err = f.Write(c.b)
			}
		}
	}
	if err != nil {
		return err
	}
	if mode != formats.FsyncNever {
		if err = f.Sync(); err != nil {
			return err
		}
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	if mode != formats.FsyncNever {
		return syncDir(filepath.Dir(path))
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, syscall.EINVAL) {
		err = nil
	}
	return errors.Join(err, d.Close())
}
