package index

import (
	"bufio"
	"encoding/hex"

	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index/log"
)

// Dump writes a human-readable description of path: a dovecot.index (or
// map index), a dovecot.index.log[.2], or a directory holding an index,
// whose replayed state (what Dovecot sees) is shown. Header fields are
// named as doveadm dump names them, times are UTC, records show their
// file offsets and decoded payloads. A corrupted file is dumped as far as
// it can be read, followed by a "CORRUPTED" line; the error is then a
// *log.CorruptError.
func Dump(w io.Writer, path string) error {
	bw := bufio.NewWriter(w)
	err := dump(bw, path)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

func dump(w *bufio.Writer, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return dumpDir(w, path)
	}
	if strings.HasSuffix(path, ".cache") {
		return formats.Errorf(formats.KindParams, "index dump: %s: dovecot.index.cache is not read by boxsync (use doveadm dump)", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	switch {
	case len(data) > 0 && data[0] == MajorVersion:
		return dumpIndex(w, path, data)
	case len(data) > 0 && data[0] == log.MajorVersion:
		return dumpLog(w, path, data)
	}
	return formats.Errorf(formats.KindParams, "index dump: %s: not a Dovecot index or transaction log", path)
}

func stamp(v uint32) string {
	if v == 0 || v == 0xffffffff {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%d (%s)", v, time.Unix(int64(v), 0).UTC().Format("2006-01-02 15:04:05 UTC"))
}

// field prints "name ...... = value" with doveadm dump's dot leaders.
func field(w io.Writer, width int, name string, format string, args ...any) {
	pad := width - len(name)
	leader := ""
	if pad >= 1 {
		leader = " " + strings.Repeat(".", pad-1)
	}
	fmt.Fprintf(w, "%s%s = %s\n", name, leader, fmt.Sprintf(format, args...))
}

func flagsString(f uint8) string {
	if f == 0 {
		return "0x00"
	}
	return fmt.Sprintf("0x%02x (%s)", f, FlagNames(f))
}

func dumpIndex(w *bufio.Writer, path string, data []byte) error {
	fmt.Fprintf(w, "# %s: Dovecot mail index, %d bytes\n", filepath.Base(path), len(data))
	if len(data) < BaseHeaderSize {
		fmt.Fprintf(w, "CORRUPTED: file too small for the base header\n")
		return &log.CorruptError{File: path, Offset: int64(len(data)), Reason: "file too small for the base header"}
	}
	h := decodeHeader(data)
	fmt.Fprintf(w, "-- HEADER --\n")
	const fw = 28
	field(w, fw, "version", "%d.%d", h.Major, h.Minor)
	field(w, fw, "base header size", "%d", h.BaseHeaderSize)
	field(w, fw, "header size", "%d", h.HeaderSize)
	field(w, fw, "record size", "%d", h.RecordSize)
	field(w, fw, "compat flags", "%d", h.CompatFlags)
	field(w, fw, "index id", "%s", stamp(h.IndexID))
	field(w, fw, "flags", "%d", h.Flags)
	field(w, fw, "uid validity", "%s", stamp(h.UIDValidity))
	field(w, fw, "next uid", "%d", h.NextUID)
	field(w, fw, "messages count", "%d", h.MessagesCount)
	field(w, fw, "seen messages count", "%d", h.SeenMessagesCount)
	field(w, fw, "deleted messages count", "%d", h.DeletedMessagesCount)
	field(w, fw, "first recent uid", "%d", h.FirstRecentUID)
	field(w, fw, "first unseen uid lowwater", "%d", h.FirstUnseenUIDLowwater)
	field(w, fw, "first deleted uid lowwater", "%d", h.FirstDeletedUIDLowwater)
	field(w, fw, "log file seq", "%d", h.LogFileSeq)
	field(w, fw, "log file tail offset", "%d", h.LogFileTailOffset)
	field(w, fw, "log file head offset", "%d", h.LogFileHeadOffset)
	field(w, fw, "log2 rotate time", "%s", stamp(h.Log2RotateTime))
	field(w, fw, "last temp file scan", "%s", stamp(h.LastTempFileScan))
	field(w, fw, "day stamp", "%s", stamp(h.DayStamp))
	field(w, fw, "day first uid", "%v", h.DayFirstUID)

	// extensions, read leniently so that a broken file still shows
	hdrEnd := min(int(h.HeaderSize), len(data))
	var exts []*ext
	for off, i := pad8(int(h.BaseHeaderSize)), 0; off+extHeaderSize <= hdrEnd; i++ {
		b := data[off:]
		e := &ext{hdrSize: le.Uint32(b), resetID: le.Uint32(b[4:]), recOffset: le.Uint16(b[8:]),
			recSize: le.Uint16(b[10:]), recAlign: le.Uint16(b[12:])}
		nameSize := int(le.Uint16(b[14:]))
		hdrOff := off + pad8(extHeaderSize+nameSize)
		if hdrOff > hdrEnd {
			fmt.Fprintf(w, "-- EXTENSION %d at offset %d: name goes outside the header\n", i, off)
			break
		}
		e.name = string(b[extHeaderSize : extHeaderSize+nameSize])
		fmt.Fprintf(w, "-- EXTENSION %d at offset %d --\n", i, off)
		const ew = 14
		field(w, ew, "name", "%s", e.name)
		field(w, ew, "hdr_size", "%d", e.hdrSize)
		field(w, ew, "reset_id", "%d", e.resetID)
		field(w, ew, "record_offset", "%d", e.recOffset)
		field(w, ew, "record_size", "%d", e.recSize)
		field(w, ew, "record_align", "%d", e.recAlign)
		end := uint64(hdrOff) + uint64(pad8(int(min(e.hdrSize, 1<<30))))
		if end > uint64(hdrEnd) {
			fmt.Fprintf(w, "header ....... = goes outside the header (%d > %d)\n", end, hdrEnd)
			break
		}
		e.hdr = data[hdrOff:end]
		if e.hdrSize > 0 {
			dumpExtHdr(w, e.name, e.hdr[:e.hdrSize])
		}
		exts = append(exts, e)
		off = int(end)
	}
	var kw []string
	for _, e := range exts {
		if e.name == ExtKeywords {
			var reason string
			if kw, reason = parseKeywords(e, nil); reason != "" {
				fmt.Fprintf(w, "-- KEYWORDS: %s\n", reason)
			}
		}
	}
	if len(kw) > 0 {
		fmt.Fprintf(w, "-- KEYWORDS --\n")
		for i, k := range kw {
			fmt.Fprintf(w, "%3d = %s\n", i, k)
		}
	}
	// records
	if h.RecordSize >= 8 && uint64(h.HeaderSize) <= uint64(len(data)) {
		n := min(uint64(h.MessagesCount), (uint64(len(data))-uint64(h.HeaderSize))/uint64(h.RecordSize))
		fmt.Fprintf(w, "-- RECORDS: %d --\n", n)
		for i := uint64(0); i < n; i++ {
			off := uint64(h.HeaderSize) + i*uint64(h.RecordSize)
			rec := data[off : off+uint64(h.RecordSize)]
			fmt.Fprintf(w, "RECORD: seq=%d, uid=%d, flags=%s\n", i+1, le.Uint32(rec), flagsString(rec[4]))
			for _, e := range exts {
				if e.recSize == 0 || int(e.recOffset)+int(e.recSize) > len(rec) {
					continue
				}
				dumpExtRec(w, e.name, rec[e.recOffset:int(e.recOffset)+int(e.recSize)], kw)
			}
		}
	}
	if _, err := parseIndexFile(path, data); err != nil {
		fmt.Fprintf(w, "CORRUPTED: %v\n", err)
		return err
	}
	return nil
}

// dumpExtHdr decodes the headers of the extensions Dovecot 2.3 uses.
func dumpExtHdr(w io.Writer, name string, h []byte) {
	fmt.Fprintf(w, "header ....... = %s\n", hexZeros(h))
	switch name {
	case ExtDboxHdr:
		if d, ok := decodeDboxHdr(h); ok {
			fmt.Fprintf(w, " - rebuild_count = %d\n - mailbox_guid . = %x\n - flags ....... = %#x\n", d.RebuildCount, d.MailboxGUID, d.Flags)
		}
	case ExtMdboxHdr:
		if d, ok := decodeMdboxHdr(h); ok {
			fmt.Fprintf(w, " - map_uid_validity = %d\n - mailbox_guid ... = %x\n - flags .......... = %#x\n", d.MapUIDValidity, d.MailboxGUID, d.Flags)
		}
	case ExtModSeq:
		if d, ok := decodeModSeqHdr(h); ok {
			fmt.Fprintf(w, " - highest_modseq = %d\n - log_seq ...... = %d\n - log_offset ... = %d\n", d.HighestModSeq, d.LogSeq, d.LogOffset)
		}
	case ExtMap:
		if d, ok := decodeMapHdr(h); ok {
			fmt.Fprintf(w, " - highest_file_id = %d\n - rebuild_count . = %d\n", d.HighestFileID, d.RebuildCount)
		}
	case ExtMaildir:
		if d, ok := decodeMaildirHdr(h); ok {
			fmt.Fprintf(w, " - new_check_time = %s\n - new_mtime = %s (+%dns)\n - cur_check_time = %s\n - cur_mtime = %s (+%dns)\n - uidlist_mtime = %s (+%dns)\n - uidlist_size = %d\n",
				stamp(d.NewCheckTime), stamp(d.NewMtime), d.NewMtimeNsecs, stamp(d.CurCheckTime), stamp(d.CurMtime), d.CurMtimeNsecs,
				stamp(d.UIDListMtime), d.UIDListMtimeNsecs, d.UIDListSize)
		}
	case ExtPop3UIDL:
		if len(h) >= 4 {
			fmt.Fprintf(w, " - max_uid_with_pop3_uidl = %d\n", le.Uint32(h))
		}
	case ExtHdrVSize:
		if len(h) >= 16 {
			fmt.Fprintf(w, " - vsize ....... = %d\n - highest uid . = %d\n - message count = %d\n", le.Uint64(h), le.Uint32(h[8:]), le.Uint32(h[12:]))
		}
	case ExtMbox:
		if len(h) >= 32 {
			fmt.Fprintf(w, " - sync_size = %d\n - sync_mtime = %s\n - dirty = %d\n - mailbox_guid = %x\n", le.Uint64(h), stamp(le.Uint32(h[8:])), h[12], h[16:32])
		}
	case ExtRenameStamp:
		if len(h) >= 4 {
			fmt.Fprintf(w, " - last_rename_stamp = %s\n", stamp(le.Uint32(h)))
		}
	}
}

// dumpExtRec decodes one record extension value.
func dumpExtRec(w io.Writer, name string, r []byte, kw []string) {
	x := hex.EncodeToString(r)
	switch {
	case name == ExtKeywords:
		var names []string
		for k := range kw {
			if k/8 < len(r) && r[k/8]&(1<<(k%8)) != 0 {
				names = append(names, kw[k])
			}
		}
		fmt.Fprintf(w, " - %-9s: %s (%s)\n", name, strings.Join(names, " "), x)
	case name == ExtModSeq && len(r) == 8:
		fmt.Fprintf(w, " - %-9s: %d\n", name, le.Uint64(r))
	case name == ExtMdbox && len(r) == 8:
		fmt.Fprintf(w, " - %-9s: map_uid=%d save_date=%s\n", name, le.Uint32(r), stamp(le.Uint32(r[4:])))
	case name == ExtMap && len(r) == 12:
		fmt.Fprintf(w, " - %-9s: file_id=%d offset=%d size=%d\n", name, le.Uint32(r), le.Uint32(r[4:]), le.Uint32(r[8:]))
	case name == ExtGUID && len(r) == 16:
		fmt.Fprintf(w, " - %-9s: %s\n", name, x)
	case len(r) == 2:
		fmt.Fprintf(w, " - %-9s: %d (%s)\n", name, le.Uint16(r), x)
	case len(r) == 4:
		fmt.Fprintf(w, " - %-9s: %d (%s)\n", name, le.Uint32(r), x)
	case len(r) == 8:
		fmt.Fprintf(w, " - %-9s: %d (%s)\n", name, le.Uint64(r), x)
	default:
		fmt.Fprintf(w, " - %-9s: %s\n", name, x)
	}
}

func dumpLog(w *bufio.Writer, path string, data []byte) error {
	fmt.Fprintf(w, "# %s: Dovecot transaction log, %d bytes\n", filepath.Base(path), len(data))
	f, err := log.Parse(path, data)
	if err != nil {
		fmt.Fprintf(w, "CORRUPTED: %v\n", err)
		return err
	}
	hd := f.Hdr
	fmt.Fprintf(w, "-- LOG HEADER --\n")
	const fw = 15
	field(w, fw, "version", "%d.%d", hd.Major, hd.Minor)
	field(w, fw, "hdr size", "%d", hd.HdrSize)
	field(w, fw, "index id", "%s", stamp(hd.IndexID))
	field(w, fw, "file seq", "%d", hd.FileSeq)
	field(w, fw, "prev file", "%d/%d", hd.PrevFileSeq, hd.PrevFileOffset)
	field(w, fw, "create stamp", "%s", stamp(hd.CreateStamp))
	field(w, fw, "initial modseq", "%d", hd.InitialModSeq)
	field(w, fw, "compat flags", "%d", hd.CompatFlags)

	// extension names by id (the index's extension order), as far as they
	// can be known: a log that starts an index knows them all
	var extNames []string
	if hd.PrevFileSeq != 0 {
		if ix, err := os.ReadFile(filepath.Join(filepath.Dir(path), strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".2"), ".log"))); err == nil {
			if st, err := parseIndexFile(path, ix); err == nil && st.get(offLogFileSeq) <= hd.FileSeq {
				for _, e := range st.exts {
					extNames = append(extNames, e.name)
				}
			}
		}
	}
	known := func(name string) {
		for _, n := range extNames {
			if n == name {
				return
			}
		}
		extNames = append(extNames, name)
	}
	curExt := ""
	r := f.NewReader()
	m := r.ModSeq()
	for {
		rec, pos, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintf(w, "CORRUPTED: %v\n", err)
			return err
		}
		size := r.Offset() - pos.Offset
		fmt.Fprintf(w, "record: offset=%d, type=%s%s, size=%d", pos.Offset, rec.Type(), log.FlagsOf(rec), size)
		if r.ModSeq() != m {
			m = r.ModSeq()
			fmt.Fprintf(w, ", modseq=%d", m)
		}
		fmt.Fprintln(w)
		switch rec := rec.(type) {
		case *log.ExtIntro:
			if rec.ExtID == log.ExtIDNamed {
				curExt = rec.Name
				known(rec.Name)
			} else if int(rec.ExtID) < len(extNames) {
				curExt = extNames[rec.ExtID]
			} else {
				curExt = ""
			}
		case *log.KeywordUpdate:
			known(ExtKeywords)
		}
		dumpRecord(w, rec, curExt)
	}
	if g := f.Garbage(); g > 0 {
		fmt.Fprintf(w, "-- %d bytes of an incomplete transaction at offset %d: ignored (the next writer truncates them) --\n", g, f.End)
	}
	tail, err := f.Tail(0)
	if err != nil {
		fmt.Fprintf(w, "CORRUPTED: %v\n", err)
		return err
	}
	fmt.Fprintf(w, "-- END: offset %d, modseq %d, tail offset %d --\n", f.End, m, tail)
	return nil
}

func uidRangesString(rs []log.UIDRange) string {
	var b strings.Builder
	for i, x := range rs {
		if i > 0 {
			b.WriteString(",")
		}
		if x.UID1 == x.UID2 {
			fmt.Fprintf(&b, "%d", x.UID1)
		} else {
			fmt.Fprintf(&b, "%d-%d", x.UID1, x.UID2)
		}
	}
	return b.String()
}

// dumpHdrChange names the base header fields a HEADER_UPDATE writes.
func dumpHdrChange(w io.Writer, c log.HdrChange) {
	off, d := int(c.Offset), c.Data
	fmt.Fprintf(w, " - offset=%d, size=%d: %s", off, len(d), hex.EncodeToString(d))
	var names []string
	for _, f := range headerFields {
		if f.off >= off && f.off+f.size <= off+len(d) {
			b := d[f.off-off:]
			var v uint32
			switch f.size {
			case 1:
				v = uint32(b[0])
			case 2:
				v = uint32(le.Uint16(b))
			default:
				v = le.Uint32(b)
			}
			if f.time {
				names = append(names, fmt.Sprintf("%s = %s", f.name, stamp(v)))
			} else {
				names = append(names, fmt.Sprintf("%s = %d", f.name, v))
			}
		}
	}
	if len(names) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(names, ", "))
	}
	fmt.Fprintln(w)
}

func dumpRecord(w io.Writer, rec log.Record, curExt string) {
	switch r := rec.(type) {
	case *log.Expunge:
		fmt.Fprintf(w, " - uids=%s\n", uidRangesString(r.Ranges))
	case *log.ExpungeGUID:
		for _, e := range r.Entries {
			fmt.Fprintf(w, " - uid=%d, guid=%x\n", e.UID, e.GUID)
		}
	case *log.Append:
		for _, a := range r.Recs {
			fmt.Fprintf(w, " - uid=%d, flags=%s\n", a.UID, flagsString(a.Flags))
		}
	case *log.FlagUpdate:
		for _, c := range r.Changes {
			fmt.Fprintf(w, " - uids=%d-%d, add=%s, remove=%s, modseq_inc_flag=%d\n", c.UID1, c.UID2,
				flagsString(c.Add), flagsString(c.Remove), c.ModSeqInc)
		}
	case *log.HeaderUpdate:
		for _, c := range r.Changes {
			dumpHdrChange(w, c)
		}
	case *log.ExtIntro:
		id := fmt.Sprint(r.ExtID)
		if r.ExtID == log.ExtIDNamed {
			id = "-1 (by name)"
		} else if curExt != "" {
			id += " (" + curExt + ")"
		}
		flags := fmt.Sprint(r.IntroFlags)
		if r.IntroFlags&log.IntroNoShrink != 0 {
			flags += " (no-shrink)"
		}
		name := ""
		if r.Name != "" {
			name = fmt.Sprintf("name=%q, ", r.Name)
		}
		fmt.Fprintf(w, " - %sext_id=%s, reset_id=%d, hdr_size=%d, record_size=%d, record_align=%d, flags=%s\n",
			name, id, r.ResetID, r.HdrSize, r.RecordSize, r.RecordAlign, flags)
	case *log.ExtReset:
		fmt.Fprintf(w, " - new_reset_id = %d\n - preserve_data = %t\n", r.NewResetID, r.PreserveData)
	case *log.ExtHdrUpdate:
		for _, c := range r.Changes {
			fmt.Fprintf(w, " - %s offset=%d, size=%d: %s\n", extLabel(curExt), c.Offset, len(c.Data), hex.EncodeToString(c.Data))
			if c.Offset == 0 && curExt != "" {
				var b strings.Builder
				dumpExtHdr(&b, curExt, c.Data)
				if _, decoded, ok := strings.Cut(b.String(), "\n"); ok && decoded != "" {
					fmt.Fprint(w, "  "+strings.ReplaceAll(strings.TrimSuffix(decoded, "\n"), "\n", "\n  ")+"\n")
				}
			}
		}
	case *log.ExtRecUpdate:
		if r.Recs == nil {
			fmt.Fprintf(w, " - %s (record size unknown): %s\n", extLabel(curExt), hex.EncodeToString(r.Raw))
		}
		for _, e := range r.Recs {
			var b strings.Builder
			dumpExtRec(&b, curExt, e.Data, nil)
			fmt.Fprintf(w, " - uid=%d: %s", e.UID, strings.TrimLeft(strings.TrimPrefix(b.String(), " - "+fmt.Sprintf("%-9s", curExt)+":"), " "))
		}
	case *log.ExtAtomicInc:
		for _, x := range r.Incs {
			fmt.Fprintf(w, " - %s uid=%d, diff=%+d\n", extLabel(curExt), x.UID, x.Diff)
		}
	case *log.KeywordUpdate:
		op := "add"
		if r.Remove {
			op = "remove"
		}
		fmt.Fprintf(w, " - %s %q, uids=%s\n", op, r.Name, uidRangesString(r.Ranges))
	case *log.KeywordReset:
		fmt.Fprintf(w, " - uids=%s\n", uidRangesString(r.Ranges))
	case *log.ModSeqUpdate:
		for _, e := range r.Entries {
			if e.UID == 0 {
				fmt.Fprintf(w, " - highest modseq >= %d\n", e.ModSeq)
			} else {
				fmt.Fprintf(w, " - uid=%d, modseq >= %d\n", e.UID, e.ModSeq)
			}
		}
	case *log.Boundary:
		fmt.Fprintf(w, " - size=%d\n", r.Size)
	case *log.AttributeUpdate:
		for _, c := range r.Changes {
			op, typ := "-", "shared"
			if c.Set {
				op = "+"
			}
			if c.Private {
				typ = "private"
			}
			fmt.Fprintf(w, " - %s%s %q, timestamp=%s", op, typ, c.Key, stamp(c.Timestamp))
			if c.Set {
				fmt.Fprintf(w, ", value_len=%d", c.ValueLen)
			}
			fmt.Fprintln(w)
		}
	case *log.Unknown:
		fmt.Fprintf(w, " - payload=%s\n", hex.EncodeToString(r.Payload))
	}
}

// hexZeros is hex with a long run of trailing zero bytes abbreviated.
func hexZeros(b []byte) string {
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	if len(b)-n <= 8 {
		return hex.EncodeToString(b)
	}
	return fmt.Sprintf("%s + %d zero bytes", hex.EncodeToString(b[:n]), len(b)-n)
}

func extLabel(name string) string {
	if name == "" {
		return "(unknown ext)"
	}
	return "(" + name + ")"
}

// dumpDir shows the replayed state of the index in dir.
func dumpDir(w *bufio.Writer, dir string) error {
	prefix := Prefix
	if _, err := os.Stat(filepath.Join(dir, Prefix+".log")); err != nil {
		if _, err := os.Stat(filepath.Join(dir, Prefix)); err != nil {
			prefix = MapPrefix
		}
	}
	ix, err := Open(dir, prefix, nil)
	if err != nil {
		fmt.Fprintf(w, "CORRUPTED: %v\n", err)
		return err
	}
	v, err := ix.View()
	if err != nil {
		return err
	}
	return v.dump(w, prefix)
}

// dump writes the view: the state Dovecot reads from the files.
func (v *View) dump(w io.Writer, prefix string) error {
	h := v.Header()
	fmt.Fprintf(w, "# %s: index state after replaying the log (what Dovecot sees)\n", prefix)
	const fw = 16
	field(w, fw, "index id", "%s", stamp(h.IndexID))
	field(w, fw, "uid validity", "%s", stamp(h.UIDValidity))
	field(w, fw, "next uid", "%d", h.NextUID)
	field(w, fw, "messages", "%d", v.Count())
	field(w, fw, "highest modseq", "%d", v.HighestModSeq())
	field(w, fw, "log position", "%s", v.LogPos())
	field(w, fw, "seen / deleted", "%d / %d", h.SeenMessagesCount, h.DeletedMessagesCount)
	field(w, fw, "first recent", "%d", h.FirstRecentUID)
	if v.Deleted() {
		fmt.Fprintf(w, "mailbox is marked deleted\n")
	}
	var names []string
	for _, e := range v.Extensions() {
		s := e.Name
		if e.RecordSize > 0 {
			s += fmt.Sprintf("[%d@%d]", e.RecordSize, e.RecordOffset)
		}
		names = append(names, s)
	}
	field(w, fw, "extensions", "%s (record size %d)", strings.Join(names, " "), h.RecordSize)
	if kw := v.Keywords(); len(kw) > 0 {
		field(w, fw, "keywords", "%s", strings.Join(kw, " "))
	}
	for i, m := range v.Messages() {
		fmt.Fprintf(w, "uid=%d flags=%s modseq=%d", m.UID, flagsString(m.Flags), m.ModSeq)
		if len(m.Keywords) > 0 {
			fmt.Fprintf(w, " keywords=%s", strings.Join(m.Keywords, ","))
		}
		if g, ok := v.GUID(i); ok {
			fmt.Fprintf(w, " guid=%x", g)
		}
		if r, ok := v.MdboxRec(i); ok {
			fmt.Fprintf(w, " map_uid=%d", r.MapUID)
		}
		if r, ok := v.MapRec(i); ok {
			fmt.Fprintf(w, " file=%d offset=%d size=%d", r.FileID, r.Offset, r.Size)
		}
		if n, ok := v.RefCount(i); ok {
			fmt.Fprintf(w, " refcount=%d", n)
		}
		fmt.Fprintln(w)
	}
	return nil
}
