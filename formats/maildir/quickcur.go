package maildir

import (
	"os"
	"path/filepath"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index"
)

// A scan that has no earlier read of cur/ in this process may still skip
// reading it, as Dovecot's maildir_sync_quick_check does across processes
// (dovecot-storage.md §6.5; dovecot 2.3.19.1 maildir-sync.c): the index's
// "maildir" header records cur/'s mtime at the end of a sync that left the
// index agreeing with the file names. When cur/ still has that mtime, and
// it was older than that sync's look by more than MAILDIR_SYNC_SECS (so no
// change within the same mtime tick can hide behind it), cur/ holds what
// the index then described: one file per index message, named by the
// message's base name and its flags and keyword letters.
// dovecot-uidlist keeps base names only (Dovecot strips the ":2," part
// when it writes the file), so the flags part is rebuilt from the index,
// as maildir_filename_guess does; a uidlist name that has the index's
// flags is taken as it is. new/ is always read.
//
// A message the index has that is not in new/ now was in cur/ when the
// header was written, unless it was in new/ then and has been removed
// from new/ since. Files in new/ are recent messages, and Dovecot moves
// a message to cur/ before it stops being recent, so only messages at or
// above the index's first_recent_uid can be such a file. Dovecot reads
// cur/ whenever new/ changed while recent messages exist
// (maildir_sync_get_changes: "if recent messages have been externally
// deleted from new/, we need to get them out of index"); we look for
// those few in cur/ with stat(2) instead, and read cur/ when one is not
// there or there are too many to look for.
//
// A wrong name (a flag change logged in the index but not yet made to the
// file by a crashed writer, or a file in cur/ without ":2,") shows up as a
// missing file when the message is opened, renamed or expunged; the
// mailbox then distrusts such names and reads cur/ again (distrustCur),
// as Dovecot resyncs when opening a mail fails with ENOENT. Anything else
// that does not fit (an index message the uidlist does not list, a
// uidlist message in neither new/ nor the index, dirty index flags, a
// keyword without a letter) reads cur/ as before.

// quickCurMaxStats is how many recent messages missing from new/ a
// quick read looks for in cur/ one by one before it reads cur/ instead.
const quickCurMaxStats = 16

// quickCur is cur/'s names as the index describes them, by position in
// the uidlist's table; it is applied once new/ has been read.
type quickCur struct {
	names       []quickName // by position in the uidlist's table; zero: not in the index
	firstRecent uint32      // the index's first_recent_uid
}

type quickName struct {
	inIndex bool
	same    bool   // the uidlist's name is the file's: no copy needed
	guess   string // otherwise the name rebuilt from the index
}

// planQuickCur returns the quick read of cur/ for a scan whose look is
// look and whose uidlist (header h) holds old, or nil when cur/ must be
// read (see above).
func (m *mailbox) planQuickCur(look dirLook, h uidlistHeader, old *table, kw *keywordList) *quickCur {
	if !look.ok || m.distrustCur.Load() || h.Version != uidlistVersion || !h.HasGUID || len(old.recs) == 0 {
		return nil
	}
	_, v, err := m.indexViewValidity(h.UIDValidity)
	if err != nil || v == nil {
		return nil
	}
	hdr, ok := v.MaildirHdr()
	if !ok || hdr.CurMtime != look.hdr.CurMtime || hdr.CurMtimeNsecs != look.hdr.CurMtimeNsecs ||
		int64(hdr.CurMtime)+syncSecs >= int64(hdr.CurCheckTime) {
		return nil
	}
	if v.Count() > len(old.recs) {
		return nil // messages the uidlist does not list
	}
	q := &quickCur{names: make([]quickName, len(old.recs)), firstRecent: v.Header().FirstRecentUID}
	full := kw.full()
	for _, im := range v.Messages() {
		i := old.find(im.UID)
		if i < 0 || im.Flags&index.FlagDirty != 0 || q.names[i].inIndex {
			// Not in the uidlist, or flags the file does not
			// have yet (FlagDirty): cur/ is read.
			return nil
		}
		flags := formats.Flags(im.Flags) & formats.SystemFlags
		var kws uint32
		for _, n := range im.Keywords {
			l := kw.lookup(n)
			if l < 0 {
				if full {
					continue // in the index only (state.indexOnly)
				}
				return nil // Dovecot's next sync would drop it: read cur/
			}
			kws |= 1 << l
		}
		r := &old.recs[i]
		name := old.bytes(r.nameOff, r.nameLen)
		qn := quickName{inIndex: true}
		if pf, pk := parseFlags(name); hasFlagsInfo(name) && pf == flags && pk == kws {
			qn.same = true
		} else {
			qn.guess = setFlags(string(name), flags, kws)
		}
		q.names[i] = qn
	}
	return q
}

// hasFlagsInfo tells whether a file name carries the ":2," info part.
func hasFlagsInfo(name []byte) bool {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == infoSep {
			return len(name)-i >= 3 && name[i+1] == '2' && name[i+2] == ','
		}
	}
	return false
}

// apply records cur/'s names in found (by position in old), given what
// new/ held: every uidlist message not in new/ must be an index message,
// whose file is then in cur/ (looked for there if it is recent). It
// returns false, having changed nothing, when cur/ must be read instead.
func (q *quickCur) apply(m *mailbox, old *table, found []nameRef, pass uint8, addName func(string, uint8) (nameRef, error)) (bool, error) {
	stats := 0
	for i := range old.recs {
		if found[i].dir != dirNone {
			continue // in new/
		}
		qn := q.names[i]
		if !qn.inIndex {
			return false, nil // neither in new/ nor in the index: read cur/
		}
		if old.recs[i].uid < q.firstRecent {
			continue
		}
		// Recent: perhaps a file removed from new/ since the header.
		if stats++; stats > quickCurMaxStats {
			return false, nil
		}
		if _, err := os.Lstat(filepath.Join(m.b.dir, "cur", qn.name(old, i))); err != nil {
			return false, nil
		}
	}
	for i := range old.recs {
		if found[i].dir != dirNone {
			continue
		}
		qn := q.names[i]
		if qn.same {
			r := &old.recs[i]
			found[i] = nameRef{off: r.nameOff, n: r.nameLen, dir: dirCur, pass: pass, inOld: true}
			continue
		}
		ref, err := addName(qn.guess, dirCur)
		if err != nil {
			return false, err
		}
		found[i] = ref
	}
	return true, nil
}

// name is the file name of old's record i.
func (qn quickName) name(old *table, i int) string {
	if qn.same {
		return old.name(&old.recs[i])
	}
	return qn.guess
}
