// Package maildir reads and writes Maildir stores the way Dovecot 2.3.19
// lays them out, so that Dovecot opens what we write with every UID,
// UIDVALIDITY, GUID, flag, keyword and date intact, and we read what it
// wrote.
//
// # Overview
//
// [Driver] opens a location ("maildir:~/Maildir[:LAYOUT=fs][:UTF-8]
// [:INBOX=...][:CONTROL=...][:INDEX=...]") as a [Store] implementing
// formats.Store and formats.Checker. Dovecot needs no index for Maildir
// (dovecot-storage.md §0) and rebuilds its own from the file names,
// dovecot-uidlist and dovecot-keywords, but modseqs live only in its
// index, so the driver keeps a log-only dovecot.index.log next to the mail
// (spec §2.9, §6.5; see Modseqs below). The save date is the file's ctime,
// which cannot be set (Caps.SaveDate is false).
//
// # Modseqs
//
// Reading: when the mailbox has Dovecot index files (in the maildir, or
// under INDEX=), Message.ModSeq and Status.HighestModSeq are what Dovecot
// reports, read through package index without writing anything. Files the
// index does not know yet, or knows with other flags or keywords, are
// changes Dovecot's next sync records: they get the index's highest modseq
// plus one for the record and one per keyword they carry, and
// HIGHESTMODSEQ is raised to that, so we never report less than Dovecot
// will assign. An index without the "modseq" extension (Dovecot enables
// it on the first CONDSTORE access) gives every message the highest
// modseq, as that first access does [verified]. No index, INDEX=MEMORY, or
// a corrupt index or one whose UIDVALIDITY is not dovecot-uidlist's
// (Dovecot would reset it): modseqs are 0 (unknown), Status.Caps.ModSeqs
// is false (except for a mailbox without an index on a writable store,
// whose first commit creates one) and the reason is kept out of the way
// in the mailbox's IndexError() method.
//
// Writing: each Commit, once dovecot-uidlist is durable, appends one
// transaction to dovecot.index.log (index.Create with the uidlist's
// UIDVALIDITY when there is none; an existing index only when it opens
// cleanly with that UIDVALIDITY): APPENDs of every message at or above
// the index's next UID with the flags and keywords of its file name, flag
// and keyword updates for SetFlags, EXPUNGE_GUIDs for expunges (GUID as
// mail_generate_guid_128_hash), then a MODSEQ_UPDATE raising each saved
// message to max(natural, Message.ModSeq) and HIGHESTMODSEQ to the
// highest of those (introducing the "modseq" extension first if the
// index lacks it). Records are EXTERNAL|SYNC. Saved UIDs never go below
// the index's next UID. A failed log update does not fail the commit (the
// mail is already there; Dovecot indexes it itself, with new modseqs): it
// shows in IndexError() and Status.Caps.ModSeqs until a commit succeeds.
//
// Opening or listing a mailbox syncs it as a Dovecot session does: the
// uidlist is read, new/ and cur/ are scanned, and files the uidlist does
// not know get UIDs in Dovecot's order (maildir_filename_sort_cmp: the
// seconds in the name, then the microseconds after ".M", then the name;
// new/ and cur/ alike) and are recorded under dovecot-uidlist.lock. This
// happens on a read-only store too, because Dovecot itself records UIDs on
// any access; when the directory cannot be written the UIDs stay in
// memory. A mailbox without dovecot-uidlist gets one with a new
// UIDVALIDITY (the current time, unique within the store) and a random
// mailbox GUID.
//
// Within one open mailbox a read reuses the previous one where that is
// safe, as Dovecot's maildir_sync_quick_check does per directory
// (dovecot-storage.md §6.5): new/ or cur/ is listed again unless its mtime
// is the one the previous read saw and was then older than that read by
// 100 ms (1 s when the file system keeps whole seconds), so that a change
// after the read must have moved it (the kernel stamps changes with its
// coarse clock, at most one tick behind); dovecot-uidlist is parsed again
// unless it is the same version (inode, size and mtime; Dovecot replaces
// it by rename or appends to it), including a version we just wrote under
// its lock; when all three are unchanged the previous read's table is
// taken whole (only dovecot-keywords is read again). A rename, delivery
// or removal by a mail client or Dovecot
// moves the directory's mtime and is seen by the next read.
//
// Across processes, cur/ is not read either when the index's "maildir"
// header says it has not changed since a sync that left the index
// agreeing with it, as Dovecot's quick check decides (quickcur.go): its
// names are then the uidlist's base names with the index's flags and
// keyword letters (maildir_filename_guess). Recent messages missing from
// new/ are looked for in cur/ one by one; anything that does not fit
// reads cur/; a name that turns out wrong when its file is opened,
// renamed or removed makes the mailbox read cur/ from then on. An
// incremental sync of mail delivered into new/ thus reads new/ only, on
// both sides (a Recent flagless message is saved into new/, as Dovecot
// saves it). Messages
// stats each file for its dates (INTERNALDATE is the mtime);
// MessagesWithoutDates (formats.LazyDates) skips that when the name or
// the uidlist gives the size, and Dates stats one message.
//
// A mailbox's state after a sync is one immutable table: 20-byte records
// sorted by UID whose names live in a byte arena, about 95 bytes per
// message all told (4.7 MB for 50,000 messages). The arena is in pieces of
// up to 64 KiB: a commit's table shares the pieces of the table it
// replaces and adds its own, and a rescan that finds nothing changed
// keeps the table it has, so a commit to a large mailbox holds its names
// once.
//
// A transaction (Tx) streams each saved body into a new file with a 64 KiB
// buffer, counting the physical and virtual size on the way; a body that
// is a plain range of a file (formats.FileSection: uncompressed mdbox
// mail) whose source gives its virtual size is copied in the kernel
// (copy_file_range) and ,W= is that size, the one Dovecot reports for the
// source message (dbox 'V'); ,S= is what was copied. On Linux the new
// file is unnamed (O_TMPFILE in cur/), kept open until Commit links it
// into cur/ (or new/) under its final name, so that it appears complete
// and at once as a rename from tmp/ makes it, without a tmp/ name to add,
// look up and remove; where the file system cannot, and beyond a quarter of the
// process's descriptors, the file is made in tmp/ as Dovecot does. A body
// that is a whole plain Maildir file (another Maildir's message on the
// same file system, with our owner and file mode and its mtime as the
// date to keep, nothing to compress) is hard-linked into tmp/ instead, as
// Dovecot's maildir_copy_hardlink does by default; ,W= is then counted by
// reading the source, and, as in Dovecot, the linked file is not fsynced
// (no byte of it is ours). Commit works as Dovecot's save commit does, all
// under dovecot-uidlist.lock: re-sync; write dovecot-keywords if a keyword
// needs a letter; make the new files durable; link or rename them into
// cur/ as "<base>,S=<size>,W=<vsize>:2,<flags>", or into new/ as
// "<base>,S=<size>,W=<vsize>" for a message saved with Message.Recent and
// neither flags nor keywords (see Recent below; an existing name is an
// error for a link, as for no rename), rename files whose flags changed
// and unlink expunged ones; fsync cur/ and new/ (those that changed)
// while the new uidlist is written
// to dovecot-uidlist.tmp and fdatasynced; once both are durable, rename it
// over dovecot-uidlist and fsync its directory; unlock. No uidlist ever
// names mail that is not on stable storage. With mail_fsync=optimized (the
// default) one syncfs(2) makes all of a transaction's tmp/ files durable
// instead of one fsync per file; "always" fsyncs each file as it is saved
// as well; "never" syncs nothing. Rollback, and a failed Commit, close
// the unnamed files (which frees them) and remove the tmp/ files; an
// interrupted run leaves only tmp/ files, which the next
// transaction on the mailbox removes (ours: named by a dead process of this
// host; anyone's: older than 36 hours, as Dovecot does).
//
// # On-disk format
//
// See dovecot-storage.md §6 (Maildir), §8 (subscriptions, names) and §9
// (location settings).
//
//   - Layout (§8.2): the INBOX is the root maildir (or INBOX=); by default
//     (Maildir++) "Work/Sub" is "<root>/.Work.Sub", so names cannot hold
//     '.' (KindNotPossible); with LAYOUT=fs it is "<root>/Work/Sub", and
//     a level may not be "cur", "new" or "tmp". Each level is modified
//     UTF-7 (package formats/internal/mutf7) unless the location says
//     UTF-8. Under Maildir++ every ".name" directory is a mailbox (Dovecot
//     creates missing cur/ new/ tmp/ when opening it) and missing parents
//     are \Noselect containers; under LAYOUT=fs and for the INBOX a
//     directory is a mailbox when it has cur/. Directory names that do
//     not decode, or would not map back to the same directory, are
//     skipped when listing. New directories and files take the root's
//     permissions (0700/0600 for a new root).
//   - CONTROL= (§9) moves dovecot-uidlist and dovecot-keywords to
//     "<control>/.Work.Sub" ("<control>/.INBOX" for the INBOX; without the
//     dots under LAYOUT=fs) and the subscriptions file to
//     "<control>/subscriptions" [verified with doveadm]. INDEX= moves
//     dovecot.index* to "<index>/.Work.Sub" ("<index>/.INBOX"; LAYOUT=fs
//     without the dots, unverified) and Delete removes them there;
//     INDEX=MEMORY means no index (no modseqs). VOLATILEDIR= is accepted
//     and unused; SUBSCRIPTIONS= names the
//     subscriptions file. ALT=, LAYOUT=index and every other key are
//     refused with KindConfig.
//   - File names (§6.2): "<base>[,S=<size>][,W=<vsize>]:2,<flags>". The
//     base name is everything before the first ':' (,S= and ,W=
//     included): the uidlist key and the default message GUID. Flags are
//     read after the last ':' as Dovecot does; D F R S T are the system
//     flags, a–z keywords 0–25; other letters and a second ",..." flag set
//     are kept when flags change. A name without ":2," has no flags.
//   - dovecot-uidlist (§6.4), versions 3 and 1: header "3 V N G" with
//     unknown fields kept; records "<uid>[ <key><value>...] :<base>" with
//     G (message GUID), S/W (sizes not in the name), P (POP3 UIDL → Ext
//     'P'), O (POP3 order → Ext 'O') and unknown keys kept. The next UID
//     is max(N, last UID + 1). A final line without its newline is being
//     appended by Dovecot and is ignored.
//   - dovecot-keywords (§6.3): "<index> <name>" lines.
//   - subscriptions (§8.1): version 2 with tab-escaped levels, version 1
//     read (package formats/internal/subsfile).
//
// # Dovecot compatibility
//
// Checked against Dovecot 2.3.19.1's sources and against the real doveadm
// (dovecot_test.go, through internal/dovecottest, for every layout: what
// we write, Dovecot reads; what it writes, we read; our changes to a store
// Dovecot indexed are what its next look shows). Save dates are not
// compared: ours is the file's ctime, which a rename for a flag change
// moves, while Dovecot keeps the first value it saw in its index cache.
//
//   - Locking: dovecot-uidlist.lock is a dotlock as lib/file-dotlock.c
//     makes it with dotlock_use_excl=yes: O_EXCL, content "<pid>:<host>",
//     waiting up to 122 s; a lock is stale when its owner is a dead process
//     of this host (checked once it is 2 s old) or when neither it nor
//     dovecot-uidlist changed for 120 s. Goroutines of this process queue
//     on a mutex first, since a lock naming our own pid counts as stale.
//     dovecot-keywords and subscriptions are replaced through their own
//     .lock files, written and renamed over the file (file_dotlock_replace);
//     dovecot-keywords' mtime always grows, since Dovecot caches it by
//     mtime.
//   - dovecot-uidlist is rewritten whole (maildir_uidlist_recreate), never
//     appended to, through dovecot-uidlist.tmp. Records of files that are
//     gone are dropped when it is rewritten, as Dovecot's full sync drops
//     them.
//   - Saving with a GUID: when the GUID is itself a usable base name with
//     the right ,S= and ,W= and is not taken, it becomes the file name, as
//     maildir_save_set_dest_basename does (Maildir-to-Maildir copies keep
//     their names); otherwise the file gets a new name
//     "<secs>.M<usecs>P<pid>.<host>" ('/', ':' and ',' in the host name
//     escaped as \057, \072, \054) and the GUID goes to the G field.
//   - Keywords are matched against dovecot-keywords case-insensitively,
//     as Dovecot's hash does, so the spelling already in the file wins. A
//     letter without a name reads as "unknown-<n>" ('?' appended while
//     taken) and the name is written down by the next commit,
//     as Dovecot does.
//   - Keywords beyond the 26 letters live in the index only, as in
//     Dovecot: a keyword gets a letter while dovecot-keywords has a free
//     one (maildir_keywords_lookup_or_create); once all 26 are named,
//     other keywords get none and Dovecot keeps them in dovecot.index /
//     dovecot.index.log only, its file-name sync leaving them alone
//     (maildir-sync-index.c maildir_sync_mail_keywords: "index-only
//     keywords"). Reading: a message's keywords are its letters' names
//     plus its index keywords that have no letter while all 26 are taken
//     (an index keyword whose name could still get a letter is one
//     Dovecot's next sync drops, file names winning); they do not count
//     as a difference between index and file name for modseqs or
//     FlagChanges. Writing: Save and SetFlags give letters to what fits
//     and Commit logs every keyword of the message (APPEND plus
//     KEYWORD_UPDATE, or the add/remove difference for SetFlags), so
//     Dovecot and we read them all back [verified: 40 keywords, both
//     ways, convert/keywords_interop_test.go]. Without an index to keep
//     them in, keywords beyond the letters are refused with
//     KindNotPossible naming the keyword: at Save/SetFlags with
//     INDEX=MEMORY, at Commit (before anything moves) when the index is
//     stale or corrupt. A commit whose index-only keywords could not be
//     logged after the mail was committed returns KindTemp; a rerun sets
//     them again. The index or its keywords lost (INDEX=MEMORY later, a
//     deleted index) loses those keywords, as in Dovecot.
//   - A second file with a base name already seen is renamed to a new
//     name in new/ and becomes a new message (maildir_fix_duplicate),
//     unless it is a hard link to the first.
//   - QUIRK: a broken dovecot-uidlist line is an error (KindInvalidData
//     naming the file, line and mailbox); Dovecot would delete the file
//     and renumber the mailbox with a new UIDVALIDITY, which a conversion
//     must not do silently. Fields with an invalid (not A–Z) key are
//     dropped as Dovecot drops them.
//   - Messages in new/ stay there (Dovecot moves them to cur/ only when
//     an IMAP session claims \Recent); flag changes rename them in place.
//   - Recent (formats.Message.Recent): Dovecot counts a message \Recent
//     when its UID is at least the index header's first_recent_uid, and
//     its sync raises that past each message it first indexes from cur/
//     (maildir-sync-index.c maildir_sync_index; new/ files, and files
//     the uidlist did not have, are recent). Reading: messages in the
//     index by its first_recent_uid, the others by that rule (we record
//     every file in dovecot-uidlist before Dovecot sees it); without a
//     usable index, files in new/ above the last one in cur/ [verified:
//     doveadm fetch flags, recent_test.go]. Writing, as Dovecot's save
//     does with MAIL_RECENT (maildir-save.c): a Recent message without
//     flags or keywords goes to new/ under its bare base name
//     (maildir_get_dest_filename), any other to cur/; the log raises
//     first_recent_uid past the last message saved without Recent
//     (last_nonrecent_uid) and past mail first indexed from cur/, and
//     leaves it alone otherwise, so a Recent message with flags stays
//     \Recent in cur/ (Caps.SaveRecent false with INDEX=MEMORY, where
//     only new/ says it). Recent holds for a suffix of the UIDs: a
//     message saved without it claims \Recent of every lower UID, as in
//     Dovecot. A move from new/ to cur/ is no flag change, and changes
//     no modseq. Status.FirstRecentUID is that first recent UID;
//     formats.FirstRecentRaiser raises the header's first_recent_uid
//     through the log as Dovecot's mailbox_update does (files stay in
//     new/; Dovecot then counts them not recent) [verified: doveadm
//     fetch flags, TestRaiseFirstRecentAsDovecot]; with INDEX=MEMORY
//     there is nowhere to keep it and the raise is dropped, as
//     Dovecot's in-memory index forgets it.
//   - QUIRK: a file another program put into cur/ that no
//     dovecot-uidlist lists yet is \Recent for the Dovecot session that
//     finds it first (maildir-uidlist.c: "didn't exist in uidlist, it's
//     recent"). When we find it first, our read records it in
//     dovecot-uidlist, after which Dovecot too counts it not recent, so
//     it is copied without Recent (to cur/); doveadm finding it first
//     would copy it to new/ of a Maildir. Files in new/ are recent
//     either way.
//   - The INBOX cannot be deleted (KindNotPossible, as in Dovecot). A
//     Maildir++ mailbox is deleted by renaming it to "..DOVECOT-TRASH"
//     first, as Dovecot does; a Maildir++ mailbox is created under a
//     temporary name Dovecot does not list and renamed into place.
//   - Compression (Dovecot's zlib plugin; zlib.go, through package
//     formats/internal/zlib): Body always recognises a compressed file by
//     its magic bytes (gzip, bzip2, Dovecot's lz4, zstd; xz fails with
//     KindNotPossible) and yields the decompressed bytes, as Dovecot with
//     the plugin loaded does; a plain file stays plain. ,S= and ,W= of a
//     compressed file are the uncompressed sizes [verified: Dovecot's
//     zstd save of a 44907-byte message is a 1781-byte file named
//     ",S=44907,W=46909"], so Message.Size and Body.Size are the
//     uncompressed size; a decompressed length that differs from ,S= is a
//     KindInvalidData read error (Dovecot: "Cached message size
//     smaller/larger than expected"). A compressed file without ,S= (or
//     uidlist S) has Message.Size -1 (unknown: Messages opens such a file
//     to look at its magic) and Body decompresses it once to count.
//     Writing: Driver.Configure takes mail_plugins, plugin/zlib_save and
//     plugin/zlib_save_level (also spelt zlib_save, zlib_save_level); with
//     zlib in mail_plugins and zlib_save = gz or zstd, Save streams the
//     message compressed into tmp/ at that level and names it with the
//     uncompressed ,S= and ,W=, as zlib_mail_save_compress_begin does.
//     bz2 and lz4 are refused by Configure (KindConfig: no writer).
//     Saving plain (no zlib_save), a body whose first bytes carry a
//     compression magic is refused with KindNotPossible ("Saving mails
//     compressed by client isn't supported", zlib_mail_save_finish): it
//     would read back decompressed.
package maildir
