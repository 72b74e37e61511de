package dovecottest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Tree is a whole mail store as Dovecot sees it. It is plain data built only
// from doveadm output, so it can serve as the oracle for our own drivers.
type Tree struct {
	Mailboxes []Mailbox // sorted by Name
}

// Mailbox is one listed or subscribed mailbox.
type Mailbox struct {
	Name          string // UTF-8 name, hierarchy separator '/'
	Subscribed    bool
	GUID          string // 32 lowercase hex, "" for \NoSelect (and subscribed-only) names
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	Messages      []Message // sorted by UID
}

// Message is one message's metadata and a hash of its exact bytes.
type Message struct {
	UID      uint32
	GUID     string   // maildir: the file name up to ":2,"; dbox: 32 hex
	Flags    []string // system flags (\Answered \Deleted \Draft \Flagged \Seen), sorted; never \Recent
	Keywords []string // sorted
	Received int64    // unix seconds (IMAP INTERNALDATE)
	Saved    int64    // unix seconds
	Size     int64    // physical size
	VSize    int64    // virtual size: CRLF line endings counted
	ModSeq   uint64
	SHA256   string // hex of the exact message bytes
}

// Lookup returns the mailbox named name, or nil.
func (t Tree) Lookup(name string) *Mailbox {
	i, ok := slices.BinarySearchFunc(t.Mailboxes, name, func(m Mailbox, name string) int {
		return strings.Compare(m.Name, name)
	})
	if !ok {
		return nil
	}
	return &t.Mailboxes[i]
}

// Lookup returns the message with uid, or nil.
func (m *Mailbox) Lookup(uid uint32) *Message {
	i, ok := slices.BinarySearchFunc(m.Messages, uid, func(msg Message, uid uint32) int {
		return cmp.Compare(msg.UID, uid)
	})
	if !ok {
		return nil
	}
	return &m.Messages[i]
}

// String renders the tree one line per mailbox and message, for test logs.
func (t Tree) String() string {
	var b strings.Builder
	for _, m := range t.Mailboxes {
		fmt.Fprintf(&b, "%q subscribed=%t guid=%s uidvalidity=%d uidnext=%d highestmodseq=%d\n",
			m.Name, m.Subscribed, m.GUID, m.UIDValidity, m.UIDNext, m.HighestModSeq)
		for _, msg := range m.Messages {
			fmt.Fprintf(&b, "  uid=%d guid=%s flags=%s keywords=%s received=%d saved=%d size=%d vsize=%d modseq=%d sha256=%s\n",
				msg.UID, msg.GUID, strings.Join(msg.Flags, ","), strings.Join(msg.Keywords, ","),
				msg.Received, msg.Saved, msg.Size, msg.VSize, msg.ModSeq, msg.SHA256)
		}
	}
	return b.String()
}

// Field names a Tree field that Diff compares; pass some to Diff to ignore
// them.
type Field string

// The fields Diff compares.
const (
	Subscribed    Field = "subscribed"
	MailboxGUID   Field = "mailbox guid"
	UIDValidity   Field = "uidvalidity"
	UIDNext       Field = "uidnext"
	HighestModSeq Field = "highestmodseq"
	MessageGUID   Field = "guid"
	Flags         Field = "flags"
	Keywords      Field = "keywords"
	Received      Field = "received"
	Saved         Field = "saved"
	Size          Field = "size"
	VSize         Field = "vsize"
	ModSeq        Field = "modseq"
	Body          Field = "sha256"
)

// Diff compares two trees and returns one line per difference, naming the
// mailbox, the UID and the field ("" when equal). Mailboxes are matched by
// name and messages by UID; the ignored fields are not compared.
func Diff(a, b Tree, ignore ...Field) string {
	d := differ{ignore: ignore}
	i, j := 0, 0
	for i < len(a.Mailboxes) || j < len(b.Mailboxes) {
		switch {
		case j == len(b.Mailboxes) || i < len(a.Mailboxes) && a.Mailboxes[i].Name < b.Mailboxes[j].Name:
			d.linef("%q: only in a", a.Mailboxes[i].Name)
			i++
		case i == len(a.Mailboxes) || b.Mailboxes[j].Name < a.Mailboxes[i].Name:
			d.linef("%q: only in b", b.Mailboxes[j].Name)
			j++
		default:
			d.mailbox(&a.Mailboxes[i], &b.Mailboxes[j])
			i++
			j++
		}
	}
	return d.b.String()
}

type differ struct {
	ignore []Field
	b      strings.Builder
}

func (d *differ) linef(format string, args ...any) {
	fmt.Fprintf(&d.b, format, args...)
	d.b.WriteByte('\n')
}

// field reports a difference in f unless f is ignored.
func (d *differ) field(where string, f Field, a, b any) {
	if slices.Contains(d.ignore, f) {
		return
	}
	as, bs := fmt.Sprint(a), fmt.Sprint(b)
	if as != bs {
		d.linef("%s: %s: a=%s b=%s", where, f, as, bs)
	}
}

func (d *differ) mailbox(a, b *Mailbox) {
	where := fmt.Sprintf("%q", a.Name)
	d.field(where, Subscribed, a.Subscribed, b.Subscribed)
	d.field(where, MailboxGUID, a.GUID, b.GUID)
	d.field(where, UIDValidity, a.UIDValidity, b.UIDValidity)
	d.field(where, UIDNext, a.UIDNext, b.UIDNext)
	d.field(where, HighestModSeq, a.HighestModSeq, b.HighestModSeq)
	i, j := 0, 0
	for i < len(a.Messages) || j < len(b.Messages) {
		switch {
		case j == len(b.Messages) || i < len(a.Messages) && a.Messages[i].UID < b.Messages[j].UID:
			d.linef("%s uid %d: only in a", where, a.Messages[i].UID)
			i++
		case i == len(a.Messages) || b.Messages[j].UID < a.Messages[i].UID:
			d.linef("%s uid %d: only in b", where, b.Messages[j].UID)
			j++
		default:
			d.message(fmt.Sprintf("%s uid %d", where, a.Messages[i].UID), &a.Messages[i], &b.Messages[j])
			i++
			j++
		}
	}
}

func (d *differ) message(where string, a, b *Message) {
	d.field(where, MessageGUID, a.GUID, b.GUID)
	d.field(where, Flags, a.Flags, b.Flags)
	d.field(where, Keywords, a.Keywords, b.Keywords)
	d.field(where, Received, a.Received, b.Received)
	d.field(where, Saved, a.Saved, b.Saved)
	d.field(where, Size, a.Size, b.Size)
	d.field(where, VSize, a.VSize, b.VSize)
	d.field(where, ModSeq, a.ModSeq, b.ModSeq)
	d.field(where, Body, a.SHA256, b.SHA256)
}
