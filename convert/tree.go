package convert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/boxsync/boxsync/formats"
)

// Mailbox tree sync for Sync (dsync.md §2.3, §2.4), for stores that keep a
// mailbox changes log (formats.MailboxLogger; Dovecot's
// dovecot.mailbox.log) and can rename (formats.Renamer). Mailboxes are
// matched by mailbox GUID:
//
//   - Deletes (§2.4 step 1): a GUID one side logged as deleted and no
//     longer has is deleted on the other side. INBOX is never deleted.
//     Unlike dsync's TWOWAY rule (mailbox_delete without a check for new
//     mail, which loses it), mail the other side saved after the logged
//     delete is kept, and with it the mailbox (keepNewMail).
//   - Renames (§2.4 step 3): a GUID under different names is renamed on
//     the side whose name is older. A node's age is its
//     last_renamed_or_created: the newest rename record logged for its
//     name or for any parent's name (children inherit, step 2). As in
//     dsync, the names this run's own renames make do not count by the
//     time they are logged (noteRename): a temporary name is older than
//     any other, a name taken over from the other side has that side's
//     age there. dsync's walk over both trees decides at the name it
//     meets first (keepsName; walkCompare: children before the next
//     sibling): where the other side has another mailbox there, that
//     clash decides (settleClash, below); else the newer name wins, on
//     equal ages (keepsNameOnTie) the first name unless the other side
//     has a node there: a directory (its zero GUID is lower; Maildir++
//     containers are only names, formats.ImpliedDirs, and do not count).
//     A name both sides give to different mailboxes (settleClash) stays
//     with the side whose nodes there are newer, on equal ages with the
//     lower GUID; the loser's mailbox goes back to the name the winner
//     gives it, or to "<name>-temp-<n>", which loses every later clash.
//     Where it stays, 2.3's doveadm sync leaves the mailbox there, though
//     its tree calls it "<name>-temp-<GUID>", the name that ends up
//     subscribed where the two sides' nodes differed in subscription
//     (finishTemporaries) [observed]. A directory in the way moves aside
//     to "<name>-temp-<n>" with the children the other side does not
//     have below the name (renameOntoDir), and a subscription without a
//     mailbox in the way leaves "<name>-temp-<n>" subscribed
//     (subscriptionAside), as with doveadm sync [observed]. Renames
//     repeat until the trees agree, one clash per round; chains of
//     clashes (a loser's old name taken, names rotated differently on
//     both sides) settle as with doveadm sync (TestInteropSyncRenameTie).
//     A subscription belongs to its node, as in dsync's tree: it moves
//     with the node (held while the node has a temporary name), and the
//     one a rename leaves at the old name is no child of whatever takes
//     that name later; a name a rename vacated has no age in the later
//     rounds (r.vacated), nor a subscription time there (it went with
//     the node), and a name this run subscribed for a carried-along child
//     moves on when the child is renamed (r.carried). Where the name one
//     side gives a mailbox lies above the other side's node for it, that
//     name wins (dsync's node_has_parent), and a rename to a name below a
//     mailbox this side still has to rename waits until the clashes are
//     settled, so two sides' renames never nest mailboxes inside each
//     other without end. So a parent and its child swapped, a parent
//     moved below its former child, and a directory renamed with the
//     mailboxes below it settle as with doveadm sync
//     (TestInteropSyncRenameShapes). QUIRK: dsync matches two
//     directories by the mailboxes below them (sync_rename_directory)
//     and, where both sides renamed a node into the other's parent,
//     moves one aside first (node_has_parent); boxsync renames mailbox by
//     mailbox, which gave the same trees in the shapes tested, and does
//     not make again a directory the renames emptied, which doveadm 2.3
//     does on dbox.
//     QUIRK: on dbox and LAYOUT=fs, doveadm 2.3 also leaves an empty
//     container "<name>-temp-<md5>" after a rename onto a directory whose
//     child stays aside (the final name its tree gives the temporary
//     directory, created but never filled; that run exits 2); boxsync
//     makes none.
//   - Directories (§2.4 step 6): a \Noselect container the other side
//     logged as deleted (by name) goes when it has no children and was
//     not renamed or created later; an empty container one side lacks is
//     created there (formats.DirCreator; Maildir++ has none).
//   - Subscriptions (step 6): where the sides differ, the newer
//     (un)subscription wins; equal or unknown times: subscribed wins. A
//     renamed subscribed mailbox is subscribed under its new name too
//     (see carrySubscriptions).
//
// Without a log on both sides (imapc, mbox) the stateless rules of twoWay
// apply: creates by name and a union of subscriptions.
//
// OneWay (sync -1) renames the destination's mailboxes to the source's
// names by GUID (where the destination can rename), so a renamed source
// mailbox is not copied again under its new name; the source never
// changes. It deletes nothing. QUIRK: doveadm sync -1 also deletes the
// destination's copy of a mailbox the source's log records as deleted
// [observed]; boxsync's sync -1 never deletes (issue 6: the cut-over pass
// of a migration must not lose mail).

// treeSide is one store's mailbox tree with the facts its log adds.
type treeSide struct {
	idx    int // srcIdx or dstIdx
	label  string
	store  formats.Store
	byName map[string]formats.MailboxInfo
	byGUID map[formats.GUID]string
	byHash map[formats.GUID]string // MailboxNameHash(name) → name, every node

	renamed map[string]int64 // last_renamed_or_created (UNIX s), children inherit
	subTS   map[string]int64 // last_subscription_change of a node

	delBox   map[formats.GUID]int64 // logged mailbox deletes of GUIDs not in the tree
	delDir   map[formats.GUID]int64 // logged dir deletes of names not in the tree
	unsubDel map[formats.GUID]int64 // logged unsubscribes of names not in the tree

	// vacated is r.vacated as it was when the tree was listed: names
	// whose node an earlier round's rename moved away, so a subscription
	// left there is no node of dsync's tree.
	vacated map[string]bool
}

// oneWayRenames tells whether sync -1 can rename the destination's
// mailboxes to the source's names.
func (r *run) oneWayRenames() bool {
	_, ok := r.dst.(formats.Renamer)
	return r.opt.Mode == OneWay && ok
}

// treeLogs tells whether both stores keep a mailbox changes log and can
// rename, so that the log-driven tree sync applies.
func (r *run) treeLogs() bool {
	if r.opt.Mode != Sync {
		return false
	}
	for _, s := range []formats.Store{r.src, r.dst} {
		if _, ok := s.(formats.MailboxLogger); !ok {
			return false
		}
		if _, ok := s.(formats.Renamer); !ok {
			return false
		}
	}
	return true
}

// loadTree lists a store and reads its log (dsync-mailbox-tree-fill.c).
// The listing and log are the run's (listing.go): read once until the
// run changes that tree.
func (r *run) loadTree(ctx context.Context, i int) (*treeSide, error) {
	op := r.opt.Mode.String()
	boxes, err := r.mailboxes(ctx, i)
	if err != nil {
		return nil, formats.Wrap(err, formats.KindTemp, op+": list "+label(i)+" mailboxes", "", 0, "")
	}
	recs, err := r.mailboxLog(ctx, i)
	if err != nil {
		return nil, formats.Wrap(err, formats.KindTemp, op+": read "+label(i)+" mailbox log", "", 0, "")
	}
	t := &treeSide{idx: i, label: label(i), store: r.store(i), byName: map[string]formats.MailboxInfo{}, byGUID: map[formats.GUID]string{},
		byHash: map[formats.GUID]string{}, renamed: map[string]int64{}, subTS: map[string]int64{},
		delBox: map[formats.GUID]int64{}, delDir: map[formats.GUID]int64{}, unsubDel: map[formats.GUID]int64{},
		vacated: maps.Clone(r.vacated[i])}
	for _, b := range boxes {
		t.byName[b.Name] = b
		if !b.NoSelect && !b.GUID.IsZero() {
			t.byGUID[b.GUID] = b.Name
		}
		t.byHash[formats.MailboxNameHash(b.Name)] = b.Name
	}
	later := func(m map[formats.GUID]int64, g formats.GUID, ts int64) { m[g] = max(m[g], ts) }
	for _, rec := range recs {
		ts := rec.Time.Unix()
		name, exists := t.byHash[rec.GUID]
		switch rec.Change {
		case formats.ChangeDeleteMailbox:
			if _, ok := t.byGUID[rec.GUID]; !ok {
				later(t.delBox, rec.GUID, ts)
			}
		case formats.ChangeDeleteDir:
			if !exists {
				later(t.delDir, rec.GUID, ts)
			}
		case formats.ChangeRename, formats.ChangeCreateDir:
			if exists {
				t.renamed[name] = max(t.renamed[name], ts)
			}
		case formats.ChangeSubscribe:
			if exists {
				t.subTS[name] = max(t.subTS[name], ts)
			}
		case formats.ChangeUnsubscribe:
			if exists {
				t.subTS[name] = max(t.subTS[name], ts)
			} else {
				later(t.unsubDel, rec.GUID, ts)
			}
		}
	}
	// The names this run's renames made have the ages dsync's tree
	// gives them, not the time the store logged for the rename; a name
	// they left (a subscription at most) is no node there, and has no
	// age. Other children inherit a newer last_renamed_or_created (step
	// 2) as when dsync filled its tree: the ages this run's renames
	// logged do not reach them. Names are sorted, so parents come first.
	for _, b := range boxes {
		if age, ok := r.treeAges[i][b.Name]; ok {
			t.renamed[b.Name] = age
		} else if t.vacated[b.Name] {
			delete(t.renamed, b.Name)
		} else if p := formats.Parent(b.Name); p != "" {
			t.renamed[b.Name] = max(t.renamed[b.Name], t.renamed[p])
		}
	}
	return t, nil
}

func (r *run) loadTrees(ctx context.Context) (a, b *treeSide, err error) {
	if a, err = r.loadTree(ctx, srcIdx); err != nil {
		return nil, nil, err
	}
	if b, err = r.loadTree(ctx, dstIdx); err != nil {
		return nil, nil, err
	}
	return a, b, nil
}

// syncTreeChanges applies the deletes and renames the logs record, before
// twoWay creates what is missing and merges mail.
func (r *run) syncTreeChanges(ctx context.Context) error {
	a, b, err := r.loadTrees(ctx)
	if err != nil {
		return err
	}
	if r.applyDeletes(ctx, a, b)+r.applyDeletes(ctx, b, a) > 0 {
		a, b = nil, nil // changed: read again
	}
	return r.applyRenames(ctx, a, b)
}

// applyDeletes deletes in to the mailboxes from logged as deleted, and
// counts them.
func (r *run) applyDeletes(ctx context.Context, from, to *treeSide) (n int) {
	var guids []formats.GUID
	for g := range from.delBox {
		guids = append(guids, g)
	}
	slices.SortFunc(guids, func(x, y formats.GUID) int { return bytes.Compare(x[:], y[:]) })
	for _, g := range guids {
		name, ok := to.byGUID[g]
		if !ok || formats.IsInbox(name) || !r.wanted(name) {
			continue
		}
		if kept, err := r.keepNewMail(ctx, to, name, from.label, from.delBox[g]); err != nil {
			r.fail(formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": keep new mail of a deleted mailbox", name, 0, ""))
			continue
		} else if kept {
			continue
		}
		r.logf("%s: deleting on the %s (deleted on the %s)", name, to.label, from.label)
		err := to.store.Delete(ctx, name)
		r.treeChanged(to.idx)
		if err != nil {
			if errors.Is(err, formats.ErrNotFound) {
				r.desync("mailbox %q: deleted during the sync", name)
				continue
			}
			r.fail(formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": delete", name, 0, ""))
			continue
		}
		delete(to.byGUID, g)
		r.update(func(res *Result) { res.Mailboxes.Deleted++ })
		n++
	}
	return n
}

// keepNewMail is boxsync's answer to dsync's lossy TWOWAY delete (which
// deletes the mailbox with whatever it got meanwhile): mail delivered to
// side's mailbox in a later second than the delete logged on deletedOn
// (deleted, UNIX s) was never seen there, so it is not the deleting
// user's to throw away. Then the mailbox stays with just that mail (the
// rest is expunged, as the delete meant) and the merge creates it again,
// same GUID, on the deleting side. "Delivered after" is the received date
// (INTERNALDATE) and, where known, the save date both after the delete's
// second. The received date decides because it survives copying a store
// (cp -a, a restore), while a Maildir's save date is its file's ctime,
// which any copy moves to "now"; the save date guards against mail
// appended with a late INTERNALDATE before the delete. Mail moved into
// the mailbox after the delete keeps its old received date and goes, as
// with dsync. kept false: delete the mailbox.
func (r *run) keepNewMail(ctx context.Context, side *treeSide, name, deletedOn string, deleted int64) (kept bool, err error) {
	mb, err := side.store.Open(ctx, name)
	if err != nil {
		if errors.Is(err, formats.ErrNotFound) {
			return false, nil // the delete notices it
		}
		return false, err
	}
	defer mb.Close()
	var old []formats.UID
	n := 0
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			return false, err
		}
		if m.Received.Unix() > deleted && (m.Saved.IsZero() || m.Saved.Unix() > deleted) {
			n++
		} else {
			old = append(old, m.UID)
		}
	}
	if n == 0 {
		return false, nil
	}
	r.warnf("mailbox %q was deleted on the %s, but %d messages reached it on the %s after that: keeping them (the mailbox is created again), expunging the other %d",
		name, deletedOn, n, side.label, len(old))
	if len(old) > 0 {
		tx, err := mb.Begin(ctx)
		if err != nil {
			return false, err
		}
		defer tx.Rollback()
		for _, uid := range old {
			if err := tx.Expunge(uid); err != nil {
				return false, err
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return false, err
		}
		r.update(func(res *Result) { res.Messages.Expunged += len(old) })
	}
	return true, nil
}

// treeRename is one pending rename: in side, from → to.
type treeRename struct {
	side     *treeSide
	from, to string
	guid     formats.GUID
}

// applyRenames renames GUIDs that the two trees name differently until
// they agree. Each round after a rename reads both trees again, since a
// rename moves children too; a and b, when not nil, are the current ones.
func (r *run) applyRenames(ctx context.Context, a, b *treeSide) error {
	op := r.opt.Mode.String()
	for round := 0; ; round, a, b = round+1, nil, nil {
		if a == nil || b == nil {
			var err error
			if a, b, err = r.loadTrees(ctx); err != nil {
				return err
			}
		}
		var pending []treeRename
		for g, an := range a.byGUID {
			bn, ok := b.byGUID[g]
			if !ok || an == bn || !r.wanted(an) || !r.wanted(bn) || formats.IsInbox(an) || formats.IsInbox(bn) {
				continue
			}
			if r.opt.Mode == OneWay || keepsName(a, an, b, bn, g) == a {
				pending = append(pending, treeRename{side: b, from: bn, to: an, guid: g})
			} else {
				pending = append(pending, treeRename{side: a, from: an, to: bn, guid: g})
			}
		}
		if len(pending) == 0 {
			r.finishTemporaries(ctx, a, b)
			return nil
		}
		if round > 3*(len(a.byName)+len(b.byName)) {
			return formats.Errorf(formats.KindTemp, "%s: mailbox renames do not converge (%d left, first %q → %q)", op, len(pending), pending[0].from, pending[0].to)
		}
		// In dsync's walk order (parents first: renaming one moves its
		// children along).
		slices.SortFunc(pending, func(x, y treeRename) int {
			if c := walkCompare(x.to, y.to); c != 0 {
				return c
			}
			return bytes.Compare(x.guid[:], y.guid[:])
		})
		// A rename to a name below another mailbox that this side
		// still has to rename waits until the clashes are settled: that
		// mailbox's rename would carry it along, away from the name the
		// two sides agreed on (dsync's walk reaches the parent's name
		// first and moves the child there later).
		var now, later []treeRename
		for _, p := range pending {
			if parentMoves(p, pending) {
				later = append(later, p)
			} else {
				now = append(now, p)
			}
		}
		done, err := r.tryRenames(ctx, a, b, now)
		if err != nil {
			return err
		}
		if done {
			continue
		}
		// Every wanted name is taken: both sides claim a name for
		// different mailboxes.
		moved := false
		for _, p := range pending {
			occ := p.side.byName[p.to]
			if occ.NoSelect || occ.GUID.IsZero() {
				continue
			}
			other := a
			if p.side == a {
				other = b
			}
			var err error
			if moved, err = r.settleClash(ctx, other, p.side, p.to); err != nil {
				return err
			} else if moved {
				break
			}
		}
		if !moved && len(later) > 0 {
			if moved, err = r.tryRenames(ctx, a, b, later); err != nil {
				return err
			}
		}
		if !moved {
			// Only containers are in the way: leave the rest to the
			// creates (QUIRK: dsync would rename the directory).
			r.desync("mailbox renames blocked by directories (first %q → %q)", pending[0].from, pending[0].to)
			r.finishTemporaries(ctx, a, b)
			return nil
		}
	}
}

// tryRenames makes the first of pending that can be made now, and tells
// whether it made one.
func (r *run) tryRenames(ctx context.Context, a, b *treeSide, pending []treeRename) (done bool, err error) {
	for _, p := range pending {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		other := a
		if p.side == a {
			other = b
		}
		if p.side.taken(p.to) {
			if !p.side.byName[p.to].NoSelect {
				continue
			}
			// A directory is in the way: the mailbox takes its
			// place, the directory moves aside.
			if err := r.renameOntoDir(ctx, p.side, other, p.from, p.to); err != nil {
				return false, err
			}
			return true, nil
		}
		from := p.from
		if strings.HasPrefix(p.to, from+"/") {
			// Into its own child's place: through a temporary
			// name, so no loop is made (dsync does the same).
			tmp := p.side.tempName(from)
			if ok, err := r.rename(ctx, p.side, from, tmp, temporaryAge); err != nil {
				return false, err
			} else if !ok {
				continue
			}
			from = tmp
		}
		r.subscriptionAside(ctx, p.side, p.to, false)
		if ok, err := r.rename(ctx, p.side, from, p.to, other.renamed[p.to]); err != nil {
			return false, err
		} else if ok {
			r.carrySubscriptions(ctx, p.side, p.from, p.to)
			return true, nil
		}
	}
	return false, nil
}

// parentMoves tells whether p's new name lies below the current name of
// another mailbox that pending renames on the same side.
func parentMoves(p treeRename, pending []treeRename) bool {
	for _, q := range pending {
		if q.side == p.side && q.from != p.from && strings.HasPrefix(p.to, q.from+"/") {
			return true
		}
	}
	return false
}

// settleClash settles a name that x and y give to different mailboxes,
// at least one of which the other side has under another name (dsync's
// sync_rename_lower_ts at that position; x is the side whose mailbox the
// pending rename wanted there, the source in sync -1, which always wins).
// The side whose nodes there were renamed or created later keeps the
// name: its age is the newer one of the name's and of the name it gives
// the other side's mailbox (the two nodes dsync looks at on each side).
// Equal ages: the lower mailbox GUID at the name wins. The loser's
// mailbox moves to the name the winner gives it (dsync: to
// "<name>-temp-<n>", which loses every later clash with a real name, so
// it ends there), or, where the winner lacks it or the name is taken,
// to "<name>-temp-<n>" for good (where doveadm sync 2.3 leaves it
// [observed]: the "<name>-<GUID>" its tree then gives it is never made);
// then the loser's copy of the winner's mailbox takes the name. moved
// false: nothing could be renamed.
func (r *run) settleClash(ctx context.Context, x, y *treeSide, name string) (moved bool, err error) {
	w, l := x, y
	if r.opt.Mode != OneWay && clashWinner(x, y, name) == y { // sync -1: the source (x) wins
		w, l = y, x
	}
	gw, gl := w.byName[name].GUID, l.byName[name].GUID
	to, ok := w.byGUID[gl]
	age := w.renamed[to]
	if !ok || to == name || l.taken(to) || strings.HasPrefix(to, name+"/") {
		to, age = l.tempName(name), temporaryAge
	}
	r.subscriptionAside(ctx, l, to, false)
	if ok, err := r.rename(ctx, l, name, to, age); err != nil || !ok {
		return false, err
	}
	r.carrySubscriptions(ctx, l, name, to)
	if from, ok := l.byGUID[gw]; ok && !strings.HasPrefix(name, from+"/") {
		if rest, ok := strings.CutPrefix(from, name+"/"); ok {
			from = to + "/" + rest // it moved along with name
		}
		if ok, err := r.rename(ctx, l, from, name, w.renamed[name]); err != nil {
			return true, err
		} else if ok {
			r.carrySubscriptions(ctx, l, from, name)
		}
	}
	return true, nil
}

// subscriptionAside mirrors what dsync does to a subscribed name without
// a mailbox (a node that does not exist, but is subscribed) that a rename
// in side is about to land on: it renames that node to
// "<name>-temp-<n>" like any node in the way, and as no mailbox is there,
// only its subscription stays, under the temporary name, on both sides
// [observed]. So the temporary name is subscribed here; the subscription
// sync carries it to the other side.
//
// The subscriptions below it are nodes that move along: they stay
// subscribed under the temporary name too [observed]. noDir: the name is
// known to be no directory (renameOntoDir found none), whatever the
// names below it suggest.
func (r *run) subscriptionAside(ctx context.Context, side *treeSide, name string, noDir bool) {
	info, ok := side.byName[name]
	if !ok || !info.NoSelect || !info.Subscribed || !noDir && side.hasChildren(name) || r.opt.Mode != Sync {
		return
	}
	if r.vacated[side.idx][name] {
		// Only the subscription of a mailbox this run renamed away:
		// dsync's tree moved that node with the mailbox.
		return
	}
	tmp := side.tempName(name)
	rels := []string{""}
	for other, oi := range side.byName {
		if rel, ok := strings.CutPrefix(other, name); ok && rel != "" && rel[0] == formats.Separator && oi.NoSelect && oi.Subscribed && !side.vacated[other] {
			rels = append(rels, rel)
		}
	}
	slices.Sort(rels)
	for _, rel := range rels {
		r.subscribe(ctx, side, tmp+rel)
	}
}

// clashWinner tells which of x and y keeps name, which both give to a
// mailbox, different ones (see settleClash).
func clashWinner(x, y *treeSide, name string) *treeSide {
	gx, gy := x.byName[name].GUID, y.byName[name].GUID
	age := func(t *treeSide, other formats.GUID) int64 {
		ts := t.renamed[name]
		if n, ok := t.byGUID[other]; ok {
			ts = max(ts, t.renamed[n])
		}
		return ts
	}
	tx, ty := age(x, gy), age(y, gx)
	if tx != ty {
		if tx > ty {
			return x
		}
		return y
	}
	if bytes.Compare(gx[:], gy[:]) < 0 {
		return x
	}
	return y
}

// keepsName tells which side keeps its name for mailbox g, named an in a
// and bn in b, as dsync's walk over both trees decides it at the name it
// meets first (walkCompare; sync_rename_lower_ts there): where the other
// side has another mailbox at that name, the clash decides
// (clashWinner: each side's age is the newer one of its two nodes
// involved); otherwise the newer of the two names wins, where a node the
// other side has at the first name (a directory) adds its age to that
// side's, and equal ages are ties (keepsNameOnTie). A name that is only
// this run's temporary name is older than any other (temporaryAge).
func keepsName(a *treeSide, an string, b *treeSide, bn string, g formats.GUID) *treeSide {
	first, other := a, b
	name, otherName := an, bn
	if walkCompare(bn, an) < 0 {
		first, other, name, otherName = b, a, bn, an
	}
	tf, to := first.renamed[name], other.renamed[otherName]
	if info, ok := other.byName[name]; ok {
		if !info.NoSelect && !info.GUID.IsZero() {
			return clashWinner(first, other, name)
		}
		to = max(to, other.renamed[name])
	}
	if strings.HasPrefix(otherName, name+"/") {
		// The other side's node lies below the name first gives it
		// (where the other side has no mailbox): dsync finds the node
		// under the parent it should become (node_has_parent), moves it
		// to a temporary name at that parent's level, which loses, so
		// first's name wins whatever the ages. Renaming the first side's
		// node into its own subtree instead would carry along the
		// children the other side's renames then move under it again,
		// without end.
		return first
	}
	switch {
	case tf > to:
		return first
	case to > tf:
		return other
	}
	return keepsNameOnTie(a, an, b, bn, g)
}

// keepsNameOnTie tells which side keeps its name for mailbox g, named an
// in a and bn in b, when both names are equally old, as dsync decides it
// (dsync.md §2.4 step 3, "Ties"; dsync-mailbox-tree-sync.c): its walk
// over both trees meets the name first in walkCompare order, say an, and
// compares the two nodes there by existence, then GUID. Where b has
// nothing at an (or only a subscription, or a Maildir++ container, which
// is only a name), a's existing mailbox wins;
// where b has a \Noselect directory, its zero GUID is the lower one, so
// b wins and g ends under bn; where b has another mailbox, the clash is
// settled as settleClash does.
func keepsNameOnTie(a *treeSide, an string, b *treeSide, bn string, g formats.GUID) *treeSide {
	first, other := a, b
	name := an
	if walkCompare(bn, an) < 0 {
		first, other, name = b, a, bn
	}
	info, ok := other.byName[name]
	switch {
	case !ok || (info.NoSelect && (info.Subscribed && !other.hasChildren(name) || other.impliedDirs())):
		return first // no existing node there in dsync's tree: the mailbox wins
	case info.NoSelect || info.GUID.IsZero():
		return other // an existing directory: GUID zero is lower
	default:
		return clashWinner(first, other, name)
	}
}

// impliedDirs tells whether t's containers are only names that the
// mailboxes below them imply (formats.ImpliedDirs: Maildir++).
func (t *treeSide) impliedDirs() bool {
	d, ok := t.store.(formats.ImpliedDirs)
	return ok && d.ImpliedDirs()
}

// walkCompare orders mailbox names as dsync's tree walk meets them:
// level by level, siblings by byte-wise name, a node's children before
// its next sibling. So the separator sorts below every other byte:
// "Old/Other" comes before "Old-x" though '-' < '/'.
func walkCompare(x, y string) int {
	for i := 0; i < len(x) && i < len(y); i++ {
		cx, cy := x[i], y[i]
		if cx == cy {
			continue
		}
		if cx == formats.Separator {
			return -1
		}
		if cy == formats.Separator {
			return 1
		}
		return int(cx) - int(cy)
	}
	return len(x) - len(y)
}

// renameOntoDir renames from to the name of the \Noselect directory to,
// as dsync's tree moves a node onto a directory node: the directory
// moves aside to "<to>-temp-<n>" with its children, and from is renamed
// to to. A child that other has right below to (same GUID, same name
// under to) moves back, as dsync's walk of the children then finds it
// there on the side whose rename is the newer one; the others stay under
// the temporary directory, which goes once it is empty [observed:
// doveadm sync leaves a mailbox only one side had below the directory in
// "<to>-temp-1/"].
func (r *run) renameOntoDir(ctx context.Context, side, other *treeSide, from, to string) error {
	tmp := side.tempName(to)
	err := r.storeRename(ctx, side, to, tmp, temporaryAge)
	if errors.Is(err, formats.ErrNotFound) {
		// No directory there, only subscriptions (a listing cannot tell
		// a subscribed empty directory from a subscription): land on
		// the name as on a subscription.
		r.subscriptionAside(ctx, side, to, true)
		if ok, err := r.rename(ctx, side, from, to, other.renamed[to]); err != nil || !ok {
			return errors.Join(err, formats.Errorf(formats.KindTemp, "%s: mailbox %q: can't rename to %q", r.opt.Mode.String(), from, to))
		}
		r.carrySubscriptions(ctx, side, from, to)
		return nil
	}
	if err != nil {
		return errors.Join(err, formats.Errorf(formats.KindTemp, "%s: mailbox %q: can't move directory %q aside", r.opt.Mode.String(), from, to))
	}
	// The directory's node takes its children's flags along, held
	// under the temporary name for the names they move on to.
	r.carrySubscriptions(ctx, side, to, tmp)
	orig := from
	if rest, ok := strings.CutPrefix(from, to+"/"); ok {
		from = tmp + "/" + rest // it moved aside with the directory
	}
	if ok, err := r.rename(ctx, side, from, to, other.renamed[to]); err != nil || !ok {
		return errors.Join(err, formats.Errorf(formats.KindTemp, "%s: mailbox %q: can't rename to %q", r.opt.Mode.String(), from, to))
	}
	r.carrySubscriptions(ctx, side, orig, to)
	boxes, err := r.mailboxes(ctx, side.idx)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": list "+side.label+" mailboxes", "", 0, "")
	}
	moved, left := "", false
	for _, b := range boxes {
		rest, ok := strings.CutPrefix(b.Name, tmp+"/")
		if !ok || (b.NoSelect && b.Subscribed) || (moved != "" && strings.HasPrefix(b.Name, moved+"/")) {
			continue
		}
		if b.NoSelect || b.GUID.IsZero() || other.byGUID[b.GUID] != to+"/"+rest {
			left = left || !b.NoSelect
			continue
		}
		if ok, err := r.rename(ctx, side, b.Name, to+"/"+rest, other.renamed[to+"/"+rest]); err != nil {
			return err
		} else if ok {
			moved = b.Name
		}
	}
	if left {
		return nil
	}
	err = side.store.Delete(ctx, tmp)
	r.treeChanged(side.idx)
	if err != nil && !errors.Is(err, formats.ErrNotFound) {
		r.desync("directory %q left behind: %v", tmp, err)
	}
	return nil
}

// carrySubscriptions subscribes the new names of subscribed mailboxes a
// rename moved (the mailbox and its children). dsync moves the tree node
// with its subscribed flag, so the other side subscribes the new name;
// QUIRK: dsync 2.3 leaves the renaming side's subscriptions file as it
// was, so only a second run subscribes the new name there too; boxsync
// does it at once. The old name stays subscribed on both sides, as with
// dsync (a rename never unsubscribes). A temporary name is never
// subscribed: the node keeps its flag there (r.tempSubs) for the name it
// moves on to, or, where it stays, for the final name dsync's tree gives
// it (finishTemporaries) [observed].
func (r *run) carrySubscriptions(ctx context.Context, side *treeSide, from, to string) {
	if r.opt.Mode == OneWay {
		// dsync -1 neither: the new name would have to come from the
		// source, which keeps its subscriptions as they are.
		return
	}
	held := r.tempSubs[side.idx]
	rels := held[from] // "" for the node, "/<child>" for its children
	delete(held, from)
	for tmp, tmpRels := range held {
		// A child of a node held under a temporary name moves on by
		// itself: its flags go with it, not with the held node.
		rest, ok := strings.CutPrefix(from, tmp+"/")
		if !ok {
			continue
		}
		kept := tmpRels[:0:0]
		for _, rel := range tmpRels {
			if sub, ok := strings.CutPrefix(rel, "/"+rest); ok && (sub == "" || sub[0] == formats.Separator) {
				rels = append(rels, sub)
			} else {
				kept = append(kept, rel)
			}
		}
		held[tmp] = kept
	}
	for name, info := range side.byName {
		if info.Subscribed && (name == from || strings.HasPrefix(name, from+"/") && !side.vacated[name]) {
			rels = append(rels, name[len(from):])
		}
	}
	slices.Sort(rels)
	rels = slices.Compact(rels)
	if r.temporary(side.idx, to) {
		if len(rels) > 0 {
			if held == nil {
				held = map[string][]string{}
				r.tempSubs[side.idx] = held
			}
			held[to] = rels
		}
		return
	}
	carried := r.carried[side.idx]
	if carried == nil {
		carried = map[string]bool{}
		r.carried[side.idx] = carried
	}
	for _, rel := range rels {
		if carried[from+rel] {
			// A name this run subscribed for the node when it
			// moved there: it moves on with the node (a child
			// carried along by its parent's rename and then renamed
			// itself leaves no subscription at the name between).
			delete(carried, from+rel)
			r.unsubscribe(ctx, side, from+rel)
		}
		if !side.byName[to+rel].Subscribed {
			carried[to+rel] = true // not one the user had
		}
		r.subscribe(ctx, side, to+rel)
	}
}

// subscribe subscribes name in side.
func (r *run) subscribe(ctx context.Context, side *treeSide, name string) {
	r.setSubscribed(ctx, side, name, true)
}

// unsubscribe unsubscribes name in side.
func (r *run) unsubscribe(ctx context.Context, side *treeSide, name string) {
	r.setSubscribed(ctx, side, name, false)
}

// setSubscribed (un)subscribes name in side; a failure counts against
// the run and the tree sync goes on.
func (r *run) setSubscribed(ctx context.Context, side *treeSide, name string, on bool) {
	op := map[bool]string{true: "subscribe", false: "unsubscribe"}[on]
	r.logf("%s: %sing on the %s", name, strings.TrimSuffix(op, "e"), side.label)
	err := side.store.SetSubscribed(ctx, name, on)
	r.treeChanged(side.idx)
	if err != nil {
		r.fail(formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": "+op, name, 0, ""))
	}
}

// temporary tells whether name in store i is a temporary name this run's
// renames made.
func (r *run) temporary(i int, name string) bool {
	age, ok := r.treeAges[i][name]
	return ok && age == temporaryAge
}

// finishTemporaries settles the subscriptions of the mailboxes left
// under a temporary name once the renames are done. dsync's tree renames
// such a node to "<name>-temp-<GUID>" (sync_rename_temp_mailbox_node),
// but 2.3 records no change for it, so the mailbox stays
// "<name>-temp-<n>" on both sides, and the subscription sync that
// follows compares the two sides' nodes under the tree's name: each
// node's flag is the one its name had before this run (held in
// r.tempSubs), and where they differ, subscribed wins, so the tree's
// name is subscribed (on both sides, as a second doveadm run leaves it);
// where they agree, nothing changes [observed].
func (r *run) finishTemporaries(ctx context.Context, a, b *treeSide) {
	seen := map[formats.GUID]bool{}
	for _, t := range []*treeSide{a, b} {
		o := a
		if t == a {
			o = b
		}
		held := r.tempSubs[t.idx]
		for _, tmp := range slices.Sorted(maps.Keys(held)) {
			info, ok := t.byName[tmp]
			if !ok || info.NoSelect || info.GUID.IsZero() || seen[info.GUID] {
				continue
			}
			seen[info.GUID] = true
			final := tmp[:strings.LastIndexByte(tmp, '-')+1] + info.GUID.String()
			if _, ok := o.byGUID[info.GUID]; !ok {
				// Only this side has the mailbox, which the other
				// side gets created under the temporary name: the
				// node's flags stay with it there (the subscription
				// sync copies them). QUIRK: after two runs doveadm
				// sync 2.3 has them there on this side, but under the
				// tree's "<name>-temp-<GUID>" on the other [observed];
				// boxsync leaves both sides alike.
				for _, rel := range held[tmp] {
					r.subscribe(ctx, t, tmp+rel)
				}
				continue
			}
			flags := map[string]int{} // "" or "/<child>" → sides whose node was subscribed
			for _, rel := range held[tmp] {
				flags[rel]++
			}
			if on, ok := o.byGUID[info.GUID]; ok {
				for _, rel := range r.tempSubs[o.idx][on] {
					flags[rel]++
				}
			}
			for _, rel := range slices.Sorted(maps.Keys(flags)) {
				if flags[rel] == 1 {
					r.subscribe(ctx, a, final+rel)
					r.subscribe(ctx, b, final+rel)
				}
			}
		}
	}
	r.tempSubs = [2]map[string][]string{}
}

// rename renames from → to in side, to which dsync's tree gives age as
// its last_renamed_or_created (noteRename). It reports false for a name
// that is taken or gone (a change during the sync, exit 2 as in dsync),
// and any other failure as an error that ends the tree sync.
func (r *run) rename(ctx context.Context, side *treeSide, from, to string, age int64) (bool, error) {
	err := r.storeRename(ctx, side, from, to, age)
	if errors.Is(err, formats.ErrExists) || errors.Is(err, formats.ErrNotFound) {
		r.desync("mailbox %q: rename to %q conflicted: %v", from, to, err)
		return false, nil
	}
	if err != nil {
		return false, formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": rename on the "+side.label, from, 0, "")
	}
	return true, nil
}

// storeRename is rename with the store's error as it is: the caller
// decides what a name that is taken or gone means.
func (r *run) storeRename(ctx context.Context, side *treeSide, from, to string, age int64) error {
	r.logf("%s: renaming to %q on the %s", from, to, side.label)
	err := side.store.(formats.Renamer).Rename(ctx, from, to)
	r.treeChanged(side.idx)
	if err != nil {
		return err
	}
	r.noteRename(side, from, to, age)
	r.update(func(res *Result) { res.Mailboxes.Renamed++ })
	return nil
}

// temporaryAge is the age of a temporary name ("<name>-temp-<n>"): older
// than any logged time, as dsync's temporary names do not count
// (dsync.md §2.4 step 3; nodes_get_timestamp gives such a node 0 where a
// real one gets its time+1).
const temporaryAge int64 = -1

// noteRename records the ages dsync's tree gives the names a rename in
// side made, for loadTree to use instead of the rename's own log record
// (logged with the current time, which would make every name this run
// moves the newest). dsync gives the renamed node age: for a temporary
// name temporaryAge, for a name taken over from the other side the other
// side's age there (sync_rename_node); its children keep their ages.
// Only the run's rename loop reads these ages, so a later run sees the
// renames as the store logged them, as dsync's next run does.
func (r *run) noteRename(side *treeSide, from, to string, age int64) {
	ages := r.treeAges[side.idx]
	if ages == nil {
		ages = map[string]int64{}
		r.treeAges[side.idx] = ages
	}
	moved := map[string]int64{}
	for name := range side.byName {
		if rest, ok := strings.CutPrefix(name, from+"/"); ok {
			moved[to+"/"+rest] = side.renamed[name]
		}
	}
	for name, a := range ages {
		if rest, ok := strings.CutPrefix(name, from+"/"); ok {
			moved[to+"/"+rest] = a
			delete(ages, name)
		} else if name == from {
			delete(ages, name)
		}
	}
	moved[to] = age
	maps.Copy(ages, moved)
	vacated := r.vacated[side.idx]
	if vacated == nil {
		vacated = map[string]bool{}
		r.vacated[side.idx] = vacated
	}
	// The node and its children moved: their old names are left with
	// at most a subscription. First mark them, then unmark the names the
	// rename filled (a child may land on its parent's old name).
	vacated[from] = true
	for name := range side.byName {
		if strings.HasPrefix(name, from+"/") {
			vacated[name] = true
		}
	}
	for name := range moved {
		delete(vacated, name)
	}
}

// syncTreeFinish deletes containers the other side logged as deleted and
// settles subscriptions by their timestamps, after the mail merge.
func (r *run) syncTreeFinish(ctx context.Context) error {
	a, b, err := r.loadTrees(ctx)
	if err != nil {
		return err
	}
	if r.applyDirDeletes(ctx, a, b)+r.applyDirDeletes(ctx, b, a) > 0 {
		if a, b, err = r.loadTrees(ctx); err != nil {
			return err
		}
	}
	r.createDirs(ctx, a, b)
	r.createDirs(ctx, b, a)
	names := map[string]bool{}
	for n := range a.byName {
		names[n] = true
	}
	for n := range b.byName {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	subTime := func(t *treeSide, name string) int64 {
		if t.vacated[name] {
			// This run renamed the node away: in dsync's tree its
			// last_subscription_change went with it, and the name
			// has no node (no time) on this side.
			return 0
		}
		if ts, ok := t.subTS[name]; ok {
			return ts
		}
		return t.unsubDel[formats.MailboxNameHash(name)]
	}
	for _, name := range sorted {
		if !r.wanted(name) {
			continue
		}
		sa, sb := a.byName[name].Subscribed, b.byName[name].Subscribed
		if sa == sb {
			continue
		}
		on, off := a, b
		if sb {
			on, off = b, a
		}
		set, target := true, off
		if subTime(off, name) > subTime(on, name) {
			set, target = false, on
		}
		r.setSubscribed(ctx, target, name, set)
	}
	return nil
}

// applyDirDeletes removes from to the childless containers that from
// logged as deleted after to last renamed or created them, and counts
// them.
func (r *run) applyDirDeletes(ctx context.Context, from, to *treeSide) (n int) {
	var hashes []formats.GUID
	for h := range from.delDir {
		hashes = append(hashes, h)
	}
	slices.SortFunc(hashes, func(x, y formats.GUID) int { return bytes.Compare(x[:], y[:]) })
	for _, h := range hashes {
		name, ok := to.byHash[h]
		if !ok || !r.wanted(name) {
			continue
		}
		if info := to.byName[name]; !info.NoSelect || from.delDir[h] <= to.renamed[name] {
			continue
		}
		// Children that count are mailboxes (node_has_existent_children);
		// a subscription of a missing name below it does not.
		children := false
		for other, info := range to.byName {
			children = children || (!info.NoSelect && strings.HasPrefix(other, name+"/"))
		}
		if children {
			continue
		}
		err := to.store.Delete(ctx, name)
		r.treeChanged(to.idx)
		switch {
		case err == nil:
			r.logf("%s: directory deleted on the %s", name, to.label)
			n++
		case errors.Is(err, formats.ErrNotFound), formats.KindOf(err) == formats.KindNotPossible:
			// a subscription without a mailbox (nothing on disk), or
			// empty directories below it: left alone
		default:
			r.fail(formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": delete directory", name, 0, ""))
		}
	}
	return n
}

// createDirs creates in to the empty containers that from has and to
// lacks (§2.4 step 6), where to can hold them (formats.DirCreator).
// A subscribed name without children may be only a subscription, not a
// directory: subscriptions settle it.
func (r *run) createDirs(ctx context.Context, from, to *treeSide) {
	dc, ok := to.store.(formats.DirCreator)
	if !ok {
		return
	}
	names := make([]string, 0, len(from.byName))
	for n := range from.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		info := from.byName[name]
		if _, ok := to.byName[name]; ok || !info.NoSelect || !r.wanted(name) {
			continue
		}
		if from.hasChildren(name) || info.Subscribed {
			continue // made with its children, or maybe only a subscription
		}
		err := dc.CreateDir(ctx, name)
		r.treeChanged(to.idx)
		switch {
		case err == nil:
			r.logf("%s: directory created on the %s", name, to.label)
		case errors.Is(err, formats.ErrExists), formats.KindOf(err) == formats.KindNotPossible:
			// created meanwhile, or the format has no empty directories
		default:
			r.fail(formats.Wrap(err, formats.KindTemp, r.opt.Mode.String()+": create directory", name, 0, ""))
		}
	}
}

// hasChildren tells whether a node has children that are mailboxes or
// directories; a subscribed name without children of its own may be only
// a subscription, so it does not count. Where containers are only names
// (formats.ImpliedDirs: Maildir++), only mailboxes count: a chain of
// subscriptions that renames left behind is no directory.
func (t *treeSide) hasChildren(name string) bool {
	implied := t.impliedDirs()
	for other, info := range t.byName {
		if !strings.HasPrefix(other, name+"/") || info.NoSelect && t.vacated[other] {
			continue // what this run's renames left there is a subscription at most
		}
		if !info.NoSelect || !info.Subscribed {
			if implied && info.NoSelect {
				continue // below it is a mailbox, met on its own
			}
			return true
		}
		if implied {
			continue
		}
		for o2 := range t.byName {
			if strings.HasPrefix(o2, other+"/") {
				return true
			}
		}
	}
	return false
}

// taken tells whether name is a mailbox or directory in t; a subscribed
// name without children may be only a subscription, which a rename may
// land on.
func (t *treeSide) taken(name string) bool {
	info, ok := t.byName[name]
	return ok && (!info.NoSelect || !info.Subscribed || t.hasChildren(name))
}

// tempName is an unused "<name>-temp-<n>", n in hex (dsync's temporary
// names, TEMP_SUFFIX_FORMAT).
func (t *treeSide) tempName(name string) string {
	for n := 1; ; n++ {
		tmp := fmt.Sprintf("%s-temp-%x", name, n)
		if _, ok := t.byName[tmp]; !ok {
			return tmp
		}
	}
}
