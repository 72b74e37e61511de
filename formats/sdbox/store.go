package sdbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxlist"
	"github.com/boxsync/boxsync/formats/internal/zlib"
	"github.com/boxsync/boxsync/index"
)

// Driver opens sdbox stores as Dovecot lays them out. The zero value
// saves plain mail; Configure turns on compressed saving.
type Driver struct {
	zlib zlib.Settings // mail_plugins zlib, zlib_save, zlib_save_level
}

var (
	_ formats.Driver       = Driver{}
	_ formats.Configurable = Driver{}
)

// SettingNames lists the Dovecot settings the driver takes: the zlib
// plugin's mail_plugins, plugin/zlib_save and plugin/zlib_save_level.
func (Driver) SettingNames() []string { return slices.Clone(dbox.ZlibSettingNames) }

// Configure returns a Driver that saves mail compressed as the zlib plugin
// settings ask: with zlib in mail_plugins and zlib_save = gz or zstd, Save
// writes that format at zlib_save_level (also spelt zlib_save and
// zlib_save_level).
func (Driver) Configure(settings map[string]string) (formats.Driver, error) {
	st, err := dbox.ParseZlibSettings(settings)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", driverName, err)
	}
	return Driver{zlib: st}, nil
}

// Name returns "sdbox".
func (Driver) Name() string { return "sdbox" }

// Caps: GUIDs, UIDs, keywords and modseqs are kept; the save date is the
// file's ctime, which cannot be set (Dovecot keeps a chosen one only in
// dovecot.index.cache, which boxsync does not write).
func (Driver) Caps() formats.Caps {
	return formats.LocalCaps(formats.Caps{GUIDs: true, SaveGUIDs: true, SaveUIDs: true, ModSeqs: true, Keywords: true})
}

// Open opens the store at loc.Path. See the package documentation for the
// location settings it accepts.
func (d Driver) Open(ctx context.Context, loc formats.Location, opt formats.OpenOptions) (formats.Store, error) {
	l, err := dboxlist.NewLayout(driverName, loc, opt)
	if err != nil {
		return nil, err
	}
	if err := l.OpenRoot(opt.Create); err != nil {
		return nil, err
	}
	return &Store{l: l, opt: opt, zlib: d.zlib}, nil
}

const driverName = "sdbox"

// Store is one sdbox tree. It is safe for concurrent use.
type Store struct {
	l    *dboxlist.Layout // immutable
	opt  formats.OpenOptions
	zlib zlib.Settings // immutable: how Save compresses

	// noUnnamed is set once dbox-Mails' file system refused an unnamed
	// file (O_TMPFILE): Save then writes .temp.* files.
	noUnnamed atomic.Bool
}

var (
	_ formats.Store   = (*Store)(nil)
	_ formats.Checker = (*Store)(nil)
	_ Rebuilder       = (*Store)(nil)
)

// Rebuilder is formats.Rebuilder, which *Store implements.
type Rebuilder = formats.Rebuilder

func fail(k formats.Kind, op, mailbox string, uid formats.UID, path string, err error) error {
	return dboxlist.Fail(k, driverName, op, mailbox, uid, path, err)
}

func wrap(err error, op, mailbox string, uid formats.UID, path string) error {
	return dboxlist.Wrap(err, driverName, op, mailbox, uid, path)
}

// Close releases the store; it holds nothing between calls.
func (s *Store) Close() error { return nil }

func (s *Store) indexOptions() *index.Options {
	return &index.Options{Fsync: s.opt.Fsync}
}

// Mailboxes lists the tree. A mailbox whose index cannot be read (lost or
// corrupted) is listed as selectable with a zero GUID: opening it fails and
// says what to do, and a backup does not take it for deleted.
func (s *Store) Mailboxes(ctx context.Context) ([]formats.MailboxInfo, error) {
	nodes, boxes, err := s.l.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range boxes {
		if ix, err := index.Open(b.IndexDir, index.Prefix, s.indexOptions()); err == nil {
			if v, err := ix.View(); err == nil {
				if h, ok := v.DboxHdr(); ok {
					nodes[b.Name].GUID = h.MailboxGUID
				}
			}
		}
	}
	return dboxlist.Sorted(nodes), nil
}

// SetSubscribed adds or removes name in the subscriptions file.
func (s *Store) SetSubscribed(ctx context.Context, name string, subscribed bool) error {
	return s.l.SetSubscribed(ctx, name, subscribed)
}

// hasMailFiles tells whether dir holds u.<uid> files.
func hasMailFiles(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(256)
		for _, n := range names {
			if _, ok := parseMailFile(n); ok {
				return true, nil
			}
		}
		if err != nil {
			return false, nil
		}
	}
}

// parseMailFile returns the UID of a "u.<uid>" name, as
// sdbox_sync_add_file reads it (str_to_uint32, nonzero). Only the
// canonical spelling counts: "u.01" is not u.1.
func parseMailFile(name string) (uint32, bool) {
	rest, ok := strings.CutPrefix(name, mailFilePrefix)
	if !ok || rest == "" || rest[0] == '0' || rest[0] == '+' {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint32(n), true
}

// mailFilePrefix starts sdbox mail file names (SDBOX_MAIL_FILE_PREFIX).
const mailFilePrefix = "u."

func mailFile(b *dboxlist.Box, uid uint32) string {
	return filepath.Join(b.MailDir, mailFilePrefix+strconv.FormatUint(uint64(uid), 10))
}

// altMailFile is where u.<uid> lives in ALT storage, or "" without ALT=.
func altMailFile(b *dboxlist.Box, uid uint32) string {
	if b.AltMailDir == "" {
		return ""
	}
	return filepath.Join(b.AltMailDir, mailFilePrefix+strconv.FormatUint(uint64(uid), 10))
}

// mailFiles lists the UIDs of the u.<uid> files in the primary dbox-Mails
// and, with ALT=, the alternate one (a missing ALT directory is empty),
// each with its file name; a UID in both is listed once.
func mailFiles(b *dboxlist.Box) (map[uint32]string, string, error) {
	uids := map[uint32]string{}
	for i, dir := range b.MailDirs() {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if i > 0 && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, dir, err
		}
		for _, e := range entries {
			if uid, ok := parseMailFile(e.Name()); ok {
				if _, dup := uids[uid]; !dup {
					uids[uid] = e.Name()
				}
			}
		}
	}
	return uids, "", nil
}

// errLostIndex is the error for a mailbox whose mail files have no index.
func lostIndex(op string, b *dboxlist.Box) error {
	return fail(formats.KindNotPossible, op, b.Name, 0, b.IndexDir,
		fmt.Errorf("mailbox has mail files (u.*) but no index (%s*): Dovecot would show it empty with a new UIDVALIDITY; "+
			"run `boxsync force-resync` on it to recover its messages first", index.Prefix))
}

// openIndex opens a mailbox's index. A missing index is created when the
// mailbox has no mail files and the store is writable (as Dovecot does,
// sdbox_sync_index: "could be just a race condition"); with mail files it
// is the lost-index error.
func (s *Store) openIndex(op string, b *dboxlist.Box) (*index.Index, error) {
	ix, err := index.Open(b.IndexDir, index.Prefix, s.indexOptions())
	if err == nil {
		return ix, nil
	}
	if !errors.Is(err, formats.ErrNotFound) {
		return nil, wrap(err, op, b.Name, 0, b.IndexDir)
	}
	var has bool
	for _, dir := range b.MailDirs() {
		h, herr := hasMailFiles(dir)
		if herr != nil {
			return nil, wrap(herr, op, b.Name, 0, dir)
		}
		has = has || h
	}
	if has || s.opt.ReadOnly {
		return nil, lostIndex(op, b)
	}
	if err := os.MkdirAll(b.IndexDir, s.l.DirMode); err != nil {
		return nil, wrap(err, op, b.Name, 0, b.IndexDir)
	}
	ix, err = s.createIndex(b.IndexDir, formats.NewGUID(), s.l.NewUIDValidity())
	if errors.Is(err, formats.ErrExists) {
		ix, err = index.Open(b.IndexDir, index.Prefix, s.indexOptions())
	}
	if err != nil {
		return nil, wrap(err, op, b.Name, 0, b.IndexDir)
	}
	return ix, nil
}

// createIndex writes a new log-only index (spec §2.9): UIDVALIDITY, the
// dbox-hdr with the mailbox GUID, and the modseq extension.
func (s *Store) createIndex(dir string, guid formats.GUID, uidValidity uint32) (*index.Index, error) {
	return index.Create(dir, index.Prefix, index.Options{
		UIDValidity: uidValidity,
		Extensions:  []index.ExtDef{index.DboxHdr{MailboxGUID: guid}.Ext()},
		Fsync:       s.opt.Fsync,
	})
}

// Open opens a mailbox. ErrNotFound when it does not exist; KindNotPossible
// when its mail files lost their index.
func (s *Store) Open(ctx context.Context, name string) (formats.Mailbox, error) {
	b, err := s.l.Resolve("open", name)
	if err != nil {
		return nil, err
	}
	if !s.l.Exists(b) {
		return nil, fail(formats.KindNotFound, "open", b.Name, 0, b.MailDir, errors.New("no such mailbox"))
	}
	ix, err := s.openIndex("open", b)
	if err != nil {
		return nil, err
	}
	m := &mailbox{s: s, b: b, ix: ix}
	if _, err := m.view("open"); err != nil {
		return nil, err
	}
	return m, nil
}

// Create makes a mailbox with a log-only index holding its UIDVALIDITY and
// GUID (dbox-hdr), built beside the tree and renamed into place.
func (s *Store) Create(ctx context.Context, name string, guid formats.GUID, uidValidity uint32) error {
	if err := s.l.Writable("create", name); err != nil {
		return err
	}
	b, err := s.l.Resolve("create", name)
	if err != nil {
		return err
	}
	if guid.IsZero() {
		guid = formats.NewGUID()
	}
	if uidValidity == 0 {
		uidValidity = s.l.NewUIDValidity()
	}
	if s.l.Exists(b) {
		if _, err := index.Open(b.IndexDir, index.Prefix, s.indexOptions()); !errors.Is(err, formats.ErrNotFound) {
			return fail(formats.KindExists, "create", b.Name, 0, b.MailDir, errors.New("mailbox exists"))
		}
		// dbox-Mails without an index: take it over unless it holds mail
		if has, err := hasMailFiles(b.MailDir); err != nil || has {
			if err != nil {
				return wrap(err, "create", b.Name, 0, b.MailDir)
			}
			return lostIndex("create", b)
		}
		if err := os.MkdirAll(b.IndexDir, s.l.DirMode); err != nil {
			return wrap(err, "create", b.Name, 0, b.IndexDir)
		}
		_, err := s.createIndex(b.IndexDir, guid, uidValidity)
		return wrap(err, "create", b.Name, 0, b.IndexDir)
	}
	err = s.l.Create(b, func(dir string) error {
		_, err := s.createIndex(dir, guid, uidValidity)
		return err
	})
	return wrap(err, "create", b.Name, 0, "")
}

// Delete removes a mailbox and its mail; children survive.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.l.Writable("delete", name); err != nil {
		return err
	}
	b, err := s.l.Resolve("delete", name)
	if err != nil {
		return err
	}
	if !s.l.Exists(b) {
		if err := s.l.DeleteContainer(b); err != nil {
			return err
		}
		return s.l.LogDelete(b, formats.GUID{})
	}
	guid := formats.MailboxGUIDOf(ctx, s, name)
	if err := s.l.Delete(b); err != nil {
		return err
	}
	return s.l.LogDelete(b, guid)
}

// commitLocks serialise commits to one mailbox within this process (the
// log lock only excludes other processes while the index is written; the
// UIDs are chosen and the files named before that).
var (
	commitLocksMu sync.Mutex
	commitLocks   = map[string]*sync.Mutex{}
)

func commitLock(dir string) *sync.Mutex {
	commitLocksMu.Lock()
	defer commitLocksMu.Unlock()
	mu := commitLocks[dir]
	if mu == nil {
		mu = &sync.Mutex{}
		commitLocks[dir] = mu
	}
	return mu
}

// MailboxLog returns the records of dovecot.mailbox.log.
func (s *Store) MailboxLog(ctx context.Context) ([]formats.MailboxLogRecord, error) {
	return s.l.MailboxLog()
}

// Rename moves a mailbox and its children (see dboxlist.Layout.Rename).
func (s *Store) Rename(ctx context.Context, from, to string) error {
	return s.l.Rename(ctx, from, to)
}

// CreateDir makes an empty \Noselect container.
func (s *Store) CreateDir(ctx context.Context, name string) error {
	return s.l.CreateDir(ctx, name)
}

var (
	_ formats.DirCreator    = (*Store)(nil)
	_ formats.Renamer       = (*Store)(nil)
	_ formats.MailboxLogger = (*Store)(nil)
)
