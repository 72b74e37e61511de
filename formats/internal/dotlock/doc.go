// Package dotlock takes dotlocks the way Dovecot does (dovecot 2.3.19.1
// lib/file-dotlock.c with dotlock_use_excl = yes, the default), for the
// Maildir and mbox drivers.
//
// A lock on <path> is the file "<path>.lock", created with O_EXCL and
// holding "<pid>:<hostname>" without a newline (file_write_pid). Anyone
// who finds it waits, checking it again after 0.1–0.2 s, the wait growing
// by half up to 3 s (LOCK_RANDOM_USLEEP_TIME, LOCK_MAX_WAIT_USECS), until
// Options.Timeout has passed (dotlock_settings.timeout); then Create fails
// with ErrTimeout.
//
// A lock is stale, and is removed and taken over (check_lock,
// dotlock_override), when
//
//   - it is older than 2 s (STALE_PID_CHECK_SECS) and names a process of
//     this host that no longer exists, or our own pid: Dovecot assumes a
//     lock with its own pid is left over and recreates it. A live process
//     of this host keeps its lock however old it is;
//   - otherwise, when neither the lock file (inode, size, mtime, ctime)
//     nor the file it protects (inode, size, mtime) has changed for
//     Options.Stale (stale_timeout). The last change starts as the lock's
//     ctime, or its mtime when that is later but not in the future
//     (update_change_info); the protected file is looked at only once the
//     lock may be stale.
//
// After removing a stale lock the caller sleeps 0.1–0.2 s, so that another
// process overriding the same lock does not remove the new one.
//
// Since a lock naming our own pid is stale to Dovecot and to us,
// goroutines of this process queue on a per-path mutex before they create
// the lock file; only one of them holds a given dotlock at a time.
//
// A held Lock can be refreshed (Touch: its mtime, as
// maildir_uidlist_lock_touch does, so that others do not think it stale),
// removed (Release, file_dotlock_delete) or, when Options.KeepOpen was
// set, filled with new content and renamed over the protected file
// (Replace: file_dotlock_open + file_dotlock_replace with
// DOTLOCK_REPLACE_FLAG_VERIFY_OWNER). Release and Replace fail when the
// lock file is no longer the one we created (another process overrode it
// as stale).
//
// Not done: hardlink-based locks (dotlock_use_excl = no), NFS attribute
// cache flushes, inotify waits (use_io_notify) and the callback that
// reports waits.
package dotlock
