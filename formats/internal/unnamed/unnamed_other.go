//go:build !linux

package unnamed

import (
	"errors"
	"os"
)

// Without O_TMPFILE there are no unnamed files.

func Open(dir string, mode os.FileMode) (*os.File, error) { return nil, ErrUnsupported }

func Link(f *os.File, path string) error { return ErrUnsupported }

func limit() int64 { return 0 }

var ErrUnsupported = errors.New("no unnamed files (O_TMPFILE)")
