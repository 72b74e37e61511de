package maildir

import (
	"os"
	"syscall"
	"time"
	"unsafe"
)

// setMtime sets the modification time of the open file f to mtime and its
// access time to now (utimensat(2) on the descriptor: no path lookup, and
// it works on an unnamed file, formats/internal/unnamed).
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
