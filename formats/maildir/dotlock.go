package maildir

import (
	"time"

	"github.com/boxsync/boxsync/formats/internal/dotlock"
)

// The driver's dotlocks (formats/internal/dotlock, as Dovecot's
// lib/file-dotlock.c makes them) and their timeouts.
const (
	lockSuffix = dotlock.Suffix
	// maildir-uidlist.h MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT, and the
	// timeout maildir_uidlist_init derives from it.
	uidlistStaleTimeout = 120 * time.Second
	uidlistLockTimeout  = uidlistStaleTimeout + 2*time.Second

	lockTouchInterval = 10 * time.Second // MAILDIR_LOCK_TOUCH_SECS
)
