//go:build !linux

package mbox

import (
	"os"
	"syscall"
)

// setLock sets a classic fcntl lock. QUIRK: a process-wide lock: closing
// another descriptor of the file in this process drops it.
func setLock(f *os.File, typ int16) error {
	lk := syscall.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
	return syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
}
