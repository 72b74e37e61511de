// Package index reads and writes Dovecot 2.3's mail index: dovecot.index
// with its transaction log dovecot.index.log (package [log]), for
// mailboxes and for the mdbox map (dovecot.map.index). It is what makes
// boxsync's sdbox, mdbox and Maildir stores keep UIDs, flags, keywords,
// modseqs and GUIDs the way Dovecot keeps them.
//
// # Overview
//
//	ix, err := index.Open(dir, index.Prefix, nil) // dovecot.index + log replayed
//	v, err := ix.View()                           // immutable snapshot
//	v.UIDValidity(), v.NextUID(), v.HighestModSeq()
//	for i, m := range v.Messages() { m.UID, m.Flags, m.Keywords, m.ModSeq; v.GUID(i) }
//
//	tx := ix.Begin()            // records are EXTERNAL|SYNC
//	defer tx.Rollback()
//	tx.Append(uid, index.FlagSeen)
//	tx.UpdateKeywords(uid, index.KeywordsAdd, "$Label1")
//	tx.SetModSeq(uid, 1234)     // reproduce a source's modseqs
//	tx.SetHeader(index.FieldNextUID, next)
//	pos, err := tx.Commit()     // one atomic log append, under Dovecot's lock
//
//	changes, err := ix.Changes(lastModSeq, nil) // or ErrHistoryLost
//	index.Dump(os.Stdout, path)                 // what `boxsync index dump` prints
//
// [Create] starts a log-only index (spec §2.9): a dovecot.index.log that
// sets UIDVALIDITY and introduces the given extensions (dbox-hdr,
// mdbox-hdr, …) and "modseq". Dovecot itself starts mailboxes this way and
// writes dovecot.index later.
//
// [Index.View] gives a [View], what Dovecot sees: messages (UID, flags,
// keywords, modseq, extension records), UIDVALIDITY, next UID,
// HIGHESTMODSEQ, extension headers, with typed accessors for the
// extensions of sdbox (dbox-hdr), mdbox (mdbox-hdr, mdbox, guid; map and
// ref in the map index), Maildir (maildir) and POP3 (hdr-pop3-uidl).
//
// [Tx.Commit] replays the transaction on a copy of the index first and
// refuses it if Dovecot would find the result corrupted; only then is it
// written. After a commit the log is rotated to dovecot.index.log.2 and
// dovecot.index rewritten when Dovecot would do so
// ([Options.LogRotateMaxSize] and friends; dovecot.index is written to a
// temporary file, synced and renamed).
//
// [Index.Changes] lists what the log says changed after a modseq, merged
// per UID as dsync's transaction log scan does (dsync.md §2.7): appends,
// expunges with GUIDs, flag and keyword changes and modseq updates.
// Records with the SYNC flag — boxsync's and dsync's own writes — are left
// out unless asked for ([ChangesOptions.IncludeOwn]); [Change.Own] and
// [Index.ScanLog] expose the flag. [ErrHistoryLost] means the modseq is
// no longer in the logs: sync fully.
//
// Errors: a corrupted file is a *[log.CorruptError] (file, byte offset,
// reason; formats.KindTemp; the message says to run `doveadm
// force-resync`); missing files match formats.ErrNotFound, an existing one
// on Create formats.ErrExists, bad arguments formats.ErrParams.
//
// # On-disk format
//
// Spec: /work/shared/spec/dovecot-storage.md §1–2, §10, Appendix A.2, A.3,
// A.6. Little-endian throughout.
//
//   - Base header, 120 bytes, version 7.3 ([Header]; §2.1): sizes, indexid
//     (equal to the log's), UIDVALIDITY, next UID, exact seen/deleted
//     counters, lowwaters, first recent UID, the log position the index
//     was synced to (log_file_seq, tail and head offsets).
//   - Extension blocks (§2.2) from pad8(base_header_size): u32 hdr_size,
//     u32 reset_id, u16 record_offset, u16 record_size, u16 record_align,
//     u16 name_size, name, pad8, header data, pad8.
//   - Records (§2.3): u32 uid, u8 flags ([FlagSeen] …, [FlagBackend],
//     [FlagDirty]), extension data at each record_offset; the layout
//     follows sync_ext_reorder (largest alignment first).
//   - "keywords" (§2.4): header u32 count, count × {u32 0, u32
//     name_offset}, NUL-terminated names, then 128 spare bytes; record: a
//     bitmap. Created only by KEYWORD_UPDATE records, never introduced.
//   - "modseq" (§2.5): header {u64 highest_modseq, u32 log_seq, u32
//     log_offset}; record u64 modseq (0: use the highest).
//   - The log and its replay (§2.6): records applied in order as
//     mail_index_sync_record does; modseqs as §2.6.5; which log files are
//     read and from where as §2.6.7 (no dovecot.index: the newest log with
//     prev_file_seq 0; a log that starts a new index resets it).
//
// # Dovecot compatibility
//
// Checked against Dovecot 2.3.19.1 (lib-index: mail-index-sync-update.c,
// mail-index-sync-ext.c, mail-index-sync-keywords.c, mail-index-modseq.c,
// mail-index-map*.c, mail-index-write.c, mail-index-transaction-export.c;
// dsync-transaction-log-scan.c):
//
//   - testdata/ holds indexes Dovecot made (sdbox, an sdbox with
//     dovecot.index, a rotated log, mdbox with its map, Maildir; commands in
//     testdata/MANIFEST.md). Every mailbox reads with the UIDs, flags,
//     keywords, modseqs, HIGHESTMODSEQ, UIDVALIDITY and next UID doveadm
//     reported (TestFixtureViews), and replaying a log up to where Dovecot
//     wrote dovecot.index reproduces Dovecot's file byte for byte
//     (TestIndexBytesMatchDovecot).
//   - What this package writes (log-only sdbox and Maildir mailboxes, an
//     mdbox store with its map index, a rotated log with dovecot.index)
//     Dovecot reads with exactly the flags, keywords, modseqs,
//     HIGHESTMODSEQ, UIDVALIDITY, next UID and (mdbox) bodies and GUIDs
//     written, without "corrupted", "inconsistency" or "rebuild" in its
//     log, and `doveadm dump` shows our dovecot.index as written
//     (interop_test.go). [Index.WriteIndex] writes dovecot.index on
//     demand.
//   - Writers mark every record EXTERNAL (changes already made in the
//     mailbox) and, by default, SYNC. A new log starts with an EXTERNAL
//     header update moving the log's tail past itself (§2.6.6), so the
//     mdbox map sees no unfinished sync. QUIRK: rotated logs get that
//     record too (Dovecot's don't); it is harmless and keeps the tail right
//     if dovecot.index can't be written.
//   - QUIRK: MODSEQ_UPDATE records are written after the expunges
//     (Dovecot writes them before): then the highest modseq a transaction
//     sets is exactly the mailbox's HIGHESTMODSEQ.
//   - Removing a keyword the index doesn't know writes nothing (Dovecot
//     would add the name to the index's keyword list).
//   - Dovecot repairs ("fscks") an index whose counters or layout are
//     wrong; this package reports *log.CorruptError instead and never
//     writes such an index. It is stricter than Dovecot in two places: a
//     record extension at offset < 5, and records out of UID order or with
//     inexact seen/deleted counters in dovecot.index, are corruption.
//   - Header updates can't change base_header_size, header_size or
//     record_size (QUIRK: Dovecot would let them, breaking the file).
//   - Not handled: dovecot.index.cache (ignored; Dovecot recreates it),
//     index versions before 7.x, private (INDEXPVT) indexes, and mmap/NFS
//     attribute cache flushing.
package index
