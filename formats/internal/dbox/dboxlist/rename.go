package dboxlist

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/mailboxlog"
)

// LogDir is where dovecot.mailbox.log lives: the index root
// (MAILBOX_LIST_PATH_TYPE_INDEX), INDEX= or the mail root.
func (l *Layout) LogDir() string {
	if l.IndexRoot != "" {
		return l.IndexRoot
	}
	return l.Root
}

// MailboxLog returns the records of dovecot.mailbox.log.
func (l *Layout) MailboxLog() ([]formats.MailboxLogRecord, error) {
	recs, err := mailboxlog.Read(l.LogDir())
	return recs, Wrap(err, l.Driver, "mailbox log", "", 0, l.LogDir())
}

// LogChange appends records to dovecot.mailbox.log, as Dovecot does after
// a delete, rename or (un)subscribe (mailbox_list_add_change).
func (l *Layout) LogChange(op, name string, recs ...formats.MailboxLogRecord) error {
	if len(recs) == 0 {
		return nil
	}
	err := mailboxlog.Append(l.LogDir(), l.FileMode, recs...)
	return Wrap(err, l.Driver, op, name, 0, filepath.Join(l.LogDir(), mailboxlog.FileName))
}

// NameChange is a log record of a change to name.
func NameChange(c formats.MailboxChange, name string) formats.MailboxLogRecord {
	return formats.MailboxLogRecord{Change: c, GUID: formats.MailboxNameHash(name), Time: mailboxlog.Now()}
}

// LogDelete logs a deleted mailbox as Dovecot does (dovecot-storage.md
// §8.6 [verified]): its GUID when it was selectable (guid nonzero), then
// its name when its directory went with it.
func (l *Layout) LogDelete(b *Box, guid formats.GUID) error {
	var recs []formats.MailboxLogRecord
	if !guid.IsZero() {
		recs = append(recs, formats.MailboxLogRecord{Change: formats.ChangeDeleteMailbox, GUID: guid, Time: mailboxlog.Now()})
	}
	if _, err := os.Stat(b.Dir); errors.Is(err, fs.ErrNotExist) {
		recs = append(recs, NameChange(formats.ChangeDeleteDir, b.Name))
	}
	return l.LogChange("delete", b.Name, recs...)
}

// Rename moves a mailbox directory and everything below it (child
// mailboxes too) to a new name, under the mail root, INDEX= and ALT=, as
// Dovecot's fs list backend does; parents left empty are removed.
// Subscriptions stay (doveadm mailbox rename without -s). A rename record
// of the new name is logged.
func (l *Layout) Rename(ctx context.Context, from, to string) error {
	if err := l.Writable("rename", from); err != nil {
		return err
	}
	fb, err := l.Resolve("rename", from)
	if err != nil {
		return err
	}
	tb, err := l.Resolve("rename", to)
	if err != nil {
		return err
	}
	if fb.Name == "INBOX" || tb.Name == "INBOX" {
		return Fail(formats.KindNotPossible, l.Driver, "rename", fb.Name, 0, "", errors.New("renaming INBOX is not supported"))
	}
	if tb.Name == fb.Name || strings.HasPrefix(tb.Name, fb.Name+"/") {
		return Fail(formats.KindNotPossible, l.Driver, "rename", fb.Name, 0, "", errors.New("can't rename a mailbox under itself"))
	}
	if _, err := os.Stat(fb.Dir); err != nil {
		return Fail(formats.KindNotFound, l.Driver, "rename", fb.Name, 0, fb.Dir, errors.New("no such mailbox"))
	}
	if _, err := os.Lstat(tb.Dir); err == nil {
		return Fail(formats.KindExists, l.Driver, "rename", tb.Name, 0, tb.Dir, errors.New("target mailbox exists"))
	}
	rel := filepath.Join(fb.Levels...)
	relTo := filepath.Join(tb.Levels...)
	var roots []string
	for _, r := range []string{l.Root, l.IndexRoot, l.AltRoot} {
		if r != "" {
			roots = append(roots, filepath.Join(r, MailboxesDir))
		}
	}
	for _, r := range roots {
		if err := ctx.Err(); err != nil {
			return Wrap(err, l.Driver, "rename", fb.Name, 0, r)
		}
		src, dst := filepath.Join(r, rel), filepath.Join(r, relTo)
		if _, err := os.Lstat(src); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), l.DirMode); err != nil {
			return Wrap(err, l.Driver, "rename", tb.Name, 0, filepath.Dir(dst))
		}
		if err := os.Rename(src, dst); err != nil {
			return Wrap(err, l.Driver, "rename", fb.Name, 0, src)
		}
		for dir := filepath.Dir(src); dir != r && strings.HasPrefix(dir, r); dir = filepath.Dir(dir) {
			if os.Remove(dir) != nil {
				break
			}
		}
		if l.Sync() {
			for _, dir := range []string{filepath.Dir(src), filepath.Dir(dst)} {
				// the old parent may be gone (removed above)
				if err := FsyncPath(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return Wrap(err, l.Driver, "rename", tb.Name, 0, dir)
				}
			}
		}
	}
	return l.LogChange("rename", tb.Name, NameChange(formats.ChangeRename, tb.Name))
}

// CreateDir makes an empty \Noselect container: a mailbox directory
// without dbox-Mails (mailbox_create with directory=TRUE).
func (l *Layout) CreateDir(ctx context.Context, name string) error {
	if err := l.Writable("create", name); err != nil {
		return err
	}
	b, err := l.Resolve("create", name)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(b.Dir); err == nil {
		return Fail(formats.KindExists, l.Driver, "create", b.Name, 0, b.Dir, errors.New("mailbox exists"))
	}
	if err := os.MkdirAll(b.Dir, l.DirMode); err != nil {
		return Wrap(err, l.Driver, "create", b.Name, 0, b.Dir)
	}
	if l.Sync() {
		return Wrap(FsyncPath(filepath.Dir(b.Dir)), l.Driver, "create", b.Name, 0, b.Dir)
	}
	return nil
}
