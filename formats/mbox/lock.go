package mbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Locking as Dovecot's defaults (dovecot 2.3.19.1 mbox-settings.c):
// mbox_read_locks = fcntl, mbox_write_locks = dotlock fcntl,
// mbox_lock_timeout = 5 min, mbox_dotlock_change_timeout = 2 min.
const (
	lockTimeout        = 5 * time.Minute
	dotlockStale       = 2 * time.Minute
	dotlockSuffix      = ".lock"
	stalePIDCheckAfter = 2 * time.Second // file-dotlock.c STALE_PID_CHECK_SECS
)

var errLockTimeout = errors.New("timed out waiting for the lock (held by another process)")

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
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
		wait = min(wait*2, 200*time.Millisecond)
	}
}

func fcntlUnlock(f *os.File) error {
	return setLock(f, syscall.F_UNLCK)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Goroutines of this process serialise their dotlocks on a per-path
// mutex: a dotlock holding our own pid would look stale to Dovecot's rule.
var (
	localMu    sync.Mutex
	localLocks = map[string]chan struct{}{}
)

func localLock(ctx context.Context, path string) error {
	localMu.Lock()
	ch := localLocks[path]
	if ch == nil {
		ch = make(chan struct{}, 1)
		localLocks[path] = ch
	}
	localMu.Unlock()
	select {
	case ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func localUnlock(path string) {
	localMu.Lock()
	ch := localLocks[path]
	localMu.Unlock()
	<-ch
}

// dotlock is a held "<path>.lock" (dovecot 2.3.19.1 file-dotlock.c with
// dotlock_use_excl = yes: created O_EXCL, holding "<pid>:<hostname>").
type dotlock struct {
	path, lockPath string
	ino            uint64
}

// takeDotlock locks path for writing. A lock is overridden as stale when
// its owner is a dead process on this host, or when neither it nor the
// protected file changed for dotlockStale.
func takeDotlock(ctx context.Context, path string) (*dotlock, error) {
	if err := localLock(ctx, path); err != nil {
		return nil, err
	}
	l, err := createDotlock(ctx, path)
	if err != nil {
		localUnlock(path)
		return nil, err
	}
	return l, nil
}

func createDotlock(ctx context.Context, path string) (*dotlock, error) {
	lockPath := path + dotlockSuffix
	deadline := time.Now().Add(lockTimeout)
	wait := 50 * time.Millisecond
	var lastChange time.Time
	var lastSeen fs.FileInfo
	var lastFile fs.FileInfo
	for {
		f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, werr := f.WriteString(strconv.Itoa(os.Getpid()) + ":" + hostname())
			fi, serr := f.Stat()
			cerr := f.Close()
			if err := errors.Join(werr, serr, cerr); err != nil {
				os.Remove(lockPath)
				return nil, err
			}
			return &dotlock{path: path, lockPath: lockPath, ino: inode(fi)}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		now := time.Now()
		fi, err := os.Lstat(lockPath)
		if err == nil {
			if lastSeen == nil || inode(fi) != inode(lastSeen) || !fi.ModTime().Equal(lastSeen.ModTime()) || fi.Size() != lastSeen.Size() {
				if lastSeen == nil {
					lastChange = fi.ModTime()
				} else {
					lastChange = now
				}
				lastSeen = fi
			}
			if file, err := os.Stat(path); err == nil {
				if lastFile != nil && (file.Size() != lastFile.Size() || !file.ModTime().Equal(lastFile.ModTime())) {
					lastChange = now
				}
				lastFile = file
			}
			stale := now.Sub(lastChange) > dotlockStale
			if !stale && now.Sub(fi.ModTime()) > stalePIDCheckAfter {
				if pid, ok := localPID(lockPath); ok && pid != os.Getpid() && !processExists(pid) {
					stale = true
				}
			}
			if stale {
				if err := os.Remove(lockPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return nil, err
				}
				if err := sleepCtx(ctx, time.Duration(100+rand.IntN(100))*time.Millisecond); err != nil {
					return nil, err
				}
				lastSeen, lastFile = nil, nil
				continue
			}
		}
		if now.After(deadline) {
			return nil, &fs.PathError{Op: "dotlock", Path: lockPath, Err: errLockTimeout}
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, err
		}
		wait = min(wait*2, time.Second)
	}
}

// release removes the lock file if it is still ours.
func (l *dotlock) release() error {
	defer localUnlock(l.path)
	fi, err := os.Lstat(l.lockPath)
	if err != nil || inode(fi) != l.ino {
		return fmt.Errorf("dotlock %s was overridden by another process", l.lockPath)
	}
	if err := os.Remove(l.lockPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

var hostname = sync.OnceValue(func() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return h
})

func localPID(lockPath string) (int, bool) {
	data, err := os.ReadFile(lockPath)
	if err != nil || len(data) > 512 {
		return 0, false
	}
	pidStr, host, ok := strings.Cut(strings.TrimSpace(string(data)), ":")
	if !ok || host != hostname() {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	return pid, err == nil && pid > 0
}

func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || !errors.Is(err, syscall.ESRCH)
}
