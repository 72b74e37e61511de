package maildir

import (
	"os"
	"syscall"
)

// syncFS flushes the whole filesystem holding dir: one syncfs(2) makes
// every file written so far durable, instead of one fsync per file.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		_, _, e := syscall.Syscall(sysSyncfs, f.Fd(), 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return &os.PathError{Op: "syncfs", Path: dir, Err: e}
		}
		return nil
	}
}

const haveSyncFS = true
