package log

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// LockMethod is Dovecot's lock_method setting as it applies to the
// transaction log (mail-transaction-log-file.c: mail_transaction_log_file_lock).
type LockMethod int

const (
	// LockFcntl (Dovecot's default) takes an fcntl(F_SETLK) write lock on
	// the whole dovecot.index.log.
	LockFcntl LockMethod = iota
	// LockFlock takes a flock(LOCK_EX) on dovecot.index.log.
	LockFlock
	// LockDotlock creates dovecot.index.log.lock (content "pid:host"), as
	// Dovecot does with lock_method = dotlock.
	LockDotlock
)

func (m LockMethod) String() string {
	switch m {
	case LockFcntl:
		return "fcntl"
	case LockFlock:
		return "flock"
	case LockDotlock:
		return "dotlock"
	}
	return fmt.Sprintf("lock_method(%d)", int(m))
}

// ParseLockMethod parses a lock_method value.
func ParseLockMethod(s string) (LockMethod, error) {
	switch s {
	case "fcntl", "":
		return LockFcntl, nil
	case "flock":
		return LockFlock, nil
	case "dotlock":
		return LockDotlock, nil
	}
	return 0, formats.Errorf(formats.KindParams, "lock_method=%q: want fcntl, flock or dotlock", s)
}

// DefaultLockTimeout is MAIL_TRANSACTION_LOG_LOCK_TIMEOUT.
const DefaultLockTimeout = 3 * time.Minute

// dotlockStale is MAIL_TRANSACTION_LOG_DOTLOCK_CHANGE_TIMEOUT: a dotlock
// not touched for this long is overridden.
const dotlockStale = 3 * time.Minute

// errLockTimeout is wrapped in the timeout error (Kind Temp, like
// Dovecot's "Timeout (180s) while waiting for lock").
var errLockTimeout = errors.New("timeout while waiting for lock")

const lockPoll = 10 * time.Millisecond

// lock takes the write lock for path (whose open file is f) and returns
// the function that releases it.
func lock(f *os.File, path string, m LockMethod, timeout time.Duration) (func() error, error) {
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	deadline := time.Now().Add(timeout)
	switch m {
	case LockDotlock:
		return dotlock(path+".lock", deadline)
	case LockFlock:
		for {
			err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if err == nil {
				return func() error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }, nil
			}
			if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
				return nil, &os.PathError{Op: "flock", Path: path, Err: err}
			}
			if time.Now().After(deadline) {
				return nil, lockTimeout(path, timeout)
			}
			time.Sleep(lockPoll)
		}
	default:
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
		for {
			err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
			if err == nil {
				return func() error {
					un := syscall.Flock_t{Type: syscall.F_UNLCK}
					return syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &un)
				}, nil
			}
			if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EINTR) {
				return nil, &os.PathError{Op: "fcntl(F_SETLK)", Path: path, Err: err}
			}
			if time.Now().After(deadline) {
				return nil, lockTimeout(path, timeout)
			}
			time.Sleep(lockPoll)
		}
	}
}

func lockTimeout(path string, d time.Duration) error {
	return &formats.Error{Kind: formats.KindTemp, Op: "index: lock", Path: path,
		Err: fmt.Errorf("%w (%s)", errLockTimeout, d)}
}

// dotlock creates lockPath exclusively, holding "pid:hostname" as Dovecot's
// file_dotlock_create does, overriding a lock whose process is gone (same
// host) or that has not changed for dotlockStale.
func dotlock(lockPath string, deadline time.Time) (func() error, error) {
	host, _ := os.Hostname()
	content := strconv.Itoa(os.Getpid()) + ":" + host
	for {
		f, err := os.OpenFile(lockPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, createModeOf(lockPath))
		if err == nil {
			_, werr := f.WriteString(content)
			cerr := f.Close()
			if err := errors.Join(werr, cerr); err != nil {
				os.Remove(lockPath)
				return nil, err
			}
			return func() error {
				if err := os.Remove(lockPath); err != nil {
					return fmt.Errorf("dotlock %s was lost: %w", lockPath, err)
				}
				return nil
			}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if dotlockIsStale(lockPath, host) {
			os.Remove(lockPath)
			continue
		}
		if time.Now().After(deadline) {
			return nil, lockTimeout(lockPath, time.Until(deadline))
		}
		time.Sleep(lockPoll)
	}
}

func dotlockIsStale(lockPath, host string) bool {
	fi, err := os.Stat(lockPath)
	if err != nil {
		return false // gone: retry
	}
	if time.Since(fi.ModTime()) > dotlockStale {
		return true
	}
	b, err := os.ReadFile(lockPath)
	if err != nil {
		return false
	}
	pidStr, h, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok || h != host {
		return false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return false
	}
	// kill(pid, 0): ESRCH means the owner is gone
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
