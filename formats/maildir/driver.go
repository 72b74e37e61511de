package maildir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/mboxname"
	"github.com/boxsync/boxsync/formats/internal/mutf7"
	"github.com/boxsync/boxsync/formats/internal/zlib"
)

// Driver opens Maildir stores as Dovecot lays them out. The zero value
// writes plain mail; [Driver.Configure] turns on compressed saving.
type Driver struct {
	zlib zlib.Settings // immutable: mail_plugins zlib, zlib_save, zlib_save_level
}

var _ formats.Driver = Driver{}

// Name returns "maildir".
func (Driver) Name() string { return "maildir" }

// Caps: message GUIDs are the base names (or dovecot-uidlist G fields),
// both of which a save can choose; UIDs are kept; keywords live in file
// names; modseqs live in the log-only Dovecot index the driver keeps
// (Status.Caps.ModSeqs is false for a mailbox whose index is unusable or
// under INDEX=MEMORY); the save date is the file's ctime, which cannot be
// set.
func (Driver) Caps() formats.Caps {
	return formats.LocalCaps(formats.Caps{GUIDs: true, SaveGUIDs: true, SaveUIDs: true, ModSeqs: true, Keywords: true, SaveRecent: true})
}

// Open opens the store at loc.Path. See the package documentation for the
// location settings it accepts.
func (d Driver) Open(ctx context.Context, loc formats.Location, opt formats.OpenOptions) (formats.Store, error) {
	s, err := newStore(loc, opt)
	if err != nil {
		return nil, err
	}
	s.zlib = d.zlib
	fi, err := os.Stat(s.root)
	switch {
	case errors.Is(err, fs.ErrNotExist) && opt.Create && !opt.ReadOnly:
		if err := os.MkdirAll(s.root, 0o700); err != nil {
			return nil, wrap(err, "open", "", 0, s.root)
		}
	case err != nil:
		return nil, wrap(err, "open", "", 0, s.root)
	case !fi.IsDir():
		return nil, fail(formats.KindConfig, "open", "", 0, s.root, errors.New("not a directory"))
	default:
		// Files and directories we create get the root's permissions,
		// as Dovecot's mailbox_list_get_root_permissions does.
		s.dirMode = fi.Mode().Perm() | 0o700
		s.fileMode = s.dirMode & 0o666
		if !opt.ReadOnly && !s.fsys {
			s.removeStaleStages()
		}
	}
	return s, nil
}

// removeStaleStages removes what an interrupted Maildir++ Create left:
// staging directories older than an hour (names without the leading dot
// are no mailboxes under Maildir++).
func (s *Store) removeStaleStages() {
	stages, _ := filepath.Glob(filepath.Join(s.root, "boxsync-create.*"))
	for _, p := range stages {
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(p)
		}
	}
}

// Store is one Maildir tree. It is safe for concurrent use.
type Store struct {
	// trashMu serializes Maildir++ deletes: each renames its mailbox to
	// the one "..DOVECOT-TRASH" directory (as Dovecot does), which two
	// concurrent deletes would otherwise fight over.
	trashMu sync.Mutex

	root    string // immutable: the mail root (INBOX unless INBOX=)
	inbox   string // immutable: the INBOX maildir
	control string // immutable: CONTROL= root, or ""
	index   string // immutable: INDEX= root, "MEMORY", or "" (in the maildir)
	subs    string // immutable: subscriptions file
	fsys    bool   // immutable: LAYOUT=fs (else Maildir++)
	utf8    bool   // immutable: names on disk in UTF-8
	opt     formats.OpenOptions
	zlib    zlib.Settings // immutable: how Save compresses

	dirMode, fileMode os.FileMode // immutable after Open

	// noUnnamed is set once saving an unnamed file (O_TMPFILE) failed
	// as unsupported: later saves go through tmp/ straight away.
	noUnnamed atomic.Bool

	mu   sync.Mutex // guards memHdr
	uidv mboxname.UIDValidity
	// memHdr remembers the UIDVALIDITY and GUID given to mailboxes that
	// have no dovecot-uidlist, by control directory, so that a mailbox
	// we cannot write keeps them for the life of the store.
	memHdr map[string]uidlistHeader
}

var _ formats.Store = (*Store)(nil)
var _ formats.Checker = (*Store)(nil)

func newStore(loc formats.Location, opt formats.OpenOptions) (*Store, error) {
	bad := func(format string, args ...any) error {
		return fail(formats.KindConfig, "open", "", 0, "", fmt.Errorf("location %s: "+format, append([]any{loc}, args...)...))
	}
	if loc.Driver != "" && loc.Driver != "maildir" {
		return nil, bad("not a maildir location")
	}
	if loc.Path == "" || !filepath.IsAbs(loc.Path) {
		return nil, bad("the mail root must be an absolute path")
	}
	s := &Store{root: filepath.Clean(loc.Path), opt: opt, dirMode: 0o700, fileMode: 0o600}
	switch loc.Layout {
	case "", "maildir++":
	case "fs":
		s.fsys = true
	default:
		return nil, bad("LAYOUT=%s is not supported for Maildir (want maildir++ or fs)", loc.Layout)
	}
	if loc.Alt != "" {
		return nil, bad("ALT= is not supported for Maildir")
	}
	subsName := "subscriptions" // MAILDIR_SUBSCRIPTION_FILE_NAME
	for k, v := range loc.Other {
		switch k {
		case "SUBSCRIPTIONS":
			if v == "" || strings.ContainsRune(v, '/') {
				return nil, bad("SUBSCRIPTIONS=%q must be a file name", v)
			}
			subsName = v
		default:
			return nil, bad("%s= is not supported for Maildir", k)
		}
	}
	s.utf8 = loc.UTF8
	s.inbox = s.root
	if loc.Inbox != "" {
		s.inbox = filepath.Clean(loc.Inbox)
	}
	if loc.Control != "" {
		s.control = filepath.Clean(loc.Control)
	}
	// INDEX= moves dovecot.index*; VOLATILEDIR= is accepted: we take no
	// lock that Dovecot keeps in the volatile directory.
	if loc.Index != "" {
		s.index = loc.Index
		if s.index != "MEMORY" {
			s.index = filepath.Clean(s.index)
		}
	}
	dir := s.root
	if s.control != "" {
		dir = s.control
	}
	s.subs = filepath.Join(dir, subsName)
	return s, nil
}

// Close releases the store; it holds nothing between calls.
func (s *Store) Close() error { return nil }

func (s *Store) writable(op, name string) error {
	if s.opt.ReadOnly {
		return fail(formats.KindPerm, op, name, 0, "", errors.New("store is opened read-only"))
	}
	return nil
}

// box is a mailbox name resolved to its directories.
type box struct {
	name   string   // contract name, INBOX spelled "INBOX"
	levels []string // storage levels (modified UTF-7 unless UTF-8)
	dir    string   // the maildir
	ctl    string   // where dovecot-uidlist and dovecot-keywords live
}

func (b *box) isInbox() bool { return len(b.levels) == 1 && b.levels[0] == "INBOX" }

// resolve validates a contract name and maps it to its directories
// (dovecot-storage.md §8.2, §9).
func (s *Store) resolve(op, name string) (*box, error) {
	if err := formats.ValidateName(name); err != nil {
		return nil, wrap(err, op, name, 0, "")
	}
	levels := strings.Split(name, string(formats.Separator))
	if formats.IsInbox(levels[0]) {
		levels[0] = "INBOX"
	}
	b := &box{name: strings.Join(levels, string(formats.Separator))}
	for _, l := range levels {
		if !s.fsys && strings.ContainsRune(l, '.') {
			return nil, fail(formats.KindNotPossible, op, name, 0, "",
				fmt.Errorf("Maildir++ layout cannot store '.' in a mailbox name (use LAYOUT=fs)"))
		}
		if s.fsys && (l == "cur" || l == "new" || l == "tmp") {
			return nil, fail(formats.KindNotPossible, op, name, 0, "",
				fmt.Errorf("LAYOUT=fs cannot store a mailbox named %q: it is a maildir's own directory", l))
		}
		enc := l
		if !s.utf8 {
			enc = mutf7.Encode(l)
		}
		b.levels = append(b.levels, enc)
	}
	b.dir, b.ctl = s.paths(b.levels)
	return b, nil
}

// paths returns the maildir and control directory of storage levels.
func (s *Store) paths(levels []string) (dir, ctl string) {
	if len(levels) == 1 && levels[0] == "INBOX" {
		dir = s.inbox
		ctl = dir
		if s.control != "" {
			// The INBOX's control files go to <CONTROL>/.INBOX
			// (Maildir++) or <CONTROL>/INBOX (fs) [verified].
			if s.fsys {
				ctl = filepath.Join(s.control, "INBOX")
			} else {
				ctl = filepath.Join(s.control, ".INBOX")
			}
		}
		return dir, ctl
	}
	rel := "." + strings.Join(levels, ".")
	if s.fsys {
		rel = filepath.Join(levels...)
	}
	dir = filepath.Join(s.root, rel)
	ctl = dir
	if s.control != "" {
		ctl = filepath.Join(s.control, rel)
	}
	return dir, ctl
}

// decodeLevels turns storage levels into a contract name, or "" when they
// are not a valid name that maps back to the same levels.
func (s *Store) decodeLevels(levels []string) string {
	name := mboxname.DecodeLevels(levels, s.utf8)
	if name == "" {
		return ""
	}
	b, err := s.resolve("list", name)
	if err != nil || b.name != name || strings.Join(b.levels, "\x00") != strings.Join(levels, "\x00") {
		return ""
	}
	return name
}
