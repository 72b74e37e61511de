package maildir

import (
	"errors"
	"io"
	"io/fs"
	"os"
)

// durableHook, when set (by tests), is called with each path fsyncPath
// made durable, once it is, and with "rename "+path before dovecot-uidlist
// is renamed into place: the order of the two is what Commit promises.
var durableHook func(event string)

// fsyncPath makes a file or directory durable (Dovecot's fdatasync_path for
// directories).
func fsyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	serr := f.Sync()
	if durableHook != nil && serr == nil {
		durableHook(path)
	}
	cerr := f.Close()
	if errors.Is(serr, fs.ErrInvalid) {
		serr = nil // some filesystems cannot fsync a directory
	}
	return errors.Join(serr, cerr)
}

// writeFileSync writes data to a new file at path (which must not exist),
// syncing it when sync is set.
func writeFileSync(path string, data []byte, mode os.FileMode, sync bool) error {
	return writeFileSyncFunc(path, mode, sync, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeFileSyncFunc is writeFileSync with the content written by write,
// so that a large file (a 50,000-line dovecot-uidlist) can be streamed
// instead of held in memory whole.
func writeFileSyncFunc(path string, mode os.FileMode, sync bool, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	werr := write(f)
	var serr error
	if werr == nil && sync {
		serr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}
