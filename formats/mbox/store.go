package mbox

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/mutf7"
	"github.com/boxsync/boxsync/formats/internal/subsfile"
	"github.com/boxsync/boxsync/formats/internal/zlib"
)

// Driver is the mbox driver. Its zero value is ready to use.
type Driver struct {
	// Location is the time zone of From_ line dates without one (nil:
	// time.Local, as Dovecot uses the server's local time).
	Location *time.Location
	// MD5All is Dovecot's mbox_md5 = all: message GUIDs sum every
	// header, not only the apop3d ones (the default).
	MD5All bool
}

var (
	_ formats.Driver       = Driver{}
	_ formats.Configurable = Driver{}
)

// SettingNames lists the Dovecot settings the driver takes.
func (Driver) SettingNames() []string { return []string{"mbox_md5"} }

// Configure returns a Driver with Dovecot's settings applied.
func (d Driver) Configure(settings map[string]string) (formats.Driver, error) {
	switch v := settings["mbox_md5"]; v {
	case "", "apop3d":
		d.MD5All = false
	case "all":
		d.MD5All = true
	default:
		return nil, formats.Errorf(formats.KindConfig, "mbox_md5 = %q: want apop3d or all", v)
	}
	return d, nil
}

func (Driver) Name() string { return "mbox" }

// Caps: message GUIDs exist (derived from headers, as Dovecot's
// MAIL_STORAGE_CLASS_FLAG_HAVE_MAIL_GUIDS) but can't be chosen, so dsync
// matches mbox mail by header hash (dsync.md §2.9). UIDs are kept
// (X-UID), keywords too (X-Keywords); no modseqs, no save dates.
func (Driver) Caps() formats.Caps {
	return formats.LocalCaps(formats.Caps{GUIDs: true, SaveGUIDs: false, SaveUIDs: true, ModSeqs: false, Keywords: true, SaveDate: false, MailboxIsFile: true, SaveRecent: true})
}

// Open opens the mbox store at loc (mbox:ROOT[:INBOX=FILE][:INDEX=DIR]
// [:CONTROL=DIR][:SUBSCRIPTIONS=NAME][:UTF-8][:COMPRESS=zstd|gz[:LEVEL]]).
func (d Driver) Open(ctx context.Context, loc formats.Location, opt formats.OpenOptions) (formats.Store, error) {
	fail := func(k formats.Kind, format string, args ...any) (formats.Store, error) {
		return nil, &formats.Error{Kind: k, Op: "mbox: open", Path: loc.Path, Err: fmt.Errorf(format, args...)}
	}
	if loc.Path == "" {
		return fail(formats.KindConfig, "no root directory")
	}
	if loc.Layout != "" && loc.Layout != "fs" {
		return fail(formats.KindConfig, "LAYOUT=%s: mbox supports only the fs layout", loc.Layout)
	}
	for k := range loc.Other {
		switch k {
		case "SUBSCRIPTIONS", "COMPRESS":
		default:
			return fail(formats.KindConfig, "%s= is not supported by the mbox driver", k)
		}
	}
	s := &store{
		root:     loc.Path,
		inbox:    loc.Inbox,
		utf8:     loc.UTF8,
		readOnly: opt.ReadOnly,
		fsync:    opt.Fsync != formats.FsyncNever,
		loc:      d.Location,
		md5All:   d.MD5All,
		subsName: ".subscriptions",
		level:    zlib.DefaultLevel,
	}
	if s.loc == nil {
		s.loc = time.Local
	}
	if s.inbox == "" {
		s.inbox = filepath.Join(s.root, "inbox") // Dovecot's default for mbox:ROOT
	}
	switch loc.Index {
	case "":
		s.indexRoot = s.root
	case "MEMORY":
	default:
		s.indexRoot = loc.Index
	}
	s.controlDir = s.root
	if loc.Control != "" {
		s.controlDir = loc.Control
	}
	if v, ok := loc.Other["SUBSCRIPTIONS"]; ok {
		s.subsName = v
	}
	if v, ok := loc.Other["COMPRESS"]; ok {
		name, level, _ := strings.Cut(v, ",")
		f, err := zlib.ParseFormat(name)
		if err != nil {
			return fail(formats.KindConfig, "COMPRESS=%s: %w", v, err)
		}
		if _, _, _, ok := f.Levels(); !ok {
			return fail(formats.KindConfig, "COMPRESS=%s: boxsync writes gz or zstd archives", v)
		}
		s.compress = f
		if loc.Inbox == "" {
			s.inbox += f.Ext()
		}
		if level != "" {
			var n int
			if _, err := fmt.Sscan(level, &n); err != nil {
				return fail(formats.KindConfig, "COMPRESS=%s: bad level", v)
			}
			if _, err := zlib.NewWriter(discard{}, f, n); err != nil {
				return fail(formats.KindConfig, "COMPRESS=%s: %w", v, err)
			}
			s.level = n
		}
	}
	fi, err := os.Stat(s.root)
	switch {
	case err == nil && !fi.IsDir():
		return fail(formats.KindConfig, "%s is not a directory", s.root)
	case errors.Is(err, fs.ErrNotExist):
		if !opt.Create {
			return nil, &formats.Error{Kind: formats.KindNotFound, Op: "mbox: open", Path: s.root, Err: errors.New("no such mail root")}
		}
		if opt.ReadOnly {
			return fail(formats.KindPerm, "can't create a read-only store")
		}
		if err := os.MkdirAll(s.root, 0o700); err != nil {
			return nil, formats.Wrap(err, kindOf(err), "mbox: open", "", 0, s.root)
		}
	case err != nil:
		return nil, formats.Wrap(err, kindOf(err), "mbox: open", "", 0, s.root)
	}
	return s, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// store is one mbox tree. Its fields are immutable after Open.
type store struct {
	root       string
	inbox      string // the INBOX file
	indexRoot  string // "" when INDEX=MEMORY
	controlDir string
	subsName   string
	utf8       bool
	readOnly   bool
	fsync      bool
	loc        *time.Location
	md5All     bool
	compress   zlib.Format // COMPRESS=: every mailbox file is "<name><ext>"
	level      int
}

func (s *store) readOpts() readOpts { return readOpts{loc: s.loc, md5All: s.md5All} }

func kindOf(err error) formats.Kind {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return formats.KindNotFound
	case errors.Is(err, fs.ErrPermission):
		return formats.KindPerm
	case errors.Is(err, fs.ErrExist):
		return formats.KindExists
	case errors.Is(err, errLockTimeout):
		return formats.KindTemp
	}
	return formats.KindTemp
}

func (s *store) errf(k formats.Kind, op, name string, format string, args ...any) error {
	return &formats.Error{Kind: k, Op: "mbox: " + op, Mailbox: name, Err: fmt.Errorf(format, args...)}
}

func (s *store) wrap(err error, op, name, path string) error {
	return formats.Wrap(err, kindOf(err), "mbox: "+op, name, 0, path)
}

// levels returns a name's on-disk levels (modified UTF-7 unless UTF-8).
func (s *store) levels(name string) []string {
	lv := strings.Split(name, "/")
	if !s.utf8 {
		for i, l := range lv {
			lv[i] = mutf7.Encode(l)
		}
	}
	return lv
}

// checkName validates a contract name for mbox.
func (s *store) checkName(name string) error {
	if err := formats.ValidateName(name); err != nil {
		return err
	}
	for _, l := range strings.Split(name, "/") {
		if strings.HasSuffix(l, dotlockSuffix) || l == indexDirName {
			return &formats.Error{Kind: formats.KindParams, Mailbox: name, Err: fmt.Errorf("invalid mailbox name: %q is reserved by mbox", l)}
		}
	}
	return nil
}

const indexDirName = ".imap"

// paths returns a mailbox's file and index directory ("" without index).
func (s *store) paths(name string) (file, indexDir string) {
	if formats.IsInbox(name) {
		if s.indexRoot != "" {
			indexDir = filepath.Join(s.indexRoot, indexDirName, "INBOX")
		}
		return s.inbox, indexDir
	}
	lv := s.levels(name)
	last := lv[len(lv)-1] + s.compress.Ext()
	dir := filepath.Join(lv[:len(lv)-1]...)
	file = filepath.Join(s.root, dir, last)
	if s.indexRoot != "" {
		indexDir = filepath.Join(s.indexRoot, dir, indexDirName, last)
	}
	return file, indexDir
}

func (s *store) subsPath() string { return filepath.Join(s.controlDir, s.subsName) }

// decodeLevel turns an on-disk name level into a contract one.
func (s *store) decodeLevel(l string) (string, bool) {
	if s.utf8 {
		return l, utf8.ValidString(l)
	}
	d, err := mutf7.Decode(l)
	if err != nil {
		// QUIRK: a name other software wrote unencoded ("R&D") is
		// shown as it is when it is UTF-8; Dovecot renames it.
		return l, utf8.ValidString(l)
	}
	return d, true
}

func (s *store) Mailboxes(ctx context.Context) ([]formats.MailboxInfo, error) {
	nodes := map[string]*formats.MailboxInfo{}
	node := func(name string) *formats.MailboxInfo {
		n := nodes[name]
		if n == nil {
			n = &formats.MailboxInfo{Name: name, NoSelect: true}
			nodes[name] = n
		}
		return n
	}
	if fi, err := os.Stat(s.inbox); err == nil && fi.Mode().IsRegular() {
		n := node("INBOX")
		n.NoSelect = false
	}
	var walk func(dir, prefix string) error
	walk = func(dir, prefix string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && dir != s.root {
				return nil
			}
			return s.wrap(err, "list", "", dir)
		}
		for _, e := range ents {
			fname := e.Name()
			path := filepath.Join(dir, fname)
			if s.internal(dir, fname, path) {
				continue
			}
			isDir := e.IsDir()
			if e.Type()&fs.ModeSymlink != 0 {
				fi, err := os.Stat(path)
				if err != nil {
					continue
				}
				isDir = fi.IsDir()
			}
			level := fname
			if !isDir && s.compress != zlib.None {
				if !strings.HasSuffix(fname, s.compress.Ext()) || len(fname) == len(s.compress.Ext()) {
					continue
				}
				level = strings.TrimSuffix(fname, s.compress.Ext())
			}
			dl, ok := s.decodeLevel(level)
			if !ok {
				continue
			}
			name := dl
			if prefix != "" {
				name = prefix + "/" + dl
			}
			if formats.ValidateName(name) != nil || (prefix == "" && formats.IsInbox(name)) {
				continue
			}
			if isDir {
				node(name)
				if err := walk(path, name); err != nil {
					return err
				}
				continue
			}
			n := node(name)
			n.NoSelect = false
		}
		return nil
	}
	if err := walk(s.root, ""); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		for p := formats.Parent(n.Name); p != ""; p = formats.Parent(p) {
			node(p)
		}
	}
	subs, err := s.subscriptions()
	if err != nil {
		return nil, err
	}
	for _, name := range subs {
		node(name).Subscribed = true
	}
	out := make([]formats.MailboxInfo, 0, len(nodes))
	for _, n := range nodes {
		if !n.NoSelect {
			guid, err := s.mailboxGUID(n.Name)
			if err != nil {
				return nil, err
			}
			n.GUID = guid
		}
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// internal tells whether a directory entry is not a mailbox: Dovecot's
// mbox_is_internal_name (".imap", "*.lock"), the subscriptions file, the
// INBOX file, "." names.
func (s *store) internal(dir, fname, path string) bool {
	switch {
	case fname == indexDirName, strings.HasSuffix(fname, dotlockSuffix):
		return true
	case dir == s.controlDir && fname == s.subsName:
		return true
	case path == s.inbox:
		return true
	case dir == s.root && (fname == "dovecot-uidvalidity" || strings.HasPrefix(fname, "dovecot-uidvalidity.") ||
		strings.HasPrefix(fname, "dovecot.list.index") || fname == "dovecot.mailbox.log"):
		// QUIRK: with INDEX= under the root Dovecot keeps list
		// files there; they are never mailboxes.
		return true
	}
	return false
}

// mailboxGUID is the GUID Dovecot's index holds, or a stable one derived
// from the name and UIDVALIDITY when there is no index.
func (s *store) mailboxGUID(name string) (formats.GUID, error) {
	file, idx := s.paths(name)
	if idx != "" {
		if info := readIndex(idx); !info.guid.IsZero() {
			return info.guid, nil
		}
	}
	uv, err := s.peekUIDValidity(file, idx)
	if err != nil {
		return formats.GUID{}, err
	}
	return derivedGUID(name, uv), nil
}

// derivedGUID: QUIRK: Dovecot makes a random GUID for an mbox without an
// index and stores it there; boxsync, reading a store it must not write,
// derives one, so that repeated runs agree.
func derivedGUID(name string, uidValidity uint32) formats.GUID {
	h := md5.New()
	h.Write([]byte("boxsync mbox\x00"))
	h.Write([]byte(name))
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uidValidity)
	h.Write(b[:])
	var g formats.GUID
	copy(g[:], h.Sum(nil))
	return g
}

// peekUIDValidity reads the UIDVALIDITY from the first message's header
// (or the index, for an mbox without X-IMAPbase).
func (s *store) peekUIDValidity(file, idx string) (uint32, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, s.wrap(err, "open", "", file)
	}
	defer f.Close()
	src, err := openSource(f)
	if err != nil {
		return 0, s.wrap(err, "open", "", file)
	}
	defer src.Close()
	sc, err := newScanner(src, s.readOpts())
	if err != nil {
		return 0, err
	}
	m, err := sc.nextMessage()
	if err == nil && m.hdr.base != nil {
		return m.hdr.base.uidValidity, nil
	}
	if idx != "" {
		if info := readIndex(idx); info.uidValidity != 0 {
			return info.uidValidity, nil
		}
	}
	if err == nil {
		return fallbackUIDValidity(m, nil), nil
	}
	if errors.Is(err, errNotMbox) {
		return 0, s.wrap(err, "open", "", file)
	}
	return fallbackUIDValidity(nil, f), nil
}

// fallbackUIDValidity: QUIRK: a file without X-IMAPbase or index gets
// the first message's From_ date as UIDVALIDITY (Dovecot: the time of its
// first sync, written back), and an empty one its mtime, so that reading
// the same file twice gives the same UIDs.
func fallbackUIDValidity(first *message, f *os.File) uint32 {
	if first != nil {
		if t := first.from.date.Unix(); t > 0 && t < 1<<32 {
			return uint32(t)
		}
		return 1
	}
	if f != nil {
		if fi, err := f.Stat(); err == nil && fi.ModTime().Unix() > 0 {
			return uint32(fi.ModTime().Unix())
		}
	}
	return 1
}

func (s *store) Open(ctx context.Context, name string) (formats.Mailbox, error) {
	if err := s.checkName(name); err != nil {
		return nil, err
	}
	if formats.IsInbox(name) {
		name = "INBOX"
	}
	file, idx := s.paths(name)
	fi, err := os.Stat(file)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, &formats.Error{Kind: formats.KindNotFound, Op: "mbox: open", Mailbox: name, Err: errors.New("no such mailbox")}
	}
	mb := &mailbox{s: s, name: name, path: file, indexDir: idx}
	guid, err := s.mailboxGUID(name)
	if err != nil {
		return nil, err
	}
	mb.guid = guid
	if !s.readOnly && idx != "" && readIndex(idx).guid.IsZero() {
		// Keep the GUID where Dovecot looks for it, as Dovecot
		// does on a mailbox's first use.
		if _, err := os.Stat(filepath.Join(idx, indexLogName)); errors.Is(err, fs.ErrNotExist) {
			uv, _ := s.peekUIDValidity(file, idx)
			if err := writeIndexLog(idx, guid, uv, s.fsync); err != nil {
				return nil, s.wrap(err, "open", name, idx)
			}
		}
	}
	return mb, nil
}

func (s *store) Create(ctx context.Context, name string, guid formats.GUID, uidValidity uint32) error {
	if err := s.checkName(name); err != nil {
		return err
	}
	if s.readOnly {
		return s.errf(formats.KindPerm, "create", name, "store is read-only")
	}
	if formats.IsInbox(name) {
		name = "INBOX"
	}
	file, idx := s.paths(name)
	if fi, err := os.Stat(file); err == nil {
		if fi.IsDir() {
			return s.errf(formats.KindNotPossible, "create", name,
				"a directory of that name holds other mailboxes; an mbox mailbox can't have children")
		}
		return s.errf(formats.KindExists, "create", name, "mailbox exists")
	}
	// Every parent must be a directory (or not exist yet).
	if !formats.IsInbox(name) {
		dir := filepath.Dir(file)
		for d := dir; len(d) > len(s.root); d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && !fi.IsDir() {
				return s.errf(formats.KindNotPossible, "create", name,
					"%s is a mailbox; mbox mailboxes can't have children", d)
			}
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return s.wrap(err, "create", name, dir)
		}
	} else if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return s.wrap(err, "create", name, file)
	}
	if guid.IsZero() {
		guid = formats.NewGUID()
	}
	if uidValidity == 0 {
		uidValidity = uint32(time.Now().Unix())
	}
	if err := s.createFile(file, uidValidity); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return s.errf(formats.KindExists, "create", name, "mailbox exists")
		}
		return s.wrap(err, "create", name, file)
	}
	if idx != "" {
		if err := writeIndexLog(idx, guid, uidValidity, s.fsync); err != nil {
			return s.wrap(err, "create", name, idx)
		}
		if err := writeExt(idx, uidValidity, nil, s.fsync); err != nil {
			return s.wrap(err, "create", name, idx)
		}
	}
	return nil
}

// createFile writes a new mailbox file holding only the pseudo message
// that keeps its UIDVALIDITY, refusing to replace an existing file.
func (s *store) createFile(file string, uidValidity uint32) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".boxsync-*.lock")
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	w, err := newMboxWriter(tmp, s.compress, s.level)
	if err != nil {
		return err
	}
	if err := w.pseudo(uidValidity, 0, time.Now(), s.loc); err != nil {
		return err
	}
	if err := w.close(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if s.fsync {
		if err := tmp.Sync(); err != nil {
			return err
		}
	}
	if err := os.Link(tmp.Name(), file); err != nil {
		return err
	}
	if s.fsync {
		return syncDir(filepath.Dir(file))
	}
	return nil
}

func (s *store) Delete(ctx context.Context, name string) error {
	if err := s.checkName(name); err != nil {
		return err
	}
	if s.readOnly {
		return s.errf(formats.KindPerm, "delete", name, "store is read-only")
	}
	if formats.IsInbox(name) {
		name = "INBOX"
	}
	file, idx := s.paths(name)
	fi, err := os.Stat(file)
	if err != nil && s.compress != zlib.None && !formats.IsInbox(name) {
		// A container is a plain directory, without the extension.
		file = strings.TrimSuffix(file, s.compress.Ext())
		fi, err = os.Stat(file)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return s.errf(formats.KindNotFound, "delete", name, "no such mailbox")
	}
	if err != nil {
		return s.wrap(err, "delete", name, file)
	}
	if fi.IsDir() {
		ents, err := os.ReadDir(file)
		if err != nil {
			return s.wrap(err, "delete", name, file)
		}
		for _, e := range ents {
			if e.Name() != indexDirName && !strings.HasSuffix(e.Name(), dotlockSuffix) {
				return s.errf(formats.KindNotPossible, "delete", name, "mailbox has children, can't delete it")
			}
		}
		if err := os.RemoveAll(file); err != nil {
			return s.wrap(err, "delete", name, file)
		}
		return nil
	}
	lock, err := takeDotlock(ctx, file)
	if err != nil {
		return s.wrap(err, "delete", name, file)
	}
	rerr := os.Remove(file)
	lerr := lock.Release()
	if rerr != nil {
		return s.wrap(rerr, "delete", name, file)
	}
	if idx != "" {
		if err := os.RemoveAll(idx); err != nil {
			return s.wrap(err, "delete", name, idx)
		}
		os.Remove(filepath.Dir(idx)) // the .imap directory, when empty
	}
	if s.fsync {
		if err := syncDir(filepath.Dir(file)); err != nil {
			return s.wrap(err, "delete", name, file)
		}
	}
	_ = lerr // the file is gone; a lock someone overrode doesn't matter
	return nil
}

// subscriptions reads the subscriptions file as contract names.
func (s *store) subscriptions() ([]string, error) {
	data, err := os.ReadFile(s.subsPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, s.wrap(err, "subscriptions", "", s.subsPath())
	}
	list, _ := subsfile.Parse(data, '/')
	var out []string
	for _, levels := range list {
		var parts []string
		ok := true
		for _, l := range levels {
			d, good := s.decodeLevel(l)
			ok = ok && good
			parts = append(parts, d)
		}
		name := strings.Join(parts, "/")
		if !ok || formats.ValidateName(name) != nil {
			continue
		}
		if formats.IsInbox(name) {
			name = "INBOX"
		}
		out = append(out, name)
	}
	return out, nil
}

func (s *store) SetSubscribed(ctx context.Context, name string, subscribed bool) error {
	if err := formats.ValidateName(name); err != nil {
		return err
	}
	if s.readOnly {
		return s.errf(formats.KindPerm, "subscribe", name, "store is read-only")
	}
	levels := []string{"INBOX"}
	if !formats.IsInbox(name) {
		levels = s.levels(name)
	}
	opt := subsfile.SetOptions{FileMode: 0o600, DirMode: 0o700, Sync: s.fsync}
	if err := subsfile.Set(ctx, s.subsPath(), '/', levels, subscribed, opt); err != nil {
		return s.wrap(err, "subscribe", name, "")
	}
	return nil
}

func (s *store) Close() error { return nil }

// Check verifies every mailbox: it parses, and its UIDs ascend and stay
// below UIDNEXT. (Ambiguous splits are not errors: see Warnings.)
func (s *store) Check(ctx context.Context) error {
	boxes, err := s.Mailboxes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range boxes {
		if b.NoSelect {
			continue
		}
		mb, err := s.Open(ctx, b.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		snap, err := mb.(*mailbox).snapshot(ctx)
		if err != nil {
			errs = append(errs, err)
			mb.Close()
			continue
		}
		var last uint32
		for _, m := range snap.msgs {
			if m.uid <= last || m.uid >= snap.uidNext {
				errs = append(errs, fmt.Errorf("mbox: mailbox %q: uid %d out of order or >= uidnext %d", b.Name, m.uid, snap.uidNext))
			}
			last = m.uid
		}
		mb.Close()
	}
	return errors.Join(errs...)
}
