package maildir

import (
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// oTmpfile is O_TMPFILE (linux include/uapi/asm-generic/fcntl.h:
// __O_TMPFILE 020000000 | O_DIRECTORY; every architecture Go runs Linux
// on uses the generic __O_TMPFILE). The frozen syscall package lacks it.
const oTmpfile = 0o20000000 | syscall.O_DIRECTORY

// atSymlinkFollow is linkat(2)'s AT_SYMLINK_FOLLOW.
const atSymlinkFollow = 0x400

// openUnnamed opens a new file without a name on dir's file system
// (open(2) O_TMPFILE). It has errUnnamedUnsupported when the kernel or
// the file system cannot: Linux before 3.11 opens the directory instead
// and fails with EISDIR, file systems without it give EOPNOTSUPP.
func openUnnamed(dir string, mode os.FileMode) (*os.File, error) {
	if !haveProcFD() {
		return nil, errUnnamedUnsupported
	}
	for {
		fd, err := syscall.Open(dir, syscall.O_WRONLY|oTmpfile|syscall.O_CLOEXEC, uint32(mode.Perm()))
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EISDIR || err == syscall.EOPNOTSUPP || err == syscall.EINVAL {
			return nil, errUnnamedUnsupported
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: dir, Err: err}
		}
		return os.NewFile(uintptr(fd), dir+"/(unnamed)"), nil
	}
}

// haveProcFD tells whether /proc/self/fd is there: linkUnnamed names a
// file through it where linkat(2) with AT_EMPTY_PATH is refused (before
// Linux 6.10 it needs CAP_DAC_READ_SEARCH).
var haveProcFD = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
})

// noEmptyPathLink is set once linkat(2) refused AT_EMPTY_PATH.
var noEmptyPathLink atomic.Bool

// linkUnnamed gives the unnamed file f the name path: linkat(2) of the
// descriptor itself (AT_EMPTY_PATH) or, where that is refused, of its
// /proc/self/fd entry, following that link to the open file. The file
// appears there complete, at once, as a rename from tmp/ would make it.
// An existing path is an error (EEXIST), never replaced.
func linkUnnamed(f *os.File, path string) error {
	p2, err := syscall.BytePtrFromString(path)
	if err != nil {
		return err
	}
	if !noEmptyPathLink.Load() {
		empty := [1]byte{}
		err := linkat(int(f.Fd()), &empty[0], p2, atEmptyPath)
		if err != syscall.EPERM && err != syscall.ENOENT && err != syscall.EINVAL {
			if err != nil {
				return &os.LinkError{Op: "link", Old: f.Name(), New: path, Err: err}
			}
			return nil
		}
		noEmptyPathLink.Store(true)
	}
	from := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	p1, err := syscall.BytePtrFromString(from)
	if err != nil {
		return err
	}
	if err := linkat(atFDCWD, p1, p2, atSymlinkFollow); err != nil {
		return &os.LinkError{Op: "link", Old: from, New: path, Err: err}
	}
	return nil
}

// linkat is linkat(2) from (relative to the directory fd, or the
// descriptor itself with AT_EMPTY_PATH) to to (relative to the working
// directory).
func linkat(fd int, from, to *byte, flags int) error {
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_LINKAT, uintptr(fd), uintptr(unsafe.Pointer(from)),
			uintptr(atFDCWD), uintptr(unsafe.Pointer(to)), uintptr(flags), 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// atEmptyPath is linkat(2)'s AT_EMPTY_PATH.
const atEmptyPath = 0x1000

// atFDCWD is AT_FDCWD (-100), a variable so that it converts to the
// uintptr the system call takes.
var atFDCWD = -100

// setMtime sets the modification time of the open file f to mtime and its
// access time to now (utimensat(2) on the descriptor: no path lookup, and
// it works on an unnamed file).
func setMtime(f *os.File, mtime time.Time) error {
	ts := [2]syscall.Timespec{{Nsec: utimeNow}, syscall.NsecToTimespec(mtime.UnixNano())}
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_UTIMENSAT, f.Fd(), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return &os.PathError{Op: "utimensat", Path: f.Name(), Err: e}
		}
		return nil
	}
}

// utimeNow is UTIME_NOW ((1 << 30) - 1): the current time.
const utimeNow = 1<<30 - 1

// unnamedLimit is how many unnamed files all transactions together keep
// open waiting for their Commit: a quarter of the descriptors the process
// may open (Go raises the soft RLIMIT_NOFILE to the hard one at start), so
// that a large transaction cannot starve anything else of descriptors;
// saves beyond it go through tmp/.
var unnamedLimit = sync.OnceValue(func() int64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int64(min(rl.Cur/4, 1<<20))
})

var errUnnamedUnsupported = errors.New("no O_TMPFILE")
