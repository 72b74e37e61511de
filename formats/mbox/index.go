package mbox

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// Dovecot keeps an mbox mailbox's GUID only in its index, in the header
// of the "mbox" extension (dovecot 2.3.19.1 mbox-storage.h struct
// mbox_index_header: u64 sync_size, u32 sync_mtime, u8 dirty_flag,
// u8[3] unused, guid_128_t mailbox_guid; 32 bytes). This file reads that
// GUID (and the UIDVALIDITY and next UID of an mbox file that has no
// X-IMAPbase yet, and first_recent_uid) from dovecot.index and
// dovecot.index.log, and writes a
// minimal dovecot.index.log holding them for a mailbox boxsync creates.
// Nothing else of the index is read or written.

const (
	indexName    = "dovecot.index"
	indexLogName = "dovecot.index.log"
	mboxExt      = "mbox"
	mboxHdrSize  = 32
	guidOffset   = 16 // in the mbox extension header
	baseUIDValid = 24 // in the index base header
	baseNextUID  = 28
	// baseFirstRecent is first_recent_uid (dovecot 2.3.19.1
	// mail-index.h struct mail_index_header).
	baseFirstRecent = 48
)

// indexInfo is what boxsync takes from a Dovecot index.
type indexInfo struct {
	guid        formats.GUID
	uidValidity uint32
	nextUID     uint32
	// firstRecent is the index header's first_recent_uid: Dovecot's
	// sessions count no message below it \Recent.
	firstRecent uint32
}

// readIndex reads dir's index files; a missing or unreadable index gives
// the zero value: Dovecot rebuilds such an index from the mbox too.
func readIndex(dir string) indexInfo {
	var info indexInfo
	var names []string // extension names by ext_id
	var mboxHdr [mboxHdrSize]byte
	if data, err := readIndexHeader(filepath.Join(dir, indexName)); err == nil {
		names = parseIndexFile(data, &info, mboxHdr[:])
	}
	if data, err := os.ReadFile(filepath.Join(dir, indexLogName)); err == nil {
		parseIndexLog(data, names, &info, mboxHdr[:])
	}
	copy(info.guid[:], mboxHdr[guidOffset:])
	return info
}

// readIndexHeader reads the header of dovecot.index (base and extension
// headers, header_size bytes), not its records.
func readIndexHeader(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var head [8]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return nil, err
	}
	// header_size is a u32; a corrupt one is capped so that a bad file
	// can't make us allocate much (parseIndexFile rejects it anyway).
	size := min(int64(binary.LittleEndian.Uint32(head[4:])), 1<<20)
	data := make([]byte, max(size, 8))
	copy(data, head[:])
	n, err := io.ReadFull(f, data[8:])
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return data[:8+n], nil
	}
	return data, err
}

func parseIndexFile(data []byte, info *indexInfo, mboxHdr []byte) []string {
	le := binary.LittleEndian
	if len(data) < 120 || data[0] != 7 || data[12] != 1 {
		return nil
	}
	baseSize := int(le.Uint16(data[2:]))
	hdrSize := int(le.Uint32(data[4:]))
	if baseSize < 120 || hdrSize > len(data) || hdrSize < baseSize {
		return nil
	}
	info.uidValidity = le.Uint32(data[baseUIDValid:])
	info.nextUID = le.Uint32(data[baseNextUID:])
	info.firstRecent = le.Uint32(data[baseFirstRecent:])
	var names []string
	off := pad8(baseSize)
	for off+16 <= hdrSize {
		extHdr := int(le.Uint32(data[off:]))
		nameSize := int(le.Uint16(data[off+14:]))
		nameOff := off + 16
		if nameOff+nameSize > hdrSize {
			break
		}
		name := string(data[nameOff : nameOff+nameSize])
		hdrOff := pad8(nameOff + nameSize)
		if extHdr < 0 || hdrOff+extHdr > hdrSize {
			break
		}
		names = append(names, name)
		if name == mboxExt {
			copy(mboxHdr, data[hdrOff:hdrOff+min(extHdr, mboxHdrSize)])
		}
		off = pad8(hdrOff + extHdr)
	}
	return names
}

func pad8(n int) int { return (n + 7) &^ 7 }
func pad4(n int) int { return (n + 3) &^ 3 }

// Log record types (dovecot-storage.md §2.6.3).
const (
	logHeaderUpdate   = 0x00020
	logExtIntro       = 0x00040
	logExtHdrUpdate   = 0x00100
	logExtHdrUpdate32 = 0x10000
	logBoundary       = 0x80000
	logTypeMask       = 0x0fffffff
	logExternal       = 0x10000000
)

func decodeLogSize(b []byte) int {
	if b[0]&0x80 == 0 || b[1]&0x80 == 0 || b[2]&0x80 == 0 || b[3]&0x80 == 0 {
		return 0
	}
	v := int(b[0]&0x7f)<<21 | int(b[1]&0x7f)<<14 | int(b[2]&0x7f)<<7 | int(b[3]&0x7f)
	return v * 4
}

func encodeLogSize(n int) [4]byte {
	v := n / 4
	return [4]byte{0x80 | byte(v>>21&0x7f), 0x80 | byte(v>>14&0x7f), 0x80 | byte(v>>7&0x7f), 0x80 | byte(v&0x7f)}
}

// parseIndexLog applies the log's header updates (UIDVALIDITY, next UID)
// and the mbox extension's header updates.
func parseIndexLog(data []byte, names []string, info *indexInfo, mboxHdr []byte) {
	le := binary.LittleEndian
	if len(data) < 24 || data[0] != 1 {
		return
	}
	off := int(le.Uint16(data[2:]))
	cur := "" // the extension the last intro named
	for off+8 <= len(data) {
		size := decodeLogSize(data[off:])
		if size < 8 || off+size > len(data) {
			return // unfinished transaction or garbage
		}
		typ := le.Uint32(data[off+4:]) & logTypeMask
		p := data[off+8 : off+size]
		off += size
		switch {
		case typ == logHeaderUpdate:
			for len(p) >= 4 {
				o, n := int(le.Uint16(p)), int(le.Uint16(p[2:]))
				if 4+n > len(p) {
					break
				}
				v := p[4 : 4+n]
				var hdr [120]byte
				le.PutUint32(hdr[baseUIDValid:], info.uidValidity)
				le.PutUint32(hdr[baseNextUID:], info.nextUID)
				le.PutUint32(hdr[baseFirstRecent:], info.firstRecent)
				if o+n <= len(hdr) {
					copy(hdr[o:], v)
					info.uidValidity = le.Uint32(hdr[baseUIDValid:])
					if nu := le.Uint32(hdr[baseNextUID:]); nu > info.nextUID {
						info.nextUID = nu
					}
					// Raised only, as Dovecot's
					// index_sync_update_recent_count expects.
					if fr := le.Uint32(hdr[baseFirstRecent:]); fr > info.firstRecent {
						info.firstRecent = fr
					}
				}
				p = p[pad4(4+n):]
			}
		case typ == logExtIntro:
			if len(p) < 20 {
				continue
			}
			extID := le.Uint32(p)
			nameSize := int(le.Uint16(p[18:]))
			if nameSize > 0 && 20+nameSize <= len(p) {
				cur = string(p[20 : 20+nameSize])
				found := false
				for _, n := range names {
					found = found || n == cur
				}
				if !found {
					names = append(names, cur)
				}
			} else if int(extID) < len(names) {
				cur = names[extID]
			} else {
				cur = ""
			}
		case typ == logExtHdrUpdate || typ == logExtHdrUpdate32:
			if cur != mboxExt {
				continue
			}
			for {
				var o, n, h int
				if typ == logExtHdrUpdate {
					if len(p) < 4 {
						break
					}
					o, n, h = int(le.Uint16(p)), int(le.Uint16(p[2:])), 4
				} else {
					if len(p) < 8 {
						break
					}
					o, n, h = int(le.Uint32(p)), int(le.Uint32(p[4:])), 8
				}
				if n < 0 || h+n > len(p) {
					break
				}
				if o >= 0 && o+n <= len(mboxHdr) {
					copy(mboxHdr[o:], p[h:h+n])
				}
				p = p[pad4(h+n):]
			}
		}
	}
}

// writeIndexLog creates dir/dovecot.index.log for a new mailbox: one
// transaction that introduces the "mbox" extension with the mailbox GUID
// and sets UIDVALIDITY, as Dovecot's own first transaction does. Dovecot
// finds sync_size 0 and syncs the mbox file into the index on first use,
// keeping the GUID. An existing index is replaced (it belonged to a
// mailbox of the same name that is gone).
func writeIndexLog(dir string, guid formats.GUID, uidValidity uint32, sync bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, n := range []string{indexName, indexName + ".cache", indexLogName + ".2"} {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	le := binary.LittleEndian
	now := uint32(time.Now().Unix())
	var b []byte
	// Log header (40 bytes).
	hdr := make([]byte, 40)
	hdr[0], hdr[1] = 1, 3
	le.PutUint16(hdr[2:], 40)
	le.PutUint32(hdr[4:], now) // indexid
	le.PutUint32(hdr[8:], 1)   // file_seq
	le.PutUint32(hdr[20:], now)
	le.PutUint64(hdr[24:], 1) // initial_modseq
	hdr[32] = 1               // compat: little endian
	b = append(b, hdr...)
	rec := func(typ uint32, payload []byte) []byte {
		payload = append(payload, make([]byte, pad4(len(payload))-len(payload))...)
		size := encodeLogSize(8 + len(payload))
		r := append(size[:], 0, 0, 0, 0)
		le.PutUint32(r[4:], typ|logExternal)
		return append(r, payload...)
	}
	intro := make([]byte, 20, 24)
	le.PutUint32(intro[0:], 0xffffffff) // named intro
	le.PutUint32(intro[8:], mboxHdrSize)
	le.PutUint16(intro[12:], 8) // record_size (Dovecot's: u64 offset)
	le.PutUint16(intro[14:], 8) // record_align
	le.PutUint16(intro[18:], uint16(len(mboxExt)))
	intro = append(intro, mboxExt...)
	extHdr := make([]byte, 4+mboxHdrSize)
	le.PutUint16(extHdr[0:], 0)
	le.PutUint16(extHdr[2:], mboxHdrSize)
	copy(extHdr[4+guidOffset:], guid[:])
	hdrUpd := make([]byte, 8)
	le.PutUint16(hdrUpd[0:], baseUIDValid)
	le.PutUint16(hdrUpd[2:], 4)
	le.PutUint32(hdrUpd[4:], uidValidity)
	var tx []byte
	tx = append(tx, rec(logExtIntro, intro)...)
	tx = append(tx, rec(logExtHdrUpdate, extHdr)...)
	tx = append(tx, rec(logHeaderUpdate, hdrUpd)...)
	boundary := make([]byte, 4)
	le.PutUint32(boundary, uint32(12+len(tx)))
	b = append(b, rec(logBoundary, boundary)...)
	b = append(b, tx...)
	return writeFileAtomic(filepath.Join(dir, indexLogName), b, 0o600, sync)
}

// writeFileAtomic writes data to a temporary file next to path and
// renames it over path.
func writeFileAtomic(path string, data []byte, mode os.FileMode, sync bool) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".boxsync-*.lock")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if sync {
		if err = tmp.Sync(); err != nil {
			return err
		}
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if sync {
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
	return errors.Join(err, d.Close())
}

// forceFullSync tells a Dovecot that indexed this mailbox that boxsync
// rewrote the file. Dovecot decides by the size and mtime its index
// recorded (mbox-sync.c mbox_sync_do): a different size means "messages
// were only appended or expunged", and it seeks to the offsets it knows,
// logging "Next message unexpectedly corrupted" when they moved. The same
// size with another mtime makes it reread the whole file. So one
// transaction is appended to dovecot.index.log (under its fcntl lock, as
// Dovecot writes it) that sets the mbox extension's sync_size to the new
// size and sync_mtime to a time the file doesn't have. A log boxsync
// can't append to safely is replaced by a fresh one (Dovecot then indexes
// the mailbox anew; modseqs, which mbox keeps only there, start over).
func forceFullSync(dir string, size int64, guid formats.GUID, uidValidity uint32, sync bool) error {
	if dir == "" {
		return nil
	}
	path := filepath.Join(dir, indexLogName)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, indexName)); errors.Is(err, fs.ErrNotExist) {
			return nil // no index: nothing to tell
		}
		return writeIndexLog(dir, guid, uidValidity, sync)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := fcntlLock(context.Background(), f, true); err != nil {
		return err
	}
	defer fcntlUnlock(f)
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	end, resetID, ok := logEnd(data, indexResetID(dir))
	if !ok {
		f.Close()
		return writeIndexLog(dir, guid, uidValidity, sync)
	}
	le := binary.LittleEndian
	rec := func(typ uint32, payload []byte) []byte {
		payload = append(payload, make([]byte, pad4(len(payload))-len(payload))...)
		size := encodeLogSize(8 + len(payload))
		r := append(size[:], 0, 0, 0, 0)
		le.PutUint32(r[4:], typ|logExternal)
		return append(r, payload...)
	}
	intro := make([]byte, 20, 24)
	le.PutUint32(intro[0:], 0xffffffff)
	le.PutUint32(intro[4:], resetID)
	le.PutUint32(intro[8:], mboxHdrSize)
	le.PutUint16(intro[12:], 8)
	le.PutUint16(intro[14:], 8)
	le.PutUint16(intro[18:], uint16(len(mboxExt)))
	intro = append(intro, mboxExt...)
	upd := make([]byte, 4+13)
	le.PutUint16(upd[0:], 0)
	le.PutUint16(upd[2:], 13)
	le.PutUint64(upd[4:], uint64(size))
	le.PutUint32(upd[12:], 1) // sync_mtime: never a real one
	upd[16] = 1               // dirty_flag
	var tx []byte
	tx = append(tx, rec(logExtIntro, intro)...)
	tx = append(tx, rec(logExtHdrUpdate, upd)...)
	boundary := make([]byte, 4)
	le.PutUint32(boundary, uint32(12+len(tx)))
	out := append(rec(logBoundary, boundary), tx...)
	if _, err := f.WriteAt(out, int64(end)); err != nil {
		return err
	}
	if sync {
		return f.Sync()
	}
	return nil
}

// logEnd validates a log's records and returns where the last complete
// one ends and the mbox extension's reset_id; ok is false for a log
// boxsync should not append to.
func logEnd(data []byte, resetID uint32) (end int, _ uint32, ok bool) {
	le := binary.LittleEndian
	if len(data) < 40 || data[0] != 1 || le.Uint32(data[4:]) == 0 {
		return 0, 0, false
	}
	off := int(le.Uint16(data[2:]))
	if off < 24 || off > len(data) {
		return 0, 0, false
	}
	cur := ""
	for off < len(data) {
		if off+8 > len(data) {
			return 0, 0, false
		}
		size := decodeLogSize(data[off:])
		if size < 8 || off+size > len(data) {
			return 0, 0, false // an unfinished write: leave it to Dovecot
		}
		typ := le.Uint32(data[off+4:]) & logTypeMask
		p := data[off+8 : off+size]
		switch typ {
		case logExtIntro:
			if len(p) >= 20 {
				n := int(le.Uint16(p[18:]))
				if n > 0 && 20+n <= len(p) {
					cur = string(p[20 : 20+n])
				} else {
					cur = "" // by id: not resolved here
				}
				if cur == mboxExt {
					resetID = le.Uint32(p[4:])
				}
			}
		case 0x00080: // EXT_RESET
			if cur == mboxExt && len(p) >= 4 {
				resetID = le.Uint32(p)
			}
		}
		off += size
	}
	return off, resetID, true
}

// indexResetID is the mbox extension's reset_id in dovecot.index.
func indexResetID(dir string) uint32 {
	data, err := os.ReadFile(filepath.Join(dir, indexName))
	if err != nil || len(data) < 120 {
		return 0
	}
	le := binary.LittleEndian
	baseSize := int(le.Uint16(data[2:]))
	hdrSize := int(le.Uint32(data[4:]))
	if hdrSize > len(data) {
		return 0
	}
	off := pad8(baseSize)
	for off+16 <= hdrSize {
		extHdr := int(le.Uint32(data[off:]))
		nameSize := int(le.Uint16(data[off+14:]))
		if off+16+nameSize > hdrSize {
			break
		}
		if string(data[off+16:off+16+nameSize]) == mboxExt {
			return le.Uint32(data[off+4:])
		}
		off = pad8(pad8(off+16+nameSize) + extHdr)
	}
	return 0
}
