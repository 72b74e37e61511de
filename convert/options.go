package convert

import (
	"io"
	"time"

	"github.com/boxsync/boxsync/convert/state"
	"github.com/boxsync/boxsync/formats"
)

// Mode is what a run does (dsync.md §1.1).
type Mode int

const (
	// Backup makes the destination identical to the source; the source
	// is read-only (doveadm backup).
	Backup Mode = iota
	// Sync is a two-way merge (doveadm sync).
	Sync
	// OneWay merges the source into the destination and deletes nothing
	// there (doveadm sync -1).
	OneWay
)

func (m Mode) String() string {
	switch m {
	case Backup:
		return "backup"
	case Sync:
		return "sync"
	case OneWay:
		return "sync -1"
	}
	return "mode?"
}

// Algorithm is dsync's sync type (dsync.md §3).
type Algorithm int

const (
	Fast     Algorithm = iota // default: skip mailboxes whose status is unchanged
	Full                      // -f: compare every mailbox
	Stateful                  // -s STATE
)

// Options configure one run. The zero value is a fast backup of every
// mailbox.
type Options struct {
	Mode      Mode
	Algorithm Algorithm

	// Mailbox restricts the run to one mailbox (-m); "" = all.
	Mailbox string
	// Exclude lists -x masks (with * and ?) of mailboxes to leave alone.
	Exclude []string
	// MailboxGUID restricts the run to the mailbox with this GUID (-g),
	// on either side; zero = all.
	MailboxGUID formats.GUID

	// Filters of new mail (-t, -e, -I, -O; dsync.md §1.2): a message
	// one side lacks is copied only if it passes all of them. They never
	// delete or expunge anything, and mail already on both sides is
	// synced as usual. Zero values filter nothing.
	Since, Until time.Time // received date (INTERNALDATE) >= Since, <= Until
	MaxSize      int64     // virtual size (RFC822.SIZE) <= MaxSize
	// Flag is a system flag (`\Seen`) or keyword the mail must have;
	// with a leading '-' one it must not have. Keywords compare
	// case-insensitively, as dsync does.
	Flag string

	// CommitEvery commits a mailbox's transaction after this many saved
	// messages or CommitBytes bytes, so an interrupted run keeps its
	// progress (dsync_commit_msgs_interval). Zero means the defaults.
	CommitEvery int
	CommitBytes int64

	// Workers is how many mailboxes are synced at once; 0 means one per
	// CPU, at most 4 (Sync and OneWay: at least 3, as their merges wait
	// on fsyncs more than they compute). Drivers' stores are safe for
	// concurrent use on different mailboxes.
	Workers int

	// State, when not nil, asks for a new sync state in Result.State
	// (-s). With Algorithm Stateful it is also the saved state the run
	// starts from (stateful.go); an empty State is a first stateful run.
	State state.State

	// AllMail is -a: a side that must create a message first looks
	// for its own copy by GUID there (allmail.go).
	AllMail AllMail

	// Log receives progress and warnings (-v); nil discards them.
	Log io.Writer
	// Verbose adds per-mailbox progress lines.
	Verbose bool
	// Progress, when set, is called as the run advances (progress.go).
	Progress func(Progress)
}

// Result reports what a run did.
type Result struct {
	Mailboxes struct{ Created, Deleted, Renamed, Synced, Skipped int }
	Messages  struct{ Saved, Expunged, FlagsChanged int }
	Bytes     int64
	// Local counts the saved messages whose bytes came from a copy the
	// writing side already had (-a, Options.AllMail), not from the
	// other side.
	Local int
	// Desync is non-empty when changes happened during the run and it
	// should be repeated (doveadm exit 2).
	Desync string
	// State is the new sync state (state.Encode) when Options.State was
	// set; "" when a stale state requires a full sync, which doveadm
	// prints as an empty line.
	State string
	// Errors are per-message or per-mailbox failures that did not stop
	// the run; a run with Errors fails (the first one decides the exit
	// code, as in doveadm).
	Errors []error
}
