//go:build !linux

package maildir

import "errors"

// syncFS is not available: callers fsync each file instead.
func syncFS(dir string) error { return errors.ErrUnsupported }

const haveSyncFS = false
