// Package dboxtx is what the sdbox and mdbox drivers share of a
// transaction and of reading a mailbox index: the pending changes a
// transaction collects (saves, flag and keyword changes, expunges, the
// next UID, HIGHESTMODSEQ and first_recent_uid), writing them into an index transaction
// against the index as it is at commit, and listing messages from an
// index view.
package dboxtx

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxlist"
	"github.com/boxsync/boxsync/index"
)

// Save is what the index records of a message saved in a transaction.
// The drivers' save records embed it.
type Save struct {
	UID         uint32
	Flags       formats.Flags
	Keywords    []string
	ModSeq      formats.ModSeq
	UIDL, Order bool // has POP3 metadata
}

func (s *Save) save() *Save { return s }

// Rec is a pointer to a driver's save record, which embeds Save.
type Rec[S any] interface {
	*S
	save() *Save
}

// FlagSet is a pending SetFlags of an existing message.
type FlagSet struct {
	Flags    formats.Flags
	Keywords []string
}

// Pending is the bookkeeping of a transaction, embedded in the drivers'
// tx types: it implements SetFlags, Expunge, SetUIDNext,
// RaiseHighestModSeq and RaiseFirstRecentUID of formats.Tx. It is owned by the caller's
// goroutine, like the contract says.
type Pending[S any, P Rec[S]] struct {
	Driver  string // for errors: "sdbox", "mdbox"
	Mailbox string

	Done     bool
	Next     uint32 // the next UID Save hands out
	Saves    []S
	Changes  map[uint32]FlagSet
	Expunged map[uint32]bool
	Raise    uint32 // SetUIDNext's value
	HMS      uint64 // RaiseHighestModSeq's value
	Recent   uint32 // RaiseFirstRecentUID's value

	// Discard, if set, releases what a save that Expunge drops again
	// holds (its file, its bytes).
	Discard func(s P)
}

// Failf makes an error of kind k for op.
func (p *Pending[S, P]) Failf(op string, uid formats.UID, k formats.Kind, format string, args ...any) error {
	return dboxlist.Fail(k, p.Driver, op, p.Mailbox, uid, "", fmt.Errorf(format, args...))
}

// Keywords returns keywords normalised (a copy), or an error if one is
// not a valid keyword. It fails too when the transaction is finished.
func (p *Pending[S, P]) Keywords(op string, uid formats.UID, keywords []string) ([]string, error) {
	if p.Done {
		return nil, p.Failf(op, uid, formats.KindParams, "transaction is finished")
	}
	kws := formats.NormalizeKeywords(slices.Clone(keywords))
	for _, k := range kws {
		if err := index.CheckKeyword(k); err != nil {
			return nil, p.Failf(op, uid, formats.KindParams, "%s", err)
		}
	}
	return kws, nil
}

// NextUID takes the UID for a message saved with UID want (0: any): want
// unless it is below the next free one.
func (p *Pending[S, P]) NextUID(want formats.UID) (uint32, error) {
	uid := uint32(want)
	if uid == 0 || uid < p.Next {
		uid = p.Next
	}
	if uid >= 0xffffffff {
		return 0, p.Failf("save", want, formats.KindLimit, "UIDs exhausted")
	}
	p.Next = uid + 1
	return uid, nil
}

// SetFlags replaces the flags and keywords of a message at Commit.
func (p *Pending[S, P]) SetFlags(uid formats.UID, flags formats.Flags, keywords []string) error {
	kws, err := p.Keywords("flags", uid, keywords)
	if err != nil {
		return err
	}
	fs := FlagSet{Flags: flags & formats.SystemFlags, Keywords: kws}
	for i := range p.Saves {
		if s := P(&p.Saves[i]).save(); s.UID == uint32(uid) {
			s.Flags, s.Keywords = fs.Flags, fs.Keywords
			return nil
		}
	}
	if p.Changes == nil {
		p.Changes = map[uint32]FlagSet{}
	}
	p.Changes[uint32(uid)] = fs
	return nil
}

// Expunge removes a message at Commit. A message saved in this
// transaction is dropped from it (see Discard).
func (p *Pending[S, P]) Expunge(uid formats.UID) error {
	if p.Done {
		return p.Failf("expunge", uid, formats.KindParams, "transaction is finished")
	}
	for i := range p.Saves {
		if P(&p.Saves[i]).save().UID == uint32(uid) {
			if p.Discard != nil {
				p.Discard(&p.Saves[i])
			}
			p.Saves = slices.Delete(p.Saves, i, i+1)
			return nil
		}
	}
	if p.Expunged == nil {
		p.Expunged = map[uint32]bool{}
	}
	p.Expunged[uint32(uid)] = true
	delete(p.Changes, uint32(uid))
	return nil
}

// RaiseHighestModSeq raises HIGHESTMODSEQ at Commit
// (formats.ModSeqRaiser), so the mailbox never reports less than its
// source did.
func (p *Pending[S, P]) RaiseHighestModSeq(m formats.ModSeq) error {
	if p.Done {
		return p.Failf("highestmodseq", 0, formats.KindParams, "transaction is finished")
	}
	p.HMS = max(p.HMS, uint64(m))
	return nil
}

// RaiseFirstRecentUID raises the index header's first_recent_uid at
// Commit (formats.FirstRecentRaiser).
func (p *Pending[S, P]) RaiseFirstRecentUID(uid formats.UID) error {
	if p.Done {
		return p.Failf("first recent uid", 0, formats.KindParams, "transaction is finished")
	}
	p.Recent = max(p.Recent, uint32(uid))
	return nil
}

// SetUIDNext raises the next UID at Commit.
func (p *Pending[S, P]) SetUIDNext(next formats.UID) error {
	if p.Done {
		return p.Failf("uidnext", 0, formats.KindParams, "transaction is finished")
	}
	p.Raise = max(p.Raise, uint32(next))
	p.Next = max(p.Next, uint32(next))
	return nil
}

// Empty says the transaction changes nothing.
func (p *Pending[S, P]) Empty() bool {
	return len(p.Saves) == 0 && len(p.Changes) == 0 && len(p.Expunged) == 0 && p.Raise == 0 && p.HMS == 0 && p.Recent == 0
}

// IntroModSeq introduces the modseq extension when a save or the raised
// HIGHESTMODSEQ needs it. A mailbox Dovecot made has none until something
// enables CONDSTORE; it is introduced as Dovecot does (highest 1, log
// position 0/0) so that modseqs can be set.
func (p *Pending[S, P]) IntroModSeq(itx *index.Tx, v *index.View) {
	if _, ok := v.Ext(index.ExtModSeq); !ok && (slices.ContainsFunc(p.Saves, func(s S) bool { return P(&s).save().ModSeq > 0 }) || p.HMS > v.HighestModSeq()) {
		d := index.ExtDefModSeq
		d.Hdr = index.ModSeqHdr{HighestModSeq: 1}.Encode()
		itx.ExtIntro(d)
	}
}

// Append records a saved message with its final UID: the append with
// its flags, the driver's extension records (ext, if not nil), its
// keywords and modseq.
func Append(itx *index.Tx, s *Save, ext func()) {
	itx.Append(s.UID, uint8(s.Flags))
	if ext != nil {
		ext()
	}
	if len(s.Keywords) > 0 {
		itx.UpdateKeywords(s.UID, index.KeywordsAdd, s.Keywords...)
	}
	if s.ModSeq > 0 {
		itx.SetModSeq(s.UID, uint64(s.ModSeq))
	}
}

// Hdr is the driver's dbox-hdr or mdbox-hdr extension.
type Hdr struct {
	Ext   string // its name
	Flags uint8  // its flags now
}

// POP3 header flags of dbox-hdr and mdbox-hdr (enum
// dbox_index_header_flags).
const (
	HdrPOP3UIDLs  = 0x01
	HdrPOP3Orders = 0x02
)

// POP3 says which POP3 metadata Dovecot would honour for uid: UIDLs and
// orders only when the header flags say the mailbox has them, and only
// up to the hdr-pop3-uidl UID when that header exists
// (index_pop3_uidl_can_exist).
func POP3(v *index.View, hdrFlags uint8, uid uint32) (uidl, order bool) {
	if max, ok := v.Pop3UIDLMax(); ok && uid > max {
		return false, false
	}
	return hdrFlags&HdrPOP3UIDLs != 0, hdrFlags&HdrPOP3Orders != 0
}

// WriteChanges writes what the transaction changes beyond its appends
// (which Append wrote, with their final UIDs) into itx, against v, the
// index as it is now: the flag and keyword changes of messages still
// there, the expunges of messages still there (guid gives the GUID of
// message i with uid for its record), the POP3 header flags and
// hdr-pop3-uidl maximum for saves with POP3 metadata, the next UID,
// HIGHESTMODSEQ and first_recent_uid.
func (p *Pending[S, P]) WriteChanges(itx *index.Tx, v *index.View, hdr Hdr, guid func(i int, uid uint32) [16]byte) {
	for _, uid := range slices.Sorted(maps.Keys(p.Changes)) {
		_, cur, ok := v.Lookup(uid)
		if !ok {
			continue // expunged meanwhile
		}
		fs := p.Changes[uid]
		have := formats.Flags(cur.Flags) & formats.SystemFlags
		if add, remove := fs.Flags&^have, have&^fs.Flags; add|remove != 0 {
			itx.UpdateFlags(uid, uint8(add), uint8(remove))
		}
		var add, remove []string
		for _, k := range fs.Keywords {
			if !slices.Contains(cur.Keywords, k) {
				add = append(add, k)
			}
		}
		for _, k := range cur.Keywords {
			if !slices.Contains(fs.Keywords, k) {
				remove = append(remove, k)
			}
		}
		if len(add) > 0 {
			itx.UpdateKeywords(uid, index.KeywordsAdd, add...)
		}
		if len(remove) > 0 {
			itx.UpdateKeywords(uid, index.KeywordsRemove, remove...)
		}
	}
	for _, uid := range slices.Sorted(maps.Keys(p.Expunged)) {
		i, _, ok := v.Lookup(uid)
		if !ok {
			continue
		}
		itx.Expunge(uid, guid(i, uid))
	}
	next := v.NextUID()
	var uidl, order bool
	var pop3Max uint32
	for i := range p.Saves {
		s := P(&p.Saves[i]).save()
		next = max(next, s.UID+1)
		if s.UIDL || s.Order {
			uidl, order = uidl || s.UIDL, order || s.Order
			pop3Max = s.UID
		}
	}
	if uidl || order {
		flags := hdr.Flags
		if uidl {
			flags |= HdrPOP3UIDLs
		}
		if order {
			flags |= HdrPOP3Orders
		}
		if flags != hdr.Flags {
			itx.ExtHdrUpdate(hdr.Ext, 20, []byte{flags})
		}
		// index_pop3_uidl_set_max_uid: UIDLs above it are ignored
		maxUID := binary.LittleEndian.AppendUint32(nil, pop3Max)
		if cur, ok := v.Pop3UIDLMax(); !ok {
			itx.ExtIntro(index.ExtDef{Name: index.ExtPop3UIDL, HdrSize: 4, Hdr: maxUID})
		} else if cur < pop3Max {
			itx.ExtHdrUpdate(index.ExtPop3UIDL, 0, maxUID)
		}
	}
	if p.Raise > next && p.Raise > v.NextUID() {
		itx.SetHeader(index.FieldNextUID, p.Raise)
	}
	if p.HMS > v.HighestModSeq() {
		itx.SetModSeq(0, p.HMS)
	}
	// dovecot 2.3.19.1 sdbox-storage.c sdbox_mailbox_create_indexes and
	// mdbox-storage.c mdbox_write_index_header (mailbox_update's
	// min_first_recent_uid): a header update when it raises the value.
	// Capped at the next UID this transaction leaves, which Dovecot's
	// index check requires (first_recent_uid <= next_uid).
	if r := min(p.Recent, max(next, p.Raise)); r > v.Header().FirstRecentUID {
		itx.SetHeader(index.FieldFirstRecentUID, r)
	}
}
