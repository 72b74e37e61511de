//go:build !linux

package maildir

import (
	"errors"
	"os"
)

// Without copy_file_range(2) with an offset, kernel copies are done by
// Save itself (copySection).

const haveCopyRangeAt = false

func copyRangeAt(f *os.File, src int, off, size int64, buf *[]byte) (int64, error) {
	return 0, errors.ErrUnsupported
}

func dupFD(f *os.File) (int, error) { return -1, errors.ErrUnsupported }

func closeFD(fd int) {}
