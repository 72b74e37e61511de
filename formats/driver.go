package formats

import (
	"context"
	"errors"
	"io"
	"iter"
	"os"
	"time"
)

// Driver opens one mail storage format.
type Driver interface {
	Name() string // "maildir", "mbox", "sdbox", "mdbox", "imapc", "mem"
	Caps() Caps   // upper bound; Status().Caps narrows it per mailbox
	// Open opens the store at loc. With opt.Create a missing root is
	// created (a destination); otherwise a missing root is ErrNotFound.
	Open(ctx context.Context, loc Location, opt OpenOptions) (Store, error)
}

// OpenOptions tune how a store is opened.
type OpenOptions struct {
	Create   bool      // create the root if it does not exist
	ReadOnly bool      // refuse every write (a backup source)
	Fsync    FsyncMode // Dovecot's mail_fsync
}

// FsyncMode mirrors Dovecot's mail_fsync setting.
type FsyncMode int

const (
	// FsyncOptimized (Dovecot's default) makes everything a successful
	// Commit wrote durable before the commit returns, batching syncs per
	// transaction.
	FsyncOptimized FsyncMode = iota
	// FsyncAlways syncs each file as it is written as well.
	FsyncAlways
	// FsyncNever leaves durability to the kernel.
	FsyncNever
)

// ParseFsyncMode parses a mail_fsync value.
func ParseFsyncMode(s string) (FsyncMode, error) {
	switch s {
	case "optimized", "":
		return FsyncOptimized, nil
	case "always":
		return FsyncAlways, nil
	case "never":
		return FsyncNever, nil
	}
	return 0, Errorf(KindParams, "mail_fsync=%q: want optimized, always or never", s)
}

// Store is one user's mailbox tree. A Store is safe for concurrent use by
// several goroutines working on different mailboxes (the engine syncs
// mailboxes in parallel); one Mailbox handle belongs to one goroutine.
type Store interface {
	// Mailboxes lists the tree: every mailbox and \Noselect container,
	// sorted by name, and subscribed names that do not exist (as
	// NoSelect nodes with Subscribed set and a zero GUID).
	Mailboxes(ctx context.Context) ([]MailboxInfo, error)
	// Open opens a mailbox. ErrNotFound when it does not exist.
	Open(ctx context.Context, name string) (Mailbox, error)
	// Create creates a mailbox (and any missing parents as containers)
	// with the given GUID and UIDVALIDITY; zero values ask the driver to
	// pick. ErrExists when a selectable mailbox of that name exists; a
	// container of that name becomes the mailbox.
	Create(ctx context.Context, name string, guid GUID, uidValidity uint32) error
	// Delete removes a mailbox and its mail; its children survive (the
	// mailbox becomes a container if it has any). Deleting a \Noselect
	// container removes it when it has no children and fails with
	// KindNotPossible when it has.
	Delete(ctx context.Context, name string) error
	// SetSubscribed adds or removes name from the subscriptions.
	SetSubscribed(ctx context.Context, name string, subscribed bool) error
	Close() error
}

// Mailbox is one open mailbox.
type Mailbox interface {
	Name() string
	Status(ctx context.Context) (Status, error)
	// Messages yields the messages with UID >= from in ascending UID
	// order, as of the time Messages is called. The first error ends the
	// sequence.
	Messages(ctx context.Context, from UID) iter.Seq2[Message, error]
	// Body calls fn with the exact bytes of message uid. The Body is
	// valid only inside fn.
	Body(ctx context.Context, uid UID, fn func(Body) error) error
	// Begin starts a transaction. Only one may be open at a time.
	Begin(ctx context.Context) (Tx, error)
	Close() error
}

// Body is a message's bytes as a stream of known length.
type Body interface {
	io.Reader
	Size() int64
}

// FileSection is implemented by bodies (and readers wrapping them) that
// are a plain byte range of a file: uncompressed mail in an mdbox m.*
// file. A destination may then copy the bytes in the kernel
// (copy_file_range) instead of through memory. ok is false when the
// body is not such a range after all. The file must not be read through
// its offset (Seek) except by one copy at a time; it is valid only while
// the body is.
type FileSection interface {
	FileSection() (f *os.File, off int64, ok bool)
}

// Tx buffers changes to one mailbox; nothing is visible to readers of the
// store before Commit. Always `defer tx.Rollback()`.
type Tx interface {
	// Save adds a message with m's flags, keywords, dates and Ext. With
	// Caps.SaveUIDs a nonzero m.UID is kept; UIDs saved in one
	// transaction must ascend and be >= UIDNEXT. With Caps.SaveGUIDs a
	// non-empty m.GUID is kept. body must yield exactly m.Size bytes
	// when m.Size > 0 (then the size is checked); m.Size <= 0 means
	// "unknown". A failed Save leaves the transaction as it was: the
	// message is not saved and the transaction can go on.
	Save(ctx context.Context, m Message, body io.Reader) (UID, error)
	// SetFlags replaces the flags and keywords of an existing message.
	SetFlags(uid UID, flags Flags, keywords []string) error
	// Expunge removes a message.
	Expunge(uid UID) error
	// SetUIDNext raises UIDNEXT to at least next (dsync raises the
	// destination's UIDNEXT to the source's so UIDs are never reused).
	SetUIDNext(next UID) error
	// Commit makes every change visible and durable (per the store's
	// FsyncMode) at once, as far as the format allows.
	Commit(ctx context.Context) error
	// Rollback discards uncommitted changes; a no-op after Commit.
	Rollback() error
}

// Checker is implemented by drivers that can verify their own invariants
// (UID < UIDNEXT, GUID uniqueness, index↔files agreement). The conformance
// suite calls it after each test.
type Checker interface {
	Check(ctx context.Context) error
}

// Configurable is implemented by drivers that take settings beyond the
// location, by Dovecot's names (imapc_host, imapc_user, ...). The CLI looks
// each name up in the Dovecot config and -o overrides and passes the ones
// that are set.
type Configurable interface {
	SettingNames() []string
	Configure(settings map[string]string) (Driver, error)
}

// ModSeqRaiser is implemented by transactions of stores that keep
// modseqs: it raises the mailbox's HIGHESTMODSEQ to at least m at Commit,
// so a converted mailbox never reports a lower HIGHESTMODSEQ than its
// source did (a CONDSTORE client that cached it must miss no change).
type ModSeqRaiser interface {
	RaiseHighestModSeq(m ModSeq) error
}

// FirstRecentRaiser is implemented by transactions of stores that keep
// Dovecot's first_recent_uid (Status.FirstRecentUID reported): Commit
// raises it to at least uid, after the transaction's saves, so the mail
// below it stops being \Recent (Message.Recent). It is never lowered,
// and never raised above the mailbox's UIDNEXT after the commit (Dovecot
// takes first_recent_uid > next_uid for a corrupt index). This is what
// dsync's importer does when it finishes a mailbox (dovecot 2.3.19.1
// dsync-mailbox-import.c dsync_mailbox_import_finish: mailbox_update
// with min_first_recent_uid), so that mail the other side's IMAP session
// already claimed stops being \Recent here too.
//
// The value is read through Status, as dsync reads it with the other
// STATUS items, and the raise rides a transaction, as dsync applies it
// in the one mailbox_update that also raises UIDNEXT and HIGHESTMODSEQ
// (Tx.SetUIDNext, ModSeqRaiser): one index log transaction, no extra
// read of the mailbox.
type FirstRecentRaiser interface {
	RaiseFirstRecentUID(uid UID) error
}

// Rebuilder is implemented by stores that can rebuild a mailbox's index
// from its mail files, as Dovecot's `doveadm force-resync` does: a dbox
// mailbox whose index files were lost, say, where Dovecot would show an
// empty mailbox with a new UIDVALIDITY.
type Rebuilder interface {
	Rebuild(ctx context.Context, mailbox string) error
}

// Purger is implemented by stores that keep expunged mail in shared
// files until a purge rewrites them (mdbox), as `doveadm purge` does.
// Stores without one need no purge: for them it is a no-op, as doveadm's
// purge is for maildir.
type Purger interface {
	Purge(ctx context.Context) (PurgeStats, error)
}

// PurgeStats says what a purge did.
type PurgeStats struct {
	Files    int   // storage files rewritten or removed
	Messages int   // unreferenced messages dropped
	Copied   int   // live messages moved to other files
	Freed    int64 // bytes the store shrank by
	Skipped  int   // files left for later (locked by another process, or copied meanwhile)
}

// HdrHasher is implemented by mailboxes that can compute dsync's header
// hashes (hdr_hash v3 of Date and Message-ID, dsync.md §2.9) without
// reading whole bodies, e.g. over IMAP with BODY.PEEK[HEADER.FIELDS].
// headers nil means dsync's default (Date, Message-ID).
type HdrHasher interface {
	HdrHashes(ctx context.Context, from UID, headers []string) (map[UID]string, error)
}

// LazyDates is implemented by mailboxes whose listing costs I/O per
// message only for the dates (Maildir: INTERNALDATE is the file's mtime,
// one stat(2) per message). A two-way merge, which needs the dates only
// of the mail it copies, lists with MessagesWithoutDates and asks Dates
// before each copy.
type LazyDates interface {
	// MessagesWithoutDates is Messages with Received and Saved zero.
	MessagesWithoutDates(ctx context.Context, from UID) iter.Seq2[Message, error]
	// Dates returns message uid's Received and Saved as Messages gives
	// them; KindExpunged when the message is gone.
	Dates(ctx context.Context, uid UID) (received, saved time.Time, err error)
}

// ChangeHistory is implemented by mailboxes that keep a log of their
// changes (Dovecot's dovecot.index.log), so a two-way sync can merge flags
// and keywords per flag from what each side changed since the last common
// modseq, as dsync's importer does (dsync.md §2.7, §2.8b), instead of
// taking the whole flag set of the side that changed last.
type ChangeHistory interface {
	// FlagChanges returns, per message, the net flag and keyword changes
	// recorded after modseq since (0: the whole history). Changes
	// written to sync with another store (boxsync's and dsync's own
	// writes) are left out, as dsync's log scan does, unless own is set.
	// It fails with an error matching ErrHistoryLost when the log no
	// longer reaches back to since.
	FlagChanges(ctx context.Context, since ModSeq, own bool) (map[UID]FlagChange, error)
}

// FlagChange is what happened to one message's flags and keywords after a
// modseq.
type FlagChange struct {
	Add, Remove Flags // net system flag changes; never overlapping
	// KeywordsReset: every keyword was removed first; AddKeywords are
	// the ones set again since.
	KeywordsReset  bool
	AddKeywords    []string
	RemoveKeywords []string
	ModSeq         ModSeq // the highest modseq among the changes
}

// ErrHistoryLost is matched (errors.Is) by a ChangeHistory error saying
// the log no longer reaches back to the asked modseq: it was rotated away
// or the index was rebuilt. A stateful sync then needs a full one.
var ErrHistoryLost = errors.New("modseq no longer in the transaction log")

// MailboxGUIDOf returns the GUID of mailbox name in s, zero when it can't
// be read (a mailbox log record then goes without it, as Dovecot's would).
func MailboxGUIDOf(ctx context.Context, s Store, name string) GUID {
	mb, err := s.Open(ctx, name)
	if err != nil {
		return GUID{}
	}
	defer mb.Close()
	st, err := mb.Status(ctx)
	if err != nil {
		return GUID{}
	}
	return st.GUID
}
