package dboxtx

import (
	"context"
	"slices"
	"sort"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index"
)

// Status is the status of a mailbox with the given GUID as its index v
// has it. FirstRecentUID is the header's (index-status.c), at least 1:
// Dovecot writes no index with 0 (an index check calls it corrupt).
func Status(v *index.View, guid [16]byte, caps formats.Caps) formats.Status {
	return formats.Status{
		GUID:           guid,
		UIDValidity:    v.UIDValidity(),
		UIDNext:        formats.UID(v.NextUID()),
		HighestModSeq:  formats.ModSeq(v.HighestModSeq()),
		Messages:       v.Count(),
		FirstRecentUID: formats.UID(max(v.Header().FirstRecentUID, 1)),
		Caps:           caps,
	}
}

// List yields the messages of v with UID >= from. Each is what msg makes
// of message i from base, the message as the index alone has it (UID,
// modseq, flags, keywords, Recent; sizes -1). It stops, yielding the
// error, when ctx ends. Recent is UID >= the header's first_recent_uid:
// dovecot 2.3.19.1 sdbox-sync.c sdbox_sync_index and mdbox-sync.c mark
// those recent in the session that syncs them (and index-sync.c
// index_sync_update_recent_count in one that does not drop \Recent).
func List(ctx context.Context, v *index.View, from formats.UID, yield func(formats.Message, error) bool, msg func(i int, base formats.Message) formats.Message) {
	firstRecent := v.Header().FirstRecentUID
	start := sort.Search(v.Count(), func(i int) bool { return v.Message(i).UID >= uint32(from) })
	for i := start; i < v.Count(); i++ {
		if err := ctx.Err(); err != nil {
			yield(formats.Message{}, err)
			return
		}
		rec := v.Message(i)
		base := formats.Message{
			UID:      formats.UID(rec.UID),
			ModSeq:   formats.ModSeq(rec.ModSeq),
			Flags:    formats.Flags(rec.Flags) & formats.SystemFlags,
			Keywords: formats.NormalizeKeywords(slices.Clone(rec.Keywords)),
			Recent:   rec.UID >= firstRecent,
			Size:     -1,
			VSize:    -1,
		}
		if !yield(msg(i, base), nil) {
			return
		}
	}
}
