// Package convert is boxsync's sync engine: it makes one store agree with
// another through the formats contract only, so every pair of drivers can
// be synced.
//
// # Overview
//
// Run takes a source and a destination store and Options. The skeleton
// implements Backup (doveadm backup: the destination becomes a mirror of
// the source; dsync.md §2.4 step 4 and §2.11): mailboxes are matched by
// name and checked by GUID and UIDVALIDITY, messages by UID and checked by
// GUID; destination-only mail is expunged and destination flag changes are
// reverted. Where a destination cannot be repaired without lowering UIDs
// (a UID used there for another message, a source message missing below
// the destination's UIDNEXT), the destination mailbox is deleted and copied
// again, exactly as dsync does, so UIDs always match the source.
//
// Sync (doveadm sync) and OneWay (doveadm sync -1) are stateless full
// merges (twoway.go). Where both stores keep Dovecot's mailbox changes
// log (formats.MailboxLogger: maildir, sdbox, mdbox, mem), Sync first
// runs dsync's tree sync (tree.go, dsync.md §2.3-2.4): mailboxes matched
// by GUID, deletes and renames on either side carried to the other,
// directories and subscriptions by their logged times. Then mailboxes are
// matched by name and created where missing (OneWay never deletes or
// renames); messages follow dsync's import (dsync.md §2.8):
// the common UID prefix, with mail missing below the other side's UIDNEXT
// taken as expunged there, flags and keywords merged per flag from each
// side's change history (formats.ChangeHistory, dsync's merge_flags;
// flagmerge.go), and new mail keeping its UID where the other side's UIDNEXT allows,
// else renumbered on both sides from max(UIDNEXT). OneWay applies the same
// plan to the destination only and never expunges there. Mail is
// identified by GUID, or by dsync's header hash and size when a side
// can't keep GUIDs (mbox, imapc).
//
// The filters of new mail (-t, -e, -I, -O; filter.go) keep mail one side
// lacks from being copied, in every mode, as dsync's importer does; they
// never expunge. -g selects a mailbox by GUID on either side.
//
// Options.AllMail is -a (allmail.go): a message a side must create is read
// from a copy that side already has (same GUID and same size, so the same
// bytes), in one named mailbox or in every mailbox (a virtual all-mail
// mailbox), instead of from the other side; it spares re-fetching mail
// moved between folders from an IMAP source. dsync does the same with its
// virtual_all_box (dsync.md §2.8 (c)) but checks only the GUID.
//
// With Options.State every mode prints dsync's state string (stateful.go);
// Algorithm Stateful starts from it: mailboxes unchanged on both sides
// are skipped (dsync looks only at the source's side), merges start from
// the saved last common UID and modseq, and a stale state asks for a full
// sync (exit 2), as dsync.md §3.3 describes.
//
// Bodies are streamed from the source's Body callback into the
// destination's Tx.Save; messages are merged in UID order from both sides'
// iterators, so memory does not grow with mailbox size. Transactions are
// committed every Options.CommitEvery messages, so an interrupted run keeps
// its progress and a rerun finishes the job without duplicates.
//
// # Dovecot compatibility
//
// Names and decisions follow dsync's (dsync-brain-mailbox-tree-sync.c,
// dsync-mailbox-import.c): a backup never writes to the source, keeps UIDs,
// UIDVALIDITY, mailbox and message GUIDs, raises the destination UIDNEXT to
// the source's, and mirrors subscriptions. Unlike dsync it never rewrites a
// message's bytes (dsync turns CRLF into LF).
//
// New mail is saved with its source's formats.Message.Recent, as dsync's
// importer saves with the exporter's final_flags, MAIL_RECENT included
// (dsync.md §2.7-2.8): a Maildir destination keeps \Recent flagless mail
// in new/ (TestInteropRecentDifferential), an mbox one writes Status
// without 'O' (TestInteropRecentIntoMbox, TestInteropRecentFromMbox).
// Recent is not a flag: a message
// whose Recent alone differs between the sides is no change. At the end
// of each mailbox every side the mode writes (Sync: both; Backup and
// OneWay: the destination, as only there dsync has an importer) raises
// its first_recent_uid to min(last_common_uid+1, the other side's as its
// Status read before the merge), as dsync's importer finish does
// (mailbox_update min_first_recent_uid; recent.go,
// formats.FirstRecentRaiser), in the transaction that raises UIDNEXT:
// after an incremental run old mail the other side's IMAP session
// claimed stops being \Recent here too. A pair a fast run skips is
// still raised where the first recent UIDs differ (dsync syncs such a
// pair); a pair a stateful run skips is not (dsync's state check
// ignores first_recent_uid). A side that keeps none (imapc) is
// neither raised nor raises the other: dsync would use Dovecot's index
// of such a store, which we do not keep. QUIRK: a pair merged by content
// for a GUID/UIDVALIDITY conflict (mergeConflict) is not raised either,
// as its UIDs do not correspond; dsync resolves such a conflict before
// its import (a UIDVALIDITY change resets one side's index) and then
// raises as usual.
package convert
