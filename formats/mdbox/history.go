package mdbox

import (
	"context"

	"github.com/boxsync/boxsync/formats"
)

var _ formats.ChangeHistory = (*mailbox)(nil)

// FlagChanges implements formats.ChangeHistory from the mailbox's
// dovecot.index.log.
func (m *mailbox) FlagChanges(ctx context.Context, since formats.ModSeq, own bool) (map[formats.UID]formats.FlagChange, error) {
	out, err := m.ix.FlagChanges(since, own)
	return out, formats.Wrap(err, formats.KindTemp, "mdbox: changes", m.Name(), 0, "")
}
