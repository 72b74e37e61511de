package convert

import (
	"context"

	"github.com/boxsync/boxsync/formats"
)

// firstRecentRaise is the first_recent_uid dsync's importer raises its
// own side to when it finishes a mailbox (dovecot 2.3.19.1
// dsync-mailbox-import.c dsync_mailbox_import_finish, dsync.md §2.8e):
// min(last_common_uid+1, the other side's first_recent_uid as its
// mailbox record sent it), applied by mailbox_update only when it is
// higher than the side's own. lastCommonUID is dsync's at that point:
// after new mail got its UIDs, the merged UIDNEXT - 1. 0 means no raise:
// the side keeps no first_recent_uid (formats.Status.FirstRecentUID 0),
// the other side keeps none (dsync sends 0 and mailbox_update ignores a
// zero min_first_recent_uid), or the side's is already as high.
//
// As the merged UIDNEXT is at least the other side's, and that side's
// first_recent_uid at most its UIDNEXT, the result is in practice the
// other side's first_recent_uid; the min() is kept as dsync has it.
func firstRecentRaise(own formats.Status, lastCommonUID, theirs formats.UID) formats.UID {
	target := min(lastCommonUID+1, theirs)
	if own.FirstRecentUID == 0 || target <= own.FirstRecentUID {
		return 0
	}
	return target
}

// addFirstRecentRaise asks tx to raise first_recent_uid to uid at its
// Commit; a transaction of a store without formats.FirstRecentRaiser is
// left alone.
func addFirstRecentRaise(tx formats.Tx, uid formats.UID) error {
	if r, ok := tx.(formats.FirstRecentRaiser); ok && uid != 0 {
		return r.RaiseFirstRecentUID(uid)
	}
	return nil
}

// raiseFirstRecentOnly raises mb's first_recent_uid to uid (0: nothing)
// in a transaction of its own: a pair a fast sync skips, as its UIDNEXT,
// HIGHESTMODSEQ and message count agree, that differs in
// first_recent_uid is one dsync syncs (dsync_boxes_need_sync: "First
// RECENT UID changed", dsync.md §2.5), and all that merge changes is the
// raise.
func raiseFirstRecentOnly(ctx context.Context, op string, mb formats.Mailbox, uid formats.UID) error {
	if uid == 0 {
		return nil
	}
	tx, err := mb.Begin(ctx)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, op+": begin", mb.Name(), 0, "")
	}
	defer tx.Rollback()
	if err := addFirstRecentRaise(tx, uid); err != nil {
		return formats.Wrap(err, formats.KindTemp, op+": raise first recent UID", mb.Name(), 0, "")
	}
	return formats.Wrap(tx.Commit(ctx), formats.KindTemp, op+": commit", mb.Name(), 0, "")
}
