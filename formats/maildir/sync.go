package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dotlock"
)

// state is a mailbox as one sync saw it. It is never changed once built.
type state struct {
	hdr     uidlistHeader
	next    uint32 // next UID: max(N, last UID + 1), raised by assignments
	t       *table // messages found on disk, sorted by UID
	kw      keywordList
	kwNames keywordList // kw, with "unknown-<n>" for used but unnamed letters
	kwUsed  uint32      // keyword letters used in file names
	kwMtime time.Time   // mtime of dovecot-keywords when read

	// look is what scan saw of new/ and cur/ before reading them, and
	// listed that t then names every file the two directories held
	// (no duplicate base name was left unresolved): a later scan may
	// then take a directory's names from t (see dirUnchanged).
	look   dirLook
	listed bool
	// uidlistID is the version of dovecot-uidlist whose records t
	// holds exactly, as read or as written under the lock (zero when t
	// differs from the file): the next scan then takes hdr, next and
	// t's records instead of parsing the file again. wrote says load
	// wrote that version itself.
	uidlistID fileID
	wrote     bool
	// quickCur tells that cur/'s names came from the index, not from
	// a read of cur/ (quickcur.go).
	quickCur bool
	idxOnce  sync.Once
	idx      baseIndex // t.byBase(), built on first use
}

// baseIndex returns t.byBase(), built once.
func (st *state) baseIndex() baseIndex {
	st.idxOnce.Do(func() { st.idx = st.t.byBase() })
	return st.idx
}

// fileID tells a file's versions apart: Dovecot replaces
// dovecot-uidlist by rename (a new inode) or appends to it (a new size),
// and either moves its mtime.
type fileID struct {
	ok        bool
	ino       uint64
	size      int64
	sec, nsec int64
}

func statID(path string) fileID {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}
	}
	s, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{ok: true, ino: uint64(s.Ino), size: fi.Size(), sec: int64(s.Mtim.Sec), nsec: int64(s.Mtim.Nsec)}
}

// reuseMargin is how much older than a look a directory's mtime must be
// for a later scan to trust that an unchanged mtime means unchanged
// contents. Local file systems stamp a change with the kernel's coarse
// clock, at most one tick (<= 10 ms) behind the time it happened, so a
// change after the look gets an mtime no older than look.at - one tick:
// never the old one. A file system with whole-second mtimes (nsec 0)
// needs syncSecs, as Dovecot's MAILDIR_SYNC_SECS assumes for every one.
const reuseMargin = 100 * time.Millisecond

// dirUnchanged tells whether directory dir (dirNew or dirCur) still holds
// what st's scan read, as Dovecot's maildir_sync_quick_check decides per
// directory (dovecot-storage.md §6.5) but within this process: now (taken
// before the new read) has the mtime st's look had, and that mtime was
// older than st's look by reuseMargin, so any change since would have
// moved it. Names renamed, added or removed by a mail client or Dovecot
// change the directory's mtime and are read again.
func (st *state) dirUnchanged(dir uint8, now dirLook) bool {
	if st == nil || !st.listed || !st.look.ok || !now.ok {
		return false
	}
	sec, nsec, osec, onsec := now.hdr.CurMtime, now.hdr.CurMtimeNsecs, st.look.hdr.CurMtime, st.look.hdr.CurMtimeNsecs
	if dir == dirNew {
		sec, nsec, osec, onsec = now.hdr.NewMtime, now.hdr.NewMtimeNsecs, st.look.hdr.NewMtime, st.look.hdr.NewMtimeNsecs
	}
	if sec != osec || nsec != onsec {
		return false
	}
	margin := reuseMargin
	if nsec == 0 {
		margin = syncSecs * time.Second
	}
	return time.Unix(int64(sec), int64(nsec)).Add(margin).Before(st.look.at)
}

// isNoWrite tells that a directory cannot be written: the mailbox is then
// read with UIDs assigned in memory.
func isNoWrite(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

// lockUidlist takes dovecot-uidlist.lock, creating the control directory
// if needed.
func (m *mailbox) lockUidlist(ctx context.Context) (*dotlock.Lock, error) {
	path := filepath.Join(m.b.ctl, uidlistName)
	opt := dotlock.Options{Timeout: uidlistLockTimeout, Stale: uidlistStaleTimeout, Mode: m.s.fileMode}
	l, err := dotlock.Create(ctx, path, opt)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(m.b.dir); serr != nil {
			return nil, wrap(serr, "lock", m.b.name, 0, m.b.dir)
		}
		if merr := os.MkdirAll(m.b.ctl, m.s.dirMode); merr != nil {
			return nil, wrap(merr, "lock", m.b.name, 0, m.b.ctl)
		}
		l, err = dotlock.Create(ctx, path, opt)
	}
	if err != nil {
		return nil, wrap(err, "lock", m.b.name, 0, path+lockSuffix)
	}
	return l, nil
}

// load brings the mailbox state up to date the way a Dovecot session
// does when it opens a mailbox: it reads dovecot-uidlist, scans new/ and
// cur/, gives files that are not in the uidlist UIDs in Dovecot's order
// and records them. A mailbox without a uidlist gets one with a new
// UIDVALIDITY and mailbox GUID. Writing happens under dovecot-uidlist.lock;
// when the directory is not writable the assignment stays in memory.
func (m *mailbox) load(ctx context.Context) (*state, error) {
	m.mu.Lock()
	prev := m.st
	m.mu.Unlock()
	st, dirty, err := m.scan(ctx, nil, prev)
	if err != nil || !dirty {
		return m.setState(st), err
	}
	l, err := m.lockUidlist(ctx)
	if isNoWrite(err) {
		return m.setState(st), nil // UIDs assigned in memory only
	}
	if err != nil {
		return nil, err
	}
	defer l.Release()
	st, dirty, err = m.scan(ctx, l, st)
	if err == nil && dirty {
		if err = m.writeUidlist(st, false, nil); isNoWrite(err) {
			err = nil // in memory only
		} else if err == nil {
			// Still under the lock: this version is ours, and st.t
			// is what it lists.
			st.uidlistID, st.wrote = statID(filepath.Join(m.b.ctl, uidlistName)), true
		}
	}
	if err != nil {
		return nil, err
	}
	return m.setState(st), nil
}

func (m *mailbox) setState(st *state) *state {
	if st != nil {
		m.mu.Lock()
		m.st = st
		m.mu.Unlock()
	}
	return st
}

// current returns the last state, loading it if there is none.
func (m *mailbox) current(ctx context.Context) (*state, error) {
	m.mu.Lock()
	st := m.st
	m.mu.Unlock()
	if st != nil {
		return st, nil
	}
	return m.load(ctx)
}

// readUidlist reads and parses dovecot-uidlist. A missing file gives a
// zero header and an empty table.
func (m *mailbox) readUidlist() (uidlistHeader, *table, uint32, error) {
	path := filepath.Join(m.b.ctl, uidlistName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return uidlistHeader{}, &table{}, 1, nil
	}
	if err != nil {
		return uidlistHeader{}, nil, 0, wrap(err, "read uidlist", m.b.name, 0, path)
	}
	h, t, next, err := parseUidlist(data)
	if err != nil {
		// QUIRK: Dovecot deletes a broken uidlist and renumbers the
		// mailbox under a new UIDVALIDITY; a conversion must not do
		// that silently, so this is an error.
		return h, nil, 0, fail(formats.KindInvalidData, "read uidlist", m.b.name, 0, path, err)
	}
	return h, t, next, nil
}

func (m *mailbox) readKeywords(st *state) error {
	path := filepath.Join(m.b.ctl, keywordsName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return wrap(err, "read keywords", m.b.name, 0, path)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return wrap(err, "read keywords", m.b.name, 0, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return wrap(err, "read keywords", m.b.name, 0, path)
	}
	st.kw = parseKeywords(data)
	st.kwMtime = fi.ModTime()
	return nil
}

// nameRef is a file name found by a scan, in the scan's name arena.
type nameRef struct {
	off   uint32
	n     uint16
	dir   uint8
	pass  uint8 // the directory pass that saw it
	inOld bool  // the name is the old table's (in its arena), not a copy
}

// scan reads the uidlist and the directories. With lock held it also
// fixes duplicate file names as Dovecot does and assigns UIDs to new
// files; dirty tells whether the result differs from dovecot-uidlist (new
// files, no uidlist yet, an old version or no mailbox GUID). A directory
// prev read and that has not changed since (state.dirUnchanged) is taken
// from prev's table instead of being read again; dovecot-uidlist always
// is.
func (m *mailbox) scan(ctx context.Context, lock *dotlock.Lock, prev *state) (st *state, dirty bool, err error) {
	look := m.dirTimes() // before anything is read
	if prev != nil && prev.quickCur && m.distrustCur.Load() {
		prev = nil // its cur/ names may be wrong: read them
	}
	// dovecot-uidlist is identified before it is read: a version
	// written in between is read under the old identity, which the
	// next scan then does not match.
	uidlistID := statID(filepath.Join(m.b.ctl, uidlistName))
	var h uidlistHeader
	var old *table
	var next uint32
	var idx baseIndex
	if uidlistID.ok && prev != nil && prev.uidlistID == uidlistID {
		// The version prev holds exactly: parsing and sorting it
		// again is most of a scan's work once the directories are
		// known. Only uid, base name and fields of old are used.
		h, old, next, idx = prev.hdr, prev.t, prev.next, prev.baseIndex()
	} else {
		if h, old, next, err = m.readUidlist(); err != nil {
			return nil, false, err
		}
		idx = old.byBase()
	}
	st = &state{hdr: h, next: next, look: look}
	if err := m.readKeywords(st); err != nil {
		return nil, false, err
	}
	if prev != nil && old == prev.t && prev.listed && h.Version == uidlistVersion && h.HasGUID &&
		prev.dirUnchanged(dirNew, look) && prev.dirUnchanged(dirCur, look) {
		// Nothing changed since prev: the uidlist is the version
		// prev holds exactly and neither directory moved (the same
		// guards the per-directory reuse below takes), so the table
		// the loop below would rebuild record by record is prev's.
		// Only dovecot-keywords is read again.
		st.t, st.listed, st.uidlistID, st.quickCur = prev.t, true, uidlistID, prev.quickCur
		st.idx = idx
		st.idxOnce.Do(func() {})
		st.kwUsed = prev.kwUsed // the letters in the names of prev.t
		nameKeywords(st)
		return st, false, nil
	}
	dirty = h.Version != uidlistVersion || !h.HasGUID
	if h.Version == 0 {
		st.hdr = uidlistHeader{Version: uidlistVersion, NextUID: 1}
		st.next = 1
	}

	var names []byte
	found := make([]nameRef, len(old.recs))
	var fresh []nameRef
	freshByBase := map[string]int{}
	type dup struct {
		dir   uint8
		first string // path of the file seen first
	}
	dups := map[string]dup{}
	pass := uint8(0)
	var quick *quickCur
	if !prev.dirUnchanged(dirCur, look) {
		quick = m.planQuickCur(look, h, old, &st.kw)
	}

	addName := func(name string, dir uint8) (nameRef, error) {
		if len(name) > 0xffff || uint64(len(names))+uint64(len(name)) > 0xffffffff {
			return nameRef{}, fmt.Errorf("file name too long: %q", name)
		}
		r := nameRef{off: uint32(len(names)), n: uint16(len(name)), dir: dir, pass: pass}
		names = append(names, name...)
		return r, nil
	}
	nameOf := func(f nameRef) []byte {
		if f.inOld {
			return old.bytes(f.off, f.n)
		}
		return names[f.off : f.off+uint32(f.n)]
	}
	// see records one sighting of a base name in slot *f; o is the old
	// table's record of that base, if any.
	see := func(f *nameRef, name string, dir uint8, o *rec) error {
		switch {
		case f.dir == dirNone,
			f.dir == dirNew && dir == dirCur,                     // moved to cur/ while we read
			f.pass < pass && !(f.dir == dirCur && dir == dirNew): // renamed since the last pass
			if o != nil && o.dir == dir && string(old.bytes(o.nameOff, o.nameLen)) == name {
				// Unchanged since the table we hold (a commit's
				// rescan): point at its name rather than copy it.
				*f = nameRef{off: o.nameOff, n: o.nameLen, dir: dir, pass: pass, inOld: true}
				return nil
			}
			r, err := addName(name, dir)
			*f = r
			return err
		case f.dir == dir && string(nameOf(*f)) == name,
			f.pass < pass:
			return nil
		}
		dups[name] = dup{dir, filepath.Join(m.b.dir, subdir(f.dir), string(nameOf(*f)))}
		return nil
	}
	visit := func(name string, dir uint8) error {
		base := baseOf(name)
		if i := old.lookupBase(idx, base); i >= 0 {
			return see(&found[i], name, dir, &old.recs[i])
		}
		if j, ok := freshByBase[base]; ok {
			return see(&fresh[j], name, dir, nil)
		}
		r, err := addName(name, dir)
		freshByBase[base] = len(fresh)
		fresh = append(fresh, r)
		return err
	}
	for ; pass < 2; pass++ {
		for _, d := range []struct {
			sub string
			dir uint8
		}{{"new", dirNew}, {"cur", dirCur}} {
			if pass == 0 && prev.dirUnchanged(d.dir, look) {
				if d.dir == dirCur {
					st.quickCur = prev.quickCur
				}
				for i := range prev.t.recs {
					if r := &prev.t.recs[i]; r.dir == d.dir {
						if err := visit(prev.t.name(r), d.dir); err != nil {
							return nil, false, wrap(err, "scan", m.b.name, 0, filepath.Join(m.b.dir, d.sub))
						}
					}
				}
				continue
			}
			if pass == 0 && d.dir == dirCur && quick != nil {
				// new/ is read: cur/ as the index describes it.
				ok, err := quick.apply(m, old, found, pass, addName)
				if err != nil {
					return nil, false, wrap(err, "scan", m.b.name, 0, filepath.Join(m.b.dir, d.sub))
				}
				if ok {
					st.quickCur = true
					continue
				}
			}
			m.dirReads.Add(1)
			if err := m.readDir(ctx, d.sub, func(name string) error { return visit(name, d.dir) }); err != nil {
				return nil, false, err
			}
		}
		// A message renamed (a flag change) while we read the
		// directory may have been missed: look once more, as
		// Dovecot's sync does when it lost files.
		if !slices.ContainsFunc(found, func(r nameRef) bool { return r.dir == dirNone }) {
			break
		}
	}

	if len(dups) > 0 {
		if lock == nil {
			dirty = true
		} else {
			for _, name := range slices.Sorted(maps.Keys(dups)) {
				d := dups[name]
				r, err := m.fixDuplicate(name, d.dir, d.first, addName)
				if err != nil {
					return nil, false, err
				}
				if r.n > 0 {
					freshByBase[baseOf(string(names[r.off:r.off+uint32(r.n)]))] = len(fresh)
					fresh = append(fresh, r)
				}
			}
		}
	}

	// The new table: the uidlist's records whose files exist, then the
	// new files in Dovecot's order with UIDs from next
	// (maildir_uidlist_assign_uids).
	// When every record's file is where old has it, under the same
	// name, and nothing is new, the new table is old itself (tables are
	// never changed): a commit's rescan of a large mailbox then holds
	// two tables at once, the old and the committed one, not three.
	same := len(fresh) == 0
	for i := 0; same && i < len(found); i++ {
		f, r := found[i], &old.recs[i]
		same = f.inOld && f.dir == r.dir && f.off == r.nameOff && f.n == r.nameLen
	}
	if same {
		st.t = old
		return m.scanned(st, old, uidlistID, idx, dirty, len(dups) == 0)
	}
	// Its arena sized exactly: a commit's rescan finds most names in the
	// old table, and growing an arena by appends left copies of a large
	// mailbox's names behind (mdbox->Maildir's peak heap, issue 4).
	need := 0
	for i, f := range found {
		if f.dir != dirNone {
			need += int(f.n) + int(old.recs[i].extLen)
		}
	}
	for _, f := range fresh {
		need += int(f.n)
	}
	nt := &table{recs: make([]rec, 0, len(old.recs)+len(fresh))}
	nt.reserve(need)
	for i := range old.recs {
		f := found[i]
		if f.dir == dirNone {
			continue
		}
		r := &old.recs[i]
		if err := nt.addBytes(r.uid, nameOf(f), old.extBytes(r), f.dir); err != nil {
			return nil, false, err
		}
	}
	type freshName struct {
		ref  nameRef
		name string // one string per name, not one per comparison
	}
	sorted := make([]freshName, len(fresh))
	for i, f := range fresh {
		sorted[i] = freshName{f, string(names[f.off : f.off+uint32(f.n)])}
	}
	slices.SortFunc(sorted, func(a, b freshName) int { return sortCmp(a.name, b.name) })
	for _, fn := range sorted {
		f := fn.ref
		if st.next >= 0xffffffff {
			return nil, false, fail(formats.KindLimit, "sync", m.b.name, 0, m.b.dir, errors.New("UIDs exhausted"))
		}
		if err := nt.addBytes(st.next, names[f.off:f.off+uint32(f.n)], nil, f.dir); err != nil {
			return nil, false, err
		}
		st.next++
		dirty = true
	}
	st.t = nt
	return m.scanned(st, old, uidlistID, idx, dirty, len(dups) == 0)
}

// scanned completes st, whose table scan has built from old (the
// uidlist's records, version uidlistID, indexed by idx).
func (m *mailbox) scanned(st *state, old *table, uidlistID fileID, idx baseIndex, dirty, listed bool) (*state, bool, error) {
	st.listed = listed
	if !dirty && len(st.t.recs) == len(old.recs) {
		// Every record's file was found and none is new: st.t is
		// the file's records in the file's order.
		st.uidlistID = uidlistID
		st.idx = idx
		st.idxOnce.Do(func() {})
	}
	m.fillKeywords(st)
	if dirty {
		if st.hdr.UIDValidity == 0 || !st.hdr.HasGUID {
			nh := m.s.newHeader(m.b.ctl)
			if st.hdr.UIDValidity == 0 {
				st.hdr.UIDValidity = nh.UIDValidity
			}
			if !st.hdr.HasGUID {
				st.hdr.GUID, st.hdr.HasGUID = nh.GUID, true
			}
		}
		st.hdr.Version = uidlistVersion
		st.hdr.NextUID = st.next
	}
	return st, dirty, nil
}

// fillKeywords notes the keyword letters in use and names the unnamed
// ones as Dovecot shows them.
func (m *mailbox) fillKeywords(st *state) {
	for i := range st.t.recs {
		_, kws := parseFlags(st.t.nameBytes(&st.t.recs[i]))
		st.kwUsed |= kws
	}
	nameKeywords(st)
}

// nameKeywords names the keyword letters in use (st.kwUsed) as Dovecot
// shows them: dovecot-keywords' names, "unknown-<n>" for the others.
func nameKeywords(st *state) {
	st.kwNames = st.kw
	for i := 0; i < maxKeywords; i++ {
		if st.kwUsed&(1<<i) != 0 && st.kwNames[i] == "" {
			st.kwNames[i] = st.kwNames.unknownKeyword(i)
		}
	}
}

// readDir calls fn with each file name in the maildir's sub directory that
// Dovecot would consider (maildir_scan_dir): dot files are skipped, and
// so are names with an empty base name and names holding CR or LF.
func (m *mailbox) readDir(ctx context.Context, sub string, fn func(string) error) error {
	dir := filepath.Join(m.b.dir, sub)
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return wrap(err, "scan", m.b.name, 0, dir)
	}
	defer f.Close()
	for {
		if err := ctx.Err(); err != nil {
			return wrap(err, "scan", m.b.name, 0, dir)
		}
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			// QUIRK: Dovecot renames a file with an empty base name
			// (":2,S") to a new name; we leave it alone.
			if n == "" || n[0] == '.' || n[0] == infoSep || strings.ContainsAny(n, "\r\n") {
				continue
			}
			if err := fn(n); err != nil {
				return wrap(err, "scan", m.b.name, 0, filepath.Join(dir, n))
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return wrap(err, "scan", m.b.name, 0, dir)
		}
	}
}

// fixDuplicate handles a second file with a base name already seen
// (maildir_fix_duplicate): a hard link to the first file is ignored;
// another file is renamed into new/ under a fresh base name (keeping its
// ,S= and ,W=) and becomes a new message. It returns the new name, or a
// zero nameRef when nothing was added.
func (m *mailbox) fixDuplicate(name string, dir uint8, first string, addName func(string, uint8) (nameRef, error)) (nameRef, error) {
	path := filepath.Join(m.b.dir, subdir(dir), name)
	fi, err := os.Stat(path)
	if err != nil {
		return nameRef{}, nil // gone meanwhile
	}
	if fi1, err := os.Stat(first); err != nil || os.SameFile(fi, fi1) {
		// The first is gone (it was a rename we saw twice), or both
		// names are one file: nothing to fix.
		return nameRef{}, nil
	}
	nb := newBaseName()
	base := baseOf(name)
	if n, ok := extraSize(base, 'S'); ok {
		nb += fmt.Sprintf(",S=%d", n)
	}
	if n, ok := extraSize(base, 'W'); ok {
		nb += fmt.Sprintf(",W=%d", n)
	}
	if err := os.Rename(path, filepath.Join(m.b.dir, "new", nb)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nameRef{}, nil
		}
		return nameRef{}, wrap(err, "fix duplicate", m.b.name, 0, path)
	}
	return addName(nb, dirNew)
}

// writeUidlist replaces dovecot-uidlist with st's records, under the lock
// (maildir_uidlist_recreate): the new file is written to
// dovecot-uidlist.tmp, made durable unless mail_fsync=never, and renamed
// over the old one. dirSync also syncs the control directory. A non-nil
// beforeRename runs once the new file is durable, before the rename; its
// error fails the write.
func (m *mailbox) writeUidlist(st *state, dirSync bool, beforeRename func() error) error {
	path := filepath.Join(m.b.ctl, uidlistName)
	tmp := path + ".tmp"
	sync := m.s.opt.Fsync != formats.FsyncNever
	_ = os.Remove(tmp) // a leftover of a crashed writer; we hold the lock
	if err := writeFileSyncFunc(tmp, m.s.fileMode, sync, func(w io.Writer) error {
		return writeUidlist(w, st.hdr, st.t)
	}); err != nil {
		return wrap(err, "write uidlist", m.b.name, 0, tmp)
	}
	if beforeRename != nil {
		if err := beforeRename(); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	if durableHook != nil {
		durableHook("rename " + path)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return wrap(err, "write uidlist", m.b.name, 0, path)
	}
	if sync && dirSync {
		if err := fsyncPath(m.b.ctl); err != nil {
			return wrap(err, "write uidlist", m.b.name, 0, m.b.ctl)
		}
	}
	return nil
}
