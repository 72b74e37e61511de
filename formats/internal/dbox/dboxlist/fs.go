package dboxlist

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// FsyncPath makes a file or directory durable (Dovecot's fdatasync_path
// for directories).
func FsyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	serr := f.Sync()
	cerr := f.Close()
	if errors.Is(serr, fs.ErrInvalid) || errors.Is(serr, syscall.EINVAL) {
		serr = nil // some filesystems cannot fsync a directory
	}
	return errors.Join(serr, cerr)
}

// SyncFS flushes the whole filesystem holding dir: one syncfs(2) makes
// every file written so far durable, instead of one fsync per file. It
// returns errors.ErrUnsupported where there is no syncfs.
func SyncFS(dir string) error {
	if sysSyncfs == 0 {
		return errors.ErrUnsupported
	}
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

// LinkNoReplace gives the file at from the name to, failing with an error
// matching fs.ErrExist when to exists, and removes the name from. It is
// link(2) then unlink(2): unlike rename(2) it never replaces a file another
// process (Dovecot) gave that name meanwhile. Where hard links are not
// supported it falls back to checking with lstat and renaming, as
// Dovecot's sdbox_file_assign_uid does.
func LinkNoReplace(from, to string) error {
	err := os.Link(from, to)
	if err == nil {
		if err := os.Remove(from); err != nil && !errors.Is(err, fs.ErrNotExist) {
			os.Remove(to)
			return err
		}
		return nil
	}
	if errors.Is(err, fs.ErrExist) || !linkUnsupported(err) {
		return err
	}
	if _, err := os.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: fs.ErrExist}
	}
	return os.Rename(from, to)
}

func linkUnsupported(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) ||
		errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EXDEV) || errors.Is(err, syscall.EMLINK)
}
