package formats

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
)

// UID is an IMAP message UID. Zero means "not assigned".
type UID uint32

// ModSeq is a CONDSTORE modification sequence. Zero means "unknown".
type ModSeq uint64

// GUID is a mailbox GUID (16 bytes, shown as 32 lowercase hex digits as
// Dovecot prints it). The zero GUID means "none": a \Noselect container.
type GUID [16]byte

// IsZero tells whether g is the zero GUID.
func (g GUID) IsZero() bool { return g == GUID{} }

func (g GUID) String() string { return hex.EncodeToString(g[:]) }

// ParseGUID parses 32 hex digits.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 32 {
		return g, fmt.Errorf("mailbox GUID %q: want 32 hex digits", s)
	}
	if _, err := hex.Decode(g[:], []byte(s)); err != nil {
		return g, fmt.Errorf("mailbox GUID %q: %w", s, err)
	}
	return g, nil
}

// NewGUID returns a random GUID, as Dovecot's guid_128_generate does for new
// mailboxes (its layout differs; nothing depends on it).
func NewGUID() GUID {
	var g GUID
	if _, err := rand.Read(g[:]); err != nil {
		panic("formats: crypto/rand: " + err.Error())
	}
	return g
}

// Flags is a set of IMAP system flags with Dovecot's bit values
// (dovecot 2.3.19 mail-types.h: enum mail_flags).
type Flags uint8

const (
	FlagAnswered Flags = 0x01
	FlagFlagged  Flags = 0x02
	FlagDeleted  Flags = 0x04
	FlagSeen     Flags = 0x08
	FlagDraft    Flags = 0x10
	// FlagRecent is session state in IMAP: it never appears in
	// Message.Flags (see Message.Recent for what a store at rest keeps
	// of it). It exists so values read from Dovecot's records and IMAP
	// servers can be masked.
	FlagRecent Flags = 0x20

	// SystemFlags are the flags a store keeps.
	SystemFlags = FlagAnswered | FlagFlagged | FlagDeleted | FlagSeen | FlagDraft
)

var flagNames = []struct {
	f    Flags
	name string
}{
	{FlagAnswered, `\Answered`},
	{FlagFlagged, `\Flagged`},
	{FlagDeleted, `\Deleted`},
	{FlagSeen, `\Seen`},
	{FlagDraft, `\Draft`},
	{FlagRecent, `\Recent`},
}

// Names lists the IMAP names of the flags in f, in bit order.
func (f Flags) Names() []string {
	var out []string
	for _, fn := range flagNames {
		if f&fn.f != 0 {
			out = append(out, fn.name)
		}
	}
	return out
}

func (f Flags) String() string { return strings.Join(f.Names(), " ") }

// ParseFlag returns the system flag named s (case-insensitive, with the
// backslash), and false for anything else (a keyword).
func ParseFlag(s string) (Flags, bool) {
	for _, fn := range flagNames {
		if strings.EqualFold(s, fn.name) {
			return fn.f, true
		}
	}
	return 0, false
}

// Message is one message's metadata: plain data, cheap to copy, no hidden
// I/O. Bodies are read through [Mailbox.Body].
type Message struct {
	UID UID
	// GUID identifies the message across stores. Maildir uses the file's
	// base name unless dovecot-uidlist has a G field; dbox uses 32 hex
	// digits. Empty when the store has no GUIDs (Caps.GUIDs false).
	GUID     string
	ModSeq   ModSeq
	Flags    Flags    // system flags only (never FlagRecent)
	Keywords []string // sorted, no duplicates; see NormalizeKeywords
	// Recent: no session has claimed the message's \Recent yet, as
	// Dovecot counts it for a store at rest: the next session to
	// select the mailbox read-write (IMAP SELECT) sees the message as
	// \Recent. dsync copies it (its exporter reports MAIL_RECENT in a
	// new mail's flags and the importer saves with them), so Save takes
	// it where the store can keep it (Caps.SaveRecent). It is not a
	// flag: FlagRecent never appears in Flags, and a change of Recent
	// alone (a Maildir file moving from new/ to cur/) is no flag change
	// to sync, as it is none for dsync (its transaction-log scan sees
	// no flag record for it).
	//
	// In Dovecot's formats the recent messages are the UIDs from the
	// index header's first_recent_uid up (index_mailbox_get_recent),
	// so Recent holds for a suffix of the UIDs: saving a message that
	// is not Recent claims \Recent of every lower UID too (Maildir), as
	// it does in Dovecot.
	//   - Maildir: UID >= first_recent_uid for mail in dovecot.index;
	//     mail the index does not have yet is recent when its file is in
	//     new/ and no such file in cur/ has a higher UID (Dovecot's sync
	//     raises first_recent_uid past mail it first finds in cur/,
	//     maildir-sync-index.c). Without a usable index: files in new/
	//     above the last file in cur/. See formats/maildir/doc.go.
	//   - sdbox, mdbox: UID >= first_recent_uid. Dovecot's dbox save
	//     drops MAIL_RECENT and leaves first_recent_uid alone, so every
	//     saved message is Recent until a session claims it, whatever
	//     Message.Recent said (Caps.SaveRecent false).
	//   - mbox: UID >= first_recent_uid of the mailbox's index, and
	//     after the last message whose Status header has 'O' (Dovecot's
	//     sync counts no message before that one recent, mbox-sync.c
	//     last_nonrecent_uid). Save writes Status without 'O' for a
	//     Recent message, as Dovecot's mbox save does for MAIL_RECENT;
	//     a raise (FirstRecentRaiser) writes 'O'. See
	//     formats/mbox/doc.go.
	//   - imapc: always false. An IMAP server reports \Recent per
	//     session, and a connection of ours that selected the mailbox
	//     read-write claimed it itself.
	//   - mem: what Save was given, until a raise of its first recent
	//     UID (FirstRecentRaiser) takes it from the mail below.
	//
	// dsync's finish raises first_recent_uid to the other side's
	// (FirstRecentRaiser), so mail an IMAP session claimed on one side
	// stops being \Recent on the other.
	Recent bool
	// Received is IMAP INTERNALDATE. Saved is Dovecot's save date; a
	// zero value means "unknown" (a driver then uses the time of saving).
	Received, Saved time.Time
	// Size is the physical size in bytes; VSize the size with every LF
	// counted as CRLF (RFC 3501 RFC822.SIZE), -1 when unknown.
	Size, VSize int64
	// Ext carries per-message metadata that a driver must preserve when
	// copying even if it does not understand it, keyed by Dovecot's dbox
	// metadata letters (dbox-file.h): 'P' POP3 UIDL, 'O' POP3 order, ...
	Ext map[byte]string
}

// NormalizeKeywords sorts kws and removes duplicates and empty names, in
// place, returning the shortened slice. Keyword comparison is
// case-sensitive, as in Dovecot.
func NormalizeKeywords(kws []string) []string {
	if len(kws) == 0 {
		return nil
	}
	sort.Strings(kws)
	out := kws[:0]
	for i, k := range kws {
		if k == "" || (i > 0 && k == kws[i-1]) {
			continue
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// EqualKeywords compares two normalized keyword lists.
func EqualKeywords(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// MailboxInfo describes one node of a store's mailbox tree.
type MailboxInfo struct {
	Name string // UTF-8, '/'-separated
	// GUID is the mailbox GUID; zero for a \Noselect container (a
	// directory that holds mailboxes but no mail).
	GUID       GUID
	NoSelect   bool
	Subscribed bool
}

// Status is a mailbox's state as IMAP STATUS and dsync see it.
type Status struct {
	GUID          GUID
	UIDValidity   uint32
	UIDNext       UID
	HighestModSeq ModSeq // 0 when the store keeps no modseqs
	Messages      int
	// FirstRecentUID is Dovecot's first_recent_uid as its
	// STATUS_FIRST_RECENT_UID reports it after a sync of the mailbox:
	// the lowest UID the next session may see as \Recent
	// (Message.Recent). dsync sends it in its mailbox record and the
	// importing side raises its own to it (FirstRecentRaiser). A store
	// that reports one (>= 1, <= UIDNEXT) has transactions that
	// implement FirstRecentRaiser; 0 when the store keeps none
	// (imapc).
	FirstRecentUID UID
	Caps           Caps // the driver's Caps, narrowed for this mailbox
}

// Caps are facts about what a store keeps. Driver.Caps is an upper bound;
// Status.Caps narrows it per mailbox.
type Caps struct {
	GUIDs     bool // messages have stable GUIDs
	SaveGUIDs bool // Tx.Save keeps Message.GUID
	SaveUIDs  bool // Tx.Save keeps Message.UID (when >= UIDNEXT)
	ModSeqs   bool // modseqs are persistent
	Keywords  bool // keywords are kept
	SaveDate  bool // Message.Saved is kept
	// SaveRecent: Tx.Save keeps Message.Recent, as Dovecot's save does
	// for MAIL_RECENT (Maildir: new/ or cur/ and first_recent_uid;
	// mbox: Status without 'O'; dbox saves are always recent).
	SaveRecent bool
	// MailboxIsFile: a mailbox is a file, so it cannot have children
	// (mbox). Creating a child of a mailbox, or turning a container
	// into a mailbox, fails with KindNotPossible, as in Dovecot.
	MailboxIsFile bool

	// What a local store can and a remote IMAP server (imapc) can't:
	ExactBytes       bool // bodies read back byte for byte (IMAP gives CRLF lines and NUL as 0x80)
	EmptyMessages    bool // a zero-byte message can be saved (Dovecot's IMAP refuses it)
	POP3             bool // POP3 UIDL and order (Message.Ext 'P', 'O') are kept
	MailboxIdentity  bool // Create keeps the given mailbox GUID and UIDVALIDITY
	SetUIDNext       bool // Tx.SetUIDNext raises UIDNEXT without a message
	SubscribeMissing bool // a name can be subscribed without a mailbox
	// ExactList: Mailboxes shows a deleted parent of remaining children
	// as NoSelect (Dovecot's IMAP LIST on Maildir++ may still show it
	// selectable; imapc/doc.go).
	ExactList bool
}

// LocalCaps are the abilities every local store format has beyond the
// first fields; drivers add them to their own.
func LocalCaps(c Caps) Caps {
	c.ExactBytes, c.EmptyMessages, c.POP3 = true, true, true
	c.MailboxIdentity, c.SetUIDNext, c.SubscribeMissing, c.ExactList = true, true, true, true
	return c
}

func sortStrings(s []string) { sort.Strings(s) }
