package maildir

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/emersion/go-maildir"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/subsfile"
)

// newUIDValidity picks a UIDVALIDITY for a new mailbox: the current time,
// made unique within the store (mailbox_uidvalidity_next_fallback; we do
// not keep the optional dovecot-uidvalidity allocator file, §8.4).
func (s *Store) newUIDValidity() uint32 { return s.uidv.Next() }

// newHeader returns the header of a new dovecot-uidlist for a mailbox,
// the same for the life of the store.
func (s *Store) newHeader(ctl string) uidlistHeader {
	s.mu.Lock()
	h, ok := s.memHdr[ctl]
	s.mu.Unlock()
	if ok {
		return h
	}
	h = uidlistHeader{Version: uidlistVersion, UIDValidity: s.newUIDValidity(), GUID: formats.NewGUID(), HasGUID: true}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.memHdr == nil {
		s.memHdr = map[string]uidlistHeader{}
	}
	if old, ok := s.memHdr[ctl]; ok {
		return old
	}
	s.memHdr[ctl] = h
	return h
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// exists tells whether a mailbox is selectable, by Dovecot's rules: the
// INBOX and LAYOUT=fs mailboxes need cur/ (maildir_mailbox_exists); under
// Maildir++ any ".name" directory is a mailbox, whose missing cur/, new/
// and tmp/ Dovecot creates when it opens it (maildir_list_get_mailbox_flags,
// maildir_mailbox_open).
func (s *Store) exists(b *box) bool {
	if b.isInbox() || s.fsys {
		return isDir(filepath.Join(b.dir, "cur"))
	}
	return isDir(b.dir)
}

// Open opens a mailbox. A Maildir++ mailbox without cur/, new/ or tmp/
// gets them, as Dovecot does, unless the store is read-only.
func (s *Store) Open(ctx context.Context, name string) (formats.Mailbox, error) {
	b, err := s.resolve("open", name)
	if err != nil {
		return nil, err
	}
	if !s.exists(b) {
		return nil, fail(formats.KindNotFound, "open", b.name, 0, b.dir, errors.New("no such mailbox"))
	}
	if !s.opt.ReadOnly {
		for _, sub := range []string{"cur", "new", "tmp"} {
			_ = os.Mkdir(filepath.Join(b.dir, sub), s.dirMode)
		}
	}
	return &mailbox{s: s, b: b}, nil
}

// Mailboxes lists the tree. Directory names that are not valid mailbox
// names (bad modified UTF-7, names that would not map back to the same
// directory) are skipped. A mailbox without dovecot-uidlist gets one, as
// Dovecot's status lookup does, so that it has a GUID.
func (s *Store) Mailboxes(ctx context.Context) ([]formats.MailboxInfo, error) {
	nodes, boxes, err := s.tree(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range boxes {
		g, err := s.mailboxGUID(ctx, b)
		if err != nil {
			return nil, err
		}
		nodes[b.name].GUID = g
	}
	subs, err := s.subscriptions()
	if err != nil {
		return nil, err
	}
	for _, name := range subs {
		n := nodes[name]
		if n == nil {
			n = &formats.MailboxInfo{Name: name, NoSelect: true}
			nodes[name] = n
		}
		n.Subscribed = true
	}
	out := make([]formats.MailboxInfo, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b formats.MailboxInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// tree lists the directories: every node, and the selectable mailboxes.
func (s *Store) tree(ctx context.Context) (map[string]*formats.MailboxInfo, []*box, error) {
	nodes := map[string]*formats.MailboxInfo{}
	node := func(name string) *formats.MailboxInfo {
		n := nodes[name]
		if n == nil {
			n = &formats.MailboxInfo{Name: name, NoSelect: true}
			nodes[name] = n
		}
		return n
	}
	var boxes []*box
	add := func(b *box, selectable bool) {
		n := node(b.name)
		if selectable && n.NoSelect {
			n.NoSelect = false
			boxes = append(boxes, b)
		}
		for p := formats.Parent(b.name); p != ""; p = formats.Parent(p) {
			node(p)
		}
	}
	if inbox, _ := s.resolve("list", "INBOX"); s.exists(inbox) {
		add(inbox, true)
	}
	var err error
	if s.fsys {
		err = s.listFS(ctx, s.root, nil, add)
	} else {
		err = s.listMaildirPP(add)
	}
	if err != nil {
		return nil, nil, err
	}
	return nodes, boxes, nil
}

// listMaildirPP lists "<root>/.A.B" directories (mailbox-list-maildir-iter.c).
func (s *Store) listMaildirPP(add func(*box, bool)) error {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return wrap(err, "list", "", 0, s.root)
	}
	for _, e := range entries {
		fname := e.Name()
		// "..DOVECOT-TRASH" is a mailbox being deleted; "..x" has an
		// empty first level.
		if len(fname) < 2 || fname[0] != '.' || fname[1] == '.' {
			continue
		}
		if !e.IsDir() {
			if e.Type()&fs.ModeSymlink == 0 || !isDir(filepath.Join(s.root, fname)) {
				continue
			}
		}
		levels := strings.Split(fname[1:], ".")
		name := s.decodeLevels(levels)
		if name == "" || name == "INBOX" {
			continue // QUIRK: not a name we can map back; skipped
		}
		b, err := s.resolve("list", name)
		if err != nil {
			continue
		}
		add(b, true)
	}
	return nil
}

// listFS walks LAYOUT=fs directories: a directory with cur/ is a mailbox,
// one without is a \Noselect container; cur/, new/ and tmp/ are a
// maildir's own.
func (s *Store) listFS(ctx context.Context, dir string, levels []string, add func(*box, bool)) error {
	if err := ctx.Err(); err != nil {
		return wrap(err, "list", "", 0, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if len(levels) > 0 && errors.Is(err, fs.ErrNotExist) {
			return nil // deleted meanwhile
		}
		return wrap(err, "list", "", 0, dir)
	}
	for _, e := range entries {
		fname := e.Name()
		if fname == "cur" || fname == "new" || fname == "tmp" {
			continue
		}
		path := filepath.Join(dir, fname)
		if !e.IsDir() && (e.Type()&fs.ModeSymlink == 0 || !isDir(path)) {
			continue
		}
		if path == s.control {
			continue
		}
		sub := append(slices.Clip(levels), fname)
		name := s.decodeLevels(sub)
		if name == "" || name == "INBOX" {
			continue // QUIRK: not a name we can map back; skipped
		}
		b, err := s.resolve("list", name)
		if err != nil {
			continue
		}
		add(b, isDir(filepath.Join(path, "cur")))
		if err := s.listFS(ctx, path, sub, add); err != nil {
			return err
		}
	}
	return nil
}

// mailboxGUID reads the G field of a mailbox's dovecot-uidlist header,
// making the uidlist if there is none yet.
func (s *Store) mailboxGUID(ctx context.Context, b *box) (formats.GUID, error) {
	path := filepath.Join(b.ctl, uidlistName)
	f, err := os.Open(path)
	if err == nil {
		line, rerr := bufio.NewReaderSize(f, 4096).ReadSlice('\n')
		f.Close()
		if rerr != nil && rerr != io.EOF {
			return formats.GUID{}, wrap(rerr, "list", b.name, 0, path)
		}
		line, _ = cutLine(line)
		h, perr := parseUidlistHeader(line)
		if perr != nil {
			return formats.GUID{}, fail(formats.KindInvalidData, "list", b.name, 0, path, perr)
		}
		if h.HasGUID && h.Version == uidlistVersion {
			return h.GUID, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return formats.GUID{}, wrap(err, "list", b.name, 0, path)
	}
	m := &mailbox{s: s, b: b}
	st, err := m.load(ctx)
	if err != nil {
		return formats.GUID{}, err
	}
	return st.hdr.GUID, nil
}

// hierSep is the separator of version 1 subscription files.
func (s *Store) hierSep() byte {
	if s.fsys {
		return '/'
	}
	return '.'
}

// subscriptions returns the subscribed contract names; names that do not
// decode are skipped.
func (s *Store) subscriptions() ([]string, error) {
	data, err := os.ReadFile(s.subs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap(err, "subscriptions", "", 0, s.subs)
	}
	list, _ := subsfile.Parse(data, s.hierSep())
	var out []string
	for _, levels := range list {
		if name := s.decodeLevels(levels); name != "" {
			out = append(out, name)
		}
	}
	return out, nil
}

// SetSubscribed adds or removes name in the subscriptions file: under
// subscriptions.lock, the new content is written into the lock file,
// synced and renamed over the file (subsfile_set_subscribed).
func (s *Store) SetSubscribed(ctx context.Context, name string, subscribed bool) error {
	if err := s.writable("subscribe", name); err != nil {
		return err
	}
	b, err := s.resolve("subscribe", name)
	if err != nil {
		return err
	}
	opt := subsfile.SetOptions{FileMode: s.fileMode, DirMode: s.dirMode, Sync: s.opt.Fsync != formats.FsyncNever}
	if err := subsfile.Set(ctx, s.subs, s.hierSep(), b.levels, subscribed, opt); err != nil {
		return wrap(err, "subscribe", b.name, 0, "")
	}
	return nil
}

// Create makes a mailbox: cur/, new/, tmp/ and a dovecot-uidlist "3
// V<uidvalidity> N1 G<guid>" (plus an empty maildirfolder under
// Maildir++). A Maildir++ mailbox is built under a temporary name in the
// root (one Dovecot does not list) and renamed into place, so that it
// appears whole; elsewhere cur/ is made last, since it is what makes a
// directory a mailbox.
func (s *Store) Create(ctx context.Context, name string, guid formats.GUID, uidValidity uint32) error {
	if err := s.writable("create", name); err != nil {
		return err
	}
	b, err := s.resolve("create", name)
	if err != nil {
		return err
	}
	if s.exists(b) {
		return fail(formats.KindExists, "create", b.name, 0, b.dir, errors.New("mailbox exists"))
	}
	if guid.IsZero() {
		guid = formats.NewGUID()
	}
	if uidValidity == 0 {
		uidValidity = s.newUIDValidity()
	}
	hdr := uidlistHeader{Version: uidlistVersion, UIDValidity: uidValidity, NextUID: 1, GUID: guid, HasGUID: true}
	uidlist := formatUidlist(hdr, &table{})
	sync := s.opt.Fsync != formats.FsyncNever
	if err := s.create(b, uidlist, sync); err != nil {
		return wrap(err, "create", b.name, 0, "")
	}
	return nil
}

func (s *Store) create(b *box, uidlist []byte, sync bool) error {
	writeUidlist := func(ctl string) error {
		if err := os.MkdirAll(ctl, s.dirMode); err != nil {
			return err
		}
		path := filepath.Join(ctl, uidlistName)
		tmp := path + ".tmp"
		_ = os.Remove(tmp)
		if err := writeFileSync(tmp, uidlist, s.fileMode, sync); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	}
	if !s.fsys && !b.isInbox() {
		stage, err := os.MkdirTemp(s.root, "boxsync-create.")
		if err != nil {
			return err
		}
		defer os.RemoveAll(stage)
		if err := os.Chmod(stage, s.dirMode); err != nil {
			return err
		}
		// go-maildir's Dir.Init makes cur/, new/ and tmp/ (0700);
		// Dovecot gives them the root's permissions.
		if err := maildir.Dir(stage).Init(); err != nil {
			return err
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.Chmod(filepath.Join(stage, sub), s.dirMode); err != nil {
				return err
			}
		}
		if err := writeFileSync(filepath.Join(stage, "maildirfolder"), nil, s.fileMode, false); err != nil {
			return err
		}
		ctl := b.ctl
		if s.control == "" {
			ctl = stage
		}
		if err := writeUidlist(ctl); err != nil {
			return err
		}
		if sync {
			if err := fsyncPath(stage); err != nil {
				return err
			}
		}
		if err := os.Rename(stage, b.dir); err != nil {
			if errors.Is(err, fs.ErrExist) || isNotEmpty(err) {
				return fail(formats.KindExists, "create", b.name, 0, b.dir, errors.New("mailbox exists"))
			}
			return err
		}
		if sync {
			return fsyncPath(s.root)
		}
		return nil
	}
	if err := os.MkdirAll(b.dir, s.dirMode); err != nil {
		return err
	}
	if err := writeUidlist(b.ctl); err != nil {
		return err
	}
	for _, sub := range []string{"new", "tmp", "cur"} {
		err := os.Mkdir(filepath.Join(b.dir, sub), s.dirMode)
		if sub == "cur" && errors.Is(err, fs.ErrExist) {
			return fail(formats.KindExists, "create", b.name, 0, b.dir, errors.New("mailbox exists"))
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	if sync {
		if err := fsyncPath(b.dir); err != nil {
			return err
		}
		return fsyncPath(filepath.Dir(b.dir))
	}
	return nil
}

// trashName is where Dovecot renames a Maildir++ mailbox it deletes, so
// that it disappears at once (MAILBOX_LIST_MAILDIR_TRASH_DIR_NAME).
const trashName = "..DOVECOT-TRASH"

// Delete removes a mailbox and its mail. Under Maildir++ the directory is
// renamed to "..DOVECOT-TRASH" and then removed, as Dovecot does; under
// LAYOUT=fs cur/ goes first (the mailbox is then a container), then the
// rest of the maildir, keeping child mailboxes. The INBOX cannot be
// deleted (Dovecot: "INBOX can't be deleted").
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.writable("delete", name); err != nil {
		return err
	}
	b, err := s.resolve("delete", name)
	if err != nil {
		return err
	}
	if err := s.delete(b); err != nil {
		return err
	}
	// Index files under INDEX= go too: a mailbox created later under
	// the same name must not inherit them.
	if ixd := s.indexDir(b); s.index != "" && ixd != "" {
		if err := removeMaildirParts(ixd); err != nil {
			return wrap(err, "delete", b.name, 0, ixd)
		}
	}
	return nil
}

func (s *Store) delete(b *box) error {
	if b.isInbox() {
		return fail(formats.KindNotPossible, "delete", b.name, 0, "", errors.New("INBOX can't be deleted"))
	}
	if !s.exists(b) {
		return s.deleteContainer(b)
	}
	if !s.fsys {
		s.trashMu.Lock()
		defer s.trashMu.Unlock()
		trash := filepath.Join(s.root, trashName)
		for i := 0; ; i++ {
			err := os.Rename(b.dir, trash)
			if err == nil {
				break
			}
			if i < 3 && (errors.Is(err, fs.ErrExist) || isNotEmpty(err)) {
				if err := os.RemoveAll(trash); err != nil {
					return wrap(err, "delete", b.name, 0, trash)
				}
				continue
			}
			return wrap(err, "delete", b.name, 0, b.dir)
		}
		if err := os.RemoveAll(trash); err != nil {
			return wrap(err, "delete", b.name, 0, trash)
		}
		if s.control != "" {
			if err := os.RemoveAll(b.ctl); err != nil {
				return wrap(err, "delete", b.name, 0, b.ctl)
			}
		}
		return nil
	}
	if err := os.RemoveAll(filepath.Join(b.dir, "cur")); err != nil {
		return wrap(err, "delete", b.name, 0, filepath.Join(b.dir, "cur"))
	}
	for _, dir := range []string{b.dir, b.ctl} {
		if err := removeMaildirParts(dir); err != nil {
			return wrap(err, "delete", b.name, 0, dir)
		}
	}
	return nil
}

// deleteContainer deletes a \Noselect container: it fails while the
// container has children; an empty LAYOUT=fs directory is removed.
func (s *Store) deleteContainer(b *box) error {
	children := false
	if s.fsys {
		entries, err := os.ReadDir(b.dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return wrap(err, "delete", b.name, 0, b.dir)
		}
		if err != nil {
			return fail(formats.KindNotFound, "delete", b.name, 0, b.dir, errors.New("no such mailbox"))
		}
		for _, e := range entries {
			if e.IsDir() {
				children = true
			}
		}
		if !children {
			for _, dir := range []string{b.dir, b.ctl} {
				if err := removeMaildirParts(dir); err != nil {
					return wrap(err, "delete", b.name, 0, dir)
				}
			}
			return nil
		}
	} else {
		prefix := filepath.Base(b.dir) + "."
		entries, err := os.ReadDir(s.root)
		if err != nil {
			return wrap(err, "delete", b.name, 0, s.root)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) && e.IsDir() {
				children = true
			}
		}
	}
	if children {
		return fail(formats.KindNotPossible, "delete", b.name, 0, b.dir, errors.New("mailbox has children, delete them first"))
	}
	return fail(formats.KindNotFound, "delete", b.name, 0, b.dir, errors.New("no such mailbox"))
}

// removeMaildirParts removes a LAYOUT=fs maildir's files and its cur/,
// new/ and tmp/, keeping child mailbox directories; the directory itself
// goes when nothing is left.
func removeMaildirParts(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	children := 0
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() && n != "cur" && n != "new" && n != "tmp" {
			children++
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	if children == 0 {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func isNotEmpty(err error) bool { return errors.Is(err, syscall.ENOTEMPTY) }

// Check verifies each mailbox's dovecot-uidlist against the files: UIDs
// ascending and below the next UID, message GUIDs unique, and a file in
// new/ or cur/ for every record. It changes nothing.
func (s *Store) Check(ctx context.Context) error {
	_, boxes, err := s.tree(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range boxes {
		m := &mailbox{s: s, b: b}
		h, t, next, err := m.readUidlist()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if h.Version == 0 {
			continue
		}
		files := map[string]bool{}
		for _, sub := range []string{"new", "cur"} {
			if err := m.readDir(ctx, sub, func(n string) error { files[baseOf(n)] = true; return nil }); err != nil {
				errs = append(errs, err)
			}
		}
		guids := map[string]formats.UID{}
		var last uint32
		for i := range t.recs {
			r := &t.recs[i]
			uid := formats.UID(r.uid)
			bad := func(format string, args ...any) {
				errs = append(errs, fail(formats.KindInvalidData, "check", b.name, uid, filepath.Join(b.ctl, uidlistName), fmt.Errorf(format, args...)))
			}
			if r.uid <= last || r.uid >= next {
				bad("UID %d out of order or not below next UID %d", r.uid, next)
			}
			last = r.uid
			g := t.base(r)
			if v, ok := extValue(t.ext(r), extGUID); ok && v != "" {
				g = v
			}
			if prev, dup := guids[g]; dup {
				bad("GUID %q also used by UID %d", g, prev)
			}
			guids[g] = uid
			if !files[t.base(r)] {
				bad("no file for base name %q", t.base(r))
			}
		}
	}
	return errors.Join(errs...)
}
