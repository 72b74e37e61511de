package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// syncLockName is dsync's per-user lock file in the home directory
// (dovecot 2.3.19 dsync-brain.c: DSYNC_LOCK_FILENAME).
const syncLockName = ".dovecot-sync.lock"

// lockRetry is how often a held lock is tried again.
const lockRetry = 50 * time.Millisecond

// lockUser takes dsync's user lock (-l SECS): an fcntl write lock on
// <home>/.dovecot-sync.lock, waiting up to timeout, so that a concurrent
// doveadm sync/backup (or replicator run) and we never work on one user
// at once. The returned unlock unlinks the file and then releases the
// lock, as dsync_brain_deinit does.
//
// Dovecot waits with F_SETLKW under an alarm; we poll F_SETLK, which
// needs no signals and honours ctx.
func lockUser(ctx context.Context, home string, timeout time.Duration) (unlock func() error, err error) {
	if home == "" {
		return nil, errors.New("User has no home directory")
	}
	path := filepath.Join(home, syncLockName)
	fail := func(err error) error {
		return &formats.Error{Kind: formats.KindTemp, Err: fmt.Errorf("Couldn't lock %s: %w", path, err)}
	}
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if errors.Is(err, os.ErrNotExist) {
			// The home doesn't exist yet: create it, as Dovecot does.
			if err = os.MkdirAll(home, 0o700); err == nil {
				f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
			}
		}
		if err != nil {
			return nil, fail(err)
		}
		held, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fail(fmt.Errorf("fcntl(%s, write-lock, F_SETLK) failed: %w", path, err))
		}
		if held {
			// Locked, unless the holder unlinked the file meanwhile.
			if same(f, path) {
				return func() error {
					err := os.Remove(path)
					return errors.Join(err, f.Close())
				}, nil
			}
			f.Close()
			continue
		}
		pid := holder(f)
		f.Close()
		if !time.Now().Before(deadline) {
			return nil, fail(fmt.Errorf("fcntl(%s, write-lock, F_SETLKW) locking failed: Timed out after %d seconds (WRITE lock held by pid %d)",
				path, int(timeout/time.Second), pid))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(lockRetry, time.Until(deadline))):
		}
	}
}

// tryLock tries to write-lock the whole file; false when someone else
// holds a conflicting lock.
func tryLock(f *os.File) (bool, error) {
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	for {
		err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EACCES):
			return false, nil
		default:
			return false, err
		}
	}
}

// holder returns the pid holding a conflicting lock, or 0.
func holder(f *os.File) int {
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil || lk.Type == syscall.F_UNLCK {
		return 0
	}
	return int(lk.Pid)
}

// same tells whether path still names the open file f.
func same(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}
