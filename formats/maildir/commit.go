package maildir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dotlock"
	"github.com/boxsync/boxsync/formats/internal/unnamed"
)

// Commit makes the transaction visible, in the order of Dovecot's save
// commit, all under dovecot-uidlist.lock:
//
//  1. sync: re-read dovecot-uidlist, scan new/ and cur/;
//  2. write a new dovecot-keywords if a keyword needs a letter;
//  3. make the saved files durable: one syncfs(2) for all of them
//     (mail_fsync=optimized; always fsynced each at Save; never: nothing);
//  4. link the unnamed files into cur/, or new/ for a Recent message
//     without flags or keywords (rename tmp/ → cur/ or new/ those saved
//     there), rename for flag changes, unlink expunged files, then fsync
//     whichever of cur/ and new/ changed: no uidlist may name mail that
//     is not on stable storage;
//  5. write dovecot-uidlist.tmp, fdatasync it, rename it over
//     dovecot-uidlist and fsync the control directory;
//  6. unlock.
//
// Saved messages whose UID another writer took meanwhile get the next
// free UIDs, as the mem driver and a Dovecot commit do.
func (t *tx) Commit(ctx context.Context) (err error) {
	if t.done {
		return nil
	}
	t.finish()
	m := t.m
	sync := m.s.opt.Fsync != formats.FsyncNever
	moved := 0         // saves renamed into cur/ or new/ so far
	committed := false // the uidlist names them: nothing to undo
	finals := make([]string, len(t.saves))
	dirs := make([]uint8, len(t.saves)) // dirCur or dirNew
	defer func() {
		if err == nil || committed {
			return
		}
		// Undo what no uidlist names yet: the saved files.
		for i := range t.saves {
			if i < moved {
				os.Remove(filepath.Join(m.b.dir, subdir(dirs[i]), finals[i]))
			} else {
				t.discard(&t.saves[i])
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return wrap(err, "commit", m.b.name, 0, "")
	}

	l, err := m.lockUidlist(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := l.Release(); rerr != nil && err == nil {
			err = wrap(rerr, "commit", m.b.name, 0, l.Path())
		}
	}()
	m.mu.Lock()
	prev := m.st
	m.mu.Unlock()
	st, dirty, err := m.scan(ctx, l, prev)
	if err != nil {
		return err
	}

	// The index, if we can extend it: saved UIDs must not go below its
	// next UID either.
	iw, ixNext := m.beginIndex(st)

	// UIDs: keep what Save promised unless another writer took them.
	next := max(st.next, ixNext)
	for i := range t.saves {
		s := &t.saves[i]
		if s.uid < next {
			s.uid = next
		}
		next = s.uid + 1
	}
	next = max(next, t.raise, st.hdr.NextUID)

	// Keywords: every name gets a letter; a used letter without a name
	// gets "unknown-<n>" written, as Dovecot does when it reads one.
	kw := st.kw
	for i := 0; i < maxKeywords; i++ {
		if kw[i] == "" && st.kwUsed&(1<<i) != 0 {
			kw[i] = st.kwNames[i]
		}
	}
	// A keyword that finds no free letter lives in the index only, as
	// Dovecot keeps it (maildir_keywords_idx_char gives it no letter,
	// maildir_sync_mail_keywords leaves it alone): extra lists those by
	// UID, for commitIndex.
	extra := map[uint32][]string{}
	letters := func(uid uint32, names []string) (uint32, error) {
		var set uint32
		for _, n := range names {
			i := kw.lookup(n)
			if i < 0 {
				i = slices.Index(kw[:], "")
				if i < 0 {
					if iw == nil {
						return 0, fmt.Errorf("keyword %q: all %d file name letters (a-z) are taken and there is no usable index to keep it in (%v)",
							n, maxKeywords, m.IndexError())
					}
					extra[uid] = append(extra[uid], n)
					continue
				}
				kw[i] = n
			}
			set |= 1 << i
		}
		return set, nil
	}
	saveLetters := make([]uint32, len(t.saves))
	for i, s := range t.saves {
		if saveLetters[i], err = letters(s.uid, s.keywords); err != nil {
			return fail(formats.KindNotPossible, "commit", m.b.name, formats.UID(s.uid), "", err)
		}
	}
	flagLetters := map[uint32]uint32{}
	for _, uid := range slices.Sorted(maps.Keys(t.flags)) {
		if flagLetters[uid], err = letters(uid, t.flags[uid].keywords); err != nil {
			return fail(formats.KindNotPossible, "commit", m.b.name, formats.UID(uid), "", err)
		}
	}
	if kw != st.kw {
		if err := m.writeKeywords(ctx, &kw, st.kwMtime); err != nil {
			return err
		}
	}

	// The saved files reach stable storage before anything names them.
	if len(t.saves) > 0 {
		if err := t.syncTmp(); err != nil {
			return err
		}
	}

	// Final names. A GUID that is itself a fitting base name (with the
	// right ,S= and ,W=) becomes the file's name, as Dovecot's
	// maildir_save_set_dest_basename does; otherwise the GUID goes to
	// the uidlist's G field.
	idx := st.baseIndex()
	used := map[string]bool{}
	exts := make([]string, len(t.saves))
	for i, s := range t.saves {
		base := ""
		if s.guid != "" && validBaseName(s.guid) && !used[s.guid] && st.t.lookupBase(idx, s.guid) < 0 {
			sz, ok1 := extraSize(s.guid, 'S')
			vsz, ok2 := extraSize(s.guid, 'W')
			if ok1 && ok2 && sz == s.size && vsz == s.vsize {
				base = s.guid
			}
		}
		if base == "" {
			base = s.tmp + ",S=" + strconv.FormatInt(s.size, 10) + ",W=" + strconv.FormatInt(s.vsize, 10)
		}
		used[base] = true
		dirs[i], finals[i] = dirCur, setFlags(base, s.flags, saveLetters[i])
		if s.recent && s.flags == 0 && len(s.keywords) == 0 {
			// dovecot 2.3.19.1 maildir-save.c maildir_get_dest_filename:
			// flags exactly MAIL_RECENT, no keyword (index-only ones
			// included) → new/ under the bare base name, no ":2,".
			dirs[i], finals[i] = dirNew, base
		}
		var fields []string
		if s.guid != "" && s.guid != base {
			fields = append(fields, string(rune(extGUID))+s.guid)
		}
		if s.uidl != "" {
			fields = append(fields, string(rune(extPOP3UIDL))+s.uidl)
		}
		if s.order != "" {
			fields = append(fields, string(rune(extPOP3Order))+s.order)
		}
		exts[i] = strings.Join(fields, " ")
	}

	// Into cur/ or new/. A long commit keeps its lock fresh, as Dovecot touches
	// it every MAILDIR_LOCK_TOUCH_SECS.
	touched := time.Now()
	keepLock := func() {
		if time.Since(touched) > lockTouchInterval {
			_ = l.Touch()
			touched = time.Now()
		}
	}
	curChanged, newChanged := false, false
	for i := range t.saves {
		s := &t.saves[i]
		keepLock()
		to := filepath.Join(m.b.dir, subdir(dirs[i]), finals[i])
		if dirs[i] == dirNew {
			newChanged = true
		} else {
			curChanged = true
		}
		if s.file != nil {
			// An unnamed file gets its name (an existing one is
			// an error, never replaced), then its descriptor is
			// closed.
			if err := unnamed.Link(s.file, to); err != nil {
				return wrap(err, "commit", m.b.name, formats.UID(s.uid), to)
			}
			moved++
			if err := t.closeUnnamed(s); err != nil {
				return wrap(err, "commit", m.b.name, formats.UID(s.uid), to)
			}
			continue
		}
		from := filepath.Join(m.b.dir, "tmp", s.tmp)
		// rename(2) itself: os.Rename would lstat the target first
		// (a directory check no maildir file name needs), one more
		// system call per message
		if err := syscall.Rename(from, to); err != nil {
			return wrap(&os.LinkError{Op: "rename", Old: from, New: to, Err: err}, "commit", m.b.name, formats.UID(s.uid), to)
		}
		moved++
	}

	// Flag changes and expunges of existing messages.
	renamed := map[uint32]movedTo{}
	gone := map[uint32]bool{}
	for _, uid := range t.changedUIDs() {
		keepLock()
		i := st.t.find(uid)
		if i < 0 {
			continue // not here (any more)
		}
		r := &st.t.recs[i]
		name, dir := st.t.name(r), r.dir
		for attempt := 0; ; attempt++ {
			path := filepath.Join(m.b.dir, subdir(dir), name)
			var err error
			if t.expunge[uid] {
				if err = os.Remove(path); err == nil {
					gone[uid] = true
				}
			} else if nn := setFlags(name, t.flags[uid].flags, flagLetters[uid]); nn != name {
				if err = os.Rename(path, filepath.Join(m.b.dir, subdir(dir), nn)); err == nil {
					renamed[uid] = movedTo{nn, dir}
				}
			} else if attempt > 0 {
				renamed[uid] = movedTo{name, dir} // found under a new name, flags already right
			}
			if err == nil {
				if dir == dirNew {
					newChanged = true
				} else {
					curChanged = true
				}
				break
			}
			if !errors.Is(err, fs.ErrNotExist) || attempt > 0 {
				return wrap(err, "commit", m.b.name, formats.UID(uid), path)
			}
			// A concurrent Dovecot renamed it (a flag change, or
			// new/ to cur/), or it was never under the name the index
			// gave it: find its current name.
			m.missing(st)
			var ok bool
			if name, dir, ok = m.locate(ctx, st.t.base(r)); !ok {
				gone[uid] = true // expunged meanwhile
				break
			}
		}
	}
	// cur/ and new/ are synced while the uidlist is written: both must
	// be durable before the uidlist is renamed into place, not one
	// after the other (two fsyncs waited for at once).
	dirsSynced := make(chan error, 1)
	go func() {
		if sync {
			for _, d := range []struct {
				changed bool
				sub     string
			}{{curChanged, "cur"}, {newChanged, "new"}} {
				if d.changed {
					if err := fsyncPath(filepath.Join(m.b.dir, d.sub)); err != nil {
						dirsSynced <- wrap(err, "commit", m.b.name, 0, filepath.Join(m.b.dir, d.sub))
						return
					}
				}
			}
		}
		dirsSynced <- nil
	}()
	waited := false
	waitDirs := func() error {
		if waited {
			return nil
		}
		waited = true
		return <-dirsSynced
	}
	defer waitDirs() // no fsync outlives Commit

	// The new table and dovecot-uidlist.
	nt, err := st.t.extend(gone, renamed, len(t.saves))
	if err != nil {
		return wrap(err, "commit", m.b.name, 0, "")
	}
	need := 0
	for i := range t.saves {
		need += len(finals[i]) + len(exts[i])
	}
	nt.reserve(need)
	for i, s := range t.saves {
		if err := nt.add(s.uid, finals[i], exts[i], dirs[i]); err != nil {
			return wrap(err, "commit", m.b.name, formats.UID(s.uid), "")
		}
	}
	// Unless rewritten, the uidlist still says what st's did: renames
	// keep base names and extensions.
	ns := &state{hdr: st.hdr, next: next, t: nt, kw: kw, kwMtime: st.kwMtime, quickCur: st.quickCur}
	ns.hdr.NextUID = next
	m.fillKeywords(ns)
	if dirty || len(t.saves) > 0 || len(gone) > 0 || next != st.hdr.NextUID {
		if err := m.writeUidlist(ns, true, waitDirs); err != nil {
			return err
		}
		// Still under the lock: ns lists this version exactly.
		ns.uidlistID = statID(filepath.Join(m.b.ctl, uidlistName))
	} else {
		ns.uidlistID = st.uidlistID // same records; renames change no base name
	}
	if err := waitDirs(); err != nil {
		return err
	}
	committed = true
	m.setState(ns)
	// The log describes mail the uidlist already names. Index-only
	// keywords exist nowhere else: failing to log them fails the
	// commit (the mail is there; a rerun sets the keywords again).
	if err := m.commitIndex(iw, t, st, ns, gone, extra); err != nil && len(extra) > 0 {
		return fail(formats.KindTemp, "commit", m.b.name, 0, "", fmt.Errorf("keywords beyond the 26 file name letters not kept: %w", err))
	}
	return nil
}

// changedUIDs returns the UIDs with flag changes or expunges, ascending.
func (t *tx) changedUIDs() []uint32 {
	uids := slices.Collect(maps.Keys(t.flags))
	for uid := range t.expunge {
		if _, ok := t.flags[uid]; !ok {
			uids = append(uids, uid)
		}
	}
	slices.Sort(uids)
	return uids
}

// syncFSMinFiles is the number of saved files above which one syncfs(2)
// replaces an fsync per file. syncfs also waits for every other writer's
// dirty data on the file system, so a transaction of a few messages (an
// incremental sync's new mail) syncs its own files, as Dovecot does
// [measured: 12 syncfs of 4 files each took 70-120 ms on a shared
// machine, the 80 fsyncs of the same run 40-100 ms].
const syncFSMinFiles = 16

// syncTmp makes the saved files durable as the fsync mode says (syncfs
// covers the unnamed ones too: they are dirty inodes of the file system).
func (t *tx) syncTmp() error {
	m := t.m
	switch m.s.opt.Fsync {
	case formats.FsyncNever, formats.FsyncAlways: // always: done at Save
		return nil
	}
	dir := filepath.Join(m.b.dir, "tmp")
	written := 0
	for _, s := range t.saves {
		if !s.linked {
			written++
		}
	}
	if haveSyncFS && written > syncFSMinFiles {
		if err := syncFS(dir); err == nil {
			return nil
		}
	}
	for _, s := range t.saves {
		if s.file != nil {
			if err := s.file.Sync(); err != nil {
				return wrap(err, "commit", m.b.name, formats.UID(s.uid), s.file.Name())
			}
			continue
		}
		if s.linked {
			continue // the source's file, not written by us (saveLink)
		}
		p := filepath.Join(dir, s.tmp)
		if err := fsyncPath(p); err != nil {
			return wrap(err, "commit", m.b.name, formats.UID(s.uid), p)
		}
	}
	return nil
}

// locate finds the current file name of a base name in new/ or cur/.
func (m *mailbox) locate(ctx context.Context, base string) (name string, dir uint8, ok bool) {
	for _, d := range []struct {
		sub string
		dir uint8
	}{{"cur", dirCur}, {"new", dirNew}} {
		_ = m.readDir(ctx, d.sub, func(n string) error {
			if !ok && baseOf(n) == base {
				name, dir, ok = n, d.dir, true
			}
			return nil
		})
		if ok {
			return name, dir, true
		}
	}
	return "", 0, false
}

// writeKeywords replaces dovecot-keywords (maildir_keywords_commit): under
// the uidlist lock, any dovecot-keywords.lock is stale, so it is removed
// and taken at once; the new content is written into it, synced, given an
// mtime after the old file's and renamed over the file.
func (m *mailbox) writeKeywords(ctx context.Context, kw *keywordList, oldMtime time.Time) error {
	path := filepath.Join(m.b.ctl, keywordsName)
	_ = os.Remove(path + lockSuffix)
	l, err := dotlock.Create(ctx, path, dotlock.Options{Stale: uidlistStaleTimeout, Mode: m.s.fileMode, KeepOpen: true})
	if err != nil {
		return wrap(err, "write keywords", m.b.name, 0, path+lockSuffix)
	}
	if err := l.Replace(formatKeywords(kw), m.s.opt.Fsync != formats.FsyncNever, oldMtime); err != nil {
		return wrap(err, "write keywords", m.b.name, 0, path)
	}
	return nil
}
