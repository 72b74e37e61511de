package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Dotlocks as Dovecot makes them (dovecot 2.3.19.1 lib/file-dotlock.c with
// dotlock_use_excl=yes, the default): "<path>.lock" created with O_EXCL
// holding "<pid>:<hostname>". A lock is stale, and is overridden, when its
// owner is a process on this host that no longer exists (checked once the
// lock is older than 2 seconds), or when neither the lock nor the file it
// protects has changed for stale_timeout.
const (
	lockSuffix = ".lock"
	// maildir-uidlist.h MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT, and the
	// timeout maildir_uidlist_init derives from it.
	uidlistStaleTimeout = 120 * time.Second
	uidlistLockTimeout  = uidlistStaleTimeout + 2*time.Second
	// subscription-file.c SUBSCRIPTION_FILE_LOCK_TIMEOUT and
	// SUBSCRIPTION_FILE_CHANGE_TIMEOUT.
	subsLockTimeout  = 120 * time.Second
	subsStaleTimeout = 30 * time.Second

	stalePIDCheck     = 2 * time.Second        // STALE_PID_CHECK_SECS
	lockTouchInterval = 10 * time.Second       // MAILDIR_LOCK_TOUCH_SECS
	maxLockWait       = 3 * time.Second        // LOCK_MAX_WAIT_USECS
	minLockWait       = 100 * time.Millisecond // LOCK_RANDOM_USLEEP_TIME is 0.1-0.2 s
)

// errLockTimeout is returned when a lock stays held past the timeout.
var errLockTimeout = errors.New("timed out waiting for the lock (held by another process)")

// Goroutines of this process serialise on a per-path mutex before taking
// the dotlock: the dotlock's "<pid>:<host>" would name us, and Dovecot's
// rule treats a lock holding our own pid as stale.
var (
	localLocksMu sync.Mutex
	localLocks   = map[string]chan struct{}{}
)

func localLock(ctx context.Context, path string) error {
	localLocksMu.Lock()
	ch := localLocks[path]
	if ch == nil {
		ch = make(chan struct{}, 1)
		localLocks[path] = ch
	}
	localLocksMu.Unlock()
	select {
	case ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func localUnlock(path string) {
	localLocksMu.Lock()
	ch := localLocks[path]
	localLocksMu.Unlock()
	<-ch
}

// dotlock is a held lock.
type dotlock struct {
	path     string // the protected file
	lockPath string
	dev, ino uint64
	file     *os.File // open lock file for writeReplace, else nil
}

type lockOptions struct {
	timeout, stale time.Duration
	mode           os.FileMode
	// keepOpen keeps the lock file open for writing, so that its
	// content can replace the protected file (file_dotlock_open).
	keepOpen bool
}

// takeDotlock locks path. It fails with an *fs.PathError when the lock file
// cannot be created (for example fs.ErrPermission in a read-only
// directory) and with errLockTimeout when the lock stays held.
func takeDotlock(ctx context.Context, path string, opt lockOptions) (*dotlock, error) {
	if err := localLock(ctx, path); err != nil {
		return nil, err
	}
	l, err := createDotlock(ctx, path, opt)
	if err != nil {
		localUnlock(path)
		return nil, err
	}
	return l, nil
}

func createDotlock(ctx context.Context, path string, opt lockOptions) (*dotlock, error) {
	lockPath := path + lockSuffix
	deadline := time.Now().Add(opt.timeout)
	wait := minLockWait
	var st staleState
	for {
		f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, opt.mode)
		if err == nil {
			return finishDotlock(f, path, lockPath, opt)
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		override, err := st.check(path, lockPath, opt.stale)
		if err != nil {
			return nil, err
		}
		if override {
			if err := os.Remove(lockPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			// Sleep a little so that another process overriding the
			// same stale lock does not remove ours (dotlock_override).
			if err := sleepCtx(ctx, minLockWait+rand.N(minLockWait)); err != nil {
				return nil, err
			}
			continue
		}
		if !time.Now().Before(deadline) {
			return nil, &fs.PathError{Op: "lock", Path: lockPath, Err: errLockTimeout}
		}
		if err := sleepCtx(ctx, min(wait, time.Until(deadline))); err != nil {
			return nil, err
		}
		wait = min(wait+wait/2, maxLockWait)
	}
}

func finishDotlock(f *os.File, path, lockPath string, opt lockOptions) (*dotlock, error) {
	// file_write_pid: "<pid>:<hostname>", no newline.
	_, werr := f.WriteString(strconv.Itoa(os.Getpid()) + ":" + hostname())
	fi, serr := f.Stat()
	if werr != nil || serr != nil {
		f.Close()
		os.Remove(lockPath)
		return nil, errors.Join(werr, serr)
	}
	l := &dotlock{path: path, lockPath: lockPath}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		l.dev, l.ino = uint64(sys.Dev), uint64(sys.Ino)
	}
	if opt.keepOpen {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			os.Remove(lockPath)
			return nil, err
		}
		if err := f.Truncate(0); err != nil {
			f.Close()
			os.Remove(lockPath)
			return nil, err
		}
		l.file = f
		return l, nil
	}
	if err := f.Close(); err != nil {
		os.Remove(lockPath)
		return nil, err
	}
	return l, nil
}

// staleState follows one lock file across checks (struct lock_info).
type staleState struct {
	seen       bool
	ino        uint64
	size       int64
	mtime      time.Time
	ctime      time.Time
	lastChange time.Time
	fileSeen   bool
	fileIno    uint64
	fileSize   int64
	fileMtime  time.Time
}

// check tells whether the existing lock file is stale (check_lock).
func (s *staleState) check(path, lockPath string, stale time.Duration) (bool, error) {
	now := time.Now()
	fi, err := os.Lstat(lockPath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // just removed: try again at once
	}
	if err != nil {
		return false, err
	}
	ino, ctime := statIDs(fi)
	if !s.seen || s.ino != ino || s.size != fi.Size() || !s.mtime.Equal(fi.ModTime()) || !s.ctime.Equal(ctime) {
		change := now
		if !s.seen {
			// First look: the lock's own change time.
			change = ctime
			if fi.ModTime().After(ctime) && !fi.ModTime().After(now) {
				change = fi.ModTime()
			}
		}
		if change.After(s.lastChange) {
			s.lastChange = change
		}
		s.seen, s.ino, s.size, s.mtime, s.ctime = true, ino, fi.Size(), fi.ModTime(), ctime
	}
	if fi.ModTime().Before(now.Add(-stalePIDCheck)) {
		if pid, ok := readLocalPID(lockPath); ok {
			if pid != os.Getpid() && processExists(pid) {
				return false, nil
			}
			// The owner is gone (or it is a stale lock with our pid,
			// which we cannot hold: see localLock).
			return true, nil
		}
	}
	if now.Sub(s.lastChange) > stale {
		// Possibly stale: has the protected file changed meanwhile?
		if fi, err := os.Stat(path); err == nil {
			ino, _ := statIDs(fi)
			if !s.fileSeen || s.fileIno != ino || s.fileSize != fi.Size() || !s.fileMtime.Equal(fi.ModTime()) {
				if s.fileSeen {
					s.lastChange = now
				} else if fi.ModTime().After(s.lastChange) && !fi.ModTime().After(now) {
					s.lastChange = fi.ModTime()
				}
				s.fileSeen, s.fileIno, s.fileSize, s.fileMtime = true, ino, fi.Size(), fi.ModTime()
			}
		}
	}
	return now.Sub(s.lastChange) > stale, nil
}

// readLocalPID returns the pid of a lock file written on this host.
func readLocalPID(lockPath string) (int, bool) {
	data, err := os.ReadFile(lockPath)
	if err != nil || len(data) > 512 {
		return 0, false
	}
	s := strings.TrimSuffix(string(data), "\n")
	pidStr, host, ok := strings.Cut(s, ":")
	if !ok || host != hostname() {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || !errors.Is(err, syscall.ESRCH)
}

func statIDs(fi fs.FileInfo) (ino uint64, ctime time.Time) {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Ino), statCtime(sys)
	}
	return 0, fi.ModTime()
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

// ours tells whether the lock file is still the one we created.
func (l *dotlock) ours() bool {
	fi, err := os.Lstat(l.lockPath)
	if err != nil {
		return false
	}
	ino, _ := statIDs(fi)
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Dev) == l.dev && ino == l.ino
	}
	return true
}

// touch refreshes the lock's mtime so that others do not think it stale
// (maildir_uidlist_lock_touch).
func (l *dotlock) touch() {
	now := time.Now()
	_ = os.Chtimes(l.lockPath, now, now)
}

// release removes the lock if it is still ours (file_dotlock_delete).
func (l *dotlock) release() error {
	defer localUnlock(l.path)
	var errs []error
	if l.file != nil {
		errs = append(errs, l.file.Close())
		l.file = nil
	}
	if !l.ours() {
		return errors.Join(append(errs, fmt.Errorf("dotlock %s was overridden by another process", l.lockPath))...)
	}
	if err := os.Remove(l.lockPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// replace writes data into the lock file, makes it durable when sync is
// set, and renames it over the protected file, which releases the lock
// (file_dotlock_open + file_dotlock_replace with VERIFY_OWNER). When the
// new file's mtime is not after after, it is set to after + 1s: readers
// such as Dovecot's keywords cache notice changes by mtime.
func (l *dotlock) replace(data []byte, sync bool, after time.Time) (err error) {
	defer localUnlock(l.path)
	f := l.file
	l.file = nil
	defer func() {
		if err != nil {
			if l.ours() {
				os.Remove(l.lockPath)
			}
		}
	}()
	if f == nil {
		return fmt.Errorf("dotlock %s: not opened for writing", l.lockPath)
	}
	_, werr := f.Write(data)
	var serr error
	if werr == nil && sync {
		serr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return err
	}
	if !after.IsZero() {
		if fi, err := os.Stat(l.lockPath); err == nil && !fi.ModTime().After(after) {
			t := after.Truncate(time.Second).Add(time.Second)
			if err := os.Chtimes(l.lockPath, time.Now(), t); err != nil {
				return err
			}
		}
	}
	if !l.ours() {
		return fmt.Errorf("dotlock %s was overridden by another process", l.lockPath)
	}
	return os.Rename(l.lockPath, l.path)
}
