package dboxtx

import (
	"errors"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index"
)

// FlagChanges is formats.ChangeHistory from a dbox mailbox's
// dovecot.index.log (format is "sdbox" or "mdbox", for errors).
func FlagChanges(ix *index.Index, format, mailbox string, since formats.ModSeq, own bool) (map[formats.UID]formats.FlagChange, error) {
	out, err := ix.FlagChanges(since, own)
	return out, formats.Wrap(err, formats.KindTemp, format+": changes", mailbox, 0, "")
}

// ExpungedSince is formats.ExpungeHistory from a dbox mailbox's
// dovecot.index.log.
func ExpungedSince(ix *index.Index, format, mailbox string, since formats.ModSeq) (map[formats.UID]formats.ExpungeRecord, error) {
	g, err := ix.ExpungedSince(uint64(since))
	if errors.Is(err, index.ErrHistoryLost) {
		err = formats.ErrHistoryLost
	}
	if err != nil {
		return nil, formats.Wrap(err, formats.KindTemp, format+": expunges", mailbox, 0, "")
	}
	out := make(map[formats.UID]formats.ExpungeRecord, len(g))
	for uid, c := range g {
		out[formats.UID(uid)] = formats.ExpungeRecord{GUID: c.GUID, Requested: c.Requested}
	}
	return out, nil
}

// ExpungedGUIDs is formats.ExpungeLogger from a dbox mailbox's
// dovecot.index.log: the expunges it still records, by UID. nil, nil
// when the log no longer reaches back to the index's creation.
func ExpungedGUIDs(ix *index.Index) (map[formats.UID][16]byte, error) {
	g, err := ix.ExpungedGUIDs()
	if err != nil || g == nil {
		return nil, err
	}
	out := make(map[formats.UID][16]byte, len(g))
	for uid, guid := range g {
		out[formats.UID(uid)] = guid
	}
	return out, nil
}
