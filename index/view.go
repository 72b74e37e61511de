package index

import (
	"iter"
	"slices"

	"github.com/boxsync/boxsync/index/log"
)

// View is an immutable snapshot of an index: what Dovecot sees after
// reading dovecot.index and replaying the log. Records are addressed by
// position i (0-based, ascending UIDs; Dovecot's sequence number is i+1).
type View struct {
	st      *state
	logPath string
}

func newView(st *state, logPath string) *View { return &View{st: st, logPath: logPath} }

// Message is one message of a View.
type Message struct {
	UID      uint32
	Flags    uint8    // record flags: system flags plus FlagBackend/FlagDirty
	Keywords []string // in keyword index order
	ModSeq   uint64
}

// Header returns the base header as dovecot.index would hold it now.
func (v *View) Header() Header {
	h := decodeHeader(v.st.base)
	h.HeaderSize = uint32(v.st.headerSize())
	h.RecordSize = uint32(v.st.recs.size)
	return h
}

// UIDValidity is the mailbox's UIDVALIDITY.
func (v *View) UIDValidity() uint32 { return v.st.get(offUIDValidity) }

// NextUID is the mailbox's UIDNEXT.
func (v *View) NextUID() uint32 { return v.st.get(offNextUID) }

// HighestModSeq is the mailbox's HIGHESTMODSEQ as Dovecot reports it: the
// "modseq" header's highest_modseq, else the log's modseq counter.
func (v *View) HighestModSeq() uint64 { return v.st.highestModSeq() }

// Count is the number of messages.
func (v *View) Count() int { return v.st.count() }

// Deleted reports whether the log marks the mailbox as deleted.
func (v *View) Deleted() bool { return v.st.deleted }

// LogPos is the end of the log this view was read up to.
func (v *View) LogPos() log.Pos { return v.st.logPos }

// Keywords are the index's keyword names; a keyword's position is its
// index (and its Maildir letter 'a'+i when Dovecot writes
// dovecot-keywords in that order).
func (v *View) Keywords() []string { return slices.Clone(v.st.kw) }

// Message returns message i.
func (v *View) Message(i int) Message {
	r := v.st.rec(i)
	return Message{UID: le.Uint32(r), Flags: r[4], Keywords: v.st.recKeywords(i), ModSeq: v.st.recModSeq(i)}
}

// UID returns message i's UID: a cheap way to walk the messages beside
// another UID-ordered list.
func (v *View) UID(i int) uint32 { return v.st.uid(i) }

// Lookup finds the message with uid.
func (v *View) Lookup(uid uint32) (i int, m Message, ok bool) {
	i, ok = v.st.find(uid)
	if !ok {
		return 0, Message{}, false
	}
	return i, v.Message(i), true
}

// Messages yields every message with its position.
func (v *View) Messages() iter.Seq2[int, Message] {
	return func(yield func(int, Message) bool) {
		for i := 0; i < v.st.count(); i++ {
			if !yield(i, v.Message(i)) {
				return
			}
		}
	}
}

// Extensions lists the extensions in index order.
func (v *View) Extensions() []Ext {
	out := make([]Ext, len(v.st.exts))
	for i, e := range v.st.exts {
		out[i] = Ext{Name: e.name, ResetID: e.resetID, HdrSize: e.hdrSize, RecordOffset: e.recOffset,
			RecordSize: e.recSize, RecordAlign: e.recAlign, Hdr: e.hdr[:e.hdrSize]}
	}
	return out
}

// Ext returns extension name.
func (v *View) Ext(name string) (Ext, bool) {
	for _, e := range v.Extensions() {
		if e.Name == name {
			return e, true
		}
	}
	return Ext{}, false
}

// ExtRecord returns extension name's record of message i (nil when the
// extension has no records). Do not modify it.
func (v *View) ExtRecord(i int, name string) []byte {
	e := v.st.ext(name)
	if e == nil || e.recSize == 0 {
		return nil
	}
	return v.st.rec(i)[e.recOffset : int(e.recOffset)+int(e.recSize)]
}

// Record returns message i's raw record (record_size bytes). Do not modify it.
func (v *View) Record(i int) []byte { return v.st.rec(i) }

func (v *View) extHdr(name string) []byte {
	if e := v.st.ext(name); e != nil {
		return e.hdr[:e.hdrSize]
	}
	return nil
}

// DboxHdr returns the sdbox "dbox-hdr" header.
func (v *View) DboxHdr() (DboxHdr, bool) { return decodeDboxHdr(v.extHdr(ExtDboxHdr)) }

// MdboxHdr returns the mdbox "mdbox-hdr" header.
func (v *View) MdboxHdr() (MdboxHdr, bool) { return decodeMdboxHdr(v.extHdr(ExtMdboxHdr)) }

// MapHdr returns the mdbox map's "map" header.
func (v *View) MapHdr() (MapHdr, bool) { return decodeMapHdr(v.extHdr(ExtMap)) }

// ModSeqHdr returns the "modseq" header.
func (v *View) ModSeqHdr() (ModSeqHdr, bool) { return v.st.modseqHdr() }

// MaildirHdr returns the "maildir" header.
func (v *View) MaildirHdr() (MaildirHdr, bool) { return decodeMaildirHdr(v.extHdr(ExtMaildir)) }

// Pop3UIDLMax returns the "hdr-pop3-uidl" header: POP3 UIDLs of UIDs above
// it are ignored.
func (v *View) Pop3UIDLMax() (uint32, bool) {
	h := v.extHdr(ExtPop3UIDL)
	if len(h) < 4 {
		return 0, false
	}
	return le.Uint32(h), true
}

// GUID returns message i's "guid" record (mdbox).
func (v *View) GUID(i int) (g [16]byte, ok bool) {
	r := v.ExtRecord(i, ExtGUID)
	if len(r) < 16 {
		return g, false
	}
	copy(g[:], r)
	return g, true
}

// MdboxRec returns message i's "mdbox" record.
func (v *View) MdboxRec(i int) (MdboxRec, bool) {
	r := v.ExtRecord(i, ExtMdbox)
	if len(r) < 8 {
		return MdboxRec{}, false
	}
	return MdboxRec{MapUID: le.Uint32(r), SaveDate: le.Uint32(r[4:])}, true
}

// MapRec returns map UID i's "map" record (mdbox map index).
func (v *View) MapRec(i int) (MapRec, bool) {
	r := v.ExtRecord(i, ExtMap)
	if len(r) < 12 {
		return MapRec{}, false
	}
	return MapRec{FileID: le.Uint32(r), Offset: le.Uint32(r[4:]), Size: le.Uint32(r[8:])}, true
}

// RefCount returns map UID i's "ref" record (mdbox map index).
func (v *View) RefCount(i int) (uint16, bool) {
	r := v.ExtRecord(i, ExtRef)
	if len(r) < 2 {
		return 0, false
	}
	return le.Uint16(r), true
}
