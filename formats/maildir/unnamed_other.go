//go:build !linux

package maildir

import (
	"errors"
	"os"
	"time"
)

// Without O_TMPFILE every save goes through tmp/.

func openUnnamed(dir string, mode os.FileMode) (*os.File, error) { return nil, errUnnamedUnsupported }

func linkUnnamed(f *os.File, path string) error { return errUnnamedUnsupported }

func setMtime(f *os.File, mtime time.Time) error { return errors.ErrUnsupported }

func unnamedLimit() int64 { return 0 }

var errUnnamedUnsupported = errors.New("no O_TMPFILE")
