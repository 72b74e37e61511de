// Package sdbox reads and writes Dovecot's single-dbox ("sdbox") stores,
// one file per message, so that Dovecot 2.3.19 opens what we write with
// every UID, UIDVALIDITY, GUID, flag, keyword, modseq and date intact and
// without a rebuild, and we read what it wrote.
//
// # Overview
//
// [Driver] opens a location ("sdbox:~/sdbox[:INDEX=…][:CONTROL=…]
// [:UTF-8][:SUBSCRIPTIONS=…]") as a [Store] implementing formats.Store,
// formats.Checker and [Rebuilder]. Each mailbox's state is its Dovecot
// index (package index): flags, keywords and modseqs live only there, and
// message GUIDs, received dates and sizes in each file's metadata. Caps:
// GUIDs, UIDs, keywords and modseqs are kept; the save date is not
// (Caps.SaveDate false): it is the file's ctime, which nobody can set.
// Dovecot keeps a chosen save date only in dovecot.index.cache
// (sdbox-save.c adds MAIL_CACHE_SAVE_DATE there), which boxsync does not
// write; Messages reports the ctime, as Dovecot does for uncached mail.
//
// Reading: Messages lists the index and opens each u.<uid> for its
// header and metadata; Body streams the message bytes through an
// io.SectionReader. A file that is missing, truncated or has a broken
// metadata block does not stop the listing: the message is yielded from
// the index alone (no GUID, sizes -1) and Body fails for it with a
// KindTemp error naming the file, mailbox and UID and saying to run
// force-resync (Dovecot calls these corruption and rebuilds), so the
// engine skips that message and syncs the rest. A missing file whose UID
// the index meanwhile lost is KindExpunged.
//
// Lost index: mail files (u.*) without any dovecot.index* make Dovecot
// show the mailbox empty with a new UIDVALIDITY (spec §0). Reading such a
// mailbox as a backup source would wipe the backup, so Open refuses it
// with KindNotPossible (exit 65) telling the admin to run `boxsync
// force-resync`, and Mailboxes lists it as selectable (with a zero GUID)
// so that a backup does not take it for deleted. [Store.Rebuild] recovers
// it as `doveadm force-resync` does: UIDs from the file names, GUIDs,
// dates and sizes from the files, and whatever an old (or backup) index
// still knows — UIDVALIDITY, mailbox GUID, flags, keywords, modseqs.
//
// Writing: a transaction (Tx) writes each saved message into a new file
// (header line, message header, body with size and virtual size counted
// on the way, metadata). The file is unnamed (O_TMPFILE on dbox-Mails'
// file system, package formats/internal/unnamed), held open until
// Commit, or, where the kernel or file system has no unnamed files or a
// quarter of the descriptors are already held, a .temp.<…> file in
// dbox-Mails as Dovecot makes. A body that is a plain range of a file
// (formats.FileSection: a Maildir file, an uncompressed mdbox message)
// whose source knows its virtual size is copied in the kernel
// (copy_file_range): one write for the header line and message header,
// the copy, one write for the metadata, with the source's virtual size
// as 'V' (what Dovecot reports for the source message). Commit makes the
// files durable with one syncfs(2) (mail_fsync=optimized; "always"
// fsyncs each file at Save, "never" nothing), takes Dovecot's index log
// lock, assigns UIDs from the index, gives each file its u.<uid> name
// with linkat(2) (link(2) and unlink of the temporary name) so that no
// existing file is ever replaced and no reader sees a partial file,
// fsyncs the directory, and only then appends one transaction to
// dovecot.index.log (EXTERNAL, fsynced). No index record ever names a
// file that is not on stable storage. Expunges are logged first and
// their files unlinked after, as Dovecot does. Rollback, and a failed
// Commit, remove the files again; an unnamed file of a crashed run
// vanishes with the process.
//
// Cost (issue 4: a backup Maildir → sdbox with mail_fsync=never within 2x
// of cp -a; medium corpus, 5,000 messages, 264 MB, ext4, 2 shared CPUs,
// load 4-6, medians of alternated runs): unnamed files, kernel copies
// and descriptors opened without os.OpenFile's poller setup took the
// system calls per message (source and destination, without the
// runtime's futex/nanosleep) from 25 to 15 (cp -a: 18.5) and user CPU from
// 0.20-0.25 s to 0.11-0.12 s; CPU (user+sys) from 2.2-2.4x cp's to
// 1.7-2.05x (about 1.96x in three of four runs: not yet safely under 2x),
// wall from 2.0-2.1x to 1.3-1.95x. What is left is mostly the kernel's: ext4 inode
// allocation (which, without a journal, skips recently deleted inodes
// one by one and then costs cp as much) and the page copies.
//
// # On-disk format
//
// See dovecot-storage.md §3 (dbox files, package formats/internal/dbox),
// §4 (sdbox), §2 (index, package index), §8 (mailbox list, package
// formats/internal/dbox/dboxlist) and §9 (location settings).
//
//	<root>/mailboxes/<name>/dbox-Mails/u.<uid>      one message per file (§4)
//	<root>/mailboxes/<name>/dbox-Mails/dovecot.index.log, dovecot.index   the index
//	<root>/mailboxes/Work/Sub/dbox-Mails/…           hierarchy = directories, mUTF-7 levels
//	<root>/mailboxes/Work/                           no dbox-Mails: a \Noselect container
//	<root>/subscriptions                             (§8.1)
//	<INDEX=>/mailboxes/<name>/dovecot.index*         with INDEX= [verified]
//
// What is written:
//
//   - New mailboxes get a log-only index (§2.9): UIDVALIDITY, the
//     dbox-hdr extension (rebuild_count 0, mailbox GUID, flags 0) and the
//     modseq extension, written into a staging directory in the root and
//     renamed into place, so that Dovecot never sees a dbox-Mails without
//     its index.
//   - Each u.<uid> holds "2 M1e C<hex now>", the 30-byte message header,
//     the message bytes as given, and metadata R (received time), V
//     (virtual size), P (POP3 UIDL), O (POP3 order), G (GUID) and the
//     message's unknown metadata keys, in Dovecot's order. A GUID that is
//     not 32 hex digits (a Maildir base name) is stored as is: Dovecot
//     shows it unchanged [verified] and logs SHA-1's last 16 bytes of it
//     in expunge records, as dbox.GUID128 does [verified].
//   - POP3 metadata is honoured by Dovecot only if dbox-hdr flags say the
//     mailbox has it (0x01 UIDLs, 0x02 orders) and hdr-pop3-uidl, when
//     present, is at least the UID: Commit sets both as
//     dbox_save_update_header_flags and index_pop3_uidl_set_max_uid do
//     [verified with doveadm fetch pop3.uidl pop3.order]; Messages
//     reports them under the same rules.
//   - Modseqs: a saved message's modseq is raised to the one given
//     (MODSEQ_UPDATE, §2.6.5). Like Dovecot (mail_index_update_modseq),
//     it cannot go below the log's own count, so a source modseq below
//     what the log reached is not kept exactly; in a new mailbox the log
//     starts at 1 and counts one per append and keyword record.
//
// # Dovecot compatibility
//
// Checked against Dovecot 2.3.19.1's sources (sdbox-save.c, sdbox-sync.c,
// sdbox-sync-rebuild.c, sdbox-storage.c, dbox-*.c) and against the real
// doveadm (dovecot_test.go and friends, through internal/dovecottest,
// with the default layout, INDEX= and UTF-8+CONTROL=): what we write
// Dovecot reads without logging corruption, inconsistency or a rebuild,
// with every field equal (save dates included); what Dovecot writes
// (doveadm save, flags, expunge, backup from a Maildir) we read equal;
// Dovecot keeps using a store we wrote (saves, flag changes, expunges)
// and we keep using what it changed; Rebuild finds what `doveadm
// force-resync` finds; a backup Maildir → sdbox and sdbox → sdbox through
// package convert reads back equal.
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
//     min_first_recent_uid does (sdbox_mailbox_create_indexes), never above
//     next_uid [verified: doveadm fetch flags, dboxtest/recent.go].
//   - Locking: Dovecot's sdbox save assigns UIDs and renames its files
//     under the index log lock (fcntl). Commit holds the same lock from
//     reading the index to appending to it (index.Update), and commits
//     are serialised per mailbox within the process.
//     Without it a concurrent Dovecot delivery made Dovecot find "u.N
//     already exists, rebuilding index" [verified].
//   - A u.<uid> that no index record names (a crash between naming a file
//     and writing the index, or Dovecot saving right now) is never
//     replaced: the save takes the next UID.
//   - Mailbox deletion renames dbox-Mails to <root>/..DOVECOT-TrasH and
//     removes it, as Dovecot's fs layout does; the mailbox directory stays
//     while it has children.
//   - Files and directories we make take the root's permissions
//     (mailbox_list_get_root_permissions); a new root is 0700.
//   - Compression (Dovecot's zlib plugin): mail stored compressed (a 'Z'
//     metadata plain size) is read decompressed. Driver.Configure takes
//     mail_plugins, plugin/zlib_save and plugin/zlib_save_level (also
//     spelt zlib_save, zlib_save_level); with zlib in mail_plugins and
//     zlib_save = gz or zstd, Save stores the compressed stream as the
//     message bytes (the message header gives its size) and starts the
//     metadata with 'Z' (the plain size) before R and V (the plain
//     virtual size), as dbox_save_write_metadata does.
//   - ALT= (alternate storage, spec §3.4) is read: u.<uid> is opened in
//     the primary dbox-Mails first, then in <ALT>/mailboxes/<name>/dbox-Mails
//     (where `doveadm altmove` puts it); Check and Rebuild count the ALT
//     files too, Expunge removes the file wherever it is, and Delete
//     removes the mailbox's ALT directory. New mail is always written to
//     primary storage and nothing is ever moved to ALT (use `doveadm
//     altmove`); the index record flag 0x40 ("in ALT") is neither needed
//     nor set, and the dbox-alt-root symlink is neither checked nor made.
//   - Not supported: LAYOUT=index, INDEX=MEMORY,
//     DIRNAME=/MAILBOXDIR= (KindConfig); external attachments ('X'
//     metadata, mail_attachment_dir: reading such a message fails with
//     KindNotPossible). The optional dovecot-uidvalidity
//     allocator and dovecot.list.index are not written; Dovecot recreates
//     them. Temporary files of a crashed run are left for Dovecot to
//     delete (after 36 hours).
package sdbox
