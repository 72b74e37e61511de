package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/boxsync/boxsync/formats"
)

const (
	defaultCommitEvery = 2000
	defaultCommitBytes = 128 << 20
)

// Run makes dst agree with src according to opt.Mode. The returned error
// is a failure that stopped the run; per-mailbox and per-message failures
// that did not stop it are in Result.Errors.
func Run(ctx context.Context, src, dst formats.Store, opt Options) (Result, error) {
	switch opt.Mode {
	case Backup, Sync, OneWay:
	default:
		return Result{}, formats.Errorf(formats.KindParams, "%s is not implemented", opt.Mode)
	}
	if opt.CommitEvery <= 0 {
		opt.CommitEvery = defaultCommitEvery
	}
	if opt.CommitBytes <= 0 {
		opt.CommitBytes = defaultCommitBytes
	}
	if opt.AllMail.on() && opt.Workers == 0 {
		// -a: a moved message's copy on the written side lasts until
		// the mailbox it left is synced; one mailbox at a time (as
		// dsync goes) makes which copies are found depend on the
		// order only, not on timing.
		opt.Workers = 1
	}
	r := &run{src: src, dst: dst, opt: opt}
	if !opt.MailboxGUID.IsZero() {
		if err := r.findGUID(ctx); err != nil {
			return r.res, err
		}
	}
	if opt.State != nil {
		r.state = &stateRun{old: opt.State, use: opt.Algorithm == Stateful,
			synced: map[formats.GUID]string{}, created: map[string]bool{}}
	}
	var err error
	if opt.Mode == Backup {
		err = r.backup(ctx)
	} else {
		err = r.twoWay(ctx)
	}
	if err == nil && r.state != nil {
		r.res.State, err = r.finishState(ctx)
	}
	return r.res, err
}

type run struct {
	live liveProgress // -v progress counters (progress.go); guarded by mu

	src, dst formats.Store
	opt      Options

	state *stateRun // nil without Options.State

	lists [2]listing // each store's tree, by srcIdx and dstIdx (listing.go)

	// treeAges holds, per store, the last_renamed_or_created that
	// dsync's tree gives the names this run's own renames made (tree.go,
	// noteRename): they replace what the mailbox log says of them.
	treeAges [2]map[string]int64
	// tempSubs holds, per store, the subscriptions a rename to a
	// temporary name took along (tree.go, carrySubscriptions).
	tempSubs [2]map[string][]string
	// vacated holds, per store, the names this run's renames moved a
	// mailbox away from (tree.go, subscriptionAside).
	vacated [2]map[string]bool
	// carried holds, per store, the names carrySubscriptions subscribed
	// for a renamed node (tree.go), so that a later rename moves them.
	carried [2]map[string]bool

	mu  sync.Mutex
	res Result // guarded by mu while mailbox workers run

	guidNames map[string]bool // -g: the names of that mailbox on either side

	allMail map[formats.Store]*allMailIndex // -a, per written store; guarded by mu
}

// findGUID resolves -g: the mailbox is the one with that GUID on either
// side, under whatever names it has there (dsync filters both trees by
// GUID, dsync.md §1.2, §5).
func (r *run) findGUID(ctx context.Context) error {
	r.guidNames = map[string]bool{}
	for i := range r.lists {
		boxes, err := r.mailboxes(ctx, i)
		if err != nil {
			return formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": list mailboxes", "", 0, "")
		}
		for _, b := range boxes {
			if !b.NoSelect && b.GUID == r.opt.MailboxGUID {
				r.guidNames[b.Name] = true
			}
		}
	}
	return nil
}

// update changes the result under the lock.
func (r *run) update(f func(*Result)) {
	r.mu.Lock()
	f(&r.res)
	r.mu.Unlock()
	r.progress(nil)
}

// desync records the first reason the run should be repeated.
func (r *run) desync(format string, args ...any) {
	r.update(func(res *Result) {
		if res.Desync == "" {
			res.Desync = fmt.Sprintf(format, args...)
		}
	})
}

func (r *run) logf(format string, args ...any) {
	if r.opt.Log != nil && r.opt.Verbose {
		fmt.Fprintf(r.opt.Log, format+"\n", args...)
	}
}

func (r *run) warnf(format string, args ...any) {
	if r.opt.Log != nil {
		fmt.Fprintf(r.opt.Log, "Warning: "+format+"\n", args...)
	}
}

// wanted tells whether a mailbox takes part in the run (-m, -g, -x).
func (r *run) wanted(name string) bool {
	if r.opt.Mailbox != "" && name != r.opt.Mailbox {
		return false
	}
	if r.guidNames != nil && !r.guidNames[name] {
		return false
	}
	for _, mask := range r.opt.Exclude {
		if MatchMask(mask, name) {
			return false
		}
	}
	return true
}

// MatchMask matches a doveadm -m/-x style mask against a mailbox name, as
// Dovecot's imap-match does: '*' matches any run of characters including
// the hierarchy separator, '%' any run without it, '?' one character.
// INBOX matches case-insensitively.
func MatchMask(mask, name string) bool {
	if formats.IsInbox(mask) && formats.IsInbox(name) {
		return true
	}
	return glob([]rune(mask), []rune(name))
}

func glob(p, s []rune) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*', '%':
			for i := 0; i <= len(s); i++ {
				if glob(p[1:], s[i:]) {
					return true
				}
				if i < len(s) && p[0] == '%' && s[i] == formats.Separator {
					return false
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
		default:
			if len(s) == 0 || s[0] != p[0] {
				return false
			}
		}
		p, s = p[1:], s[1:]
	}
	return len(s) == 0
}

func (r *run) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Errors = append(r.res.Errors, err)
	if r.opt.Log != nil {
		fmt.Fprintf(r.opt.Log, "Error: %s\n", err)
	}
}

func (r *run) backup(ctx context.Context) error {
	srcBoxes, err := r.mailboxes(ctx, srcIdx)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, "backup: list source mailboxes", "", 0, "")
	}
	dstBoxes, err := r.mailboxes(ctx, dstIdx)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, "backup: list destination mailboxes", "", 0, "")
	}
	listed := dstBoxes // the names before renames, for the subscriptions
	if dstBoxes, err = r.backupRenames(ctx, srcBoxes, dstBoxes); err != nil {
		return err
	}
	dstByName := map[string]formats.MailboxInfo{}
	for _, b := range dstBoxes {
		dstByName[b.Name] = b
	}
	srcByName := map[string]formats.MailboxInfo{}
	for _, b := range srcBoxes {
		srcByName[b.Name] = b
	}

	// Destination mailboxes the source lacks go first, so that a
	// rename on the source (new name, same GUID) frees the GUID before
	// the new name is created.
	for _, d := range dstBoxes {
		if !r.wanted(d.Name) || d.NoSelect {
			continue
		}
		if s, ok := srcByName[d.Name]; ok && !s.NoSelect {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r.logf("%s: deleting, not in source", d.Name)
		if err := r.dst.Delete(ctx, d.Name); err != nil && !errors.Is(err, formats.ErrNotFound) {
			r.fail(formats.Wrap(err, formats.KindTemp, "backup: delete", d.Name, 0, ""))
			continue
		}
		r.res.Mailboxes.Deleted++
	}

	// Containers the source lacks, deepest first; one that still has
	// children (kept by -x, say) stays.
	for i := len(dstBoxes) - 1; i >= 0; i-- {
		d := dstBoxes[i]
		if _, ok := srcByName[d.Name]; ok || !d.NoSelect || d.Subscribed || !r.wanted(d.Name) {
			continue
		}
		if err := r.dst.Delete(ctx, d.Name); err != nil && formats.KindOf(err) != formats.KindNotFound && formats.KindOf(err) != formats.KindNotPossible {
			r.fail(formats.Wrap(err, formats.KindTemp, "backup: delete container", d.Name, 0, ""))
		}
	}

	// Mailboxes are independent: sync several at once, each worker
	// with its own handles, so reading, writing and waiting for the disk
	// overlap.
	if err := r.syncMailboxes(ctx, srcBoxes, dstByName); err != nil {
		return err
	}
	for _, s := range srcBoxes {
		d := dstByName[s.Name]
		if r.wanted(s.Name) && s.Subscribed != d.Subscribed {
			if err := r.dst.SetSubscribed(ctx, s.Name, s.Subscribed); err != nil {
				r.fail(formats.Wrap(err, formats.KindTemp, "backup: subscribe", s.Name, 0, ""))
			}
		}
	}
	// Subscriptions of names the source does not have, renamed-away
	// names included: a rename keeps the old name subscribed.
	for _, d := range slices.Concat(dstBoxes, listed) {
		if _, ok := srcByName[d.Name]; !ok && d.Subscribed && r.wanted(d.Name) {
			if err := r.dst.SetSubscribed(ctx, d.Name, false); err != nil {
				r.fail(formats.Wrap(err, formats.KindTemp, "backup: unsubscribe", d.Name, 0, ""))
			}
		}
	}
	r.treeChanged(dstIdx) // deletes, creates and subscriptions above
	return nil
}

// backupRenames renames destination mailboxes that the source holds
// under another name (same mailbox GUID), as dsync's tree sync does in
// backup mode (dsync.md §2.3: mailboxes are matched by GUID, the master's
// name wins): the mail stays where it is instead of being deleted and
// copied again. A rename moves the children too, so the destination is
// listed again after each one; it returns the destination's listing.
// A rename that can't be done (the new name is taken, the INBOX, a store
// without renames) leaves the mailbox to the delete-and-copy path.
func (r *run) backupRenames(ctx context.Context, srcBoxes, dstBoxes []formats.MailboxInfo) ([]formats.MailboxInfo, error) {
	rn, ok := r.dst.(formats.Renamer)
	if !ok {
		return dstBoxes, nil
	}
	srcByGUID := map[formats.GUID]string{}
	for _, s := range srcBoxes {
		if !s.NoSelect && !s.GUID.IsZero() && r.wanted(s.Name) {
			srcByGUID[s.GUID] = s.Name
		}
	}
	tried := map[string]bool{} // "from\x00to" already attempted
	for {
		dstByName := map[string]bool{}
		for _, d := range dstBoxes {
			dstByName[d.Name] = true
		}
		renamed := false
		for _, d := range dstBoxes {
			to, ok := srcByGUID[d.GUID]
			if d.NoSelect || d.GUID.IsZero() || !ok || to == d.Name || dstByName[to] ||
				!r.wanted(d.Name) || strings.EqualFold(d.Name, "INBOX") || tried[d.Name+"\x00"+to] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			tried[d.Name+"\x00"+to] = true
			r.logf("%s: renaming to %q, as on the source", d.Name, to)
			err := rn.Rename(ctx, d.Name, to)
			switch {
			case err == nil:
				r.update(func(res *Result) { res.Mailboxes.Renamed++ })
				renamed = true
			case errors.Is(err, formats.ErrExists), errors.Is(err, formats.ErrNotFound), formats.KindOf(err) == formats.KindNotPossible:
				r.logf("%s: not renamed (%v): copied again instead", d.Name, err)
				continue
			default:
				r.fail(formats.Wrap(err, formats.KindTemp, "backup: rename", d.Name, 0, ""))
				continue
			}
			break // the children moved too: list again
		}
		if !renamed {
			return dstBoxes, nil
		}
		r.treeChanged(dstIdx)
		var err error
		if dstBoxes, err = r.mailboxes(ctx, dstIdx); err != nil {
			return nil, formats.Wrap(err, formats.KindTemp, "backup: list destination mailboxes", "", 0, "")
		}
	}
}

func (r *run) syncMailboxes(ctx context.Context, srcBoxes []formats.MailboxInfo, dstByName map[string]formats.MailboxInfo) error {
	workers := r.opt.Workers
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), 4)
	}
	work := make(chan formats.MailboxInfo)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				if err := r.syncMailbox(ctx, s, dstByName[s.Name]); err != nil && ctx.Err() == nil {
					r.fail(err)
				}
			}
		}()
	}
	n := 0
	for _, s := range srcBoxes {
		if !s.NoSelect && r.wanted(s.Name) {
			n++
		}
	}
	r.progress(func(l *liveProgress) { l.mailboxes = n })
	for _, s := range srcBoxes {
		if s.NoSelect || !r.wanted(s.Name) {
			continue
		}
		select {
		case work <- s:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	return ctx.Err()
}

// errRecreate says the destination mailbox cannot be made equal to the
// source without lowering UIDs, so it must be deleted and copied again.
type errRecreate struct{ why string }

func (e errRecreate) Error() string { return e.why }

func (r *run) syncMailbox(ctx context.Context, s, d formats.MailboxInfo) error {
	srcBox, err := r.src.Open(ctx, s.Name)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, "backup: open source", s.Name, 0, "")
	}
	defer srcBox.Close()
	srcSt, err := srcBox.Status(ctx)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, "backup: source status", s.Name, 0, "")
	}
	exists := d.Name != "" && !d.NoSelect
	recreated, appeared := false, false
	for {
		if exists {
			err = r.syncExisting(ctx, srcBox, srcSt)
			var rec errRecreate
			if !errors.As(err, &rec) {
				return err
			}
			if recreated {
				return formats.Wrap(fmt.Errorf("destination still differs after recreating it: %s", rec.why), formats.KindTemp, "backup", s.Name, 0, "")
			}
			r.warnf("Deleting mailbox '%s': %s", s.Name, rec.why)
			if err := r.dst.Delete(ctx, s.Name); err != nil {
				return formats.Wrap(err, formats.KindTemp, "backup: delete to recreate", s.Name, 0, "")
			}
			r.update(func(res *Result) { res.Mailboxes.Deleted++ })
			recreated = true
		}
		if err := r.dst.Create(ctx, s.Name, srcSt.GUID, srcSt.UIDValidity); err != nil {
			if formats.KindOf(err) == formats.KindExists && !appeared {
				// It appeared since the listing (a Dovecot session,
				// a concurrent create on an IMAP server): sync into
				// it like any existing mailbox, which recreates it
				// if it can't be repaired, instead of failing.
				r.desync("mailbox %q appeared in the destination during the run", s.Name)
				exists, appeared = true, true
				continue
			}
			return formats.Wrap(err, formats.KindTemp, "backup: create", s.Name, 0, "")
		}
		r.update(func(res *Result) { res.Mailboxes.Created++ })
		r.stateCreated(s.Name)
		exists = true
	}
}

// syncExisting makes an existing destination mailbox equal to the source.
func (r *run) syncExisting(ctx context.Context, srcBox formats.Mailbox, srcSt formats.Status) error {
	name := srcBox.Name()
	dstBox, err := r.dst.Open(ctx, name)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, "backup: open destination", name, 0, "")
	}
	defer dstBox.Close()
	dstSt, err := dstBox.Status(ctx)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, "backup: destination status", name, 0, "")
	}
	if !dstSt.Caps.SaveUIDs {
		// The destination picks its own UIDs (and GUIDs, UIDVALIDITY):
		// IMAP. Nothing can be compared by UID, so mail is matched by
		// content, and the mailbox is never recopied for differing.
		return r.syncByContent(ctx, srcBox, dstBox, srcSt)
	}
	switch {
	case dstSt.GUID != srcSt.GUID && !srcSt.GUID.IsZero():
		return errRecreate{fmt.Sprintf("mailbox GUID %s differs from the source's %s", dstSt.GUID, srcSt.GUID)}
	case dstSt.UIDValidity != srcSt.UIDValidity:
		return errRecreate{fmt.Sprintf("UIDVALIDITY %d differs from the source's %d", dstSt.UIDValidity, srcSt.UIDValidity)}
	case dstSt.UIDNext > srcSt.UIDNext:
		return errRecreate{fmt.Sprintf("UIDNEXT is too high (%d > %d)", dstSt.UIDNext, srcSt.UIDNext)}
	}
	if skip, stale, _ := r.stateCheck(name, srcSt, dstSt); stale {
		return nil
	} else if skip {
		r.update(func(res *Result) { res.Mailboxes.Skipped++ })
		return nil
	}
	r.stateSynced(name, srcSt.GUID)
	if r.opt.Algorithm == Fast && srcSt.Caps.ModSeqs && dstSt.Caps.ModSeqs &&
		srcSt.UIDNext == dstSt.UIDNext && srcSt.HighestModSeq == dstSt.HighestModSeq &&
		srcSt.Messages == dstSt.Messages && srcSt.HighestModSeq != 0 {
		r.update(func(res *Result) { res.Mailboxes.Skipped++ })
		return raiseFirstRecentOnly(ctx, "backup", dstBox, firstRecentRaise(dstSt, srcSt.UIDNext-1, srcSt.FirstRecentUID))
	}
	r.logf("%s: syncing (%d messages, UIDNEXT %d)", name, srcSt.Messages, srcSt.UIDNext)
	// dsync's last common UID at its finish is the merged UIDNEXT - 1:
	// the source's, as the destination's is not higher.
	ms := &mailboxSync{r: r, name: name, src: srcBox, dst: dstBox, dstNext: dstSt.UIDNext, dstCaps: dstSt.Caps, srcHMS: srcSt.HighestModSeq,
		firstRecent: firstRecentRaise(dstSt, srcSt.UIDNext-1, srcSt.FirstRecentUID)}
	defer ms.rollback()
	if err := ms.merge(ctx, srcSt); err != nil {
		return err
	}
	if err := ms.commit(ctx, srcSt.UIDNext); err != nil {
		return err
	}
	r.update(func(res *Result) {
		res.Mailboxes.Synced++
		res.Messages.Saved += ms.counts.Saved
		res.Messages.Expunged += ms.counts.Expunged
		res.Messages.FlagsChanged += ms.counts.FlagsChanged
		res.Bytes += ms.bytes
	})
	// A source that changed while we copied it is mirrored as it was;
	// dsync reports that as a desync (exit 2) so the caller runs again.
	if after, err := srcBox.Status(ctx); err == nil && (after.UIDNext != srcSt.UIDNext || after.Messages != srcSt.Messages) {
		r.desync("mailbox %q changed during the sync", name)
	}
	return nil
}

// mailboxSync is one mailbox's merge of source and destination messages.
type mailboxSync struct {
	r        *run
	name     string
	src, dst formats.Mailbox
	dstNext  formats.UID // destination UIDNEXT when we started
	dstCaps  formats.Caps
	anyUID   bool           // the destination picks UIDs (content mode): no desync when they differ
	srcHMS   formats.ModSeq // the source's HIGHESTMODSEQ, kept where the destination can
	// firstRecent is what the destination's first_recent_uid is raised
	// to at the end (firstRecentRaise), 0 for nothing.
	firstRecent formats.UID

	tx           formats.Tx
	pending      int   // changes in tx
	pendingBytes int64 // body bytes in tx
	errs         int   // per-message failures in this mailbox

	counts struct{ Saved, Expunged, FlagsChanged int }
	bytes  int64
}

func (ms *mailboxSync) begin(ctx context.Context) error {
	if ms.tx != nil {
		return nil
	}
	tx, err := ms.dst.Begin(ctx)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, "backup: begin", ms.name, 0, "")
	}
	ms.tx = tx
	return nil
}

func (ms *mailboxSync) commit(ctx context.Context, uidNext formats.UID) error {
	if uidNext != 0 && ms.errs == 0 {
		// Raise UIDNEXT only when every message made it: a UID skipped
		// over a failure can still be filled in by the next run.
		if err := ms.begin(ctx); err != nil {
			return err
		}
		if err := ms.tx.SetUIDNext(uidNext); err != nil {
			return formats.Wrap(err, formats.KindTemp, "backup: set UIDNEXT", ms.name, 0, "")
		}
		if r, ok := ms.tx.(formats.ModSeqRaiser); ok && ms.srcHMS > 0 {
			if err := r.RaiseHighestModSeq(ms.srcHMS); err != nil {
				return formats.Wrap(err, formats.KindTemp, "backup: raise HIGHESTMODSEQ", ms.name, 0, "")
			}
		}
		// In the same transaction, as dsync's one mailbox_update
		// raises UIDNEXT, HIGHESTMODSEQ and first_recent_uid.
		if err := addFirstRecentRaise(ms.tx, ms.firstRecent); err != nil {
			return formats.Wrap(err, formats.KindTemp, "backup: raise first recent UID", ms.name, 0, "")
		}
	}
	if ms.tx == nil {
		return nil
	}
	err := ms.tx.Commit(ctx)
	ms.tx, ms.pending, ms.pendingBytes = nil, 0, 0
	return formats.Wrap(err, formats.KindTemp, "backup: commit", ms.name, 0, "")
}

func (ms *mailboxSync) rollback() {
	if ms.tx != nil {
		ms.tx.Rollback()
		ms.tx = nil
	}
}

func (ms *mailboxSync) maybeCommit(ctx context.Context) error {
	if ms.pending >= ms.r.opt.CommitEvery || ms.pendingBytes >= ms.r.opt.CommitBytes {
		return ms.commit(ctx, 0)
	}
	return nil
}

// merge walks both mailboxes in UID order.
func (ms *mailboxSync) merge(ctx context.Context, srcSt formats.Status) error {
	nextSrc, stopSrc := iter.Pull2(ms.src.Messages(ctx, 1))
	defer stopSrc()
	nextDst, stopDst := iter.Pull2(ms.dst.Messages(ctx, 1))
	defer stopDst()
	pull := func(next func() (formats.Message, error, bool), side string) (*formats.Message, error) {
		m, err, ok := next()
		if !ok {
			return nil, nil
		}
		if err != nil {
			return nil, formats.Wrap(err, formats.KindTemp, "backup: list "+side, ms.name, 0, "")
		}
		return &m, nil
	}
	s, err := pull(nextSrc, "source")
	if err != nil {
		return err
	}
	d, err := pull(nextDst, "destination")
	if err != nil {
		return err
	}
	for s != nil || d != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case d == nil || (s != nil && s.UID < d.UID):
			if ms.r.opt.filtering() {
				// -t/-e/-I/-O: dsync checks the filters before it
				// reverts anything, so filtered mail is left out.
				if want, err := ms.r.wantNew(ctx, ms.src, *s); err != nil {
					return err
				} else if !want {
					if s, err = pull(nextSrc, "source"); err != nil {
						return err
					}
					continue
				}
			}
			if s.UID < ms.dstNext {
				return errRecreate{fmt.Sprintf("UID=%d GUID=%s is missing locally", s.UID, s.GUID)}
			}
			if err := ms.save(ctx, *s); err != nil {
				return err
			}
			if s, err = pull(nextSrc, "source"); err != nil {
				return err
			}
		case s == nil || d.UID < s.UID:
			if err := ms.expunge(ctx, d.UID); err != nil {
				return err
			}
			if d, err = pull(nextDst, "destination"); err != nil {
				return err
			}
		default: // same UID
			if why := ms.differentMail(*s, *d); why != "" {
				return errRecreate{fmt.Sprintf("UID=%d already exists locally for a different mail: %s", s.UID, why)}
			}
			if s.Flags != d.Flags || !formats.EqualKeywords(s.Keywords, d.Keywords) {
				if err := ms.setFlags(ctx, *s); err != nil {
					return err
				}
			}
			if s, err = pull(nextSrc, "source"); err != nil {
				return err
			}
			if d, err = pull(nextDst, "destination"); err != nil {
				return err
			}
		}
	}
	return nil
}

// differentMail tells why the destination's message at a UID is not the
// source's, or "" when it is. GUIDs decide where the destination keeps
// them; a destination that derives its own (mbox) is checked by size,
// since UIDs and UIDVALIDITY already match.
func (ms *mailboxSync) differentMail(s, d formats.Message) string {
	if ms.dstCaps.SaveGUIDs && s.GUID != "" && d.GUID != "" && s.GUID != d.GUID {
		return fmt.Sprintf("GUID %s, source has %s", d.GUID, s.GUID)
	}
	if s.Size >= 0 && d.Size >= 0 && s.Size != d.Size {
		return fmt.Sprintf("size %d, source has %d", d.Size, s.Size)
	}
	return ""
}

func (ms *mailboxSync) save(ctx context.Context, m formats.Message) error {
	if err := ms.begin(ctx); err != nil {
		return err
	}
	var saved formats.UID
	var dstErr error // a failure of the destination, which stops the mailbox
	err := ms.r.body(ctx, ms.r.dst, ms.name, ms.src, m, func(b formats.Body) error {
		m.Size = b.Size()
		sr := &sourceReader{r: b}
		var err error
		saved, err = ms.tx.Save(ctx, m, sr)
		if err != nil && sr.err == nil && formats.KindOf(err) != formats.KindInvalidData {
			dstErr = err
		}
		if err == nil {
			ms.pendingBytes += m.Size
			ms.bytes += m.Size
		}
		return err
	})
	switch {
	case err == nil && saved != m.UID && !ms.anyUID:
		// The destination could not keep the UID: a concurrent writer
		// took it. The next run repairs it (dsync: changes during sync).
		ms.r.desync("mailbox %q: UID %d was saved as %d", ms.name, m.UID, saved)
	case dstErr != nil || ctx.Err() != nil:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return formats.Wrap(dstErr, formats.KindTemp, "backup: save", ms.name, m.UID, "")
	case formats.KindOf(err) == formats.KindExpunged:
		// Expunged in the source while we copied: nothing to mirror.
		ms.r.desync("mailbox %q: UID %d was expunged during the sync", ms.name, m.UID)
		return nil
	case err != nil:
		// One unreadable source message must not stop the mailbox:
		// report it and go on; the transaction holds only complete
		// messages, and UIDNEXT is not raised past it.
		ms.errs++
		ms.r.fail(formats.Wrap(err, formats.KindTemp, "backup: read source message", ms.name, m.UID, ""))
		return nil
	}
	ms.counts.Saved++
	ms.pending++
	ms.r.progress(func(l *liveProgress) { l.saved++; l.bytes += m.Size })
	return ms.maybeCommit(ctx)
}

// sourceReader remembers a read error of the source, so that a failed
// Save can be blamed on the right side.
type sourceReader struct {
	r    io.Reader
	err  error
	read bool // Read was called: the body is no longer the whole range
}

// FileSection passes on the source body's file range
// (formats.FileSection) while nothing was read from it.
func (s *sourceReader) FileSection() (*os.File, int64, bool) {
	if sec, ok := s.r.(formats.FileSection); ok && !s.read {
		return sec.FileSection()
	}
	return nil, 0, false
}

func (s *sourceReader) Read(p []byte) (int, error) {
	s.read = true
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

func (ms *mailboxSync) expunge(ctx context.Context, uid formats.UID) error {
	if err := ms.begin(ctx); err != nil {
		return err
	}
	if err := ms.tx.Expunge(uid); err != nil {
		return formats.Wrap(err, formats.KindTemp, "backup: expunge", ms.name, uid, "")
	}
	ms.counts.Expunged++
	ms.pending++
	return ms.maybeCommit(ctx)
}

func (ms *mailboxSync) setFlags(ctx context.Context, m formats.Message) error {
	if err := ms.begin(ctx); err != nil {
		return err
	}
	if err := ms.tx.SetFlags(m.UID, m.Flags, m.Keywords); err != nil {
		return formats.Wrap(err, formats.KindTemp, "backup: set flags", ms.name, m.UID, "")
	}
	ms.counts.FlagsChanged++
	ms.pending++
	return ms.maybeCommit(ctx)
}
