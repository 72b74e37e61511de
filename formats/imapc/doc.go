// Package imapc is boxsync's imapc driver: a remote IMAP server as a mail
// store, named and configured like Dovecot's imapc (mail_location =
// imapc:), so admins can migrate users off a remote server with `boxsync
// backup` as they would with `doveadm backup`.
//
// # Overview
//
// [Driver] carries [Settings] (Dovecot's imapc_* names, see
// [ParseSettings]); Open connects once to fail early on a bad host or
// password. A [Store] keeps a pool of up to Settings.Connections (default
// 4) authenticated connections; each operation leases one, preferring a
// connection that already has the mailbox selected, and gives it back.
// Every connection is owned by one goroutine at a time and has no reader
// goroutine: the owner writes its commands and reads the responses.
//
// As a source:
//
//   - Mailboxes: LIST "" "*" (RETURN (STATUS (X-GUID)) with LIST-STATUS)
//     and LSUB "" "*", pipelined. Names are converted from modified UTF-7
//     and the server's separator to the contract's UTF-8 '/' form;
//     imapc_list_prefix is stripped. Missing parents become containers.
//   - Status: STATUS (MESSAGES UIDNEXT UIDVALIDITY, HIGHESTMODSEQ with
//     CONDSTORE, X-GUID on Dovecot or MAILBOXID with RFC 8474 OBJECTID).
//     Open pins UIDVALIDITY; a later change fails every call (KindTemp).
//   - Messages: UID SEARCH (ESEARCH when offered) for the UID list, then
//     UID FETCH (UID FLAGS INTERNALDATE RFC822.SIZE [MODSEQ] [X-GUID]
//     [SAVEDATE]) in chunks of 1000 UIDs, four commands pipelined per
//     round trip. No connection is held while the caller's loop body runs.
//   - Body: UID FETCH (BODY.PEEK[]); the literal is handed to the callback
//     as a reader over the connection, so memory stays bounded whatever
//     the size. [Mailbox.Bodies] is the fast path: one UID FETCH per 1000
//     messages, bodies streamed back to back.
//
// As a destination: CREATE, DELETE, SUBSCRIBE/UNSUBSCRIBE, and
// transactions applied at Commit: MULTIAPPEND (atomic) or APPENDs (pipelined with
// LITERAL+) with flags, keywords and INTERNALDATE, APPENDUID for the new
// UIDs, UID STORE FLAGS.SILENT, UID STORE +\Deleted with UID EXPUNGE. Save
// spools the body to an unlinked temporary file. IMAP cannot make the
// three steps one transaction; see tx for the exact gap.
//
// [Mailbox.HdrHashes] gives dsync's header hashes from BODY.PEEK[HEADER.FIELDS
// (Date Message-ID)] without downloading bodies, for servers without
// message GUIDs (what Dovecot's imapc does for dsync).
//
// Robustness: a connection that breaks (I/O error, BYE, timeout) is
// discarded and idempotent operations (LIST, STATUS, SEARCH, FETCH, STORE,
// EXPUNGE) run again on a new one, Settings.RetryCount times
// (imapc_connection_retry_count, default 1). A body whose connection breaks
// while the callback reads it is resumed at the byte where it stopped,
// with a partial fetch BODY.PEEK[]<offset> on a new connection, so the
// callback never notices. APPEND is never retried: it is not idempotent. A
// canceled context closes the connection in use. Throttles (bytes/s,
// messages/s) apply to all connections of a store.
//
// Secrets: the password, OAuth2 tokens and the AUTHENTICATE/LOGIN line
// never appear in an error, in Settings.String, or in the rawlog (the
// auth command is masked). The password can come from a file or an
// environment variable instead of the command line.
//
// The IMAP client is this package's own (wire.go, conn.go), not
// go-imap v2: v2.0.0-beta.8 can neither request nor parse vendor FETCH and
// STATUS items (an unknown msg-att aborts the connection), so it cannot
// read Dovecot's X-GUID; it has no MULTIAPPEND and no way to stream an
// APPEND from a file of known size with pipelining. A small parser that
// streams literals was less code than working around those.
//
// # On-disk format
//
// None locally (the location path, Dovecot's local index directory, is
// not used). On the wire: IMAP4rev1 (RFC 3501) with LITERAL+ (RFC 7888),
// SASL-IR (RFC 4959), UIDPLUS (RFC 4315), MULTIAPPEND (RFC 3502),
// CONDSTORE (RFC 7162), ESEARCH (RFC 4731), LIST-EXTENDED/LIST-STATUS
// (RFC 5258, 5819), OBJECTID (RFC 8474), ID (RFC 2971), SAVEDATE (RFC
// 8514), STARTTLS or implicit TLS, and Dovecot's X-GUID FETCH and STATUS
// items. Authentication: LOGIN, AUTHENTICATE PLAIN (with imapc_master_user
// as authentication id), XOAUTH2 and OAUTHBEARER (RFC 7628).
//
// # Dovecot compatibility
//
// Checked against Dovecot 2.3.19.1 (imapc sources and a running server):
//
//   - Message.Recent is always false: \Recent is the state of one IMAP
//     session, and a pooled connection of ours that SELECTed the mailbox
//     (to write) claimed it itself, so the flag says nothing exact about
//     the store; \Recent in a FETCH reply is dropped from Flags, and
//     APPEND cannot set it (RFC 3501 §2.3.2).
//   - Mailbox GUIDs: Dovecot's imapc has no real ones; it hashes the name
//     (imapc-storage.c imapc_mailbox_get_metadata: last 16 bytes of SHA-1
//     of the storage name, [NameGUID]). boxsync uses the server's own GUID
//     where the server gives one (STATUS X-GUID on Dovecot, MAILBOXID),
//     which keeps a migrated mailbox's GUID, and the same name hash
//     otherwise; imapc_features=name-mailbox-guids forces the hash. The
//     hashes match `doveadm mailbox status guid` with mail_location=imapc:.
//   - Message GUIDs: Dovecot's imapc fetches only Gmail's X-GM-MSGID. A
//     Dovecot server does not announce X-GUID, so boxsync recognises it by
//     its ID reply ("name" "Dovecot") and fetches X-GUID (the GUID Dovecot
//     itself reports; imapc_features=no-x-guid turns that off). Without
//     GUIDs, Status().Caps.GUIDs is false and the engine matches messages
//     by header hash (package hdrhash, dsync.md §2.9).
//   - Bodies are what IMAP gives: Dovecot sends CRLF line ends whatever is
//     stored, and replaces NUL with 0x80 in BODY[] (BINARY[] would keep
//     NULs but decodes Content-Transfer-Encoding). Size and VSize are both
//     RFC822.SIZE, the size of those bytes. QUIRK: not byte-exact for LF
//     or NUL-containing mail; Dovecot's imapc has the same limits.
//   - Dovecot refuses to APPEND an empty message ("Can't save a zero byte
//     message"): Save fails early with KindNotPossible. It also refuses
//     SUBSCRIBE of a missing mailbox, and answers STATUS of a missing
//     mailbox with a plain NO, which Open turns into KindNotFound after a
//     LIST.
//   - Errors: tagged NO response codes map to Kinds exactly as imapc's
//     imapc_resp_code_map; NO without a code is KindNotPossible, BAD
//     KindParams. A failed login is KindPerm, as Dovecot's imapc sets
//     MAIL_ERROR_PERM; note that doveadm itself exits 75, not 77, for it
//     (the failure happens at user init). Unknown host: KindUnavailable;
//     refused or dropped connections: KindTemp; a certificate that does not
//     verify: KindConfig, with a message naming imapc_ssl_verify.
//   - QUIRK (Dovecot 2.3 Maildir++ server): after DELETE of a mailbox that
//     has children, LIST keeps showing it without \Noselect (with an X-GUID
//     even) while STATUS and SELECT say it does not exist; doveadm's own
//     `mailbox status '*'` fails on it the same way. Open returns
//     KindNotFound for it.
//   - Not settable over IMAP: UIDs, UIDNEXT (SetUIDNext is a no-op), GUIDs,
//     UIDVALIDITY, save dates, POP3 UIDL/order (Ext). Caps says so: no
//     SaveUIDs, MailboxIdentity, SetUIDNext, POP3, ExactBytes (bodies come
//     back CRLF, NUL as 0x80), EmptyMessages, SubscribeMissing, ExactList;
//     the conformance suite checks the IMAP behaviour in their place.
//   - imapc_features: modseq and rfc822.size are accepted (modseqs are used
//     whenever the server has CONDSTORE); guid-forced and the other Dovecot
//     features are accepted and ignored; "throttle:" is parsed by Dovecot
//     for [THROTTLED] backoff, which boxsync does not do.
package imapc
