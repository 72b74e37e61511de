package dotlock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats/internal/unnamed"
)

// Suffix is appended to the protected file's path to name its lock file
// (DEFAULT_LOCK_SUFFIX).
const Suffix = ".lock"

const (
	stalePIDCheck = 2 * time.Second        // STALE_PID_CHECK_SECS
	minWait       = 100 * time.Millisecond // LOCK_RANDOM_USLEEP_TIME is 0.1-0.2 s
	maxWait       = 3 * time.Second        // LOCK_MAX_WAIT_USECS
)

// ErrTimeout is returned (inside an *fs.PathError) when a lock stays held
// past Options.Timeout.
var ErrTimeout = errors.New("timed out waiting for the lock (held by another process)")

// Options are a lock's dotlock_settings.
type Options struct {
	// Timeout is how long Create waits for a lock that is held and not
	// stale. Zero: it gives up after the first look (a stale lock is
	// still taken over).
	Timeout time.Duration
	// Stale is stale_timeout: a lock is overridden when neither it nor
	// the protected file changed for this long.
	Stale time.Duration
	// Mode is the lock file's permission (before the umask); zero means
	// 0600.
	Mode fs.FileMode
	// KeepOpen keeps the lock file open, holding our pid, so that
	// Replace can write the protected file's new content into it
	// (file_dotlock_open).
	KeepOpen bool
}

// Lock is a held dotlock.
type Lock struct {
	path     string // the protected file
	lockPath string
	dev, ino uint64
	file     *os.File // open lock file for Replace, else nil
}

// Hostname is the host name lock files hold (Dovecot's my_hostname):
// os.Hostname, or "localhost" when it has none.
var Hostname = sync.OnceValue(func() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
})

// ProcessExists tells whether process pid exists, as Dovecot decides it
// for a lock's owner: kill(pid, 0) succeeds or fails other than ESRCH.
func ProcessExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || !errors.Is(err, syscall.ESRCH)
}

// Goroutines of this process serialise on a per-path queue before taking
// the dotlock: the dotlock's "<pid>:<host>" would name us, and Dovecot's
// rule treats a lock holding our own pid as stale.
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

// Create locks path by creating path+Suffix. It fails with an
// *fs.PathError when the lock file cannot be created (fs.ErrNotExist when
// its directory is missing, fs.ErrPermission in a read-only directory),
// with an *fs.PathError wrapping ErrTimeout when the lock stays held, and
// with ctx's error when ctx ends first.
func Create(ctx context.Context, path string, opt Options) (*Lock, error) {
	if err := localLock(ctx, path); err != nil {
		return nil, err
	}
	l, err := create(ctx, path, opt)
	if err != nil {
		localUnlock(path)
		return nil, err
	}
	return l, nil
}

func create(ctx context.Context, path string, opt Options) (*Lock, error) {
	lockPath := path + Suffix
	mode := opt.Mode
	if mode == 0 {
		mode = 0o600
	}
	deadline := time.Now().Add(opt.Timeout)
	wait := minWait
	var st staleState
	for {
		f, err := openLockFile(lockPath, mode)
		if err == nil {
			return finish(f, path, lockPath, opt.KeepOpen)
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		override, err := st.check(path, lockPath, opt.Stale, time.Now())
		if err != nil {
			return nil, err
		}
		if override {
			if err := os.Remove(lockPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			// Sleep a little so that another process overriding the
			// same stale lock does not remove ours (dotlock_override).
			if err := sleep(ctx, minWait+rand.N(minWait)); err != nil {
				return nil, err
			}
			continue
		}
		if !time.Now().Before(deadline) {
			return nil, &fs.PathError{Op: "dotlock", Path: lockPath, Err: ErrTimeout}
		}
		if err := sleep(ctx, min(wait, time.Until(deadline))); err != nil {
			return nil, err
		}
		wait = min(wait+wait/2, maxWait)
	}
}

// openLockFile creates the lock file holding our pid (file_write_pid:
// "<pid>:<hostname>", no newline); fs.ErrExist when a lock exists. Where
// the system can, the pid goes into an unnamed file (O_TMPFILE) that is
// then linked as the lock, so that no lock of ours is ever without its
// pid: one created empty by O_EXCL and left so by a kill before the write
// is stale only after the whole stale timeout (2 minutes for
// dovecot-uidlist.lock), not after the pid check's 2 s.
func openLockFile(lockPath string, mode fs.FileMode) (*os.File, error) {
	pid := strconv.Itoa(os.Getpid()) + ":" + Hostname()
	if f, err := unnamed.Open(filepath.Dir(lockPath), mode); err == nil {
		_, err = f.WriteString(pid)
		if err == nil {
			err = unnamed.Link(f, lockPath)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(pid); err != nil {
		f.Close()
		os.Remove(lockPath)
		return nil, err
	}
	return f, nil
}

func finish(f *os.File, path, lockPath string, keepOpen bool) (*Lock, error) {
	fail := func(err error) (*Lock, error) {
		f.Close()
		os.Remove(lockPath)
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	l := &Lock{path: path, lockPath: lockPath}
	l.dev, l.ino = fileID(fi)
	if !keepOpen {
		if err := f.Close(); err != nil {
			os.Remove(lockPath)
			return nil, err
		}
		return l, nil
	}
	// The pid stays in the file until Replace writes the new content
	// over it. Dovecot leaves a file_dotlock_open lock empty; ours names
	// its owner, so that a holder killed before Replace leaves a lock
	// that the next run (or Dovecot) sees as stale by its dead pid after
	// STALE_PID_CHECK_SECS, not only after the whole stale timeout.
	l.file = f
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

// check tells, at time now, whether the existing lock file is stale
// (check_lock).
func (s *staleState) check(path, lockPath string, stale time.Duration, now time.Time) (bool, error) {
	fi, err := os.Lstat(lockPath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // just removed: try again at once
	}
	if err != nil {
		return false, err
	}
	_, ino := fileID(fi)
	ctime := changeTime(fi)
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
			if pid != os.Getpid() && ProcessExists(pid) {
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
			_, ino := fileID(fi)
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

// readLocalPID returns the pid of a lock file written on this host
// (read_local_pid).
func readLocalPID(lockPath string) (int, bool) {
	data, err := os.ReadFile(lockPath)
	if err != nil || len(data) > 512 {
		return 0, false
	}
	s := strings.TrimSuffix(string(data), "\n")
	pidStr, host, ok := strings.Cut(s, ":")
	if !ok || host != Hostname() {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func fileID(fi fs.FileInfo) (dev, ino uint64) {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Dev), uint64(sys.Ino)
	}
	return 0, 0
}

func changeTime(fi fs.FileInfo) time.Time {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return statCtime(sys)
	}
	return fi.ModTime()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Path is the lock file's path (the protected file's path + Suffix).
func (l *Lock) Path() string { return l.lockPath }

// ours tells whether the lock file is still the one we created.
func (l *Lock) ours() bool {
	fi, err := os.Lstat(l.lockPath)
	if err != nil {
		return false
	}
	if _, ok := fi.Sys().(*syscall.Stat_t); !ok {
		return true
	}
	dev, ino := fileID(fi)
	return dev == l.dev && ino == l.ino
}

func (l *Lock) overridden() error {
	return fmt.Errorf("dotlock %s was overridden by another process", l.lockPath)
}

// Touch sets the lock file's mtime to now so that others do not think it
// stale (maildir_uidlist_lock_touch).
func (l *Lock) Touch() error {
	now := time.Now()
	return os.Chtimes(l.lockPath, now, now)
}

// Release removes the lock file if it is still ours (file_dotlock_delete);
// it reports an error when another process overrode it.
func (l *Lock) Release() error {
	defer localUnlock(l.path)
	var errs []error
	if l.file != nil {
		errs = append(errs, l.file.Close())
		l.file = nil
	}
	if !l.ours() {
		return errors.Join(append(errs, l.overridden())...)
	}
	if err := os.Remove(l.lockPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Replace writes data into the lock file, makes it durable when sync is
// set, and renames it over the protected file, which releases the lock
// (file_dotlock_replace with VERIFY_OWNER). The lock must have been
// created with Options.KeepOpen. When after is not zero and the new
// file's mtime is not after it, the mtime is set to after + 1 s: readers
// such as Dovecot's keywords cache notice changes by mtime. On failure
// the lock file is removed if it is still ours.
func (l *Lock) Replace(data []byte, sync bool, after time.Time) (err error) {
	defer localUnlock(l.path)
	f := l.file
	l.file = nil
	defer func() {
		if err != nil && l.ours() {
			os.Remove(l.lockPath)
		}
	}()
	if f == nil {
		return fmt.Errorf("dotlock %s: not opened for writing", l.lockPath)
	}
	_, werr := f.WriteAt(data, 0)
	if werr == nil {
		werr = f.Truncate(int64(len(data))) // the pid written at lock time
	}
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
		return l.overridden()
	}
	return os.Rename(l.lockPath, l.path)
}
