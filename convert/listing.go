package convert

import (
	"context"
	"sync"

	"github.com/boxsync/boxsync/formats"
)

// Listings: a Sync lists each store's mailbox tree once per run, as dsync
// builds its mailbox tree once (dsync-mailbox-tree-fill.c), and reads the
// listing again only after the run itself changed that tree (a create,
// delete, rename, (un)subscription or directory it made). Listing a
// Maildir opens every mailbox's dovecot-uidlist for its GUID plus the
// subscriptions and dovecot.mailbox.log: listing both trees once takes
// 0.65-0.8 ms of the 6-8 ms of a stateful run without changes on the
// bench's 13 mailboxes (issue 6), and the tree sync, the merge, the tree
// finish and the state each listed them again.
//
// What others change during the run is seen by the next run, as with
// dsync. Mail a merge saves, expunges or flags changes no listing: a
// MailboxInfo holds only the name, mailbox GUID, \Noselect and
// subscription, and the mailbox log records only tree changes.

// Store indexes of run.lists.
const (
	srcIdx = 0
	dstIdx = 1
)

// listing is one store's cached tree and mailbox log.
type listing struct {
	mu    sync.Mutex
	gen   uint64 // bumped by every tree change the run makes
	boxes []formats.MailboxInfo
	recs  []formats.MailboxLogRecord
	have  bool // boxes is the tree as of gen
	logOK bool // recs is the log as of gen
}

// store is the store of a listing index.
func (r *run) store(i int) formats.Store {
	if i == srcIdx {
		return r.src
	}
	return r.dst
}

// label is the name of a store in messages.
func label(i int) string {
	if i == srcIdx {
		return "source"
	}
	return "destination"
}

// mailboxes is store i's tree, listed at most once between the run's
// own changes to it. Callers must not modify the slice.
func (r *run) mailboxes(ctx context.Context, i int) ([]formats.MailboxInfo, error) {
	l := &r.lists[i]
	return cachedRead(l, &l.have, &l.boxes, func() ([]formats.MailboxInfo, error) { return r.store(i).Mailboxes(ctx) })
}

// cachedRead returns *val if *have says l holds it, else reads it and
// keeps it, unless one of the run's own tree changes ran while reading.
func cachedRead[T any](l *listing, have *bool, val *T, read func() (T, error)) (T, error) {
	l.mu.Lock()
	if *have {
		v := *val
		l.mu.Unlock()
		return v, nil
	}
	gen := l.gen
	l.mu.Unlock()
	v, err := read()
	if err != nil {
		return v, err
	}
	l.mu.Lock()
	if l.gen == gen {
		// No change of ours ran while reading: the result holds.
		*val, *have = v, true
	}
	l.mu.Unlock()
	return v, nil
}

// mailboxLog is store i's mailbox changes log (nil without one), read at
// most once between the run's own changes to the tree.
func (r *run) mailboxLog(ctx context.Context, i int) ([]formats.MailboxLogRecord, error) {
	lg, ok := r.store(i).(formats.MailboxLogger)
	if !ok {
		return nil, nil
	}
	l := &r.lists[i]
	return cachedRead(l, &l.logOK, &l.recs, func() ([]formats.MailboxLogRecord, error) { return lg.MailboxLog(ctx) })
}

// treeChanged drops store i's cached tree and log: the run changed the
// tree (or tried to: a failed change may have done part of its work).
// Call it after the change, so a listing that ran alongside it is not
// kept either.
func (r *run) treeChanged(i int) {
	l := &r.lists[i]
	l.mu.Lock()
	l.gen++
	l.boxes, l.recs, l.have, l.logOK = nil, nil, false, false
	l.mu.Unlock()
}
