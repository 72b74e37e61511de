// Package formats is the contract between boxsync's sync engine and its mail
// storage drivers (maildir, mbox, sdbox, mdbox, imapc, and the in-memory
// reference driver mem).
//
// # Overview
//
// A [Driver] opens a [Location] as a [Store]: one user's mailbox tree. A
// [Mailbox] lists its messages as plain [Message] values (metadata only, no
// hidden I/O), hands out message bodies as streams scoped by a callback, and
// changes only through a [Tx], of which nothing is visible before Commit.
//
// The engine in package convert works only through these types, so every
// driver can be paired with every other. The conformance suite in
// formats/formatstest defines the behaviour every driver must show; the mem
// driver is its reference implementation.
//
// Optional interfaces add what not every format can do: [Renamer],
// [DirCreator], [ImpliedDirs] (Maildir++ containers that are only names),
// [MailboxLogger] (Dovecot's dovecot.mailbox.log, which the
// maildir, sdbox and mdbox drivers append to on every delete, rename and
// (un)subscription as Dovecot does, so that a two-way sync can tell a
// deleted or renamed mailbox from a new one), [Checker], [Configurable],
// [ModSeqRaiser], [FirstRecentRaiser], [Rebuilder], [HdrHasher].
//
// # Names
//
// Mailbox names cross the contract as UTF-8 with '/' as the hierarchy
// separator ("Work/Projects", "Entwürfe"), whatever the driver stores on disk
// (modified UTF-7, Maildir++ dots). INBOX is always spelled "INBOX".
//
// # Errors
//
// Every error that leaves a driver is (or wraps) an [*Error] carrying a
// [Kind] that mirrors Dovecot's mail_error enum, so that the CLI can map it to
// a doveadm-compatible exit code in one place.
//
// # Dovecot compatibility
//
// Flag bit values are Dovecot's (enum mail_flags, mail-types.h), message
// GUIDs are strings as dsync sends them (Maildir uses the file's base name
// unless dovecot-uidlist has a G field; dbox uses 32 hex digits), mailbox
// GUIDs are 16 bytes.
package formats
