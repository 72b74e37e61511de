// Package rollout moves users from one mail location to another while they
// keep reading mail: the procedure Dovecot's documentation gives for a
// dsync conversion, made one resumable command (`boxsync convert`).
//
// # Overview
//
// For each user, the steps (procedure, a table) are:
//
//  1. passes: backups of the old location into the new one (the old one is
//     only read), repeated until a pass moves fewer than Config.Threshold
//     messages or Config.MaxPasses ran; then the mark: the new location's
//     UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ per mailbox.
//  2. switch: the user's passwd-file line gets userdb_mail=NEW (one field
//     rewritten atomically, every other byte kept; internal/userdb), or
//     Hooks.Switch runs.
//  3. flush: Hooks.Flush (doveadm auth cache flush USER).
//  4. kick: after Config.Wait, Hooks.Kick (doveadm kick USER).
//  5. merge: a one-way merge (sync -1) of the old location into the new.
//  6. verify: every mailbox, message, UID, UIDVALIDITY, flag and keyword of
//     the old location is in the new one; only then is the user converted.
//  7. remove: with Config.RemoveOld, the old location is deleted.
//
// # Journal
//
// Each step reached is appended to the Journal (one JSON line, fsynced)
// before the next begins, so a rollout killed at any moment resumes after
// the last recorded step. Every step is idempotent: the engine's reruns
// copy nothing twice, the passwd-file switch writes the value it finds
// already there as a no-op, flushing and kicking twice is harmless, and
// verification only reads. One rule keeps a resumed rollout from losing
// mail: "switching" is recorded before the switch, and no pass (which
// makes the new location a mirror of the old one) ever runs after it.
//
// # Flags in the final merge
//
// Between the switch and the kick, a session on the old location and one
// on the new can both change flags. The engine's merge lets the higher
// modseq win, but two stores' modseqs don't compare; the mark does: a
// message on the new location whose modseq is at most the mark's was not
// touched there since the switch, so old's flags win for it (applied
// before the engine's merge); one above the mark was changed by the user
// on the new location and keeps its flags (the passes raised the new
// location's HIGHESTMODSEQ to at least the old one's, so the engine agrees).
// QUIRK: a message changed on both sides in that window keeps the flags of
// the side with the higher modseq, as a stateless dsync would.
//
// # Verification: the user's expunge or a loss
//
// Mail of the old location missing from the new one is the user's expunge
// only if the new location's transaction log says so
// (formats.ExpungeHistory): a client's expunge request recorded after the
// mark (mail_expunge logs one, which the backend's sync carries out),
// with the mail's GUID where it names one (maildir, mdbox; Dovecot's
// sdbox requests carry none). A mail whose file vanished behind
// Dovecot's back gets only the sync's bare expunge record: that, or no
// record at all, is a loss and fails verification. Only
// where the log no longer reaches back to the mark does verification fall
// back to dsync's test (gone from a mailbox the user changed, below its
// UIDNEXT), counting those Verify.ExpungesUnproven; --remove-old then
// refuses (Entry.Unproven).
//
// # Rollback
//
// The user's passwd-file line is recorded in the journal (Entry.OldLine)
// before the first switch changes the file, so a rollback restores it byte
// for byte (userdb.RestorePasswdLine), also after a rollout killed between
// the switch and its journal record. A --switch-cmd hook runs with the
// locations the other way round.
//
// # Dovecot compatibility
//
// The procedure is doveadm-sync(1)'s "conversion" recipe; the hooks'
// defaults are the doveadm commands it names. Mail that reaches the old
// location after the merge (a delivery racing the auth cache flush) is
// found by verification, merged once more and verified again.
package rollout
