package dboxlist

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/mboxname"
	"github.com/boxsync/boxsync/formats/internal/mutf7"
	"github.com/boxsync/boxsync/formats/internal/subsfile"
)

// Names Dovecot gives the parts of a dbox root (dbox-storage.h,
// mailbox-list-fs.h).
const (
	MailboxesDir = "mailboxes"       // DBOX_MAILBOX_DIR_NAME
	MailDir      = "dbox-Mails"      // DBOX_MAILDIR_NAME
	Subscription = "subscriptions"   // DBOX_SUBSCRIPTION_FILE_NAME
	TrashDir     = "..DOVECOT-TrasH" // MAILBOX_LIST_FS_TRASH_DIR_NAME
	// TempPrefix starts the names of temporary files in a mailbox's
	// dbox-Mails (DBOX_TEMP_FILE_PREFIX); Dovecot deletes them after 36
	// hours (DBOX_TMP_DELETE_SECS).
	TempPrefix = ".temp."
)

// Layout is the mailbox-list level of a dbox root as Dovecot lays it out
// (LAYOUT=fs, the dbox default; spec §4, §5, §8, §9):
//
//	<root>/mailboxes/<level>/<level>/dbox-Mails   a mailbox
//	<root>/mailboxes/<level>/                     without dbox-Mails: a \Noselect container
//	<root>/subscriptions                          (CONTROL= moves it; SUBSCRIPTIONS= renames it)
//	<INDEX=>/mailboxes/<level>/<level>/           index files, when INDEX= is set
//
// Levels are modified UTF-7 unless the location says UTF-8. A Layout is
// immutable apart from its UIDVALIDITY allocator and safe for concurrent
// use.
type Layout struct {
	Driver    string // "sdbox" or "mdbox", for errors
	Root      string
	IndexRoot string // INDEX=, or ""
	AltRoot   string // ALT= (alternate storage, read only: see OpenMail), or ""
	Subs      string // the subscriptions file
	UTF8      bool
	ReadOnly  bool
	Fsync     formats.FsyncMode

	DirMode, FileMode os.FileMode

	uidv mboxname.UIDValidity
	// trashMu serialises deletes, which all pass through the one
	// TrashDir: two at once would remove each other's trash.
	trashMu sync.Mutex
}

// NewLayout checks loc for a dbox driver: LAYOUT=fs (the default), INDEX=,
// CONTROL=, SUBSCRIPTIONS=, UTF-8, ALT= (read only, see [OpenMail]) and
// VOLATILEDIR= (unused: no lock lives there) are supported; anything else is refused with KindConfig.
func NewLayout(driver string, loc formats.Location, opt formats.OpenOptions) (*Layout, error) {
	bad := func(format string, args ...any) error {
		return Fail(formats.KindConfig, driver, "open", "", 0, "", fmt.Errorf("location %s: "+format, append([]any{loc}, args...)...))
	}
	if loc.Driver != "" && loc.Driver != driver {
		return nil, bad("not a %s location", driver)
	}
	if loc.Path == "" || !filepath.IsAbs(loc.Path) {
		return nil, bad("the mail root must be an absolute path")
	}
	l := &Layout{Driver: driver, Root: filepath.Clean(loc.Path), UTF8: loc.UTF8, ReadOnly: opt.ReadOnly,
		Fsync: opt.Fsync, DirMode: 0o700, FileMode: 0o600}
	switch loc.Layout {
	case "", "fs":
	default:
		return nil, bad("LAYOUT=%s is not supported for %s (only fs)", loc.Layout, driver)
	}
	if loc.Alt != "" {
		// spec §3.4: read from, never written to (writes go to the primary
		// root; nothing is moved to ALT).
		if !filepath.IsAbs(loc.Alt) {
			return nil, bad("ALT= must be an absolute path")
		}
		l.AltRoot = filepath.Clean(loc.Alt)
	}
	if loc.Inbox != "" {
		return nil, bad("INBOX= is not supported for %s", driver)
	}
	switch loc.Index {
	case "":
	case "MEMORY":
		return nil, bad("INDEX=MEMORY: dbox cannot work without index files")
	default:
		l.IndexRoot = filepath.Clean(loc.Index)
	}
	subsName := Subscription
	for k, v := range loc.Other {
		switch k {
		case "SUBSCRIPTIONS":
			if v == "" || strings.ContainsRune(v, '/') {
				return nil, bad("SUBSCRIPTIONS=%q must be a file name", v)
			}
			subsName = v
		default:
			return nil, bad("%s= is not supported for %s", k, driver)
		}
	}
	dir := l.Root
	if loc.Control != "" {
		dir = filepath.Clean(loc.Control)
	}
	l.Subs = filepath.Join(dir, subsName)
	return l, nil
}

// Box is a mailbox name resolved to its directories.
type Box struct {
	Name     string   // contract name, INBOX spelled "INBOX"
	Levels   []string // storage levels (modified UTF-7 unless UTF-8)
	Dir      string   // <root>/mailboxes/<levels>
	MailDir  string   // Dir/dbox-Mails
	IndexDir string   // where dovecot.index* live: MailDir, or under INDEX=
	// AltMailDir is the mailbox's dbox-Mails under ALT=, or "" without ALT=.
	AltMailDir string
}

// MailDirs are the directories that may hold the mailbox's mail files:
// MailDir, then AltMailDir when ALT= is set.
func (b *Box) MailDirs() []string {
	if b.AltMailDir == "" {
		return []string{b.MailDir}
	}
	return []string{b.MailDir, b.AltMailDir}
}

// OpenMail opens a mail file as Dovecot does with ALT= (spec §3.4,
// dbox_file_open): the primary path first and, when it does not exist
// and alt is not "", the same name under alt. It returns the path it
// opened; a file in neither place is an fs.ErrNotExist error for primary.
func OpenMail(primary, alt string) (*os.File, string, error) {
	f, err := os.Open(primary)
	if err == nil || alt == "" || !errors.Is(err, fs.ErrNotExist) {
		return f, primary, err
	}
	f, aerr := os.Open(alt)
	if aerr == nil {
		return f, alt, nil
	}
	if errors.Is(aerr, fs.ErrNotExist) {
		return nil, primary, err
	}
	return nil, alt, aerr
}

// Resolve validates a contract name and maps it to its directories. A
// level may not be "dbox-Mails", the mailbox's own directory (Dovecot:
// an internal name).
func (l *Layout) Resolve(op, name string) (*Box, error) {
	if err := formats.ValidateName(name); err != nil {
		return nil, Wrap(err, l.Driver, op, name, 0, "")
	}
	levels := strings.Split(name, string(formats.Separator))
	if formats.IsInbox(levels[0]) {
		levels[0] = "INBOX"
	}
	b := &Box{Name: strings.Join(levels, string(formats.Separator))}
	for _, lv := range levels {
		if lv == MailDir {
			return nil, Fail(formats.KindNotPossible, l.Driver, op, name, 0, "",
				fmt.Errorf("%q is the name of a mailbox's own directory", MailDir))
		}
		enc := lv
		if !l.UTF8 {
			enc = mutf7.Encode(lv)
		}
		b.Levels = append(b.Levels, enc)
	}
	b.Dir = filepath.Join(append([]string{l.Root, MailboxesDir}, b.Levels...)...)
	b.MailDir = filepath.Join(b.Dir, MailDir)
	b.IndexDir = b.MailDir
	if l.AltRoot != "" {
		b.AltMailDir = filepath.Join(append(append([]string{l.AltRoot, MailboxesDir}, b.Levels...), MailDir)...)
	}
	if l.IndexRoot != "" {
		b.IndexDir = filepath.Join(append([]string{l.IndexRoot, MailboxesDir}, b.Levels...)...)
	}
	return b, nil
}

// decodeLevels turns storage levels into a contract name, or "" when they
// are not a valid name that maps back to the same levels.
func (l *Layout) decodeLevels(levels []string) string {
	name := mboxname.DecodeLevels(levels, l.UTF8)
	if name == "" {
		return ""
	}
	b, err := l.Resolve("list", name)
	if err != nil || b.Name != name || !slices.Equal(b.Levels, levels) {
		return ""
	}
	return name
}

// NameOf turns a storage name as dbox metadata 'B' records it (the
// storage levels joined by '/') into a contract name, or "" when it is
// not one (mailbox_list_get_vname).
func (l *Layout) NameOf(storageName string) string {
	if storageName == "" {
		return ""
	}
	return l.decodeLevels(strings.Split(storageName, "/"))
}

// Exists tells whether b is a selectable mailbox: its dbox-Mails exists
// (dbox_mailbox_check_existence).
func (l *Layout) Exists(b *Box) bool {
	fi, err := os.Stat(b.MailDir)
	return err == nil && fi.IsDir()
}

// List walks <root>/mailboxes: every directory is a node, selectable when
// it holds dbox-Mails. Names that do not decode, or do not map back to
// the same directory, are skipped (Dovecot renames them; QUIRK: we leave
// them alone). The nodes include the containers above every mailbox and
// the subscribed names.
func (l *Layout) List(ctx context.Context) (nodes map[string]*formats.MailboxInfo, boxes []*Box, err error) {
	nodes = map[string]*formats.MailboxInfo{}
	node := func(name string) *formats.MailboxInfo {
		n := nodes[name]
		if n == nil {
			n = &formats.MailboxInfo{Name: name, NoSelect: true}
			nodes[name] = n
		}
		return n
	}
	var walk func(dir string, levels []string) error
	walk = func(dir string, levels []string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // no mailboxes yet, or deleted meanwhile
			}
			return Wrap(err, l.Driver, "list", "", 0, dir)
		}
		for _, e := range entries {
			fname := e.Name()
			if fname == MailDir {
				continue
			}
			path := filepath.Join(dir, fname)
			if !e.IsDir() {
				if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
					continue
				}
			}
			sub := append(slices.Clip(levels), fname)
			name := l.decodeLevels(sub)
			if name == "" {
				continue
			}
			b, err := l.Resolve("list", name)
			if err != nil {
				continue
			}
			n := node(name)
			for p := formats.Parent(name); p != ""; p = formats.Parent(p) {
				node(p)
			}
			if l.Exists(b) {
				n.NoSelect = false
				boxes = append(boxes, b)
			}
			if err := walk(path, sub); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(filepath.Join(l.Root, MailboxesDir), nil); err != nil {
		return nil, nil, err
	}
	subs, err := l.Subscriptions()
	if err != nil {
		return nil, nil, err
	}
	for _, name := range subs {
		node(name).Subscribed = true
	}
	return nodes, boxes, nil
}

// Sorted returns the nodes sorted by name.
func Sorted(nodes map[string]*formats.MailboxInfo) []formats.MailboxInfo {
	out := make([]formats.MailboxInfo, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b formats.MailboxInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Subscriptions returns the subscribed contract names; names that do not
// decode are skipped.
func (l *Layout) Subscriptions() ([]string, error) {
	data, err := os.ReadFile(l.Subs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, Wrap(err, l.Driver, "subscriptions", "", 0, l.Subs)
	}
	list, _ := subsfile.Parse(data, '/')
	var out []string
	for _, levels := range list {
		if name := l.decodeLevels(levels); name != "" {
			out = append(out, name)
		}
	}
	return out, nil
}

// Writable fails with KindPerm on a read-only store.
func (l *Layout) Writable(op, name string) error {
	if l.ReadOnly {
		return Fail(formats.KindPerm, l.Driver, op, name, 0, "", errors.New("store is opened read-only"))
	}
	return nil
}

// Sync tells whether writes are made durable (mail_fsync != never).
func (l *Layout) Sync() bool { return l.Fsync != formats.FsyncNever }

// SetSubscribed adds or removes name in the subscriptions file: under
// subscriptions.lock, the new content is written into the lock file,
// synced and renamed over the file (subsfile_set_subscribed).
func (l *Layout) SetSubscribed(ctx context.Context, name string, subscribed bool) error {
	if err := l.Writable("subscribe", name); err != nil {
		return err
	}
	b, err := l.Resolve("subscribe", name)
	if err != nil {
		return err
	}
	opt := subsfile.SetOptions{FileMode: l.FileMode, DirMode: l.DirMode, Sync: l.Sync()}
	if err := subsfile.Set(ctx, l.Subs, '/', b.Levels, subscribed, opt); err != nil {
		return Wrap(err, l.Driver, "subscribe", b.Name, 0, "")
	}
	change := formats.ChangeSubscribe
	if !subscribed {
		change = formats.ChangeUnsubscribe
	}
	return l.LogChange("subscribe", b.Name, NameChange(change, b.Name))
}

// NewUIDValidity picks a UIDVALIDITY for a new mailbox: the current time,
// made unique within the store (mailbox_uidvalidity_next_fallback; the
// optional dovecot-uidvalidity allocator file, spec §8.4, is not kept).
func (l *Layout) NewUIDValidity() uint32 { return l.uidv.Next() }

// OpenRoot checks the root. A missing root is created (0700) when create
// is set and the store is writable, else it is KindNotFound. New
// directories and files take the root's permissions, as
// mailbox_list_get_root_permissions makes them.
func (l *Layout) OpenRoot(create bool) error {
	fi, err := os.Stat(l.Root)
	switch {
	case errors.Is(err, fs.ErrNotExist) && create && !l.ReadOnly:
		if err := os.MkdirAll(l.Root, 0o700); err != nil {
			return Wrap(err, l.Driver, "open", "", 0, l.Root)
		}
		return nil
	case err != nil:
		return Wrap(err, l.Driver, "open", "", 0, l.Root)
	case !fi.IsDir():
		return Fail(formats.KindConfig, l.Driver, "open", "", 0, l.Root, errors.New("not a directory"))
	}
	l.DirMode = fi.Mode().Perm() | 0o700
	l.FileMode = l.DirMode & 0o666
	return nil
}

// Create makes the directories of a new mailbox. makeIndex writes the
// index into the directory it is given. Without INDEX= the index lives in
// dbox-Mails, which is built under a temporary name in the root (one
// Dovecot does not list) and renamed into place, so that Dovecot never
// sees a dbox-Mails without its index; with INDEX= the index is made
// first and dbox-Mails after it.
func (l *Layout) Create(b *Box, makeIndex func(dir string) error) error {
	sync := l.Sync()
	if err := os.MkdirAll(b.Dir, l.DirMode); err != nil {
		return err
	}
	if l.IndexRoot != "" {
		if err := os.MkdirAll(b.IndexDir, l.DirMode); err != nil {
			return err
		}
		if err := makeIndex(b.IndexDir); err != nil {
			return err
		}
		if err := os.Mkdir(b.MailDir, l.DirMode); err != nil {
			return err
		}
		if sync {
			return errors.Join(FsyncPath(b.IndexDir), FsyncPath(b.Dir))
		}
		return nil
	}
	stage, err := os.MkdirTemp(l.Root, ".boxsync-create.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	staged := filepath.Join(stage, MailDir)
	if err := os.Mkdir(staged, l.DirMode); err != nil {
		return err
	}
	if err := makeIndex(staged); err != nil {
		return err
	}
	if sync {
		if err := FsyncPath(staged); err != nil {
			return err
		}
	}
	if err := os.Rename(staged, b.MailDir); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return Fail(formats.KindExists, l.Driver, "create", b.Name, 0, b.MailDir, errors.New("mailbox exists"))
		}
		return err
	}
	if sync {
		return FsyncPath(b.Dir)
	}
	return nil
}

// Delete removes a mailbox's dbox-Mails the way Dovecot's fs layout does
// (fs_list_delete_maildir): renamed to <root>/..DOVECOT-TrasH first, which
// makes it disappear at once, then removed; the mailbox directory goes
// too when no child is left, and with INDEX= the index files.
func (l *Layout) Delete(b *Box) error {
	l.trashMu.Lock()
	defer l.trashMu.Unlock()
	trash := filepath.Join(l.Root, TrashDir)
	for i := 0; ; i++ {
		err := os.Rename(b.MailDir, trash)
		if err == nil {
			break
		}
		if errors.Is(err, fs.ErrNotExist) {
			return Fail(formats.KindNotFound, l.Driver, "delete", b.Name, 0, b.MailDir, errors.New("no such mailbox"))
		}
		if i < 3 && (errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY)) {
			// a crashed delete left it: clear it and retry
			if err := os.RemoveAll(trash); err != nil {
				return Wrap(err, l.Driver, "delete", b.Name, 0, trash)
			}
			continue
		}
		return Wrap(err, l.Driver, "delete", b.Name, 0, b.MailDir)
	}
	if err := os.RemoveAll(trash); err != nil {
		return Wrap(err, l.Driver, "delete", b.Name, 0, trash)
	}
	if b.AltMailDir != "" {
		// Dovecot deletes the ALT copy too (mailbox_list_delete_maildir_via_trash
		// on the alt path); the mailbox directory there goes when empty
		if err := os.RemoveAll(b.AltMailDir); err != nil {
			return Wrap(err, l.Driver, "delete", b.Name, 0, b.AltMailDir)
		}
		if err := os.Remove(filepath.Dir(b.AltMailDir)); err != nil && !errors.Is(err, fs.ErrNotExist) && !isNotEmpty(err) {
			return Wrap(err, l.Driver, "delete", b.Name, 0, filepath.Dir(b.AltMailDir))
		}
	}
	if l.IndexRoot != "" {
		if err := removeFiles(b.IndexDir); err != nil {
			return Wrap(err, l.Driver, "delete", b.Name, 0, b.IndexDir)
		}
	}
	// the mailbox directory stays while it has children
	if err := os.Remove(b.Dir); err != nil && !errors.Is(err, fs.ErrNotExist) && !isNotEmpty(err) {
		return Wrap(err, l.Driver, "delete", b.Name, 0, b.Dir)
	}
	if l.Sync() {
		_ = FsyncPath(filepath.Dir(b.Dir))
	}
	return nil
}

// DeleteContainer deletes a \Noselect container: it fails with
// KindNotPossible while the container has children and KindNotFound when
// it does not exist.
func (l *Layout) DeleteContainer(b *Box) error {
	entries, err := os.ReadDir(b.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Fail(formats.KindNotFound, l.Driver, "delete", b.Name, 0, b.Dir, errors.New("no such mailbox"))
	}
	if err != nil {
		return Wrap(err, l.Driver, "delete", b.Name, 0, b.Dir)
	}
	for _, e := range entries {
		if e.IsDir() {
			return Fail(formats.KindNotPossible, l.Driver, "delete", b.Name, 0, b.Dir, errors.New("mailbox has children, delete them first"))
		}
	}
	if err := os.RemoveAll(b.Dir); err != nil {
		return Wrap(err, l.Driver, "delete", b.Name, 0, b.Dir)
	}
	if l.IndexRoot != "" {
		if err := removeFiles(b.IndexDir); err != nil {
			return Wrap(err, l.Driver, "delete", b.Name, 0, b.IndexDir)
		}
	}
	return nil
}

// removeFiles removes the files in dir, keeping subdirectories (child
// mailboxes' index directories); dir goes when nothing is left.
func removeFiles(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	children := 0
	for _, e := range entries {
		if e.IsDir() {
			children++
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
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

func isNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}
