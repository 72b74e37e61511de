// Package mailboxlog reads and appends Dovecot's mailbox changes log,
// dovecot.mailbox.log (dovecot-storage.md §8.6; Dovecot's mailbox-log.c),
// for the file-based drivers that keep one (maildir, sdbox, mdbox).
//
// The file is a sequence of 24-byte records: u8 type, 3 zero bytes, a
// 16-byte GUID, a big-endian u32 UNIX time. It lives in the root of the
// index directory (INDEX= if set, else the mail root). Appends are single
// write(2)s to a file opened O_APPEND and need no lock, as in Dovecot.
// Once the file reaches 4 KiB it is renamed to dovecot.mailbox.log.2 (an
// older .2 is replaced); readers go through .2 first, then the live file.
package mailboxlog

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// FileName is the log's name in the index root (MAILBOX_LOG_FILE_NAME).
const FileName = "dovecot.mailbox.log"

const (
	recordSize = 24
	// rotateSize is MAILBOX_LOG_ROTATE_SIZE.
	rotateSize = 4 * 1024
)

// Parse decodes records. Like Dovecot's iterator it stops at the first
// record whose type is outside delete-mailbox..unsubscribe (Dovecot 2.3
// treats such a file as corrupted) and ignores a partial trailing record.
func Parse(data []byte) []formats.MailboxLogRecord {
	var out []formats.MailboxLogRecord
	for len(data) >= recordSize {
		t := formats.MailboxChange(data[0])
		if t < formats.ChangeDeleteMailbox || t > formats.ChangeUnsubscribe {
			break
		}
		var r formats.MailboxLogRecord
		r.Change = t
		copy(r.GUID[:], data[4:20])
		r.Time = time.Unix(int64(binary.BigEndian.Uint32(data[20:24])), 0)
		out = append(out, r)
		data = data[recordSize:]
	}
	return out
}

// Encode returns r's 24 bytes.
func Encode(r formats.MailboxLogRecord) []byte {
	b := make([]byte, recordSize)
	b[0] = byte(r.Change)
	copy(b[4:20], r.GUID[:])
	binary.BigEndian.PutUint32(b[20:24], uint32(r.Time.Unix()))
	return b
}

// Read returns the records of the log in dir (the rotated .2 file's
// first), oldest first. Missing files are no records.
func Read(dir string) ([]formats.MailboxLogRecord, error) {
	var out []formats.MailboxLogRecord
	for _, name := range []string{FileName + ".2", FileName} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Parse(data)...)
	}
	return out, nil
}

// Append adds records to the log in dir, creating it with mode perm, and
// rotates it once it has reached 4 KiB (mailbox_log_append). Each record
// is one write, so concurrent appenders (Dovecot included) never
// interleave within a record.
func Append(dir string, perm os.FileMode, recs ...formats.MailboxLogRecord) error {
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, perm)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if _, err := f.Write(Encode(r)); err != nil {
			f.Close()
			return err
		}
	}
	fi, err := f.Stat()
	if err := f.Close(); err != nil {
		return err
	}
	if err == nil && fi.Size() >= rotateSize {
		if err := os.Rename(path, path+".2"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Now is the timestamp of a record made now: formats.MailboxLogNow.
func Now() time.Time { return formats.MailboxLogNow() }
