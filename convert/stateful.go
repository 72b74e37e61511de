package convert

import (
	"context"
	"errors"
	"fmt"

	"github.com/boxsync/boxsync/convert/state"
	"github.com/boxsync/boxsync/formats"
)

// Stateful sync (dsync.md §2.5, §3.3, §3.4).
//
// With Options.State set, a run ends by printing a new state: the old one
// overlaid with an entry for every mailbox it synced (UIDVALIDITY, last
// common UID = UIDNEXT-1, last common modseq = HIGHESTMODSEQ, the
// source's message count; the minimum of both sides where they differ),
// without mailboxes the source no longer has. Mailboxes it skipped keep
// their old entries. A run with errors or a desync gives the mailboxes it
// synced no entry, so the next stateful run merges them from scratch.
//
// With Algorithm Stateful the old state is used:
//
//   - A mailbox is skipped when BOTH sides' status equals its entry
//     (UIDVALIDITY, UIDNEXT = last common UID+1, HIGHESTMODSEQ = last
//     common modseq, message count). QUIRK: dsync compares only the
//     master's (the source's) status, so a change made only on the
//     destination is missed by a stateful run (dsync.md §6); boxsync looks
//     at both, which works because a sync leaves both sides with the same
//     UIDNEXT and HIGHESTMODSEQ (formats.ModSeqRaiser). A side without
//     modseqs is never skipped: its flag changes would not show.
//   - A stale entry (a side's UIDNEXT below the last common UID, its
//     HIGHESTMODSEQ below the last common modseq, or that modseq no longer
//     in its transaction log, which is read only when flags differ) is
//     dsync's "Failed to do incremental sync":
//     a warning, the mailbox is left alone, the printed state is empty and
//     the run exits 2, so the caller runs a full sync.
//   - Otherwise the merge knows the common prefix: UIDs up to the last
//     common UID were the same mail on both sides, so one missing on a
//     side was expunged there (no guessing, unlike a stateless merge),
//     and flags merge per flag from each side's changes since the last
//     common modseq (flagmerge.go).
//
// QUIRK: a synced mailbox's messages are still all listed (metadata, not
// bodies): the contract lists by UID, not by modseq. The cost of a
// stateful run without changes is one listing of each tree (listing.go)
// and one Status per mailbox and side.
type stateRun struct {
	old     state.State             // immutable
	use     bool                    // Algorithm == Stateful: skip and merge from old
	synced  map[formats.GUID]string // guarded by run.mu: mailboxes synced, by GUID
	created map[string]bool         // guarded by run.mu: mailboxes this run created
	reset   bool                    // guarded by run.mu: a full resync is needed
}

// stateCreated notes a mailbox this run created on one side: it has no
// common history with the other side whatever the state says (it was
// deleted there and comes back, or was recreated), so its entry is not
// used.
func (r *run) stateCreated(name string) {
	if r.state != nil {
		r.update(func(*Result) { r.state.created[name] = true })
	}
}

// stateEntry returns the usable saved entry of a mailbox, if any.
func (r *run) stateEntry(st formats.Status) (state.Mailbox, bool) {
	if r.state == nil || !r.state.use {
		return state.Mailbox{}, false
	}
	e, ok := r.state.old[st.GUID]
	if !ok || e.UIDValidity != st.UIDValidity || e.UIDValidity == 0 {
		return state.Mailbox{}, false
	}
	return e, true
}

// stateCheck decides a mailbox's fate from the saved state: skip it
// (unchanged on both sides), leave it alone (stale: a full resync is
// needed), or merge it knowing the last common UID and modseq (0 when
// there is no entry).
func (r *run) stateCheck(name string, a, b formats.Status) (skip, stale bool, e state.Mailbox) {
	e, ok := r.stateEntry(a)
	var created bool
	if ok {
		r.update(func(*Result) { created = r.state.created[name] })
	}
	if !ok || created || b.GUID != a.GUID || b.UIDValidity != a.UIDValidity {
		return false, false, state.Mailbox{}
	}
	for _, s := range []formats.Status{a, b} {
		switch {
		case s.UIDNext < e.LastCommonUID:
			r.staleState(name, fmt.Sprintf("uidnext %d < %d", s.UIDNext, e.LastCommonUID))
			return false, true, e
		case s.Caps.ModSeqs && s.HighestModSeq < e.LastCommonModSeq:
			r.staleState(name, fmt.Sprintf("highest_modseq %d < %d", s.HighestModSeq, e.LastCommonModSeq))
			return false, true, e
		}
	}
	skip = true
	for _, s := range []formats.Status{a, b} {
		skip = skip && s.Caps.ModSeqs && s.HighestModSeq != 0 &&
			s.UIDNext == e.LastCommonUID+1 && s.HighestModSeq == e.LastCommonModSeq &&
			s.Messages == int(e.MessagesCount)
	}
	return skip, false, e
}

// staleState records a stale entry as dsync does (dsync.md §2.12
// require_full_resync).
func (r *run) staleState(name, why string) {
	r.warnf("Failed to do incremental sync for mailbox %s, retry with a full sync (%s)", name, why)
	r.update(func(*Result) { r.state.reset = true })
	r.desync("mailbox %q: the sync state is stale; run a full sync", name)
}

// stateSynced notes that a mailbox was synced: its entry is renewed at
// the end of the run.
func (r *run) stateSynced(name string, guid formats.GUID) {
	if r.state == nil || guid.IsZero() {
		return
	}
	r.update(func(*Result) { r.state.synced[guid] = name })
}

// histories reads both sides' flag changes since modseq (ChangeHistory);
// a side without history gets nil, which merges as "no changes" (dsync's
// rule where the log tells nothing). With a saved entry (modseq > 0) a
// lost history makes the entry stale, and changes written by syncs count
// too: after the last common modseq they came from a third store (A↔B,
// B↔C replication), and are changes as far as this pair is concerned.
// QUIRK: dsync's log scan leaves out every SYNC-flagged record, so such a
// flag is dropped when the other side changed the same message
// (TestInteropFlagMergeChain); boxsync keeps both. Without a state the
// whole history counts and syncs' own writes are left out, as in dsync.
func (r *run) histories(ctx context.Context, name string, since formats.ModSeq, sides ...*side) (stale bool, hist []map[formats.UID]formats.FlagChange, err error) {
	hist = make([]map[formats.UID]formats.FlagChange, len(sides))
	for i, s := range sides {
		h, ok := s.box.(formats.ChangeHistory)
		if !ok || !s.st.Caps.ModSeqs {
			continue
		}
		ch, err := h.FlagChanges(ctx, since, since > 0)
		switch {
		case errors.Is(err, formats.ErrHistoryLost) && since > 0:
			r.staleState(name, fmt.Sprintf("modseq %d no longer in the %s's transaction log", since, s.name))
			return true, nil, nil
		case errors.Is(err, formats.ErrHistoryLost):
			continue
		case err != nil:
			return false, nil, formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": "+s.name+" changes", name, 0, "")
		}
		hist[i] = ch
	}
	return false, hist, nil
}

// finishState computes the state the run prints.
func (r *run) finishState(ctx context.Context) (string, error) {
	if r.state.reset {
		return "", nil // dsync prints an empty line: run a full sync
	}
	boxes, err := r.mailboxes(ctx, srcIdx)
	if err != nil {
		return "", formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": list source mailboxes", "", 0, "")
	}
	exists := map[formats.GUID]bool{}
	for _, b := range boxes {
		if !b.NoSelect {
			exists[b.GUID] = true
		}
	}
	out := state.State{}
	for g, e := range r.state.old {
		if exists[g] {
			out[g] = e
		}
	}
	clean := r.res.Desync == "" && len(r.res.Errors) == 0
	for g, name := range r.state.synced {
		delete(out, g)
		if !clean || !exists[g] {
			continue
		}
		e, ok, err := r.entryNow(ctx, name, g)
		if err != nil {
			return "", err
		}
		if ok {
			out[g] = e
		}
	}
	return state.Encode(out), nil
}

// entryNow reads a synced mailbox's entry from both sides' status.
func (r *run) entryNow(ctx context.Context, name string, guid formats.GUID) (state.Mailbox, bool, error) {
	var sts [2]formats.Status
	for i, s := range []formats.Store{r.src, r.dst} {
		mb, err := s.Open(ctx, name)
		if err != nil {
			return state.Mailbox{}, false, formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": open for the sync state", name, 0, "")
		}
		sts[i], err = mb.Status(ctx)
		mb.Close()
		if err != nil {
			return state.Mailbox{}, false, formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": status for the sync state", name, 0, "")
		}
	}
	a, b := sts[0], sts[1]
	if a.GUID != guid || b.GUID != guid || a.UIDValidity != b.UIDValidity || a.UIDNext == 0 || b.UIDNext == 0 {
		return state.Mailbox{}, false, nil
	}
	return state.Mailbox{
		UIDValidity:      a.UIDValidity,
		LastCommonUID:    min(a.UIDNext, b.UIDNext) - 1,
		LastCommonModSeq: min(a.HighestModSeq, b.HighestModSeq),
		MessagesCount:    uint32(a.Messages),
	}, true, nil
}

// stateCommon is the common prefix a saved state gives (dsync.md §2.8a is
// skipped when the state knows it): every UID up to the last common UID
// was the same mail on both sides, so one side's mail the other lacks was
// expunged there. known is false without a state, or when a UID up to it
// holds different mail on the two sides (the state does not describe
// these stores: the walk decides instead, and the run is a desync).
func (m *merger) stateCommon(ctx context.Context) (last formats.UID, known bool, err error) {
	lcu := m.lastCommonUID
	if lcu == 0 {
		return 0, false, nil
	}
	a, b := m.a, m.b
	var common [][2]int
	var expA, expB []int
	i, j := 0, 0
	for (i < len(a.msgs) && a.msgs[i].UID <= lcu) || (j < len(b.msgs) && b.msgs[j].UID <= lcu) {
		inA := i < len(a.msgs) && a.msgs[i].UID <= lcu
		inB := j < len(b.msgs) && b.msgs[j].UID <= lcu
		switch {
		case inA && inB && a.msgs[i].UID == b.msgs[j].UID:
			same, err := m.same(ctx, a.msgs[i], b.msgs[j])
			if err != nil {
				return 0, false, err
			}
			if !same {
				m.r.desync("mailbox %q: UID %d is different mail on the two sides, unlike the sync state says", m.name, a.msgs[i].UID)
				return 0, false, nil
			}
			common = append(common, [2]int{i, j})
			i++
			j++
		case inA && (!inB || a.msgs[i].UID < b.msgs[j].UID):
			expA = append(expA, i) // the destination expunged it
			i++
		default:
			expB = append(expB, j) // the source expunged it
			j++
		}
	}
	m.common, m.expA, m.expB = common, expA, expB
	return lcu, true, nil
}
