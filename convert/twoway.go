package convert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/imapc/hdrhash"
)

// Two-way merge (Sync, doveadm sync) and one-way merge (OneWay, doveadm
// sync -1): without a state string (stateful.go) every run is dsync's full
// algorithm, and without dovecot.mailbox.log (dsync.md §2.4, §2.8).
//
// Tree (§2.4): with a mailbox changes log on both sides, Sync first
// applies the deletes and renames it records (tree.go). Then mailboxes are
// matched by name. A mailbox missing on one side is created there with the
// other's GUID and UIDVALIDITY (OneWay: only on the destination). QUIRK:
// without the log (imapc, mbox) deletes cannot be told from "never
// existed", so nothing is deleted: a mailbox deleted on one side comes
// back, as it does with dsync when the log is gone; and a renamed mailbox
// ends up under both names. OneWay never deletes or renames. Subscriptions
// follow their logged times (tree.go), else they are a union (OneWay: the
// destination only gains subscriptions).
//
// Same name, different mailbox GUID or UIDVALIDITY (§2.4 step 5, §2.5):
// UIDs do not compare, so the mail is merged by content. QUIRK: dsync adopts the
// byte-wise greater GUID; the contract cannot change a mailbox's GUID, so
// the winner (greater GUID; for a UIDVALIDITY-only conflict the side with
// more messages, then the higher UIDVALIDITY) first receives the loser's
// mail it lacks under fresh UIDs, then the loser is deleted and recreated
// with the winner's GUID and UIDVALIDITY and filled from it. A GUID
// conflict is reported as a desync (exit 2), as dsync's first run is.
// OneWay never deletes a mailbox: the destination keeps its GUID and
// UIDVALIDITY and only receives the source's mail it lacks.
//
// Messages (§2.8): see merger. Unlike backup's streaming merge-join, a
// merge holds both sides' message metadata (never bodies) for each
// mailbox in flight, since the new-mail plan links mail across the whole
// list; bodies are streamed from Body into Tx.Save.

// twoWay runs Sync and OneWay.
func (r *run) twoWay(ctx context.Context) error {
	oneWay := r.opt.Mode == OneWay
	logs := r.treeLogs()
	if logs {
		if err := r.syncTreeChanges(ctx); err != nil {
			return err
		}
	}
	if r.oneWayRenames() {
		if err := r.applyRenames(ctx, nil, nil); err != nil {
			return err
		}
	}
	srcBoxes, err := r.mailboxes(ctx, srcIdx)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": list source mailboxes", "", 0, "")
	}
	dstBoxes, err := r.mailboxes(ctx, dstIdx)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": list destination mailboxes", "", 0, "")
	}
	srcByName := map[string]formats.MailboxInfo{}
	dstByName := map[string]formats.MailboxInfo{}
	srcGUIDs := map[formats.GUID]bool{}
	dstGUIDs := map[formats.GUID]bool{}
	var names []string
	for _, b := range srcBoxes {
		srcByName[b.Name] = b
		srcGUIDs[b.GUID] = true
		names = append(names, b.Name)
	}
	for _, b := range dstBoxes {
		dstByName[b.Name] = b
		dstGUIDs[b.GUID] = true
		if _, ok := srcByName[b.Name]; !ok {
			names = append(names, b.Name)
		}
	}
	sort.Strings(names)

	// Creates, in name order so parents come first.
	var work []string
	for _, name := range names {
		if !r.wanted(name) {
			continue
		}
		s, d := srcByName[name], dstByName[name]
		sSel, dSel := s.Name != "" && !s.NoSelect, d.Name != "" && !d.NoSelect
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case sSel && !dSel:
			if err := r.createLike(ctx, srcIdx, dstIdx, name, dstGUIDs); err != nil {
				r.fail(err)
				continue
			}
		case dSel && !sSel:
			if oneWay {
				continue // the source is read-only: nothing to merge
			}
			if err := r.createLike(ctx, dstIdx, srcIdx, name, srcGUIDs); err != nil {
				r.fail(err)
				continue
			}
		case !sSel && !dSel:
			continue
		}
		work = append(work, name)
	}

	if err := r.forEachMailbox(ctx, work, r.mergeMailbox); err != nil {
		return err
	}

	if logs {
		return r.syncTreeFinish(ctx)
	}
	// Subscriptions: a union; OneWay only adds on the destination.
	for _, name := range names {
		if !r.wanted(name) {
			continue
		}
		s, d := srcByName[name], dstByName[name]
		if s.Subscribed && !d.Subscribed {
			err := r.dst.SetSubscribed(ctx, name, true)
			r.treeChanged(dstIdx)
			if err != nil {
				r.fail(formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": subscribe", name, 0, ""))
			}
		}
		if d.Subscribed && !s.Subscribed && !oneWay {
			err := r.src.SetSubscribed(ctx, name, true)
			r.treeChanged(srcIdx)
			if err != nil {
				r.fail(formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": subscribe", name, 0, ""))
			}
		}
	}
	return nil
}

// createLike creates name in to with from's GUID and UIDVALIDITY; a GUID
// already used in to by another mailbox is not repeated (the driver then
// picks one), since GUIDs must be unique within a tree.
func (r *run) createLike(ctx context.Context, fromIdx, toIdx int, name string, toGUIDs map[formats.GUID]bool) error {
	mb, err := r.store(fromIdx).Open(ctx, name)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": open", name, 0, "")
	}
	st, err := mb.Status(ctx)
	mb.Close()
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": status", name, 0, "")
	}
	guid := st.GUID
	if toGUIDs[guid] {
		guid = formats.GUID{}
	}
	r.logf("%s: creating", name)
	err = r.store(toIdx).Create(ctx, name, guid, st.UIDValidity)
	r.treeChanged(toIdx)
	if err != nil && !errors.Is(err, formats.ErrExists) {
		return formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": create", name, 0, "")
	}
	r.update(func(res *Result) { res.Mailboxes.Created++ })
	r.stateCreated(name)
	return nil
}

// forEachMailbox runs fn on each name with the run's workers.
func (r *run) forEachMailbox(ctx context.Context, names []string, fn func(context.Context, string) error) error {
	workers := r.opt.Workers
	if workers <= 0 {
		// At least 3 even with fewer CPUs: a merge mostly waits on
		// its commits' fsyncs, which overlap across mailboxes (one
		// journal commit serves several), so a third mailbox in
		// flight shortens an incremental sync on 2 CPUs while its
		// metadata costs about 0.5 MB (issue 6: speed and memory).
		workers = max(min(runtime.GOMAXPROCS(0), 4), 3)
	}
	r.progress(func(l *liveProgress) { l.mailboxes = len(names) })
	work := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				if err := fn(ctx, name); err != nil && ctx.Err() == nil {
					r.fail(err)
				}
			}
		}()
	}
feed:
	for _, name := range names {
		select {
		case work <- name:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return ctx.Err()
}

// side is one mailbox of a merged pair.
type side struct {
	name   string // "source" or "destination"
	idx    int    // srcIdx or dstIdx: r.store(idx) is the side's store
	box    formats.Mailbox
	st     formats.Status
	msgs   []formats.Message
	hashes map[formats.UID]string
	write  bool // false for the OneWay source

	expunged       map[formats.UID][16]byte // the side's logged expunges (formats.ExpungeLogger)
	expungedLoaded bool

	tx           formats.Tx
	pending      int
	pendingBytes int64
	errs         int
	closed       bool
}

func (s *side) close() {
	if !s.closed {
		s.closed = true
		s.box.Close()
	}
}

func (r *run) mergeMailbox(ctx context.Context, name string) error {
	op := r.opt.Mode.String()
	for attempt := 0; ; attempt++ {
		a, b, err := r.openPair(ctx, name)
		if err != nil {
			return err
		}
		again, err := r.mergeOpen(ctx, a, b, attempt)
		a.close()
		b.close()
		if err != nil || !again {
			return err
		}
		if attempt > 0 {
			return formats.Errorf(formats.KindTemp, "%s: mailbox %q still conflicts after recreating it", op, name)
		}
	}
}

func (r *run) openPair(ctx context.Context, name string) (*side, *side, error) {
	op := r.opt.Mode.String()
	a := &side{name: "source", idx: srcIdx, write: r.opt.Mode == Sync, hashes: map[formats.UID]string{}}
	b := &side{name: "destination", idx: dstIdx, write: true, hashes: map[formats.UID]string{}}
	var err error
	if a.box, err = r.src.Open(ctx, name); err != nil {
		return nil, nil, formats.Wrap(err, formats.KindTemp, op+": open source", name, 0, "")
	}
	if b.box, err = r.dst.Open(ctx, name); err != nil {
		a.box.Close()
		return nil, nil, formats.Wrap(err, formats.KindTemp, op+": open destination", name, 0, "")
	}
	// Both sides at once: each may wait on its file system (a Maildir
	// records new mail's UIDs and fsyncs them), and they are separate
	// stores.
	errs := bothSides(a, b, func(s *side) (err error) {
		s.st, err = s.box.Status(ctx)
		return err
	})
	for i, s := range []*side{a, b} {
		if errs[i] != nil {
			a.box.Close()
			b.box.Close()
			return nil, nil, formats.Wrap(errs[i], formats.KindTemp, op+": "+s.name+" status", name, 0, "")
		}
	}
	return a, b, nil
}

// bothSides runs fn on a in a goroutine and on b in this one, and
// returns their errors.
func bothSides(a, b *side, fn func(*side) error) [2]error {
	var errs [2]error
	done := make(chan struct{})
	go func() {
		defer close(done)
		errs[0] = fn(a)
	}()
	errs[1] = fn(b)
	<-done
	return errs
}

// mergeOpen merges one opened pair; again asks for a fresh pass after a
// conflicting mailbox was recreated.
func (r *run) mergeOpen(ctx context.Context, a, b *side, attempt int) (again bool, err error) {
	name := a.box.Name()
	conflict := a.st.GUID != b.st.GUID && !a.st.GUID.IsZero() && !b.st.GUID.IsZero()
	if conflict || a.st.UIDValidity != b.st.UIDValidity {
		return r.mergeConflict(ctx, a, b, conflict)
	}
	skip, stale, saved := r.stateCheck(name, a.st, b.st)
	if skip {
		r.update(func(res *Result) { res.Mailboxes.Skipped++ })
	}
	if skip || stale {
		return false, nil
	}
	r.stateSynced(name, a.st.GUID)
	if r.opt.Algorithm == Fast && a.st.Caps.ModSeqs && b.st.Caps.ModSeqs && a.st.HighestModSeq != 0 &&
		a.st.UIDNext == b.st.UIDNext && a.st.HighestModSeq == b.st.HighestModSeq && a.st.Messages == b.st.Messages {
		r.update(func(res *Result) { res.Mailboxes.Skipped++ })
		for _, s := range []*side{a, b} {
			if !s.write {
				continue
			}
			other := otherSide(a, b, s)
			if err := raiseFirstRecentOnly(ctx, r.opt.Mode.String(), s.box, firstRecentRaise(s.st, s.st.UIDNext-1, other.st.FirstRecentUID)); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	r.logf("%s: merging (%d/%d messages, UIDNEXT %d/%d)", name, a.st.Messages, b.st.Messages, a.st.UIDNext, b.st.UIDNext)
	for _, err := range bothSides(a, b, func(s *side) error { return r.load(ctx, s) }) {
		if err != nil {
			return false, err
		}
	}
	m := &merger{r: r, name: name, a: a, b: b, guids: a.st.Caps.GUIDs && b.st.Caps.GUIDs && a.st.Caps.SaveGUIDs && b.st.Caps.SaveGUIDs,
		lastCommonUID: saved.LastCommonUID}
	defer m.rollback()
	if err := m.plan(ctx); err != nil {
		return false, err
	}
	if m.flagsDiffer() {
		// Only a pair whose flags differ needs the change history.
		stale, hist, err := r.histories(ctx, name, saved.LastCommonModSeq, a, b)
		if stale || err != nil {
			return false, err
		}
		m.histA, m.histB = hist[0], hist[1]
	}
	if err := m.apply(ctx); err != nil {
		return false, err
	}
	r.update(func(res *Result) {
		res.Mailboxes.Synced++
		res.Messages.Saved += m.counts.Saved
		res.Messages.Expunged += m.counts.Expunged
		res.Messages.FlagsChanged += m.counts.FlagsChanged
		res.Bytes += m.bytes
	})
	var after [2]formats.Status
	for i, s := range []*side{a, b} {
		st, err := s.box.Status(ctx)
		if err != nil {
			return false, formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": "+s.name+" status", name, 0, "")
		}
		after[i] = st
		if s.write && s.errs == 0 && st.UIDNext < m.uidNext {
			r.desync("mailbox %q: %s UIDNEXT %d did not reach %d", name, s.name, st.UIDNext, m.uidNext)
		}
	}
	// Both sides end with the same HIGHESTMODSEQ (dsync.md §2.8e), so
	// a change made after this run has a higher modseq than any copy
	// on the other side and wins the next flag merge (§2.8b), and an
	// unchanged pair compares equal for a fast sync (§3.2).
	hms := max(after[0].HighestModSeq, after[1].HighestModSeq)
	for i, s := range []*side{a, b} {
		if !s.write || s.errs > 0 || !after[i].Caps.ModSeqs || after[i].HighestModSeq >= hms {
			continue
		}
		if err := m.begin(ctx, s); err != nil {
			return false, err
		}
		raiser, ok := s.tx.(formats.ModSeqRaiser)
		if !ok {
			m.rollback()
			continue
		}
		if err := raiser.RaiseHighestModSeq(hms); err != nil {
			return false, formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": raise HIGHESTMODSEQ", name, 0, "")
		}
		if err := m.commit(ctx, s); err != nil {
			return false, err
		}
	}
	return false, nil
}

// load lists s's messages. Without a date filter (-t/-e) the dates are
// needed only for the mail a merge copies: a store that lists faster
// without them (formats.LazyDates) leaves them zero, and save asks for
// them.
func (r *run) load(ctx context.Context, s *side) error {
	s.msgs = s.msgs[:0]
	list := s.box.Messages
	if ld, ok := s.box.(formats.LazyDates); ok && r.opt.Since.IsZero() && r.opt.Until.IsZero() {
		list = ld.MessagesWithoutDates
	}
	for msg, err := range list(ctx, 1) {
		if err != nil {
			return formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": list "+s.name, s.box.Name(), 0, "")
		}
		s.msgs = append(s.msgs, msg)
	}
	return nil
}

// hash is the message's dsync hdr_hash v3 plus its size: the identity
// used when GUIDs cannot decide (dsync.md §2.9).
func (r *run) hash(ctx context.Context, s *side, msg formats.Message) (string, error) {
	if h, ok := s.hashes[msg.UID]; ok {
		return h, nil
	}
	var h string
	err := s.box.Body(ctx, msg.UID, func(b formats.Body) error {
		v, err := hdrhash.V3(b, hdrhash.DefaultHeaders)
		h = v + "/" + strconv.FormatInt(b.Size(), 10)
		return err
	})
	if err != nil {
		return "", formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": header hash", s.box.Name(), msg.UID, "")
	}
	s.hashes[msg.UID] = h
	return h, nil
}

// mergeConflict handles a pair whose UIDs do not compare (different
// mailbox GUIDs or UIDVALIDITY): mail is merged by content into the
// winner, and in Sync the loser is then recreated from it.
func (r *run) mergeConflict(ctx context.Context, a, b *side, guidConflict bool) (bool, error) {
	name := a.box.Name()
	op := r.opt.Mode.String()
	win, lose := a, b
	switch {
	case r.opt.Mode == OneWay:
		win, lose = b, a
	case guidConflict:
		if bytes.Compare(b.st.GUID[:], a.st.GUID[:]) > 0 {
			win, lose = b, a
		}
	case b.st.Messages > a.st.Messages || (b.st.Messages == a.st.Messages && b.st.UIDValidity > a.st.UIDValidity):
		win, lose = b, a
	}
	conflictDesc := fmt.Sprintf("GUID/UIDVALIDITY conflict (%s has %s/%d, %s has %s/%d)",
		a.name, a.st.GUID, a.st.UIDValidity, b.name, b.st.GUID, b.st.UIDValidity)
	r.warnf("mailbox '%s': %s GUID=%s UIDVALIDITY=%d conflicts with %s GUID=%s UIDVALIDITY=%d; merging into the %s",
		name, a.name, a.st.GUID, a.st.UIDValidity, b.name, b.st.GUID, b.st.UIDValidity, win.name)
	for _, s := range []*side{a, b} {
		if err := r.load(ctx, s); err != nil {
			return false, err
		}
	}
	guids := a.st.Caps.GUIDs && b.st.Caps.GUIDs && a.st.Caps.SaveGUIDs && b.st.Caps.SaveGUIDs
	m := &merger{r: r, name: name, a: a, b: b, guids: guids, conflict: true}
	defer m.rollback()
	have := map[string]int{}
	for _, msg := range win.msgs {
		k, err := m.key(ctx, win, msg)
		if err != nil {
			return false, err
		}
		have[k]++
	}
	next := max(win.st.UIDNext, 1)
	for _, msg := range lose.msgs {
		k, err := m.key(ctx, lose, msg)
		if err != nil {
			return false, err
		}
		if have[k] > 0 {
			have[k]--
			continue
		}
		if _, err := m.save(ctx, win, lose, msg, next, msg.Flags, msg.Keywords, true); err != nil {
			return false, err
		}
		next++
	}
	if err := m.finish(ctx, win, next); err != nil {
		return false, err
	}
	r.update(func(res *Result) {
		res.Messages.Saved += m.counts.Saved
		res.Bytes += m.bytes
	})
	if r.opt.Mode == OneWay || lose.errs > 0 || win.errs > 0 {
		// The destination of sync -1 keeps its own GUID: a run that
		// had to copy mail by content reports it (exit 2); one that
		// found everything there is clean.
		if m.counts.Saved > 0 {
			r.desync("mailbox %q: %s; mail merged by content", name, conflictDesc)
		}
		r.update(func(res *Result) { res.Mailboxes.Synced++ })
		return false, nil
	}
	// The loser takes the winner's GUID and UIDVALIDITY by being
	// recreated; everything it had is in the winner now. INBOX can't be
	// deleted (nor can a GUID be used twice in a tree): then the loser
	// keeps its identity and receives the winner's mail by content, so
	// both hold the same mail under their own UIDs (exit 2 every run).
	loseIdx := dstIdx
	if lose == a {
		loseIdx = srcIdx
	}
	loseStore := r.store(loseIdx)
	boxes, err := r.mailboxes(ctx, loseIdx)
	if err != nil {
		return false, formats.Wrap(err, formats.KindTemp, op+": list mailboxes", name, 0, "")
	}
	recreate := !formats.IsInbox(name)
	for _, info := range boxes {
		if info.GUID == win.st.GUID && info.Name != name {
			recreate = false
		}
	}
	if recreate {
		m.rollback()
		lose.close()
		r.warnf("Deleting mailbox '%s' on the %s to recreate it with GUID=%s UIDVALIDITY=%d", name, lose.name, win.st.GUID, win.st.UIDValidity)
		err := loseStore.Delete(ctx, name)
		if err == nil {
			err = loseStore.Create(ctx, name, win.st.GUID, win.st.UIDValidity)
			if err != nil {
				err = &recreateErr{err}
			}
		}
		r.treeChanged(loseIdx)
		var rerr *recreateErr
		switch {
		case errors.As(err, &rerr):
			r.update(func(res *Result) { res.Mailboxes.Deleted++ })
			return false, formats.Wrap(rerr.err, formats.KindTemp, op+": recreate", name, 0, "")
		case err == nil:
			r.desync("mailbox %q: %s; recreated on the %s", name, conflictDesc, lose.name)
			r.update(func(res *Result) { res.Mailboxes.Deleted++; res.Mailboxes.Created++ })
			return true, nil
		case formats.KindOf(err) != formats.KindNotPossible:
			return false, formats.Wrap(err, formats.KindTemp, op+": delete to recreate", name, 0, "")
		}
		if lose.box, err = loseStore.Open(ctx, name); err != nil {
			return false, formats.Wrap(err, formats.KindTemp, op+": reopen", name, 0, "")
		}
		lose.closed = false
	}
	m2 := &merger{r: r, name: name, a: a, b: b, guids: guids, conflict: true}
	defer m2.rollback()
	have = map[string]int{}
	for _, msg := range lose.msgs {
		k, err := m2.key(ctx, lose, msg)
		if err != nil {
			return false, err
		}
		have[k]++
	}
	next = max(lose.st.UIDNext, 1)
	for _, msg := range win.msgs {
		k, err := m2.key(ctx, win, msg)
		if err != nil {
			return false, err
		}
		if have[k] > 0 {
			have[k]--
			continue
		}
		if _, err := m2.save(ctx, lose, win, msg, next, msg.Flags, msg.Keywords, true); err != nil {
			return false, err
		}
		next++
	}
	if err := m2.finish(ctx, lose, next); err != nil {
		return false, err
	}
	if m.counts.Saved+m2.counts.Saved > 0 {
		r.desync("mailbox %q: %s can't be settled (INBOX is never deleted); mail merged by content", name, conflictDesc)
	}
	r.update(func(res *Result) {
		res.Mailboxes.Synced++
		res.Messages.Saved += m2.counts.Saved
		res.Bytes += m2.bytes
	})
	return false, nil
}

type recreateErr struct{ err error }

func (e *recreateErr) Error() string { return e.err.Error() }

// merger plans and applies one mailbox's merge.
//
// The plan is dsync's stateless import (dsync.md §2.8), computed once for
// both sides so they agree:
//
//   - Common prefix (§2.8a): both lists are walked in UID order. The same
//     mail at the same UID (equal GUIDs, or equal header hash and size when
//     GUIDs cannot decide) is common. A mail one side lacks below that
//     side's UIDNEXT is a "maybe expunge" (the side had the UID, so it
//     expunged it: this is how stateless dsync propagates expunges); the
//     walk ends at a different mail at the same UID or at a mail the other
//     side lacks at or above its UIDNEXT. Maybe-expunges at or below the
//     last common UID are expunged. As in dsync, a mail one side lacks
//     whose UID that side's transaction log records as expunged with the
//     same GUID (formats.ExpungeLogger) counts as common, so an expunge
//     after the last UID both still have is carried over too; another
//     GUID there ends the walk. Without such a log the mail comes back
//     under a new UID (nothing is dropped on a guess).
//   - Old mails (§2.8b): flags and keywords merge per flag from each
//     side's change history (flagmerge.go); conflicts go to the higher
//     modseq, the source's on a tie; a side without history counts as
//     unchanged. With a saved state the common prefix is known
//     (stateful.go) and the walk below is skipped.
//   - New mails (§2.8c, UIDs above the last common one) from both sides
//     are merged in UID order; the same mail at the same UID is one entry,
//     the same mail at different UIDs is linked into one entry. A mail
//     keeps its UID if the other side's UIDNEXT is at or below it (for a
//     linked pair the lower usable UID); all others get new UIDs from
//     max(UIDNEXT) upward in list order, on both sides: a side's copy
//     under an old UID is saved again under the new one and expunged.
//     QUIRK: list order is UID, then GUID/hash, so sync(A,B) and
//     sync(B,A) agree; dsync orders equal UIDs by its own list position.
//   - OneWay applies the same plan to the destination only: mail the
//     source expunged goes there too, as doveadm sync -1 does (checked by
//     TestInteropSyncDifferential), while the destination's own new mail
//     is never a maybe-expunge (it lies at or above the source's UIDNEXT
//     or conflicts, and is renumbered, never dropped).
//   - Both sides' UIDNEXT is raised to the maximum.
type merger struct {
	r     *run
	name  string
	a, b  *side
	guids bool
	// lastCommonUID is the saved state's (stateful.go), 0 without one.
	lastCommonUID formats.UID
	// conflict: the sides' mailbox GUIDs or UIDVALIDITY differ
	// (mergeConflict), so their UIDs do not correspond and neither
	// side's first_recent_uid says anything about the other's mail.
	conflict bool
	// histA and histB are each side's flag changes since the saved
	// last common modseq (since 0 without a state); nil when the side
	// keeps no history.
	histA, histB map[formats.UID]formats.FlagChange

	common  [][2]int // indices into a.msgs, b.msgs
	expA    []int    // maybe-expunges to carry out
	expB    []int
	entries []*entry
	uidNext formats.UID

	counts struct{ Saved, Expunged, FlagsChanged int }
	bytes  int64
}

type entry struct {
	ai, bi int // -1 when the side lacks the mail
	key    string
	low    formats.UID
	final  formats.UID
}

// key identifies a message across the pair.
func (m *merger) key(ctx context.Context, s *side, msg formats.Message) (string, error) {
	if m.guids && msg.GUID != "" {
		return "g" + msg.GUID, nil
	}
	h, err := m.r.hash(ctx, s, msg)
	return "h" + h, err
}

func (m *merger) same(ctx context.Context, x, y formats.Message) (bool, error) {
	if m.guids && x.GUID != "" && y.GUID != "" {
		return x.GUID == y.GUID, nil
	}
	if x.Size >= 0 && y.Size >= 0 && x.Size != y.Size {
		return false, nil
	}
	kx, err := m.r.hash(ctx, m.a, x)
	if err != nil {
		return false, err
	}
	ky, err := m.r.hash(ctx, m.b, y)
	return kx == ky, err
}

func (m *merger) plan(ctx context.Context) error {
	a, b := m.a, m.b
	// (a) the common prefix
	lastCommonUID, known, err := m.stateCommon(ctx)
	if err != nil {
		return err
	}
	var maybeA, maybeB []int
	i, j := 0, 0
	if known {
		i, j = len(a.msgs), len(b.msgs) // no walk
	}
walk:
	for i < len(a.msgs) || j < len(b.msgs) {
		switch {
		case i < len(a.msgs) && j < len(b.msgs) && a.msgs[i].UID == b.msgs[j].UID:
			same, err := m.same(ctx, a.msgs[i], b.msgs[j])
			if err != nil {
				return err
			}
			if !same {
				break walk
			}
			lastCommonUID = a.msgs[i].UID
			m.common = append(m.common, [2]int{i, j})
			i++
			j++
		case j >= len(b.msgs) || (i < len(a.msgs) && a.msgs[i].UID < b.msgs[j].UID):
			if a.msgs[i].UID >= b.st.UIDNext {
				// A filtered mail (-t/-e/-I/-O) is invisible to the
				// other side's import: it does not end the walk.
				if want, err := m.want(ctx, a, a.msgs[i]); err != nil || want {
					if err != nil {
						return err
					}
					break walk
				}
			}
			// dsync looks the UID up in the other side's log of
			// expunges: the same GUID there makes it common (an
			// expunge to carry over), another GUID ends the walk.
			if common, ok, err := m.expungedOn(ctx, b, a.msgs[i]); err != nil {
				return err
			} else if ok && !common {
				break walk
			} else if ok {
				lastCommonUID = a.msgs[i].UID
			}
			maybeA = append(maybeA, i)
			i++
		default:
			if b.msgs[j].UID >= a.st.UIDNext {
				if want, err := m.want(ctx, b, b.msgs[j]); err != nil || want {
					if err != nil {
						return err
					}
					break walk
				}
			}
			if common, ok, err := m.expungedOn(ctx, a, b.msgs[j]); err != nil {
				return err
			} else if ok && !common {
				break walk
			} else if ok {
				lastCommonUID = b.msgs[j].UID
			}
			maybeB = append(maybeB, j)
			j++
		}
	}
	for _, k := range maybeA {
		if a.msgs[k].UID <= lastCommonUID {
			m.expA = append(m.expA, k)
		}
	}
	for _, k := range maybeB {
		if b.msgs[k].UID <= lastCommonUID {
			m.expB = append(m.expB, k)
		}
	}

	// (c) new mails
	i = sort.Search(len(a.msgs), func(k int) bool { return a.msgs[k].UID > lastCommonUID })
	j = sort.Search(len(b.msgs), func(k int) bool { return b.msgs[k].UID > lastCommonUID })
	var onlyA, onlyB []*entry
	for i < len(a.msgs) || j < len(b.msgs) {
		if i < len(a.msgs) && j < len(b.msgs) && a.msgs[i].UID == b.msgs[j].UID {
			same, err := m.same(ctx, a.msgs[i], b.msgs[j])
			if err != nil {
				return err
			}
			if same {
				k, err := m.key(ctx, a, a.msgs[i])
				if err != nil {
					return err
				}
				m.entries = append(m.entries, &entry{ai: i, bi: j, key: k, low: a.msgs[i].UID, final: a.msgs[i].UID})
				i++
				j++
				continue
			}
		}
		if j >= len(b.msgs) || (i < len(a.msgs) && a.msgs[i].UID <= b.msgs[j].UID) {
			k, err := m.key(ctx, a, a.msgs[i])
			if err != nil {
				return err
			}
			onlyA = append(onlyA, &entry{ai: i, bi: -1, key: k, low: a.msgs[i].UID})
			i++
		} else {
			k, err := m.key(ctx, b, b.msgs[j])
			if err != nil {
				return err
			}
			onlyB = append(onlyB, &entry{ai: -1, bi: j, key: k, low: b.msgs[j].UID})
			j++
		}
	}
	// Link the same mail at different UIDs, first with first: equal
	// GUIDs or hashes are a multiset, never unique keys (dsync.md §6).
	byKey := map[string][]*entry{}
	for _, e := range onlyB {
		byKey[e.key] = append(byKey[e.key], e)
	}
	linked := map[*entry]bool{}
	for _, e := range onlyA {
		if l := byKey[e.key]; len(l) > 0 {
			e.bi = l[0].bi
			linked[l[0]] = true
			byKey[e.key] = l[1:]
		}
		m.entries = append(m.entries, e)
	}
	for _, e := range onlyB {
		if !linked[e] {
			m.entries = append(m.entries, e)
		}
	}
	for _, e := range m.entries {
		if e.bi >= 0 && e.ai >= 0 {
			e.low = min(a.msgs[e.ai].UID, b.msgs[e.bi].UID)
		}
	}
	sort.SliceStable(m.entries, func(x, y int) bool {
		ex, ey := m.entries[x], m.entries[y]
		if ex.low != ey.low {
			return ex.low < ey.low
		}
		return ex.key < ey.key
	})
	next := max(a.st.UIDNext, b.st.UIDNext, 1)
	for _, e := range m.entries {
		if e.final != 0 {
			continue
		}
		var usable []formats.UID
		if e.ai >= 0 && a.msgs[e.ai].UID >= b.st.UIDNext {
			usable = append(usable, a.msgs[e.ai].UID)
		}
		if e.bi >= 0 && b.msgs[e.bi].UID >= a.st.UIDNext {
			usable = append(usable, b.msgs[e.bi].UID)
		}
		if len(usable) > 0 {
			e.final = slices.Min(usable)
			continue
		}
		e.final = next
		next++
	}
	m.uidNext = next
	return nil
}

// want applies the filters of new mail to msg of side s (see wantNew).
func (m *merger) want(ctx context.Context, s *side, msg formats.Message) (bool, error) {
	if !m.r.opt.filtering() {
		return true, nil
	}
	return m.r.wantNew(ctx, s.box, msg)
}

// flags merges a common mail's flags per flag from each side's changes
// (dsync.md §2.8b, flagmerge.go); conflicts go to the higher modseq, the
// source on a tie. A side without history counts as unchanged, so
// without any history the side with the higher modseq wins outright.
//
// As dsync, both sides end with the same HIGHESTMODSEQ (where the store
// implements formats.ModSeqRaiser), so the next change on either side
// outranks every copy on the other. QUIRK: dsync also raises each merged
// message's modseq; the contract can't, so when both sides change the
// same message between runs the one with more commits wins (the source
// on a tie), and stores without modseqs always take the source's flags.
func (m *merger) flags(x, y formats.Message) (formats.Flags, []string) {
	return mergeFlags(x, m.histA[x.UID], y, m.histB[y.UID], y.ModSeq > x.ModSeq)
}

func (m *merger) apply(ctx context.Context) error {
	a, b := m.a, m.b
	kw := a.st.Caps.Keywords && b.st.Caps.Keywords
	differ := func(msg formats.Message, f formats.Flags, k []string) bool {
		return msg.Flags != f || (kw && !formats.EqualKeywords(msg.Keywords, k))
	}
	// Old mails: flags.
	for _, c := range m.common {
		x, y := a.msgs[c[0]], b.msgs[c[1]]
		f, k := m.flags(x, y)
		if differ(x, f, k) {
			if err := m.setFlags(ctx, a, x.UID, f, k); err != nil {
				return err
			}
		}
		if differ(y, f, k) {
			if err := m.setFlags(ctx, b, y.UID, f, k); err != nil {
				return err
			}
		}
	}
	// New mails: flags of entries both sides keep in place; saves in
	// ascending UID order per side, each renumbered mail's old copy
	// expunged in the same transaction as its save.
	for _, s := range []*side{a, b} {
		other := b
		if s == b {
			other = a
		}
		// Saves on a side must ascend: walk the entries by final UID.
		order := slices.Clone(m.entries)
		sort.SliceStable(order, func(x, y int) bool { return order[x].final < order[y].final })
		for _, e := range order {
			var own, theirs *formats.Message
			ai, bi := e.ai, e.bi
			if s == b {
				ai, bi = bi, ai
			}
			if ai >= 0 {
				own = &s.msgs[ai]
			}
			if bi >= 0 {
				theirs = &other.msgs[bi]
			}
			f, k := m.mergedFlags(s, own, theirs)
			switch {
			case own != nil && own.UID == e.final:
				if differ(*own, f, k) {
					if err := m.setFlags(ctx, s, own.UID, f, k); err != nil {
						return err
					}
				}
			case own != nil: // move within s: save again, then expunge
				ok, err := m.save(ctx, s, s, *own, e.final, f, k, false)
				if err != nil {
					return err
				}
				if ok {
					if err := m.expunge(ctx, s, own.UID, true); err != nil {
						return err
					}
				}
			default:
				if want, err := m.want(ctx, other, *theirs); err != nil {
					return err
				} else if !want {
					continue // filtered: not copied (-t/-e/-I/-O)
				}
				if _, err := m.save(ctx, s, other, *theirs, e.final, f, k, true); err != nil {
					return err
				}
			}
		}
	}
	// Maybe-expunges below the last common UID.
	for _, x := range m.expA {
		if err := m.expunge(ctx, a, a.msgs[x].UID, false); err != nil {
			return err
		}
	}
	for _, x := range m.expB {
		if err := m.expunge(ctx, b, b.msgs[x].UID, false); err != nil {
			return err
		}
	}
	for _, s := range []*side{a, b} {
		if err := m.finish(ctx, s, m.uidNext); err != nil {
			return err
		}
	}
	return nil
}

// mergedFlags are the flags an entry's mail ends with on s.
func (m *merger) mergedFlags(s *side, own, theirs *formats.Message) (formats.Flags, []string) {
	switch {
	case own == nil:
		return theirs.Flags, theirs.Keywords
	case theirs == nil:
		return own.Flags, own.Keywords
	case s == m.a:
		return m.flags(*own, *theirs)
	default:
		return m.flags(*theirs, *own)
	}
}

func (m *merger) begin(ctx context.Context, s *side) error {
	if s.tx != nil {
		return nil
	}
	tx, err := s.box.Begin(ctx)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, m.r.opt.Mode.String()+": begin "+s.name, m.name, 0, "")
	}
	s.tx = tx
	return nil
}

func (m *merger) commit(ctx context.Context, s *side) error {
	if s.tx == nil {
		return nil
	}
	err := s.tx.Commit(ctx)
	s.tx, s.pending, s.pendingBytes = nil, 0, 0
	return formats.Wrap(err, formats.KindTemp, m.r.opt.Mode.String()+": commit "+s.name, m.name, 0, "")
}

func (m *merger) maybeCommit(ctx context.Context, s *side) error {
	if s.pending >= m.r.opt.CommitEvery || s.pendingBytes >= m.r.opt.CommitBytes {
		return m.commit(ctx, s)
	}
	return nil
}

// finish raises s's UIDNEXT and first_recent_uid (unless a message
// failed: a skipped UID can still be filled by the next run, and dsync
// updates neither after a failure) and commits. first_recent_uid goes to
// the other side's as its Status had it before the merge (recent.go),
// so mail the other side's IMAP session claimed stops being \Recent
// here too.
func (m *merger) finish(ctx context.Context, s *side, uidNext formats.UID) error {
	if !s.write {
		return nil
	}
	if s.errs == 0 && uidNext > s.st.UIDNext {
		if err := m.begin(ctx, s); err != nil {
			return err
		}
		if err := s.tx.SetUIDNext(uidNext); err != nil {
			return formats.Wrap(err, formats.KindTemp, m.r.opt.Mode.String()+": set UIDNEXT", m.name, 0, "")
		}
	}
	if fr := firstRecentRaise(s.st, uidNext-1, otherSide(m.a, m.b, s).st.FirstRecentUID); s.errs == 0 && fr != 0 && !m.conflict {
		if err := m.begin(ctx, s); err != nil {
			return err
		}
		if err := addFirstRecentRaise(s.tx, fr); err != nil {
			return formats.Wrap(err, formats.KindTemp, m.r.opt.Mode.String()+": raise first recent UID", m.name, 0, "")
		}
	}
	return m.commit(ctx, s)
}

// otherSide is the side of the pair a, b that is not s.
func otherSide(a, b, s *side) *side {
	if s == a {
		return b
	}
	return a
}

func (m *merger) rollback() {
	for _, s := range []*side{m.a, m.b} {
		if s.tx != nil {
			s.tx.Rollback()
			s.tx = nil
		}
	}
}

func (m *merger) setFlags(ctx context.Context, s *side, uid formats.UID, f formats.Flags, k []string) error {
	if !s.write {
		return nil
	}
	if err := m.begin(ctx, s); err != nil {
		return err
	}
	if err := s.tx.SetFlags(uid, f, k); err != nil {
		return formats.Wrap(err, formats.KindTemp, m.r.opt.Mode.String()+": set flags", m.name, uid, "")
	}
	m.counts.FlagsChanged++
	s.pending++
	return m.maybeCommit(ctx, s)
}

// expunge removes uid from s; move says it is the old copy of a
// renumbered mail (counted as an expunge all the same).
func (m *merger) expunge(ctx context.Context, s *side, uid formats.UID, move bool) error {
	if !s.write {
		return nil
	}
	if err := m.begin(ctx, s); err != nil {
		return err
	}
	if err := s.tx.Expunge(uid); err != nil {
		return formats.Wrap(err, formats.KindTemp, m.r.opt.Mode.String()+": expunge", m.name, uid, "")
	}
	m.counts.Expunged++
	s.pending++
	return m.maybeCommit(ctx, s)
}

// save copies msg from the mailbox of from into to under uid, and tells
// whether it was saved; mayCommit false keeps the transaction open (a
// move expunges the old copy in the same commit).
func (m *merger) save(ctx context.Context, to, from *side, msg formats.Message, uid formats.UID, f formats.Flags, k []string, mayCommit bool) (bool, error) {
	if !to.write {
		return false, nil
	}
	if err := m.begin(ctx, to); err != nil {
		return false, err
	}
	op := m.r.opt.Mode.String()
	old := msg.UID
	msg.UID, msg.Flags, msg.Keywords = uid, f, slices.Clone(k)
	var saved formats.UID
	var dstErr error
	var err error
	if ld, ok := from.box.(formats.LazyDates); ok && msg.Received.IsZero() && msg.Saved.IsZero() {
		// Listed without dates (load): the copy keeps them.
		msg.Received, msg.Saved, err = ld.Dates(ctx, old)
	}
	if err == nil {
		err = m.r.body(ctx, m.r.store(to.idx), m.name, from.box, formats.Message{UID: old, GUID: msg.GUID, Size: msg.Size}, func(b formats.Body) error {
			msg.Size = b.Size()
			sr := &sourceReader{r: b}
			var err error
			saved, err = to.tx.Save(ctx, msg, sr)
			if err != nil && sr.err == nil && formats.KindOf(err) != formats.KindInvalidData {
				dstErr = err
			}
			if err == nil {
				to.pendingBytes += msg.Size
				m.bytes += msg.Size
			}
			return err
		})
	}
	switch {
	case err == nil && saved != uid:
		m.r.desync("mailbox %q: UID %d was saved as %d on the %s", m.name, uid, saved, to.name)
	case ctx.Err() != nil:
		return false, ctx.Err()
	case dstErr != nil:
		return false, formats.Wrap(dstErr, formats.KindTemp, op+": save to "+to.name, m.name, uid, "")
	case formats.KindOf(err) == formats.KindExpunged:
		m.r.desync("mailbox %q: UID %d was expunged on the %s during the sync", m.name, old, from.name)
		to.errs++
		return false, nil
	case err != nil:
		to.errs++
		m.r.fail(formats.Wrap(err, formats.KindTemp, fmt.Sprintf("%s: read %s message", op, from.name), m.name, old, ""))
		return false, nil
	}
	m.counts.Saved++
	to.pending++
	if !mayCommit {
		return true, nil
	}
	return true, m.maybeCommit(ctx, to)
}
