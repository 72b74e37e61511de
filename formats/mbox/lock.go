package mbox

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats/internal/dotlock"
)

// Locking as Dovecot's defaults (dovecot 2.3.19.1 mbox-settings.c):
// mbox_read_locks = fcntl, mbox_write_locks = dotlock fcntl,
// mbox_lock_timeout = 5 min, mbox_dotlock_change_timeout = 2 min.
const (
	lockTimeout   = 5 * time.Minute
	dotlockStale  = 2 * time.Minute
	dotlockSuffix = dotlock.Suffix
)

// errLockTimeout is returned when a dotlock or fcntl lock stays held past
// lockTimeout.
var errLockTimeout = dotlock.ErrTimeout

// hostname is the host name Dovecot writes into lock files and the
// pseudo message (my_hostname).
var hostname = dotlock.Hostname

// takeDotlock takes "<path>.lock" for writing (formats/internal/dotlock:
// O_EXCL, holding "<pid>:<hostname>"; overridden when its owner is a dead
// process of this host, or when neither it nor the file changed for
// dotlockStale).
func takeDotlock(ctx context.Context, path string) (*dotlock.Lock, error) {
	return dotlock.Create(ctx, path, dotlock.Options{Timeout: lockTimeout, Stale: dotlockStale, Mode: 0o600})
}

// fcntlLock takes a POSIX record lock on the whole of f, polling so that
// ctx and the timeout are honoured. On Linux it is an open file
// description lock (F_OFD_SETLK): it conflicts with Dovecot's fcntl locks
// like a classic one, but closing another descriptor of the same file in
// this process does not drop it.
func fcntlLock(ctx context.Context, f *os.File, write bool) error {
	typ := int16(syscall.F_RDLCK)
	if write {
		typ = syscall.F_WRLCK
	}
	deadline := time.Now().Add(lockTimeout)
	wait := 5 * time.Millisecond
	for {
		err := setLock(f, typ)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EINTR) {
			return &fs.PathError{Op: "fcntl lock", Path: f.Name(), Err: err}
		}
		if time.Now().After(deadline) {
			return &fs.PathError{Op: "fcntl lock", Path: f.Name(), Err: errLockTimeout}
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(wait*2, 200*time.Millisecond)
	}
}

func fcntlUnlock(f *os.File) error {
	return setLock(f, syscall.F_UNLCK)
}
