package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/boxsync/boxsync/formats"
)

// Verify counts what verification checked and what it tolerated.
type Verify struct {
	Mailboxes int `json:"mailboxes"`
	Messages  int `json:"messages"`
	// ChangedOnNew: flags differ because the user changed them on the
	// new location after the switch (modseq above the mark).
	ChangedOnNew int `json:"changed_on_new"`
	// ExpungedOnNew: old's message is gone from new because the user
	// expunged it there after the switch: new's transaction log records
	// a client's expunge of that UID and GUID since the mark
	// (formats.ExpungeHistory).
	ExpungedOnNew int `json:"expunged_on_new"`
	// ExpungesUnproven: of ExpungedOnNew, the messages gone from a
	// mailbox that the user changed after the switch, below new's
	// UIDNEXT, where new keeps no log reaching back to the mark (rotated
	// away, the index rebuilt, or a format without one): a user's
	// expunge can't be told from a loss there, so they are tolerated as
	// dsync would, and --remove-old refuses to delete the old location.
	ExpungesUnproven int `json:"expunges_unproven,omitempty"`
	// Renumbered: old's mail reached the old location after the switch
	// and its UID was taken on new by other new mail, so it was saved
	// under a new UID (as dsync does).
	Renumbered int `json:"renumbered"`
}

// verify is the last step before a user counts as converted. Mail that
// reached the old location after the merge (a session the kick missed, a
// delivery racing the auth cache) fails the first check; it is merged and
// checked once more.
func (r *userRun) verify(ctx context.Context) error {
	err := r.verifyOnce(ctx)
	if formats.KindOf(err) == formats.KindInvalidData {
		r.logf("Warning", "%s; merging again", firstLine(err.Error()))
		if err := r.merge(ctx); err != nil {
			return err
		}
		err = r.verifyOnce(ctx)
	}
	if err != nil {
		return err
	}
	r.entry.Unproven = r.rep.Verify.ExpungesUnproven
	if r.entry.Unproven > 0 {
		r.logf("Warning", "%d messages of the old location are gone from the new one, whose log no longer reaches back to the switch: taken for the user's expunges (--remove-old will refuse)", r.entry.Unproven)
	}
	return nil
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func (r *userRun) verifyOnce(ctx context.Context) error {
	old, _, err := r.cfg.Open(ctx, r.u, r.entry.Old, false)
	if err != nil {
		return err
	}
	defer old.Close()
	nw, _, err := r.cfg.Open(ctx, r.u, r.entry.New, false)
	if err != nil {
		return err
	}
	defer nw.Close()
	v, err := VerifyStores(ctx, old, nw, r.entry.Mark)
	r.rep.Verify = &v
	return err
}

// VerifyStores checks that nw holds every mailbox (same UIDVALIDITY and
// GUID), message (same UID and GUID), flag and keyword of old. What the
// user changed on nw after the switch is told apart with mark (nw's state
// at the switch): flags of a message whose modseq is above the mark are
// the user's doing and only counted. Mail gone from nw is the user's
// expunge only if nw's transaction log says so: a client's expunge
// request recorded after the mark, with the mail's GUID where it names
// one (formats.ExpungeHistory). Gone without such a request (a file
// removed behind Dovecot's back, which its sync logs as a bare expunge,
// or no record at all) is a loss. Only where the log doesn't reach back to the
// mark is mail gone from a changed mailbox below its UIDNEXT tolerated
// unproven (Verify.ExpungesUnproven). Every other difference is an error
// of kind KindInvalidData listing (at most 20 of) them.
func VerifyStores(ctx context.Context, old, nw formats.Store, mark []MailboxMark) (Verify, error) {
	var v Verify
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	marks := map[string]MailboxMark{}
	for _, m := range mark {
		marks[m.Name] = m
	}
	boxes, err := old.Mailboxes(ctx)
	if err != nil {
		return v, err
	}
	newBoxes, err := nw.Mailboxes(ctx)
	if err != nil {
		return v, err
	}
	newInfo := map[string]formats.MailboxInfo{}
	for _, b := range newBoxes {
		newInfo[b.Name] = b
	}
	for _, b := range boxes {
		if b.NoSelect {
			continue
		}
		v.Mailboxes++
		nb, ok := newInfo[b.Name]
		if !ok || nb.NoSelect {
			bad("mailbox %q is missing", b.Name)
			continue
		}
		if !b.GUID.IsZero() && !nb.GUID.IsZero() && b.GUID != nb.GUID {
			bad("mailbox %q: GUID %s, old has %s", b.Name, nb.GUID, b.GUID)
		}
		if err := verifyMailbox(ctx, old, nw, b.Name, marks[b.Name], &v, bad); err != nil {
			return v, err
		}
	}
	if len(problems) == 0 {
		return v, nil
	}
	n := len(problems)
	if n > 20 {
		problems = append(problems[:20], fmt.Sprintf("... and %d more", n-20))
	}
	return v, formats.Errorf(formats.KindInvalidData, "verification failed, %d differences:\n  %s", n, strings.Join(problems, "\n  "))
}

func verifyMailbox(ctx context.Context, old, nw formats.Store, name string, mk MailboxMark, v *Verify, bad func(string, ...any)) error {
	ob, err := old.Open(ctx, name)
	if err != nil {
		return err
	}
	defer ob.Close()
	nb, err := nw.Open(ctx, name)
	if errors.Is(err, formats.ErrNotFound) {
		bad("mailbox %q is missing", name)
		return nil
	} else if err != nil {
		return err
	}
	defer nb.Close()
	ost, err := ob.Status(ctx)
	if err != nil {
		return err
	}
	nst, err := nb.Status(ctx)
	if err != nil {
		return err
	}
	if ost.UIDValidity != nst.UIDValidity {
		bad("mailbox %q: UIDVALIDITY %d, old has %d", name, nst.UIDValidity, ost.UIDValidity)
		return nil
	}
	kw := ost.Caps.Keywords && nst.Caps.Keywords
	guids := ost.Caps.GUIDs && nst.Caps.GUIDs
	// Changed on new since the switch: with a mark, a modseq above it;
	// with none (a mailbox the passes never saw), nothing is known.
	changed := func(m formats.Message) bool {
		return nst.Caps.ModSeqs && mk.Name != "" && m.ModSeq > mk.HighestModSeq
	}
	newChanged := nst.Caps.ModSeqs && mk.Name != "" && nst.HighestModSeq > mk.HighestModSeq
	byUID := map[formats.UID]formats.Message{}
	byGUID := map[string]formats.UID{}
	for m, err := range nb.Messages(ctx, 1) {
		if err != nil {
			return err
		}
		byUID[m.UID] = m
		if m.GUID != "" {
			byGUID[m.GUID] = m.UID
		}
	}
	// history is what new's log says was expunged since the mark, read
	// once when needed; known is false without a log reaching back.
	var expunged map[formats.UID]formats.ExpungeRecord
	var loaded, known bool
	history := func() (map[formats.UID]formats.ExpungeRecord, bool, error) {
		if loaded {
			return expunged, known, nil
		}
		loaded = true
		eh, ok := nb.(formats.ExpungeHistory)
		if !ok {
			return nil, false, nil
		}
		var err error
		expunged, err = eh.ExpungedSince(ctx, mk.HighestModSeq)
		if errors.Is(err, formats.ErrHistoryLost) {
			return nil, false, nil
		}
		known = err == nil
		return expunged, known, err
	}
	for m, err := range ob.Messages(ctx, 1) {
		if err != nil {
			return err
		}
		v.Messages++
		n, ok := byUID[m.UID]
		switch {
		case ok && guids && n.GUID != m.GUID:
			if _, moved := byGUID[m.GUID]; moved && m.UID >= mk.UIDNext {
				v.Renumbered++
				continue
			}
			bad("%s UID %d: GUID %s, old has %s", name, m.UID, n.GUID, m.GUID)
			continue
		case ok && !guids && n.Size >= 0 && m.Size >= 0 && n.Size != m.Size:
			bad("%s UID %d: %d bytes, old has %d", name, m.UID, n.Size, m.Size)
			continue
		case !ok:
			if _, moved := byGUID[m.GUID]; guids && moved && m.UID >= mk.UIDNext {
				v.Renumbered++
				continue
			}
			if !newChanged || m.UID >= nst.UIDNext {
				bad("%s UID %d (GUID %s) is missing", name, m.UID, m.GUID)
				continue
			}
			expunged, known, err := history()
			if err != nil {
				return err
			}
			x, logged := expunged[m.UID]
			switch {
			case !known:
				v.ExpungedOnNew++
				v.ExpungesUnproven++
			case logged && x.Requested && (x.GUID == [16]byte{} || m.GUID == "" || x.GUID == formats.MessageGUID128(m.GUID)):
				v.ExpungedOnNew++
			case logged && !x.Requested:
				bad("%s UID %d (GUID %s) is missing: Dovecot dropped it without a client's expunge (its file vanished?)", name, m.UID, m.GUID)
			case logged:
				bad("%s UID %d (GUID %s) is missing: expunged on the new location as GUID %x", name, m.UID, m.GUID, x.GUID)
			default:
				bad("%s UID %d (GUID %s) is missing, and the new location's log records no expunge of it since the switch", name, m.UID, m.GUID)
			}
			continue
		}
		if n.Flags == m.Flags && (!kw || formats.EqualKeywords(n.Keywords, m.Keywords)) {
			continue
		}
		if changed(n) {
			v.ChangedOnNew++
			continue
		}
		bad("%s UID %d: flags %q %v, old has %q %v", name, m.UID, n.Flags, n.Keywords, m.Flags, m.Keywords)
	}
	return nil
}
