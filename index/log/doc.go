// Package log reads and writes Dovecot's transaction log,
// dovecot.index.log (and the rotated dovecot.index.log.2, and the mdbox
// map's dovecot.map.index.log).
//
// # Overview
//
// A log is a 40-byte header followed by records. [Parse] (or [ReadFile])
// checks the header and finds where the complete records end; a
// [Reader] then returns the records in order, validated as Dovecot
// validates them, with their positions and the log's modseq counter:
//
//	f, err := log.ReadFile(".../dovecot.index.log")
//	r := f.NewReader()
//	for {
//		rec, pos, err := r.Next() // io.EOF at the end; *CorruptError
//		...
//		switch rec := rec.(type) {
//		case *log.Append: ...
//		}
//	}
//
// [Record] is a sealed interface over one pointer type per record type
// (*Append, *ExpungeGUID, *FlagUpdate, *KeywordUpdate, *ExtIntro, …);
// [FlagsOf] gives a record's EXTERNAL and SYNC bits. [AppendRecord]
// encodes a record; [Decode] decodes one ([Reader.NextRaw] skips decoding
// for speed). [NextModSeq] is Dovecot's modseq arithmetic.
//
// A [Writer] holds the log's write lock (lock_method fcntl, flock or
// dotlock, as Dovecot takes it), appends whole transactions
// ([Writer.Append]: a BOUNDARY record first when there is more than one
// record), creates new logs ([Create]) and rotates the log to .log.2
// ([Writer.Rotate]). Replaying records onto an index is package index's
// job.
//
// Corrupt input gives a *[CorruptError] naming the file and the byte
// offset, never a panic; it matches [ErrCorrupt] and unwraps to a
// formats.Error of KindTemp, whose message tells the administrator to run
// `doveadm force-resync`.
//
// # On-disk format
//
// Spec: /work/shared/spec/dovecot-storage.md §2.6 (and Appendix A.2,
// A.6). All integers are little-endian.
//
//   - File header (§2.6.1, [Header]): u8 major 1, u8 minor 3, u16
//     hdr_size 40, u32 indexid (= dovecot.index's), u32 file_seq, u32
//     prev_file_seq (0: this log starts a fresh index), u32
//     prev_file_offset, u32 create_stamp, u64 initial_modseq, u8
//     compat_flags 1, 7 bytes unused.
//   - Record (§2.6.2): u32 size, encoded as n/4 in four 7-bit groups,
//     most significant first, each byte with bit 0x80 ([EncodeSize]); a
//     byte without 0x80 means "not fully written". Then u32 type: the
//     [Type] bits, 0x10000000 EXTERNAL, 0x20000000 SYNC, and for expunges
//     the protection bits 0xCD90. Then the payload, padded to 4 bytes.
//   - Payloads (§2.6.3) are documented on the record types.
//   - Transactions (§2.6.4): a BOUNDARY record (always EXTERNAL) holds the
//     byte length of the transaction; a transaction that extends past the
//     end of the file is ignored ([File.End]).
//   - Modseqs (§2.6.5, [NextModSeq]): +1 for APPEND, KEYWORD_UPDATE,
//     KEYWORD_RESET, ATTRIBUTE_UPDATE, EXTERNAL expunges and flag updates
//     that touch visible flags; MODSEQ_UPDATE raises the counter.
//   - Tail offset (§2.6.6, [File.Tail]): how far the backend has applied
//     the log.
//
// # Dovecot compatibility
//
// Checked against Dovecot 2.3.19.1 (mail-transaction-log*.c,
// mail-transaction-log-view.c, doveadm-dump-log.c). Every log written by
// the fixtures in ../testdata (sdbox, mdbox with its map, Maildir, a
// rotated log) reads without error, and logs this package writes are read
// by Dovecot without "corrupted" in its log (../interop_test.go).
//
//   - Validation follows log_view_is_record_valid: protection bits, empty
//     payloads, UID ranges (uid1 >= 1, sorted, disjoint), entry sizes.
//     QUIRK: an EXT_INTRO record holding more than one introduction is
//     rejected (Dovecot would apply each; it never writes them).
//   - Unknown record types decode as *Unknown; Dovecot rejects them when
//     it applies the log, and so does package index.
//   - Locking: lock_method fcntl takes F_SETLK(F_WRLCK) on the whole file
//     and, since fcntl locks are per process, also a per-path mutex; after
//     locking, the Writer checks that the path still names the locked
//     file (rotation race), as mail_transaction_log_lock_head does.
//     Timeout 3 minutes (MAIL_TRANSACTION_LOG_LOCK_TIMEOUT); dotlocks hold
//     "pid:host" and go stale after 3 minutes.
//   - New logs are written as PATH.newlock, locked, then linked (Create)
//     or renamed (Rotate, after hard-linking the old log to PATH.2) into
//     place, as mail_transaction_log_file_create does.
//   - Fsync: formats.FsyncNever never syncs, the other modes fsync each
//     appended transaction and new log (and its directory).
package log
