// Package dbox reads and writes the dbox file format that Dovecot's sdbox
// and mdbox storages share (Dovecot's dbox-common): a header line, then
// messages, each a fixed-size header, the message bytes and a metadata
// block. sdbox keeps one message per file (u.<uid>), mdbox many
// (storage/m.<id>).
//
// # Overview
//
// [NewReader] parses a file's header line from an io.ReaderAt;
// [Reader.ReadMessage] locates the message at an offset and parses its
// header and metadata, and [Reader.Body] streams its bytes through an
// io.SectionReader (decompressing what Dovecot's zlib plugin compressed).
// Nothing reads a whole message into memory. Damage is a *[CorruptError]
// naming the file and the byte offset, of formats.KindTemp, as Dovecot
// treats it (it rebuilds the index); its message says to run force-resync.
//
// [MessageWriter] writes a message at an offset: header, streamed body
// (counting size and virtual size on the way), metadata. [GUID128] is
// Dovecot's 128-bit form of a message GUID.
//
// # On-disk format
//
// Spec: /work/shared/spec/dovecot-storage.md §3 and Appendix A.1; dovecot
// 2.3.19.1 dbox-file.h, dbox-file.c, dbox-save.c.
//
//	2 M1e C6b0bd91a\n                          file header (§3.1): version,
//	                                           'M' message header size (hex),
//	                                           'C' creation time (hex)
//	01 02 'N' ' ' 8×' ' ' ' <16 hex> \n       message header (§3.2), 30 bytes;
//	                                           the size of the message bytes
//	<message bytes>                            as saved, LF or CRLF
//	\n 01 03 \n                                metadata magic (§3.3)
//	R6b0bd91a\n V3a\n G0ed7e52c…\n              "<key><value>" lines
//	\n                                         empty line: end of the block
//
// Metadata keys: G GUID, R received time (hex UNIX time), V virtual size
// (hex), P POP3 UIDL, O POP3 order (decimal), Z plain size when the stored
// bytes are compressed (hex), B original mailbox (mdbox), X external
// attachment references; E F K S are obsolete v1 keys. Unknown keys are
// kept in [Metadata.Fields] in file order.
//
// # Dovecot compatibility
//
// Parsing follows Dovecot's readers, which take lines as C strings from
// i_stream_read_next_line: one CR before an LF is dropped, a NUL ends a
// line, and a metadata line that is then empty or starts with a space ends
// the block. Hex numbers are read like str_to_uintmax_hex (either case, no
// overflow); the message header's size must be 16 hex digits (Dovecot's
// hex2dec would take garbage as a number: QUIRK, we call such a file
// corrupted). Writers produce exactly what Dovecot writes: "2 M1e C<hex>",
// uppercase zero-padded sizes, lowercase hex in metadata, LF line ends.
//
// A message with an 'X' line is refused (ErrExternalAttachments, Kind
// NotPossible): its attachments live in mail_attachment_dir, outside the
// file. A 'Z' line with compressed bytes (mail_plugins = zlib) is read
// through package formats/internal/zlib; [MessageWriter.Compress] writes
// such a message as the zlib plugin's zlib_save does: the message header
// gives the compressed size, and 'Z' (the plain size) is the first
// metadata line, before R and V (the plain virtual size).
package dbox
