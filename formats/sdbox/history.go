package sdbox

import (
	"context"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtx"
)

var (
	_ formats.ChangeHistory  = (*mailbox)(nil)
	_ formats.ExpungeHistory = (*mailbox)(nil)
)

// FlagChanges implements formats.ChangeHistory from the mailbox's
// dovecot.index.log.
func (m *mailbox) FlagChanges(ctx context.Context, since formats.ModSeq, own bool) (map[formats.UID]formats.FlagChange, error) {
	return dboxtx.FlagChanges(m.ix, "sdbox", m.Name(), since, own)
}

// ExpungedSince implements formats.ExpungeHistory from the mailbox's
// dovecot.index.log.
func (m *mailbox) ExpungedSince(ctx context.Context, since formats.ModSeq) (map[formats.UID]formats.ExpungeRecord, error) {
	return dboxtx.ExpungedSince(m.ix, "sdbox", m.Name(), since)
}
