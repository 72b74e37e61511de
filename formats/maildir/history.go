package maildir

import (
	"context"
	"errors"
	"slices"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index"
)

var _ formats.ChangeHistory = (*mailbox)(nil)

// FlagChanges implements formats.ChangeHistory from the mailbox's
// dovecot.index.log. Flags changed in file names that the index does not
// have yet (a mail client renamed the file, dovecot-storage.md §6.5) are
// changes too: Dovecot's next sync would log them, so they are added on
// top of the logged ones. Without an index there is no history.
func (m *mailbox) FlagChanges(ctx context.Context, since formats.ModSeq, own bool) (map[formats.UID]formats.FlagChange, error) {
	st, err := m.load(ctx)
	if err != nil {
		return nil, err
	}
	ix, v, err := m.indexView(st)
	if err != nil || ix == nil {
		return nil, formats.Wrap(formats.ErrHistoryLost, formats.KindTemp, "maildir: changes", m.b.name, 0, m.s.indexDir(m.b))
	}
	out, err := ix.FlagChanges(since, own)
	if err != nil {
		return nil, formats.Wrap(err, formats.KindTemp, "maildir: changes", m.b.name, 0, "")
	}
	ms := m.modseqs(st)
	for i := range st.t.recs {
		r := &st.t.recs[i]
		_, im, ok := v.Lookup(r.uid)
		if !ok {
			continue // new to the index: an append, not a flag change
		}
		flags, kws := parseFlags(st.t.nameBytes(r))
		var fileKws []string
		for b := 0; b < maxKeywords; b++ {
			if kws&(1<<b) != 0 && st.kwNames[b] != "" {
				fileKws = append(fileKws, st.kwNames[b])
			}
		}
		cur := formats.Flags(im.Flags) & formats.SystemFlags
		add, rm := formats.Flags(flags)&^cur, cur&^formats.Flags(flags)
		var addK, rmK []string
		for _, k := range fileKws {
			if !slices.Contains(im.Keywords, k) {
				addK = append(addK, k)
			}
		}
		only := st.indexOnly(im.Keywords)
		for _, k := range im.Keywords {
			if !slices.Contains(fileKws, k) && !slices.Contains(only, k) {
				rmK = append(rmK, k)
			}
		}
		if add == 0 && rm == 0 && len(addK)+len(rmK) == 0 {
			continue
		}
		uid := formats.UID(r.uid)
		c := out[uid]
		c.Add, c.Remove = c.Add&^rm|add, c.Remove&^add|rm
		c.AddKeywords = append(slices.DeleteFunc(c.AddKeywords, func(k string) bool { return slices.Contains(rmK, k) }), addK...)
		c.RemoveKeywords = append(slices.DeleteFunc(c.RemoveKeywords, func(k string) bool { return slices.Contains(addK, k) }), rmK...)
		if ms.known && i < len(ms.per) {
			c.ModSeq = max(c.ModSeq, formats.ModSeq(ms.per[i]))
		}
		out[uid] = c
	}
	return out, nil
}

var _ formats.ExpungeHistory = (*mailbox)(nil)

// ExpungedSince implements formats.ExpungeHistory from the mailbox's
// dovecot.index.log. A mail the index still has but whose file is gone
// (removed behind Dovecot's back) is listed too, unrequested and without
// a GUID: Dovecot's next sync would log it so (mail_index_expunge,
// dovecot-storage.md §6.5). Without an index there is no history.
func (m *mailbox) ExpungedSince(ctx context.Context, since formats.ModSeq) (map[formats.UID]formats.ExpungeRecord, error) {
	st, err := m.load(ctx)
	if err != nil {
		return nil, err
	}
	ix, v, err := m.indexView(st)
	if err != nil || ix == nil {
		return nil, formats.Wrap(formats.ErrHistoryLost, formats.KindTemp, "maildir: expunges", m.b.name, 0, m.s.indexDir(m.b))
	}
	g, err := ix.ExpungedSince(uint64(since))
	if errors.Is(err, index.ErrHistoryLost) {
		err = formats.ErrHistoryLost
	}
	if err != nil {
		return nil, formats.Wrap(err, formats.KindTemp, "maildir: expunges", m.b.name, 0, m.s.indexDir(m.b))
	}
	out := make(map[formats.UID]formats.ExpungeRecord, len(g))
	for uid, c := range g {
		out[formats.UID(uid)] = formats.ExpungeRecord{GUID: c.GUID, Requested: c.Requested}
	}
	listed := make(map[uint32]bool, len(st.t.recs))
	for i := range st.t.recs {
		listed[st.t.recs[i].uid] = true
	}
	for _, im := range v.Messages() {
		if !listed[im.UID] {
			out[formats.UID(im.UID)] = formats.ExpungeRecord{}
		}
	}
	return out, nil
}
