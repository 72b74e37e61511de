// Package zlib reads and writes mail compressed the way Dovecot's zlib
// plugin does, for every driver: Maildir and dbox compress one message per
// file, mbox archives compress a whole mailbox file.
//
// # Overview
//
// [NewReader] peeks at the first bytes of a stream, recognises the
// compression by its magic bytes exactly as Dovecot's
// compression_detect_handler does, and returns a reader of the original
// bytes; uncompressed input passes through unchanged. [NewWriter]
// compresses with gzip or zstd at a level. [ParseSettings] turns the
// Dovecot settings that switch compression on (`mail_plugins = zlib`,
// `plugin { zlib_save = zstd; zlib_save_level = 3 }`, as doveconf or
// `-o plugin/zlib_save=zstd` give them) into a [Settings] value a driver
// can act on. Everything streams: nothing holds a whole message.
//
// # On-disk format
//
//	format  magic (first bytes)                 Dovecot name  file extension
//	gzip    1f 8b                               gz            .gz
//	bzip2   "BZh" '1'..'9'                      bz2           .bz2
//	xz      fd 37 7a 58 5a 00                   xz            .xz
//	lz4     "Dovecot-LZ4" 0d 2a 9b c5           lz4           .lz4  (Dovecot framing, below)
//	zstd    28 b5 2f fd (LE u32 0xFD2FB528)     zstd          .zstd
//
// Dovecot's lz4 is not the lz4 frame format: a 19-byte header (the 15-byte
// magic, then the largest uncompressed chunk size as a big-endian u32),
// then chunks, each a big-endian u32 length and one raw LZ4 block
// (dovecot 2.3.19.1 iostream-lz4.h). The block decoder lives in lz4.go.
//
// # Dovecot compatibility
//
// Detection order and magics follow dovecot 2.3.19.1 compression.c. Reading
// supports gzip (also concatenated members), bzip2, zstd and Dovecot's lz4;
// xz is recognised but not decompressed (no decoder without a new
// dependency): reading it fails with a KindNotPossible error naming the
// format. Writing supports gzip and zstd, the formats Dovecot can both
// write and read (it reads xz only, and lz4 needs Dovecot's framing).
//
// Levels are Dovecot's: gzip 0..9 (default -1, zlib's default, which is
// 6), zstd 1..22 (default 3, mapped to klauspost/compress's four encoder
// speeds by zstd.EncoderLevelFromZstd). The gzip header carries OS code 3
// (Unix) and no name or time, as Dovecot writes it.
//
// Dovecot refuses to save a message that already looks compressed
// ("Saving mails compressed by client isn't supported"); [Detect] lets a
// driver do the same check.
package zlib
