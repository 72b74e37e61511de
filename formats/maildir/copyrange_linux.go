package maildir

import (
	"os"
	"syscall"
	"unsafe"
)

// copyRangeAt copies size bytes at off of the descriptor src to the end of
// f with copy_file_range(2), which leaves src's file offset alone (src may
// be shared), or, where the kernel cannot copy between the two files,
// with pread(2) and write(2) through *buf (64 KiB, made on first use). It
// returns less than size where src ends first.
func copyRangeAt(f *os.File, src int, off, size int64, buf *[]byte) (int64, error) {
	var done int64
	dst := int(f.Fd())
	for sysCopyFileRange != 0 && done < size {
		in := off + done
		n, _, e := syscall.Syscall6(sysCopyFileRange, uintptr(src), uintptr(unsafe.Pointer(&in)), uintptr(dst), 0, uintptr(min(size-done, 1<<30)), 0)
		switch {
		case e == syscall.EINTR:
			continue
		case e != 0 && done == 0 && (e == syscall.ENOSYS || e == syscall.EXDEV || e == syscall.EINVAL || e == syscall.EOPNOTSUPP || e == syscall.EPERM):
			// Not between these two files: copy in user space.
		case e != 0:
			return done, &os.PathError{Op: "copy_file_range", Path: f.Name(), Err: e}
		case n == 0:
			return done, nil
		default:
			done += int64(n)
			continue
		}
		break
	}
	if done == size {
		return done, nil
	}
	if *buf == nil {
		*buf = make([]byte, 64<<10)
	}
	for done < size {
		n, err := syscall.Pread(src, (*buf)[:min(size-done, int64(len(*buf)))], off+done)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return done, &os.PathError{Op: "pread", Path: f.Name(), Err: err}
		}
		if n == 0 {
			return done, nil
		}
		if _, err := f.Write((*buf)[:n]); err != nil {
			return done, err
		}
		done += int64(n)
	}
	return done, nil
}

const haveCopyRangeAt = true

// dupFD duplicates the descriptor of f (close-on-exec): the copy stays
// open, on the same file, whatever becomes of f.
func dupFD(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var e syscall.Errno
	if err := rc.Control(func(s uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		fd, e = int(r), errno
	}); err != nil {
		return -1, err
	}
	if e != 0 {
		return -1, &os.PathError{Op: "fcntl F_DUPFD_CLOEXEC", Path: f.Name(), Err: e}
	}
	return fd, nil
}

func closeFD(fd int) { syscall.Close(fd) }
