//go:build !linux

package maildir

import (
	"errors"
	"os"
	"time"
)

// setMtime is not done on the descriptor here: Save sets the date by path.
func setMtime(f *os.File, mtime time.Time) error { return errors.ErrUnsupported }
