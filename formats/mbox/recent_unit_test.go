package mbox

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// TestRenderStatus checks the Status (and X-Status) lines we write
// against the bytes of Dovecot's mbox save (mbox-save.c
// mbox_save_append_flag_headers: always a Status line, 'R' then 'O',
// 'O' only without MAIL_RECENT).
func TestRenderStatus(t *testing.T) {
	tests := []struct {
		flags   formats.Flags
		recent  bool
		status  string
		xstatus string // "" for none
	}{
		{0, true, "Status: \n", ""},
		{formats.FlagSeen, true, "Status: R\n", ""},
		{0, false, "Status: O\n", ""},
		{formats.FlagSeen, false, "Status: RO\n", ""},
		{formats.FlagFlagged | formats.FlagAnswered, true, "Status: \n", "X-Status: AF\n"},
		{formats.SystemFlags, false, "Status: RO\n", "X-Status: AFTD\n"},
	}
	for _, tc := range tests {
		out := dovecotHeaders{uid: 7, flags: tc.flags, recent: tc.recent}.render()
		var status, xstatus string
		for _, line := range strings.SplitAfter(out, "\n") {
			switch {
			case strings.HasPrefix(line, "Status:"):
				status = line
			case strings.HasPrefix(line, "X-Status:"):
				xstatus = line
			}
		}
		if status != tc.status || xstatus != tc.xstatus {
			t.Errorf("render(flags %q, recent %v) Status %q X-Status %q, want %q %q", tc.flags, tc.recent, status, xstatus, tc.status, tc.xstatus)
		}
	}
}

// TestRecentFrom checks the first recent UID against Dovecot's rule
// (mbox-sync.c): after the last message with 'O', raised to the index's
// first_recent_uid when the index is the file's, never past UIDNEXT.
func TestRecentFrom(t *testing.T) {
	tests := []struct {
		name          string
		lastNonRecent uint32
		uidNext       uint32
		info          indexInfo
		want          uint32
	}{
		{"no O, no index", 0, 5, indexInfo{}, 1},
		{"O on 3", 3, 5, indexInfo{}, 4},
		{"O on the last", 4, 5, indexInfo{}, 5},
		{"index above", 1, 9, indexInfo{uidValidity: 42, firstRecent: 6}, 6},
		{"index below", 4, 9, indexInfo{uidValidity: 42, firstRecent: 2}, 5},
		{"index of another UIDVALIDITY", 0, 9, indexInfo{uidValidity: 41, firstRecent: 6}, 1},
		{"index past UIDNEXT", 0, 9, indexInfo{uidValidity: 42, firstRecent: 20}, 9},
		{"empty mailbox", 0, 0, indexInfo{}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := &snapshot{uidValidity: 42, uidNext: tc.uidNext, lastNonRecent: tc.lastNonRecent}
			if got := recentFrom(snap, tc.info); got != tc.want {
				t.Errorf("recentFrom(last O %d, uidnext %d, %+v) = %d, want %d", tc.lastNonRecent, tc.uidNext, tc.info, got, tc.want)
			}
		})
	}
}

// TestScanRecent checks which messages a scan finds \Recent: every
// Status 'O' counts (a second Status line, a foreign "Status: OR"), the
// pseudo message doesn't, and a message without 'O' before one with it is
// not recent.
func TestScanRecent(t *testing.T) {
	msg := func(i int, hdr string) string {
		return "From a@b  Mon Jan  1 00:00:00 2001\nSubject: x\n" + hdr + "\nbody\n\n"
	}
	pseudo := "From MAILER-DAEMON  Mon Jan  1 00:00:00 2001\nX-IMAP: 1600000000 0000000002\nStatus: RO\n\npseudo\n\n"
	tests := []struct {
		name  string
		file  string
		want  uint32 // lastNonRecent
		first uint32
	}{
		{"none", msg(1, "") + msg(2, "Status: R\n"), 0, 1},
		{"OR", msg(1, "Status: OR\n") + msg(2, ""), 1, 2},
		{"second Status line", msg(1, "Status: R\nStatus: O\n") + msg(2, ""), 1, 2},
		{"O in the middle", msg(1, "") + msg(2, "Status: O\n") + msg(3, ""), 2, 3},
		{"X-Status O is no Status", msg(1, "X-Status: O\n"), 0, 1},
		{"pseudo message", pseudo + "From a@b  Mon Jan  1 00:00:00 2001\nX-UID: 3\n\nbody\n", 0, 1},
		{"all old", msg(1, "Status: O\n") + msg(2, "Status: RO\n"), 2, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			snap, err := scanFile(t.Context(), f, readOpts{loc: time.UTC}, "")
			if err != nil {
				t.Fatal(err)
			}
			if snap.lastNonRecent != tc.want || snap.firstRecent != tc.first {
				t.Errorf("last non-recent UID %d, first recent %d, want %d %d", snap.lastNonRecent, snap.firstRecent, tc.want, tc.first)
			}
		})
	}
}

// TestReadIndexFirstRecent reads first_recent_uid from a dovecot.index
// header and from header updates in dovecot.index.log, which only raise
// it.
func TestReadIndexFirstRecent(t *testing.T) {
	le := binary.LittleEndian
	index := func(uidValidity, firstRecent uint32) []byte {
		b := make([]byte, 120)
		b[0], b[1] = 7, 3
		le.PutUint16(b[2:], 120)
		le.PutUint32(b[4:], 120)
		b[12] = 1
		le.PutUint32(b[baseUIDValid:], uidValidity)
		le.PutUint32(b[baseNextUID:], 10)
		le.PutUint32(b[baseFirstRecent:], firstRecent)
		return b
	}
	// logWith appends one header update transaction per value to a log
	// writeIndexLog made.
	logWith := func(t *testing.T, dir string, values ...uint32) {
		t.Helper()
		if err := writeIndexLog(dir, formats.GUID{}, 42, false); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, indexLogName)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			rec := make([]byte, 8+8)
			size := encodeLogSize(len(rec))
			copy(rec, size[:])
			le.PutUint32(rec[4:], logHeaderUpdate|logExternal)
			le.PutUint16(rec[8:], baseFirstRecent)
			le.PutUint16(rec[10:], 4)
			le.PutUint32(rec[12:], v)
			data = append(data, rec...)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		index []byte // nil: none
		log   []uint32
		want  uint32
	}{
		{"index only", index(42, 4), nil, 4},
		{"log raises", index(42, 4), []uint32{6}, 6},
		{"log below the index", index(42, 4), []uint32{2}, 4},
		{"log only", nil, []uint32{3, 5}, 5},
		{"truncated index", index(42, 4)[:40], nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.log != nil {
				logWith(t, dir, tc.log...)
			}
			if tc.index != nil {
				if err := os.WriteFile(filepath.Join(dir, indexName), tc.index, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := readIndex(dir).firstRecent; got != tc.want {
				t.Errorf("readIndex().firstRecent = %d, want %d", got, tc.want)
			}
		})
	}
}
