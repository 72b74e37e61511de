package convert

import (
	"io"

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

	// CommitEvery commits a mailbox's transaction after this many saved
	// messages or CommitBytes bytes, so an interrupted run keeps its
	// progress (dsync_commit_msgs_interval). Zero means the defaults.
	CommitEvery int
	CommitBytes int64

	// Workers is how many mailboxes are synced at once; 0 means one per
	// CPU, at most 4. Drivers' stores are safe for concurrent use on
	// different mailboxes.
	Workers int

	// Log receives progress and warnings (-v); nil discards them.
	Log io.Writer
	// Verbose adds per-mailbox progress lines.
	Verbose bool
	// Progress, when set, is called as the run advances (progress.go).
	Progress func(Progress)
}

// Result reports what a run did.
type Result struct {
	Mailboxes struct{ Created, Deleted, Synced, Skipped int }
	Messages  struct{ Saved, Expunged, FlagsChanged int }
	Bytes     int64
	// Desync is non-empty when changes happened during the run and it
	// should be repeated (doveadm exit 2).
	Desync string
	// Errors are per-message or per-mailbox failures that did not stop
	// the run; a run with Errors fails (the first one decides the exit
	// code, as in doveadm).
	Errors []error
}

var _ = formats.Separator
