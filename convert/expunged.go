package convert

import (
	"context"

	"github.com/boxsync/boxsync/formats"
)

// expungedOn tells whether side s's transaction log records an expunge of
// msg's UID (ok), and whether its GUID is msg's (common): dsync's
// dsync_mailbox_find_common_expunged_uid (dsync.md §2.8a). A mail that
// s expunged after the last UID both sides still have is then expunged
// on the other side too, instead of coming back. Without GUIDs, or
// without a log (formats.ExpungeLogger), nothing is known.
func (m *merger) expungedOn(ctx context.Context, s *side, msg formats.Message) (common, ok bool, err error) {
	if !m.guids || msg.GUID == "" {
		return false, false, nil
	}
	if !s.expungedLoaded {
		s.expungedLoaded = true
		if el, isLogger := s.box.(formats.ExpungeLogger); isLogger {
			if s.expunged, err = el.ExpungedGUIDs(ctx); err != nil {
				return false, false, formats.Wrap(err, formats.KindTemp, m.r.opt.Mode.String()+": "+s.name+" expunge log", m.name, 0, "")
			}
		}
	}
	g, found := s.expunged[msg.UID]
	if !found {
		return false, false, nil
	}
	return g == formats.MessageGUID128(msg.GUID), true, nil
}
