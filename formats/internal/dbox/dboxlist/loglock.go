package dboxlist

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// LogLock holds Dovecot's lock on a dovecot.index.log (lock_method =
// fcntl, Dovecot's default: F_SETLK write lock on the whole file) across
// more than one index transaction, which package index does not offer: an
// sdbox commit must choose UIDs from the index and name the u.<uid> files
// before it appends to the log, all while Dovecot cannot commit its own
// saves (sdbox_transaction_save_commit_pre does the same under its sync
// lock). Without it Dovecot may pick the same UIDs in between and find
// "u.N already exists, rebuilding index".
//
// QUIRK: POSIX fcntl locks belong to the process, not to a file
// descriptor. index.Tx.Commit, run while a LogLock is held, therefore gets
// its own lock at once (same process) and releases ours when it finishes;
// and any open+close of the log by this process (index.Index.View reading
// it) drops ours too. Lock handles that: it re-takes the lock after the
// caller's view and retries if the log changed meanwhile. Another
// goroutine reading the same log while a LogLock is held can still drop
// it; the caller serialises commits per mailbox. TODO(lead): replace with
// a hook in package index that runs a function under the log lock before
// the transaction is appended.
type LogLock struct {
	f    *os.File
	path string
}

// Lock takes the write lock on the log at path, waiting up to 3 minutes
// (MAIL_TRANSACTION_LOG_LOCK_TIMEOUT), then calls view, which reads the
// index, and returns when the lock is held and the log did not change
// since view read it. A missing log is not an error: nothing is locked
// (Dovecot creates a log only under its own lock) and Lock returns a nil
// *LogLock after calling view.
func Lock(ctx context.Context, path string, view func() error) (*LogLock, error) {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			return nil, view()
		}
		if err != nil {
			return nil, err
		}
		l := &LogLock{f: f, path: path}
		ok, err := l.lockAndView(ctx, deadline, view)
		if ok || err != nil {
			if err != nil {
				f.Close()
				return nil, err
			}
			return l, nil
		}
		f.Close() // the log was replaced (rotated): lock the new one
	}
}

func (l *LogLock) lockAndView(ctx context.Context, deadline time.Time, view func() error) (bool, error) {
	for {
		if err := l.lock(ctx, deadline); err != nil {
			return false, err
		}
		before, err := l.f.Stat()
		if err != nil {
			return false, err
		}
		if cur, err := os.Stat(l.path); err != nil || !os.SameFile(cur, before) {
			return false, nil
		}
		if err := view(); err != nil {
			return false, err
		}
		// view may have closed a descriptor of the log and so dropped
		// the lock; take it again and make sure nobody wrote meanwhile
		if err := l.lock(ctx, deadline); err != nil {
			return false, err
		}
		after, err := l.f.Stat()
		if err != nil {
			return false, err
		}
		if cur, err := os.Stat(l.path); err != nil || !os.SameFile(cur, after) {
			return false, nil // rotated meanwhile: lock the new log
		}
		if after.Size() == before.Size() {
			return true, nil
		}
	}
}

func (l *LogLock) lock(ctx context.Context, deadline time.Time) error {
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	for {
		err := syscall.FcntlFlock(l.f.Fd(), syscall.F_SETLK, &lk)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EINTR) {
			return &os.PathError{Op: "fcntl(F_SETLK)", Path: l.path, Err: err}
		}
		if time.Now().After(deadline) {
			return &formats.Error{Kind: formats.KindTemp, Op: "index: lock", Path: l.path,
				Err: fmt.Errorf("timeout while waiting for lock (%s)", 3*time.Minute)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Release drops the lock (if index.Tx.Commit has not already) and closes
// the descriptor. It is a no-op on a nil *LogLock.
func (l *LogLock) Release() error {
	if l == nil {
		return nil
	}
	un := syscall.Flock_t{Type: syscall.F_UNLCK}
	_ = syscall.FcntlFlock(l.f.Fd(), syscall.F_SETLK, &un)
	return l.f.Close()
}
