// Package mbox is the mbox storage driver: Dovecot's mbox format, read and
// written so that Dovecot 2.3.19 and boxsync see the same mailboxes, plus
// the mbox files other software writes (mutt, Thunderbird, Google
// Takeout, Python's mailbox module) and compressed mbox archives.
//
// # Overview
//
// A location is mbox:ROOT[:INBOX=FILE][:INDEX=DIR|MEMORY][:CONTROL=DIR]
// [:SUBSCRIPTIONS=NAME][:UTF-8][:COMPRESS=zstd|gz[,LEVEL]]. Every mailbox
// is one file; the hierarchy is directories ("Work/Sub" is ROOT/Work/Sub,
// each level in modified UTF-7 unless :UTF-8). INBOX is the INBOX= file,
// by default ROOT/inbox as in Dovecot. As in Dovecot a mailbox can't have
// children: a name is either a file (a mailbox) or a directory (a
// \Noselect container), so creating "Work" where "Work/Sub" exists, or
// "Work/Sub" where "Work" is a mailbox, fails with KindNotPossible.
//
// Reading streams: one scan of a file (under Dovecot's read lock) yields
// each message's metadata and offsets, which are all a Mailbox keeps
// (about 100 bytes a message); a body is read from the file when asked
// for, never held whole. Writing is a transaction: saved messages go to a
// spool file next to the mailbox; Commit takes Dovecot's write locks and
// either appends in place (only saves, UIDs continuing the file's,
// keywords the file already lists: X-IMAPbase's last UID is rewritten in
// place, one fsync) or writes the whole mailbox into a temporary file
// (".boxsync-*.lock", a name Dovecot never lists) that is fsynced and
// renamed over the old one. Either way a Dovecot that indexed the file is
// made to reread it (see Dovecot compatibility).
//
// Mailbox.Warnings lists the places where splitting a file into messages
// was a guess, and Mailbox.Flavour what kind of mbox a file is (reach both
// with a type assertion).
//
// # On-disk format
//
// A message is a From_ line, Dovecot's headers, the message, and one LF:
//
//	From MAILER-DAEMON  Sun Nov 29 07:53:44 2026       sender, two spaces, asctime in local time
//	X-IMAPbase: 1795938824 0000000009 $Label1 Junk     first message only: UIDVALIDITY, last UID (10 digits), keywords
//	X-UID: 9
//	Status: RO                                         R \Seen, O not \Recent
//	X-Status: AFTD                                     \Answered \Flagged \Draft \Deleted, when any
//	X-Keywords: $Label1                                + 50 spaces of padding, as Dovecot writes it
//	Content-Length: 12                                 bytes after the empty line
//	<the message, byte for byte>
//	<LF>
//
// boxsync puts its headers right after the From_ line (Dovecot puts them
// last; both read either), except when the message's first line starts
// with a blank or is a From_ line: then they go before the empty line
// ending the header, as Dovecot's do. An empty mailbox holds only c-client's
// "FOLDER INTERNAL DATA" pseudo message (X-IMAP instead of X-IMAPbase),
// which keeps UIDVALIDITY and the next UID and which Dovecot hides.
//
// A message ends before the LF (and a CR before it) that precedes a valid
// From_ line, or where a Content-Length header says when a valid From_
// line (or the end of the file) follows there; the last one ends before
// the file's final LF. "Valid" is Dovecot's mbox_from_parse: a sender and
// an asctime() date, with the variants Dovecot accepts (see parseFrom).
//
// Body yields a message without the headers Dovecot keeps for itself and
// hides from clients (Content-Length, Status, X-IMAP, X-IMAPbase,
// X-Keywords, X-Status, X-UID), wherever they stand: what `doveadm fetch
// text` shows, byte for byte, except for one thing Dovecot changes: it
// shows CRLF header lines with LF (istream-header-filter.c,
// HEADER_FILTER_NO_CR); boxsync keeps the CRs. Saving drops those headers
// from the message as Dovecot's save does (it would read them as its
// own), and header lines that are valid From_ lines (Dovecot drops every
// header line starting "From "); everything else is kept.
//
// Message GUIDs are Dovecot's (mbox_md5 = apop3d, mbox-md5-apop3d.c): the
// MD5 of the values of Date and Message-ID (until the first Received
// header), Delivered-To, X-Delivery-ID and the first Received header, in
// header order, as 32 hex digits. They identify content, can't be chosen,
// and two equal messages share one.
//
// The mailbox GUID lives where Dovecot keeps it, in the index: the
// "mbox" extension header of ROOT/.../.imap/NAME/dovecot.index(.log).
// boxsync reads it from dovecot.index and dovecot.index.log, and for a
// mailbox it creates (or opens writable without an index) writes a
// dovecot.index.log of one transaction: the mbox extension with the GUID,
// and UIDVALIDITY. Without an index (INDEX=MEMORY, a read-only store) the
// GUID is derived from the name and UIDVALIDITY, so that repeated runs
// agree.
//
// Message.Ext (POP3 UIDL and order), which mbox has no place for, is kept
// in .imap/NAME/boxsync-ext (see ext.go); Dovecot ignores that file.
//
// Foreign files are read as their flavour needs: mboxo (From-quoting
// ">From " that can't be undone), mboxrd (recognised by a ">>From " line;
// one '>' is removed from every /^>+From / line), mboxcl and mboxcl2
// (every message has a correct Content-Length; with or without quoting,
// read as stored). Their Status/X-Status headers are flags, as in Dovecot.
// Messages without X-UID get the next UIDs in file order. A file written
// to becomes a Dovecot mbox.
//
// With COMPRESS=zstd (or gz) every mailbox file is "<name>.zstd" (".gz"),
// Dovecot's zlib extensions, so `zstdcat FILE` prints a Dovecot mbox;
// writing one recompresses the file (no append in place). Without
// COMPRESS, compressed files (detected by magic, any of
// formats/internal/zlib's formats) are read as Dovecot's zlib plugin
// reads them, under their file name ("old.gz").
//
// # Dovecot compatibility
//
// Verified against Dovecot 2.3.19.1 (dovecot_test.go): a tree boxsync
// writes reads in Dovecot with the same mailbox and message GUIDs, UIDs,
// UIDVALIDITY, UIDNEXT, flags, keywords, received dates, sizes and bytes
// (up to the CRLF headers above), with nothing in Dovecot's log; boxsync
// reads what `doveadm save`/`flags`/`expunge` wrote the way Dovecot shows
// it; and the two can take turns changing a mailbox. Dovecot with
// mail_plugins = zlib reads a boxsync .zstd archive.
//
// \Recent (formats.Message.Recent) is read as Dovecot counts it
// (TestRecentAsDovecotCounts, TestInteropRecentFromMbox): every message
// starts \Recent and a Status header with 'O' takes it away
// (mbox-sync-parse.c MBOX_NONRECENT_KLUDGE), and Dovecot's sync counts
// no message before the last one with 'O' recent either (mbox-sync.c
// last_nonrecent_uid), so Recent holds from the UID after that one up;
// where Dovecot's index for the mailbox exists (.imap/NAME, the
// INDEX= directory) and has the file's UIDVALIDITY, from its header's
// first_recent_uid up at the least (read from dovecot.index's header
// and dovecot.index.log's header updates). A never-indexed file whose
// mail lacks 'O' (a delivery agent's, mutt's unseen mail) is all
// \Recent. Status.FirstRecentUID is that first recent UID.
//
// Save writes "Status: " with 'R' for \Seen and 'O' unless the message
// is Recent, as Dovecot's mbox save writes it for MAIL_RECENT
// (mbox-save.c mbox_save_append_flag_headers: "Status: \n" for unseen
// \Recent mail; Caps.SaveRecent, TestInteropRecentIntoMbox compares
// the Status lines with doveadm backup's). A rewrite gives every older
// message 'O' below the first recent UID, so that the file alone says
// what the index did. formats.FirstRecentRaiser (dsync's finish raising
// min_first_recent_uid) puts 'O' into the messages below the raised UID,
// at most UIDNEXT; Dovecot keeps the raise in its index only, so ours
// costs a rewrite of the file where a \Recent message loses it, but
// holds without an index (INDEX=MEMORY) too.
//
// QUIRK: Dovecot takes 'O' from the messages its sync parses: all of
// them when it reads a file anew (no index, or a rewritten file, which
// is what boxsync's writes make Dovecot see), only the appended ones
// when an indexed file just grew; boxsync reads every 'O'. So an 'O'
// another program put into an already indexed message while the file
// grew makes the mail before it not Recent for us, still \Recent for
// Dovecot. And an open Mailbox rereads the index only when the mbox file
// changes: a change of first_recent_uid that Dovecot writes only to the
// index (dsync's raise; an IMAP session's claim before it writes 'O',
// mbox_lazy_writes) shows once the mailbox is opened again.
//
// Locking is Dovecot's default: mbox_read_locks = fcntl, mbox_write_locks
// = dotlock fcntl. A write takes "<file>.lock" (O_EXCL, "<pid>:<host>",
// overridden when its process is gone or nothing changed for 2 minutes),
// then an fcntl write lock on the file; reads take an fcntl read lock.
// Waits end after 5 minutes (mbox_lock_timeout). On Linux the fcntl
// locks are open file description locks, which conflict with Dovecot's
// classic ones but survive other descriptors of the file being closed in
// this process. The subscriptions file (.subscriptions, version 2) is
// changed under its own dotlock.
//
// Dovecot notices an mbox changed by the size and mtime its index
// recorded; a different size makes it assume appends or expunges only and
// seek to the offsets it knows. After a rewrite boxsync therefore appends
// one transaction to dovecot.index.log (under its fcntl lock) that sets
// the recorded size to the new one and the mtime to one the file doesn't
// have, which makes Dovecot reread the whole file quietly; a log it can't
// safely append to is replaced by a fresh one (Dovecot then reindexes,
// and the modseqs only the index held start over).
//
// QUIRK: Dovecot's From_ line dates have no zone: they are local time,
// written and read in the Driver's Location (time.Local by default, as
// Dovecot uses the server's zone). Files moved between zones shift dates.
//
// QUIRK: shapes mbox can't hold, whoever writes them: a message without
// an empty line ending its header that ends in CR, or whose last line,
// lacking its LF, would be a From_ line with one, or that starts with a
// blank or a From_ line and doesn't end in LF (header-only messages get no
// Content-Length protection). Saving drops such a final From_ line;
// otherwise the CR is lost or the message splits.
//
// Dovecot's own limits, which boxsync reads correctly but Dovecot does not
// (TestDovecotQuirks): a message whose body starts with a valid From_
// line can get a size one byte too large when Dovecot indexes the file,
// and then fails to read ("Cached message size larger than expected") and
// is corrupted by Dovecot's expunge rewrite; the last message of a file
// ending in CRLF is sized one byte too large; CRLF bodies with From_
// lines are misread even in files Dovecot wrote with mail_save_crlf =
// yes; and `doveadm save` appends an LF to a message without one. A
// Dovecot mbox keywords header (X-Keywords) naming a keyword X-IMAPbase
// doesn't list is ignored as a whole, as Dovecot does; in a foreign file
// without X-IMAPbase boxsync takes X-Keywords as they are (QUIRK: Dovecot
// drops them).
//
// Settings (formats.Configurable): mbox_md5 = apop3d (default) or all,
// which changes how message GUIDs are summed exactly as in Dovecot. The
// zlib plugin settings don't apply: Dovecot never compresses mbox saves.
//
// dsync's view: mbox has message GUIDs but can't save them (Caps.GUIDs
// true, SaveGUIDs false, as Dovecot's have_guids/have_save_guids), so a
// pair with mbox matches mail by header hash (dsync.md §2.9); modseqs and
// save dates are not kept.
package mbox
