package unnamed

import (
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// oTmpfile is O_TMPFILE (linux include/uapi/asm-generic/fcntl.h:
// __O_TMPFILE 020000000 | O_DIRECTORY; every architecture Go runs Linux
// on uses the generic __O_TMPFILE). The frozen syscall package lacks it.
const oTmpfile = 0o20000000 | syscall.O_DIRECTORY

// Open opens a new file without a name on dir's file system for writing
// (and reading back). It fails with ErrUnsupported when the kernel or the
// file system cannot: Linux before 3.11 opens the directory instead and
// fails with EISDIR, file systems without it give EOPNOTSUPP. The file is
// not made non-blocking or registered with the poller, as os.OpenFile
// would try for every regular file (four fcntl and an epoll_ctl, futile).
func Open(dir string, mode os.FileMode) (*os.File, error) {
	if !haveProcFD() {
		return nil, ErrUnsupported
	}
	for {
		fd, err := syscall.Open(dir, syscall.O_RDWR|oTmpfile|syscall.O_CLOEXEC, uint32(mode.Perm()))
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EISDIR || err == syscall.EOPNOTSUPP || err == syscall.EINVAL {
			return nil, ErrUnsupported
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: dir, Err: err}
		}
		return os.NewFile(uintptr(fd), dir+"/(unnamed)"), nil
	}
}

// haveProcFD tells whether /proc/self/fd is there: Link names a file
// through it where linkat(2) with AT_EMPTY_PATH is refused (before Linux
// 6.10 it needs CAP_DAC_READ_SEARCH).
var haveProcFD = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
})

// noEmptyPathLink is set once linkat(2) refused AT_EMPTY_PATH.
var noEmptyPathLink atomic.Bool

// Link gives the unnamed file f the name path: linkat(2) of the
// descriptor itself (AT_EMPTY_PATH) or, where that is refused, of its
// /proc/self/fd entry, following that link to the open file. An existing
// path is an error (fs.ErrExist), never replaced.
func Link(f *os.File, path string) error {
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

const (
	atEmptyPath     = 0x1000 // linkat(2)'s AT_EMPTY_PATH
	atSymlinkFollow = 0x400  // linkat(2)'s AT_SYMLINK_FOLLOW
)

// atFDCWD is AT_FDCWD (-100), a variable so that it converts to the
// uintptr the system call takes.
var atFDCWD = -100

// limit is how many unnamed files may be open at once: a quarter of the
// descriptors the process may open (Go raises the soft RLIMIT_NOFILE to
// the hard one at start), so that a large transaction cannot starve
// anything else of descriptors.
var limit = sync.OnceValue(func() int64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int64(min(rl.Cur/4, 1<<20))
})

// ErrUnsupported is Open's error where there are no unnamed files.
var ErrUnsupported = errors.New("no unnamed files (O_TMPFILE)")
