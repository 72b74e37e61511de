package subsfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/boxsync/boxsync/formats/internal/dotlock"
)

// Dovecot's subscriptions lock (subscription-file.c
// SUBSCRIPTION_FILE_LOCK_TIMEOUT, SUBSCRIPTION_FILE_CHANGE_TIMEOUT): wait up
// to 2 minutes; a lock untouched for 30 seconds is stale.
const (
	lockTimeout  = 120 * time.Second
	staleTimeout = 30 * time.Second
)

// SetOptions say how Set writes.
type SetOptions struct {
	FileMode, DirMode fs.FileMode // for the file and a missing directory
	Sync              bool        // make the change durable (mail_fsync != never)
}

// Set adds or removes one name (its storage-name levels) in the
// subscriptions file at path, as Dovecot's subsfile_set_subscribed does for
// every storage format: under the path.lock dotlock, the new content is
// written into the lock file, synced and renamed over path, then the
// directory is synced. sep is the separator of version 1 files (see
// Update). Errors name the file they concern.
func Set(ctx context.Context, path string, sep byte, levels []string, subscribed bool, opt SetOptions) error {
	lockOpt := dotlock.Options{Timeout: lockTimeout, Stale: staleTimeout, Mode: opt.FileMode, KeepOpen: true}
	lk, err := dotlock.Create(ctx, path, lockOpt)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), opt.DirMode); err != nil {
			return err
		}
		lk, err = dotlock.Create(ctx, path, lockOpt)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path+dotlock.Suffix, err)
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		lk.Release()
		return err
	}
	out, changed := Update(data, sep, levels, subscribed)
	if !changed {
		return lk.Release()
	}
	if err := lk.Replace(out, opt.Sync, time.Time{}); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if opt.Sync {
		d, err := os.Open(filepath.Dir(path))
		if err != nil {
			return err
		}
		err = d.Sync()
		if cerr := d.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Dir(path), err)
		}
	}
	return nil
}
