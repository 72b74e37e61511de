package mdbox

import (
	"context"
	"errors"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index"
)

var _ formats.ChangeHistory = (*mailbox)(nil)

// FlagChanges implements formats.ChangeHistory from the mailbox's
// dovecot.index.log.
func (m *mailbox) FlagChanges(ctx context.Context, since formats.ModSeq, own bool) (map[formats.UID]formats.FlagChange, error) {
	out, err := m.ix.FlagChanges(since, own)
	return out, formats.Wrap(err, formats.KindTemp, "mdbox: changes", m.Name(), 0, "")
}

var _ formats.ExpungeHistory = (*mailbox)(nil)

// ExpungedSince implements formats.ExpungeHistory from the mailbox's
// dovecot.index.log.
func (m *mailbox) ExpungedSince(ctx context.Context, since formats.ModSeq) (map[formats.UID]formats.ExpungeRecord, error) {
	g, err := m.ix.ExpungedSince(uint64(since))
	if errors.Is(err, index.ErrHistoryLost) {
		err = formats.ErrHistoryLost
	}
	if err != nil {
		return nil, formats.Wrap(err, formats.KindTemp, "mdbox: expunges", m.Name(), 0, "")
	}
	out := make(map[formats.UID]formats.ExpungeRecord, len(g))
	for uid, c := range g {
		out[formats.UID(uid)] = formats.ExpungeRecord{GUID: c.GUID, Requested: c.Requested}
	}
	return out, nil
}
