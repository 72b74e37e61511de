package mdbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxlist"
	"github.com/boxsync/boxsync/formats/internal/zlib"
	"github.com/boxsync/boxsync/index"
)

const driverName = "mdbox"

// DefaultRotateSize is mdbox_rotate_size's default (10M): no message is
// appended to a file that would grow beyond it.
const DefaultRotateSize = 10 << 20

// Driver opens mdbox stores as Dovecot lays them out. The zero value uses
// Dovecot's defaults; Configure sets mdbox_rotate_size.
type Driver struct {
	// RotateSize is mdbox_rotate_size; 0 means DefaultRotateSize.
	RotateSize int64

	zlib zlib.Settings // mail_plugins zlib, zlib_save, zlib_save_level
}

var (
	_ formats.Driver       = Driver{}
	_ formats.Configurable = Driver{}
)

// Name returns "mdbox".
func (Driver) Name() string { return driverName }

// Caps: GUIDs, UIDs, keywords, modseqs and save dates are kept (mdbox
// keeps the save date in its index, unlike sdbox).
func (Driver) Caps() formats.Caps {
	return formats.LocalCaps(formats.Caps{GUIDs: true, SaveGUIDs: true, SaveUIDs: true, ModSeqs: true, Keywords: true, SaveDate: true})
}

// SettingNames lists the Dovecot settings the driver takes.
func (Driver) SettingNames() []string {
	return append([]string{"mdbox_rotate_size", "mdbox_rotate_interval", "mdbox_preallocate_space"}, dbox.ZlibSettingNames...)
}

// Configure returns a Driver with the given settings. mdbox_rotate_interval
// and mdbox_preallocate_space are accepted and unused: each transaction
// starts or continues the newest file anyway, and space is not
// preallocated. With zlib in mail_plugins and plugin/zlib_save (or
// zlib_save) = gz or zstd, Save writes that format at zlib_save_level, as
// Dovecot's zlib plugin does.
func (d Driver) Configure(settings map[string]string) (formats.Driver, error) {
	st, err := dbox.ParseZlibSettings(settings)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", driverName, err)
	}
	d.zlib = st
	if v, ok := settings["mdbox_rotate_size"]; ok && v != "" {
		n, err := parseSize(v)
		if err != nil || n <= 0 {
			return nil, formats.Errorf(formats.KindConfig, "mdbox_rotate_size=%q: want a size such as 10M", v)
		}
		d.RotateSize = n
	}
	return d, nil
}

// parseSize parses a Dovecot size setting: a number with an optional unit
// B, k, M, G or T (powers of 1024; settings-parser.c settings_get_size).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	if n := len(s); n > 0 {
		switch strings.ToUpper(s[n-1:]) {
		case "B":
			s = s[:n-1]
		case "K":
			mult, s = 1<<10, s[:n-1]
		case "M":
			mult, s = 1<<20, s[:n-1]
		case "G":
			mult, s = 1<<30, s[:n-1]
		case "T":
			mult, s = 1<<40, s[:n-1]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, err
	}
	return n * mult, nil
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
	s := &Store{l: l, opt: opt, rotate: d.RotateSize, zlib: d.zlib}
	if s.rotate <= 0 {
		s.rotate = DefaultRotateSize
	}
	s.storageDir = filepath.Join(l.Root, storageDirName)
	s.mapDir = s.storageDir
	if l.AltRoot != "" {
		s.altStorageDir = filepath.Join(l.AltRoot, storageDirName)
	}
	if l.IndexRoot != "" {
		s.mapDir = filepath.Join(l.IndexRoot, storageDirName)
	}
	return s, nil
}

// Names in the root (mdbox-storage.h).
const (
	storageDirName = "storage" // MDBOX_GLOBAL_DIR_NAME
	mailFilePrefix = "m."      // MDBOX_MAIL_FILE_PREFIX
)

// Store is one mdbox tree. It is safe for concurrent use.
type Store struct {
	l          *dboxlist.Layout // immutable
	opt        formats.OpenOptions
	rotate     int64         // immutable: mdbox_rotate_size
	zlib       zlib.Settings // immutable: how Save compresses
	storageDir string        // immutable: <root>/storage, the m.* files
	// altStorageDir is <ALT>/storage, where `doveadm altmove` puts m.*
	// files (read only for us), or "" without ALT=; immutable.
	altStorageDir string
	mapDir        string // immutable: where dovecot.map.index* live

	mu      sync.Mutex   // guards mapIx and rebuilt
	mapIx   *index.Index // the map index, once opened
	rebuilt bool         // Rebuild rebuilt the storage already
}

var (
	_ formats.Store   = (*Store)(nil)
	_ formats.Checker = (*Store)(nil)
)

func fail(k formats.Kind, op, mailbox string, uid formats.UID, path string, err error) error {
	return dboxlist.Fail(k, driverName, op, mailbox, uid, path, err)
}

func wrap(err error, op, mailbox string, uid formats.UID, path string) error {
	return dboxlist.Wrap(err, driverName, op, mailbox, uid, path)
}

// Close releases the store; it holds nothing between calls.
func (s *Store) Close() error { return nil }

func (s *Store) indexOptions() *index.Options { return &index.Options{Fsync: s.opt.Fsync} }

func (s *Store) mailFile(id uint32) string {
	return filepath.Join(s.storageDir, mailFilePrefix+strconv.FormatUint(uint64(id), 10))
}

// altMailFile is where m.<id> lives in ALT storage, or "" without ALT=.
// File ids are unique across both (map.highest_file_id counts them all).
func (s *Store) altMailFile(id uint32) string {
	if s.altStorageDir == "" {
		return ""
	}
	return filepath.Join(s.altStorageDir, mailFilePrefix+strconv.FormatUint(uint64(id), 10))
}

func (s *Store) mapLog() string { return filepath.Join(s.mapDir, index.MapPrefix+".log") }

// mapIndex returns the map index. A missing map is created when create is
// set and the store is writable (mdbox_map_open_or_create), else it is an
// error matching formats.ErrNotFound.
func (s *Store) mapIndex(create bool) (*index.Index, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mapIx != nil {
		return s.mapIx, nil
	}
	ix, err := index.Open(s.mapDir, index.MapPrefix, s.indexOptions())
	if errors.Is(err, formats.ErrNotFound) && create && !s.opt.ReadOnly {
		for _, dir := range []string{s.storageDir, s.mapDir} {
			if err := os.MkdirAll(dir, s.l.DirMode); err != nil {
				return nil, wrap(err, "map", "", 0, dir)
			}
		}
		ix, err = index.Create(s.mapDir, index.MapPrefix, index.Options{
			UIDValidity: s.l.NewUIDValidity(),
			Extensions:  []index.ExtDef{index.ExtDefMap, index.ExtDefRef},
			NoModSeq:    true,
			Fsync:       s.opt.Fsync,
		})
		if errors.Is(err, formats.ErrExists) {
			ix, err = index.Open(s.mapDir, index.MapPrefix, s.indexOptions())
		}
	}
	if err != nil {
		if errors.Is(err, formats.ErrNotFound) {
			return nil, err
		}
		return nil, wrap(err, "map", "", 0, s.mapDir)
	}
	s.mapIx = ix
	return ix, nil
}

// mapView returns the map as it is now, checking what mdbox checks: a
// UIDVALIDITY ("lost uidvalidity").
func (s *Store) mapView(op string) (*index.View, error) {
	ix, err := s.mapIndex(false)
	if err != nil {
		if errors.Is(err, formats.ErrNotFound) {
			return nil, fail(formats.KindNotPossible, op, "", 0, s.mapDir,
				fmt.Errorf("the map index (%s*) is missing: run `boxsync force-resync` or `doveadm force-resync` to rebuild it", index.MapPrefix))
		}
		return nil, err
	}
	v, err := ix.View()
	if err != nil {
		return nil, wrap(err, op, "", 0, s.mapDir)
	}
	if err := s.checkMap(op, v); err != nil {
		return nil, err
	}
	return v, nil
}

// checkMap checks what mdbox checks of the map: a UIDVALIDITY.
func (s *Store) checkMap(op string, v *index.View) error {
	if v.UIDValidity() == 0 {
		return fail(formats.KindTemp, op, "", 0, s.mapDir,
			errors.New("mdbox map: lost uidvalidity; run `boxsync force-resync` or `doveadm force-resync`"))
	}
	return nil
}

// Mailboxes lists the tree. A mailbox whose index cannot be read is
// listed as selectable with a zero GUID: opening it fails and says what
// to do, and a backup does not take it for deleted.
func (s *Store) Mailboxes(ctx context.Context) ([]formats.MailboxInfo, error) {
	nodes, boxes, err := s.l.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range boxes {
		if ix, err := index.Open(b.IndexDir, index.Prefix, s.indexOptions()); err == nil {
			if v, err := ix.View(); err == nil {
				if h, ok := v.MdboxHdr(); ok {
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

func lostIndex(op string, b *dboxlist.Box) error {
	return fail(formats.KindNotPossible, op, b.Name, 0, b.IndexDir,
		fmt.Errorf("mailbox has no index (%s*): Dovecot would show it empty with a new UIDVALIDITY and lose the "+
			"flags of its messages; run `boxsync force-resync` or `doveadm force-resync` first", index.Prefix))
}

// createIndex writes a new log-only mailbox index (spec §2.9):
// UIDVALIDITY, mdbox-hdr with the map's UIDVALIDITY and the mailbox GUID,
// and the modseq, mdbox and guid extensions.
func (s *Store) createIndex(dir string, guid formats.GUID, uidValidity, mapUIDValidity uint32) (*index.Index, error) {
	return index.Create(dir, index.Prefix, index.Options{
		UIDValidity: uidValidity,
		Extensions: []index.ExtDef{index.MdboxHdr{MapUIDValidity: mapUIDValidity, MailboxGUID: guid}.Ext(),
			index.ExtDefMdbox, index.ExtDefGUID},
		Fsync: s.opt.Fsync,
	})
}

// Open opens a mailbox. ErrNotFound when it does not exist;
// KindNotPossible when its index or the map is missing.
func (s *Store) Open(ctx context.Context, name string) (formats.Mailbox, error) {
	b, err := s.l.Resolve("open", name)
	if err != nil {
		return nil, err
	}
	if !s.l.Exists(b) {
		return nil, fail(formats.KindNotFound, "open", b.Name, 0, b.MailDir, errors.New("no such mailbox"))
	}
	ix, err := index.Open(b.IndexDir, index.Prefix, s.indexOptions())
	if errors.Is(err, formats.ErrNotFound) {
		return nil, lostIndex("open", b)
	}
	if err != nil {
		return nil, wrap(err, "open", b.Name, 0, b.IndexDir)
	}
	m := &mailbox{s: s, b: b, ix: ix}
	if _, _, err := m.views("open"); err != nil {
		return nil, err
	}
	return m, nil
}

// Create makes a mailbox with a log-only index holding its UIDVALIDITY and
// GUID and the map's UIDVALIDITY (mdbox-hdr), creating the map if there is
// none yet.
func (s *Store) Create(ctx context.Context, name string, guid formats.GUID, uidValidity uint32) error {
	if err := s.l.Writable("create", name); err != nil {
		return err
	}
	b, err := s.l.Resolve("create", name)
	if err != nil {
		return err
	}
	if s.l.Exists(b) {
		if _, err := index.Open(b.IndexDir, index.Prefix, s.indexOptions()); errors.Is(err, formats.ErrNotFound) {
			return lostIndex("create", b)
		}
		return fail(formats.KindExists, "create", b.Name, 0, b.MailDir, errors.New("mailbox exists"))
	}
	mix, err := s.mapIndex(true)
	if err != nil {
		return err
	}
	mv, err := mix.View()
	if err != nil {
		return wrap(err, "create", b.Name, 0, s.mapDir)
	}
	if guid.IsZero() {
		guid = formats.NewGUID()
	}
	if uidValidity == 0 {
		uidValidity = s.l.NewUIDValidity()
	}
	err = s.l.Create(b, func(dir string) error {
		_, err := s.createIndex(dir, guid, uidValidity, mv.UIDValidity())
		return err
	})
	return wrap(err, "create", b.Name, 0, "")
}

// Delete removes a mailbox: its directory goes first, then the map's
// refcounts of its messages are decremented so that a purge can remove
// them (Dovecot expunges every message before deleting the mailbox).
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
	var mapUIDs []uint32
	if ix, err := index.Open(b.IndexDir, index.Prefix, s.indexOptions()); err == nil {
		if v, err := ix.View(); err == nil {
			for i := range v.Count() {
				if r, ok := v.MdboxRec(i); ok && r.MapUID != 0 {
					mapUIDs = append(mapUIDs, r.MapUID)
				}
			}
		}
	}
	guid := formats.MailboxGUIDOf(ctx, s, name)
	if err := s.l.Delete(b); err != nil {
		return err
	}
	if len(mapUIDs) > 0 {
		if err := s.changeRefs(ctx, "delete", mapUIDs, -1); err != nil {
			return wrap(err, "delete", b.Name, 0, s.mapDir)
		}
	}
	return s.l.LogDelete(b, guid)
}

// changeRefs adds diff to the refcounts of mapUIDs in one map transaction
// under the map lock (EXT_ATOMIC_INC, as mdbox_map_update_refcount does).
// Map UIDs that are gone are skipped.
func (s *Store) changeRefs(ctx context.Context, op string, mapUIDs []uint32, diff int32) error {
	mu := mapLock(s.mapDir)
	mu.Lock()
	defer mu.Unlock()
	return s.changeRefsLocked(ctx, op, mapUIDs, diff)
}

// changeRefsLocked is changeRefs with mapLock held.
func (s *Store) changeRefsLocked(ctx context.Context, op string, mapUIDs []uint32, diff int32) error {
	mix, err := s.mapIndex(false)
	if err != nil {
		return err
	}
	_, err = mix.Update(func(mv *index.View, tx *index.Tx) error {
		for _, u := range mapUIDs {
			i, _, ok := mv.Lookup(u)
			if !ok {
				continue
			}
			if ref, _ := mv.RefCount(i); int32(ref)+diff < 0 {
				continue // Dovecot: "refcount too low"; leave it
			}
			tx.ExtAtomicInc(index.ExtRef, u, diff)
		}
		return nil
	})
	return err
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func guid128(g string) [16]byte { return dbox.GUID128(g) }

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
