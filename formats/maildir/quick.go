package maildir

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index"
)

// syncSecs is Dovecot's MAILDIR_SYNC_SECS: a directory changed within this
// many seconds of the last look may have changed again within the same
// mtime tick, so it is read again.
const syncSecs = 1

// quickStatus is Status without reading the Maildir, as Dovecot's
// maildir_sync_quick_check allows (dovecot-storage.md §6.5): when the
// index's "maildir" header (written at the end of a sync that left the
// index agreeing with cur/, new/ and dovecot-uidlist) still has the
// directories' and the uidlist's mtimes (and the uidlist's size), and
// both directories were last changed more than syncSecs before that sync
// looked at them, nothing changed since: the index's message count and
// HIGHESTMODSEQ are the mailbox's. Otherwise ok is false and Status reads
// the Maildir. A stateful or fast sync of unchanged mailboxes then costs a
// few stat(2)s per mailbox, not a readdir of every message.
func (m *mailbox) quickStatus() (st formats.Status, ok bool) {
	dir := m.s.indexDir(m.b)
	if dir == "" {
		return st, false
	}
	m.ixMu.Lock()
	ix := m.ix
	m.ixMu.Unlock()
	if ix == nil {
		// Without the messages' keywords (index.Options.NoKeywords),
		// most of replaying the log of a mailbox with many keywords;
		// such an index is kept by no one, so a mailbox that turns out
		// changed reads its index again in full.
		opt := *m.s.indexOptions()
		opt.NoKeywords = true
		var err error
		if ix, err = index.Open(dir, index.Prefix, &opt); err != nil {
			return st, false
		}
	}
	v, err := ix.View()
	if err != nil {
		return st, false
	}
	hdr, ok := v.MaildirHdr()
	if !ok {
		return st, false
	}
	if _, ok := v.Ext(index.ExtModSeq); !ok {
		return st, false
	}
	for _, d := range []struct {
		sub              string
		check, sec, nsec uint32
	}{{"new", hdr.NewCheckTime, hdr.NewMtime, hdr.NewMtimeNsecs}, {"cur", hdr.CurCheckTime, hdr.CurMtime, hdr.CurMtimeNsecs}} {
		sec, nsec, _, err := statTimes(filepath.Join(m.b.dir, d.sub))
		if err != nil || sec != d.sec || nsec != d.nsec || int64(sec)+syncSecs >= int64(d.check) {
			return st, false
		}
	}
	path := filepath.Join(m.b.ctl, uidlistName)
	sec, nsec, size, err := statTimes(path)
	if err != nil || sec != hdr.UIDListMtime || nsec != hdr.UIDListMtimeNsecs || size != int64(hdr.UIDListSize) {
		return st, false
	}
	h, err := readUidlistHeader(path)
	if err != nil || h.UIDValidity != v.UIDValidity() || !h.HasGUID {
		return st, false
	}
	st = formats.Status{
		GUID:          h.GUID,
		UIDValidity:   h.UIDValidity,
		UIDNext:       formats.UID(max(h.NextUID, v.NextUID())),
		HighestModSeq: formats.ModSeq(v.HighestModSeq()),
		Messages:      v.Count(),
		// The index has every message (recentFrom: the header's).
		FirstRecentUID: formats.UID(max(v.Header().FirstRecentUID, 1)),
		Caps:           m.modseqCaps(modseqInfo{known: true}),
	}
	return st, true
}

func statTimes(path string) (sec, nsec uint32, size int64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, 0, err
	}
	s, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, errors.New("no stat_t")
	}
	return uint32(s.Mtim.Sec), uint32(s.Mtim.Nsec), fi.Size(), nil
}

// readUidlistHeader reads dovecot-uidlist's first line only.
func readUidlistHeader(path string) (uidlistHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return uidlistHeader{}, err
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, 512).ReadSlice('\n')
	if err != nil {
		return uidlistHeader{}, err
	}
	return parseUidlistHeader(line[:len(line)-1])
}

// dirLook is what Status saw before it read the Maildir: the time and the
// directories' and the uidlist's mtimes.
type dirLook struct {
	ok  bool
	at  time.Time
	hdr index.MaildirHdr // check times and mtimes as markSynced records them
}

// dirTimes stats new/, cur/ and dovecot-uidlist before a full read.
func (m *mailbox) dirTimes() dirLook {
	l := dirLook{at: time.Now()}
	var err [3]error
	var size int64
	l.hdr.NewMtime, l.hdr.NewMtimeNsecs, _, err[0] = statTimes(filepath.Join(m.b.dir, "new"))
	l.hdr.CurMtime, l.hdr.CurMtimeNsecs, _, err[1] = statTimes(filepath.Join(m.b.dir, "cur"))
	l.hdr.UIDListMtime, l.hdr.UIDListMtimeNsecs, size, err[2] = statTimes(filepath.Join(m.b.ctl, uidlistName))
	l.hdr.UIDListSize = uint32(size)
	l.hdr.NewCheckTime = uint32(l.at.Unix())
	l.hdr.CurCheckTime = l.hdr.NewCheckTime
	l.ok = err[0] == nil && err[1] == nil && err[2] == nil
	return l
}

// markSynced records in the index's "maildir" header that the index
// agreed with the Maildir as it was at look (Dovecot does so at the end
// of each maildir sync), so that quickStatus can trust it until the
// directories or the uidlist change. It writes only when that helps: the
// index agrees (ms.inSync), the store is writable, both directories were
// last changed more than syncSecs before look, and the header differs.
func (m *mailbox) markSynced(look dirLook, ms modseqInfo) {
	if !look.ok || !ms.inSync || ms.view == nil || m.s.opt.ReadOnly {
		return
	}
	h := look.hdr
	if int64(h.NewMtime)+syncSecs >= int64(h.NewCheckTime) || int64(h.CurMtime)+syncSecs >= int64(h.CurCheckTime) {
		return
	}
	old, had := ms.view.MaildirHdr()
	if had && old == h {
		return
	}
	m.ixMu.Lock()
	ix := m.ix
	m.ixMu.Unlock()
	if ix == nil {
		return
	}
	tx := ix.Begin()
	defer tx.Rollback()
	tx.Hint() // a cache: lost in a crash, it only costs a rescan
	if had {
		tx.ExtHdrUpdate(index.ExtMaildir, 0, h.Encode())
	} else {
		tx.ExtIntro(h.Ext())
	}
	if _, err := tx.Commit(); err != nil {
		m.setIndexErr(fmt.Errorf("maildir: %s: recording the sync in dovecot.index.log: %w", m.s.indexDir(m.b), err))
	}
}

// reuseFor is how long after Status read the Maildir Messages may use
// that read instead of its own, if nothing changed meanwhile.
const reuseFor = time.Second

// reuseOrLoad returns the state Status just read when cur/, new/ and the
// uidlist still have the mtimes they had before that read (the engine
// asks for Status and then for Messages of the same mailbox: one read
// instead of two); otherwise it reads the Maildir. A change within the
// same mtime tick is as if it came right after Messages, which a sync
// always has to expect. Each read is reused once.
func (m *mailbox) reuseOrLoad(ctx context.Context) (*state, error) {
	m.mu.Lock()
	st, look := m.st, m.look
	m.look = dirLook{}
	m.mu.Unlock()
	if st != nil && look.ok && time.Since(look.at) < reuseFor {
		now := m.dirTimes()
		a, b := now.hdr, look.hdr
		a.NewCheckTime, a.CurCheckTime, b.NewCheckTime, b.CurCheckTime = 0, 0, 0, 0
		if now.ok && a == b {
			return st, nil
		}
	}
	return m.load(ctx)
}
