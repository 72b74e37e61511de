// Package dboxlist is the mailbox-list level that sdbox and mdbox share:
// where a mailbox's directories are, which directories are mailboxes,
// subscriptions, creating and deleting mailboxes the way Dovecot's fs
// layout does, and the filesystem helpers their commits need (syncfs,
// fsync, link without replacing, Dovecot's index log lock).
//
// # Overview
//
// [NewLayout] checks a location and returns a [Layout]; [Layout.Resolve]
// maps a contract name ("Work/Sub", UTF-8) to a [Box] with its directories;
// [Layout.List] walks the tree. [Layout.Create] and [Layout.Delete] make
// and remove mailboxes, [Layout.SetSubscribed] edits the subscriptions
// file under its dotlock. [Lock] takes Dovecot's lock on an index log
// across reading the index and appending to it.
//
// # On-disk format
//
// Spec: dovecot-storage.md §4, §5 (layout), §8.1 (subscriptions, package
// formats/internal/subsfile), §8.2 (names: modified UTF-7 levels, package
// formats/internal/mutf7), §9 (INDEX=, CONTROL=, SUBSCRIPTIONS=, UTF-8).
//
//	<root>/mailboxes/<level>/<level>/dbox-Mails   a mailbox
//	<root>/mailboxes/<level>/                     no dbox-Mails: \Noselect container
//	<root>/subscriptions                          or <CONTROL=>/subscriptions
//	<INDEX=>/mailboxes/<level>/<level>/           index files when INDEX= is set
//	<root>/..DOVECOT-TrasH                        a mailbox being deleted
//
// # Dovecot compatibility
//
// From dovecot 2.3.19.1 mailbox-list-fs*.c, mailbox-list-delete.c,
// dbox-storage.c and subscription-file.c, and checked with doveadm through
// the sdbox interop tests: every directory under mailboxes/ is listed
// (dot names too), "dbox-Mails" is the mailbox's own directory and cannot
// be a name; a deleted mailbox's dbox-Mails is renamed to
// "..DOVECOT-TrasH" and removed; subscriptions are replaced through
// "subscriptions.lock" (formats/internal/dotlock). QUIRK: directory names
// that are not valid modified UTF-7 are skipped when listing (Dovecot
// renames them). The optional dovecot-uidvalidity allocator file (§8.4)
// is not kept: new UIDVALIDITYs are the current time, unique within the
// store.
package dboxlist
