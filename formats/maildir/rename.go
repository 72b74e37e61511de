package maildir

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/mailboxlog"
	"github.com/boxsync/boxsync/index"
)

var (
	_ formats.DirCreator    = (*Store)(nil)
	_ formats.ImpliedDirs   = (*Store)(nil)
	_ formats.Renamer       = (*Store)(nil)
	_ formats.MailboxLogger = (*Store)(nil)
)

// logDir is where dovecot.mailbox.log lives: the root of the index
// directories (MAILBOX_LIST_PATH_TYPE_INDEX), "" with INDEX=MEMORY,
// where Dovecot keeps no log.
func (s *Store) logDir() string {
	switch s.index {
	case "":
		return s.root
	case "MEMORY":
		return ""
	}
	return s.index
}

// MailboxLog returns the records of dovecot.mailbox.log.
func (s *Store) MailboxLog(ctx context.Context) ([]formats.MailboxLogRecord, error) {
	dir := s.logDir()
	if dir == "" {
		return nil, nil
	}
	recs, err := mailboxlog.Read(dir)
	return recs, wrap(err, "mailbox log", "", 0, dir)
}

// logChange appends records to dovecot.mailbox.log, as Dovecot does after
// a delete, rename or (un)subscribe (mailbox_list_add_change).
func (s *Store) logChange(op, name string, recs ...formats.MailboxLogRecord) error {
	dir := s.logDir()
	if dir == "" {
		return nil
	}
	return wrap(mailboxlog.Append(dir, s.fileMode, recs...), op, name, 0, filepath.Join(dir, mailboxlog.FileName))
}

func nameChange(c formats.MailboxChange, name string) formats.MailboxLogRecord {
	return formats.MailboxLogRecord{Change: c, GUID: formats.MailboxNameHash(name), Time: mailboxlog.Now()}
}

// Rename moves a mailbox and its children, as Dovecot's maildir++ and fs
// list backends do: under Maildir++ every ".from" and ".from.*" directory
// is renamed (in the mail root, CONTROL= and INDEX=), under LAYOUT=fs the
// one directory tree; empty parents left behind under LAYOUT=fs are
// removed. Subscriptions stay as they are (doveadm mailbox rename without
// -s). Dovecot logs a rename record of the new name.
func (s *Store) Rename(ctx context.Context, from, to string) error {
	if err := s.writable("rename", from); err != nil {
		return err
	}
	fb, err := s.resolve("rename", from)
	if err != nil {
		return err
	}
	tb, err := s.resolve("rename", to)
	if err != nil {
		return err
	}
	if fb.isInbox() || tb.isInbox() {
		return fail(formats.KindNotPossible, "rename", fb.name, 0, "", errors.New("renaming INBOX is not supported"))
	}
	if tb.name == fb.name || strings.HasPrefix(tb.name, fb.name+"/") {
		return fail(formats.KindNotPossible, "rename", fb.name, 0, "", errors.New("can't rename a mailbox under itself"))
	}
	roots := []string{s.root}
	if s.control != "" {
		roots = append(roots, s.control)
	}
	if s.index != "" && s.index != "MEMORY" {
		roots = append(roots, s.index)
	}
	var moves [][2]string
	if s.fsys {
		rel := func(b *box) string { return filepath.Join(b.levels...) }
		if _, err := os.Stat(filepath.Join(s.root, rel(fb))); err != nil {
			return fail(formats.KindNotFound, "rename", fb.name, 0, fb.dir, errors.New("no such mailbox"))
		}
		if _, err := os.Lstat(filepath.Join(s.root, rel(tb))); err == nil {
			return fail(formats.KindExists, "rename", tb.name, 0, tb.dir, errors.New("target mailbox exists"))
		}
		for _, r := range roots {
			moves = append(moves, [2]string{filepath.Join(r, rel(fb)), filepath.Join(r, rel(tb))})
		}
	} else {
		oldPfx, newPfx := "."+strings.Join(fb.levels, "."), "."+strings.Join(tb.levels, ".")
		found := false
		for i, r := range roots {
			entries, err := os.ReadDir(r)
			if errors.Is(err, fs.ErrNotExist) && i > 0 {
				continue
			}
			if err != nil {
				return wrap(err, "rename", fb.name, 0, r)
			}
			for _, e := range entries {
				n := e.Name()
				if i == 0 && (n == newPfx || strings.HasPrefix(n, newPfx+".")) {
					return fail(formats.KindExists, "rename", tb.name, 0, filepath.Join(r, n), errors.New("target mailbox exists"))
				}
				if n == oldPfx || strings.HasPrefix(n, oldPfx+".") {
					found = found || i == 0
					moves = append(moves, [2]string{filepath.Join(r, n), filepath.Join(r, newPfx+n[len(oldPfx):])})
				}
			}
		}
		if !found {
			return fail(formats.KindNotFound, "rename", fb.name, 0, fb.dir, errors.New("no such mailbox"))
		}
	}
	sync := s.opt.Fsync != formats.FsyncNever
	for _, mv := range moves {
		if err := ctx.Err(); err != nil {
			return wrap(err, "rename", fb.name, 0, mv[0])
		}
		if _, err := os.Lstat(mv[0]); errors.Is(err, fs.ErrNotExist) {
			continue // no CONTROL=/INDEX= directory for it
		}
		if err := os.MkdirAll(filepath.Dir(mv[1]), s.dirMode); err != nil {
			return wrap(err, "rename", tb.name, 0, filepath.Dir(mv[1]))
		}
		if err := os.Rename(mv[0], mv[1]); err != nil {
			return wrap(err, "rename", fb.name, 0, mv[0])
		}
		if s.fsys {
			removeEmptyParents(filepath.Dir(mv[0]), rootOf(roots, mv[0]))
		}
		if sync {
			for _, dir := range []string{filepath.Dir(mv[0]), filepath.Dir(mv[1])} {
				// the old parent may be gone (removeEmptyParents)
				if err := fsyncPath(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return wrap(err, "rename", tb.name, 0, dir)
				}
			}
		}
	}
	return s.logChange("rename", tb.name, nameChange(formats.ChangeRename, tb.name))
}

// rootOf returns the root in roots that path is under.
func rootOf(roots []string, path string) string {
	for _, r := range roots {
		if strings.HasPrefix(path, r+string(filepath.Separator)) {
			return r
		}
	}
	return filepath.Dir(path)
}

// removeEmptyParents removes dir and its parents up to (not including)
// stop while they are empty: a LAYOUT=fs container a rename emptied.
func removeEmptyParents(dir, stop string) {
	for dir != stop && strings.HasPrefix(dir, stop+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// ImpliedDirs tells whether the store's containers are only names
// implied by their children: Maildir++ ones are, LAYOUT=fs ones are
// directories.
func (s *Store) ImpliedDirs() bool { return !s.fsys }

// CreateDir makes an empty \Noselect container: under LAYOUT=fs a
// directory without cur/; Maildir++ has no empty containers
// (KindNotPossible).
func (s *Store) CreateDir(ctx context.Context, name string) error {
	if err := s.writable("create", name); err != nil {
		return err
	}
	b, err := s.resolve("create", name)
	if err != nil {
		return err
	}
	if !s.fsys {
		return fail(formats.KindNotPossible, "create", b.name, 0, "", errors.New("Maildir++ has no empty directories"))
	}
	if _, err := os.Lstat(b.dir); err == nil {
		return fail(formats.KindExists, "create", b.name, 0, b.dir, errors.New("mailbox exists"))
	}
	if err := os.MkdirAll(b.dir, s.dirMode); err != nil {
		return wrap(err, "create", b.name, 0, b.dir)
	}
	if s.opt.Fsync != formats.FsyncNever {
		return wrap(fsyncPath(filepath.Dir(b.dir)), "create", b.name, 0, b.dir)
	}
	return nil
}

var _ formats.ExpungeLogger = (*mailbox)(nil)

// ExpungedGUIDs lists the expunges dovecot.index.log still records (see
// formats.ExpungeLogger); none without a usable index.
func (m *mailbox) ExpungedGUIDs(ctx context.Context) (map[formats.UID][16]byte, error) {
	dir := m.s.indexDir(m.b)
	if dir == "" {
		return nil, nil
	}
	st, err := m.Status(ctx)
	if err != nil {
		return nil, err
	}
	ix, err := index.Open(dir, index.Prefix, m.s.indexOptions())
	if err != nil {
		return nil, nil // no index (or a broken one): no history
	}
	if v, err := ix.View(); err != nil || v.UIDValidity() != st.UIDValidity {
		return nil, nil // stale: Dovecot would reset it
	}
	return expunged(ix)
}

// expunged converts index.ExpungedGUIDs to contract UIDs.
func expunged(ix *index.Index) (map[formats.UID][16]byte, error) {
	g, err := ix.ExpungedGUIDs()
	if err != nil || g == nil {
		return nil, err
	}
	out := make(map[formats.UID][16]byte, len(g))
	for uid, guid := range g {
		out[formats.UID(uid)] = guid
	}
	return out, nil
}
