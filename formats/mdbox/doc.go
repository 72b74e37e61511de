// Package mdbox reads and writes Dovecot's multi-dbox ("mdbox") stores,
// many messages per file, so that Dovecot 2.3.19 opens what we write with
// every UID, UIDVALIDITY, GUID, flag, keyword, modseq and date intact and
// without a rebuild, keeps appending to and purging it, and we read what
// it wrote.
//
// # Overview
//
// [Driver] opens a location ("mdbox:~/mdbox[:INDEX=…][:CONTROL=…]
// [:UTF-8][:SUBSCRIPTIONS=…]") as a [Store] implementing formats.Store and
// formats.Checker, formats.Purger and formats.Rebuilder; it is
// formats.Configurable for mdbox_rotate_size
// (default 10M). Messages live in storage/m.<file_id>; the map index
// (storage/dovecot.map.index*) maps each map UID to a file, offset, size
// and refcount; each mailbox's index maps its UIDs to map UIDs and holds
// flags, keywords, modseqs and save dates. Caps: GUIDs, UIDs, keywords,
// modseqs and save dates are all kept (the save date is the mdbox
// record's, which a save sets).
//
// Reading: Messages walks the mailbox index and reads each message's
// header and metadata through the map (a few m.* files kept open, read
// through a 32 KiB window: dbox.WindowReader); Body streams the bytes,
// keeping the last m.* file open for the next message, and offers plain
// (uncompressed) mail as a file range (formats.FileSection) that a
// destination may copy in the kernel. A message whose file is missing or damaged, or
// whose map UID the map lost, is still listed (GUID from the guid
// extension) and Body fails for it with a KindTemp error naming the
// mailbox, UID and file and saying to run force-resync. A file a
// concurrent purge removed is looked up again in the refreshed map, as
// Dovecot does. A mailbox index or map that is missing is refused with
// KindNotPossible (Dovecot would show the mailbox empty, or rebuild the
// storage): a backup must not read mail it cannot see as deleted.
//
// Writing: a transaction appends each saved message to the newest m.*
// file when it is the map's last file, has room below mdbox_rotate_size,
// can be flock()ed at once and ends where the map says — the checks of
// mdbox_map_file_try_append — and otherwise to new .temp.* files in
// storage/, rotating at mdbox_rotate_size. Commit (see tx.Commit) makes
// the bytes durable with one syncfs(2), then under the map's log lock
// names new files m.<id> without replacing anything and writes the map
// records, then under the mailbox's log lock writes the mailbox records,
// then lowers the refcounts of expunged messages. Rollback truncates what
// was appended to an existing file and removes new ones. Deleting a
// mailbox lowers its messages' refcounts. [Store.Purge] rewrites the
// files holding refcount-0 messages as `doveadm purge` does, under the
// same locks (see purge.go for where it is more careful than Dovecot).
// [Store.Rebuild] is Dovecot's storage rebuild (`doveadm force-resync`):
// the map and every mailbox index rebuilt from the m.* files.
//
// # On-disk format
//
// See dovecot-storage.md §3 (dbox files, package formats/internal/dbox),
// §5 (mdbox), §2 (index, package index), §8 (mailbox list, package
// formats/internal/dbox/dboxlist), §9 (settings) and Appendix A.6.
//
//	<root>/storage/m.<id>                          messages, back to back (§5.1)
//	<root>/storage/dovecot.map.index.log, .index   the map (§5.2)
//	<root>/mailboxes/<name>/dbox-Mails/dovecot.index*   a mailbox's index (§5.3)
//	<INDEX=>/storage/, <INDEX=>/mailboxes/<name>/  the same with INDEX= [verified]
//
// What is written:
//
//   - A new map is a log-only index (§2.9) with UIDVALIDITY and the "map"
//     (header {highest_file_id, rebuild_count}, record {file_id, offset,
//     size}) and "ref" (u16 refcount) extensions. Map records: offset of
//     the message header, size up to the end of the metadata block,
//     refcount 1; highest_file_id raised with each new file.
//   - A new mailbox index holds UIDVALIDITY, mdbox-hdr {map UIDVALIDITY,
//     mailbox GUID, POP3 flags} and the modseq, mdbox {map UID, save date}
//     and guid (16-byte binary GUID) extensions.
//   - m.* files: "2 M1e C<hex>", then per message the 30-byte header, the
//     bytes, and metadata R, V, P, O, G, B (the mailbox's storage name,
//     for a rebuild) and unknown keys, as Dovecot writes them.
//   - The guid record is Dovecot's 128-bit form of the GUID (dbox.GUID128),
//     which Dovecot compares with expunge records.
//   - Modseqs, POP3 metadata (mdbox-hdr flags, hdr-pop3-uidl) and GUIDs
//     that are not 32 hex digits as in package sdbox.
//
// # Dovecot compatibility
//
// Checked against Dovecot 2.3.19.1's sources (mdbox-map.c, mdbox-save.c,
// mdbox-sync.c, mdbox-mail.c, mdbox-file.c, mdbox-purge.c) and against
// the real doveadm (dovecot_test.go, mdbox_test.go, through
// internal/dovecottest, with the default layout, INDEX= and
// UTF-8+CONTROL=): what we write Dovecot reads without logging corruption,
// inconsistency or a rebuild, with every field equal; what Dovecot writes
// (save, flags, expunge, backup from a Maildir) we read equal, save dates
// included; Dovecot appends to our files, expunges, and `doveadm purge`s
// our store, which we then read; a 1k mdbox_rotate_size spreads messages
// over files both of us read; a backup Maildir → mdbox and mdbox → mdbox
// through package convert reads back equal.
//
//   - Recent (formats.Message.Recent): a message is \Recent while its UID
//     is at least the index header's first_recent_uid (sdbox-sync.c /
//     mdbox-sync.c mark those recent in the session that syncs them).
//     Dovecot's dbox save drops MAIL_RECENT (dbox-save.c) and leaves
//     first_recent_uid alone, and so do we: every saved message is
//     \Recent until a session claims it, whatever Message.Recent said
//     (Caps.SaveRecent false) [verified: doveadm fetch flags, after an
//     IMAP SELECT too, dboxtest/recent.go].
//     Status.FirstRecentUID is the header's; formats.FirstRecentRaiser
//     raises it in the commit's log transaction, as mailbox_update's
//     min_first_recent_uid does (mdbox_write_index_header), never above
//     next_uid [verified: doveadm fetch flags, dboxtest/recent.go].
//   - Locking: the map's and each mailbox's dovecot.index.log are locked
//     as Dovecot locks them (fcntl) from reading the index to appending
//     to it (index.Update), map before mailbox as Dovecot does; m.*
//     files we append to are flock()ed as dbox_file_try_lock does.
//     Commits to one map are serialised within the process.
//   - QUIRK: all map records are EXTERNAL, so the map log's tail follows
//     its head; Dovecot instead leaves the tail behind during an expunge as
//     a crash marker. Our order (map records before the mailbox records
//     that use them; refcounts lowered after the expunges) makes a crash
//     leak space, never lose mail.
//   - Compression (Dovecot's zlib plugin): as in sdbox, mail with 'Z'
//     metadata is read decompressed, and Configure's mail_plugins,
//     plugin/zlib_save and plugin/zlib_save_level make Save store the
//     gz or zstd stream with 'Z' (the plain size) first in the metadata.
//   - ALT= (alternate storage, spec §3.4) is read: m.<id> is opened in
//     <root>/storage first, then in <ALT>/storage (where `doveadm altmove`
//     puts it; file ids are unique across both). New mail is always
//     written to primary storage (appending only to a primary m.* file),
//     nothing is ever moved to ALT (use `doveadm altmove`), and the
//     dbox-alt-root symlink is neither checked nor made.
//   - Not supported: LAYOUT=index, external attachments ('X', refused
//     when read; a purge leaves their files), mdbox_rotate_interval and
//     mdbox_preallocate_space (accepted, unused).
package mdbox
