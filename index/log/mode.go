package log

import (
	"os"
	"path/filepath"
)

// CreateMode is the mode of a new index file in dir: the directory's
// read/write bits with the owner's always set, as Dovecot gives index
// files the permissions of the mailbox (or INDEX=) directory
// (mailbox-list.c mailbox_list_get_permissions: file_create_mode =
// (st_mode & 0666) | 0600; mail-index.c mail_index_set_permissions).
// Drivers create that directory with the mail root's permissions, so a
// group-readable root gives group-readable index files, as with Dovecot.
// 0600 when dir can't be read.
func CreateMode(dir string) os.FileMode {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0o600
	}
	return fi.Mode().Perm()&0o666 | 0o600
}

// createModeOf is CreateMode of path's directory.
func createModeOf(path string) os.FileMode { return CreateMode(filepath.Dir(path)) }
