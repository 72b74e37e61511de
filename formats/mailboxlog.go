package formats

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"time"
)

// MailboxChange is the type of one record of Dovecot's mailbox changes log,
// dovecot.mailbox.log (dovecot-storage.md §8.6; mailbox-log.h: enum
// mailbox_log_record_type). dsync reads it to tell a mailbox deleted or
// renamed on one side from one that never existed (dsync.md §2.3).
type MailboxChange uint8

const (
	ChangeDeleteMailbox MailboxChange = 1 // GUID: the mailbox GUID
	ChangeDeleteDir     MailboxChange = 2 // GUID: MailboxNameHash of the directory
	ChangeRename        MailboxChange = 3 // GUID: MailboxNameHash of the new name
	ChangeSubscribe     MailboxChange = 4 // GUID: MailboxNameHash of the name
	ChangeUnsubscribe   MailboxChange = 5 // GUID: MailboxNameHash of the name
	// ChangeCreateDir exists in newer Dovecots; 2.3's reader stops at it
	// as corrupted, so boxsync never writes it.
	ChangeCreateDir MailboxChange = 6
)

func (c MailboxChange) String() string {
	switch c {
	case ChangeDeleteMailbox:
		return "delete-mailbox"
	case ChangeDeleteDir:
		return "delete-dir"
	case ChangeRename:
		return "rename"
	case ChangeSubscribe:
		return "subscribe"
	case ChangeUnsubscribe:
		return "unsubscribe"
	case ChangeCreateDir:
		return "create-dir"
	}
	return "change?"
}

// MailboxLogRecord is one record of a mailbox changes log. Time has
// one-second resolution (a 32-bit UNIX time on disk).
type MailboxLogRecord struct {
	Change MailboxChange
	GUID   GUID
	Time   time.Time
}

// MailboxNameHash is the "GUID" Dovecot logs for changes of a name rather
// than of a mailbox: the first 16 bytes of the SHA-1 of the mailbox name
// with the namespace separator '/' (mailbox_name_get_sha128; verified:
// SHA-1("Dir1/Sub1") = ba122518…).
func MailboxNameHash(name string) GUID {
	sum := sha1.Sum([]byte(name))
	var g GUID
	copy(g[:], sum[:])
	return g
}

// MailboxLogNow is the clock that stamps mailbox log records. Tests that
// replay a history replace it (never while stores are in use), so that
// which of two changes is newer does not depend on when the test runs.
var MailboxLogNow = time.Now

// MailboxLogger is implemented by stores that keep a mailbox changes log
// (maildir, sdbox, mdbox keep Dovecot's dovecot.mailbox.log; mem keeps one
// in memory). Such a store appends to it on every Delete, Rename and
// SetSubscribed, as Dovecot does, so the two-way sync can propagate
// deletes and renames instead of undoing them.
type MailboxLogger interface {
	// MailboxLog returns the log's records, oldest first. A store whose
	// log does not exist yet returns none.
	MailboxLog(ctx context.Context) ([]MailboxLogRecord, error)
}

// Renamer is implemented by stores that can rename a mailbox, as IMAP
// RENAME does: the mailbox (or \Noselect container) and every mailbox
// below it move to the new name, keeping GUIDs, UIDVALIDITY, UIDs and
// mail; missing parents of the new name are created as containers.
// KindExists when the new name is taken, KindNotFound when the old one
// does not exist; the INBOX cannot be renamed (KindNotPossible).
type Renamer interface {
	Rename(ctx context.Context, from, to string) error
}

// DirCreator is implemented by stores that can hold an empty \Noselect
// container (a directory without mail, as LAYOUT=fs and dbox leave behind
// when the last mailbox below it goes). The two-way sync creates the
// containers one side has and the other lacks (dsync.md §2.4 step 6).
// KindExists when a node of that name exists.
type DirCreator interface {
	CreateDir(ctx context.Context, name string) error
}

// ImpliedDirs is implemented by stores whose \Noselect containers may be
// mere names, implied by the mailboxes below them (Maildir++:
// ".Work.Sub" without ".Work"), not directories of their own (dbox,
// LAYOUT=fs). ImpliedDirs reports whether that is so for the store.
// Dovecot lists such a container as \NonExistent and dsync's tree holds
// it as a node that does not exist, where it holds a directory as an
// existing node without a GUID; the difference decides renames that tie
// (dsync.md §2.4 step 3). Stores without the method have directories.
type ImpliedDirs interface {
	ImpliedDirs() bool
}

// ExpungeLogger is implemented by mailboxes that keep Dovecot's
// transaction log (maildir with its index, sdbox, mdbox). ExpungedGUIDs
// returns the 128-bit GUIDs (MessageGUID128) of the messages expunged
// that the log still records, by UID; none when the log no longer reaches
// back far enough. The two-way sync uses it as dsync does: a mail the
// other side still has at a UID this side expunged, with the same GUID,
// is an expunge to carry over even when no common UID follows it
// (dsync.md §2.8a).
type ExpungeLogger interface {
	ExpungedGUIDs(ctx context.Context) (map[UID][16]byte, error)
}

// ExpungeHistory is implemented by mailboxes that keep Dovecot's
// transaction log. ExpungedSince returns the UIDs expunged after modseq
// since. It fails with an error matching ErrHistoryLost when the log no
// longer reaches back to since. boxsync convert's verification uses it to
// tell a user's expunge on the new location from a loss.
type ExpungeHistory interface {
	ExpungedSince(ctx context.Context, since ModSeq) (map[UID]ExpungeRecord, error)
}

// ExpungeRecord is what a transaction log says of one expunge.
type ExpungeRecord struct {
	// GUID is the 128-bit GUID (MessageGUID128) a record carried; zero
	// when none did (Dovecot's sdbox requests, and its record of a mail
	// file found gone).
	GUID [16]byte
	// Requested: a client asked for it (mail_expunge logs an expunge
	// request, which the backend's sync then carries out). False when
	// the log has only the sync's record: Dovecot dropped a mail whose
	// file vanished behind its back (see index.ExpungedSince).
	Requested bool
}

// MessageGUID128 is the 128-bit form of a message GUID that Dovecot
// writes in EXPUNGE_GUID records and mdbox's guid extension (2.3.19
// mail.c mail_generate_guid_128_hash): 32 hex digits (either case) as
// they are; any other string the last 16 bytes of its SHA-1.
func MessageGUID128(guid string) [16]byte {
	var g [16]byte
	if len(guid) == 32 {
		if _, err := hex.Decode(g[:], []byte(guid)); err == nil {
			return g
		}
	}
	sum := sha1.Sum([]byte(guid))
	copy(g[:], sum[len(sum)-16:])
	return g
}
