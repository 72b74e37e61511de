package mbox

import (
	"os"
	"syscall"
)

// fcntl.h F_OFD_SETLK (Linux ≥ 3.15, the same on every architecture).
const fOFDSetLK = 37

// setLock sets an open file description lock; l_pid must be 0.
func setLock(f *os.File, typ int16) error {
	lk := syscall.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
	for {
		err := syscall.FcntlFlock(f.Fd(), fOFDSetLK, &lk)
		if err == syscall.EINVAL {
			// A kernel without OFD locks: classic process locks.
			return syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
		}
		if err != syscall.EINTR {
			return err
		}
	}
}
