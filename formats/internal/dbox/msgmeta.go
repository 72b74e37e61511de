package dbox

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// KnownKey tells whether a metadata key is one a writer sets itself or
// must not copy from another store: G R V Z X B, P and O (written from
// Message.Ext under their own rules) and the obsolete v1 keys. Other keys
// in Message.Ext are unknown metadata, kept as they are.
func KnownKey(k byte) bool {
	switch k {
	case MetaGUID, MetaReceivedTime, MetaVirtualSize, MetaPhysicalSize, MetaExtRef,
		MetaOrigMailbox, MetaPOP3UIDL, MetaPOP3Order,
		MetaOldV1Expunged, MetaOldV1Flags, MetaOldV1Keywords, MetaOldV1SaveTime:
		return true
	}
	return false
}

// CheckMessage checks that msg's GUID and Ext can be written into a
// metadata block that Dovecot reads back unchanged. The error's kind is
// KindNotPossible, or KindParams for a POP3 order that is not a number.
func CheckMessage(msg formats.Message) (formats.Kind, error) {
	if msg.GUID != "" && !ValidValue(msg.GUID) {
		return formats.KindNotPossible, fmt.Errorf("message GUID %q cannot be stored in dbox metadata", msg.GUID)
	}
	for k, v := range msg.Ext {
		if !ValidValue(v) {
			return formats.KindNotPossible, fmt.Errorf("metadata %q=%q cannot be stored in dbox metadata", string(k), v)
		}
		if !KnownKey(k) && (k <= ' ' || k >= 0x7f) {
			return formats.KindNotPossible, fmt.Errorf("metadata key %q cannot be stored in dbox metadata", string(k))
		}
	}
	if o := msg.Ext[MetaPOP3Order]; o != "" {
		if _, err := strconv.ParseUint(o, 10, 32); err != nil {
			return formats.KindParams, fmt.Errorf("POP3 order %q is not a number", o)
		}
	}
	return 0, nil
}

// HasPOP3 tells whether msg carries a POP3 UIDL and a POP3 order that a
// save writes (Dovecot writes no O for order 0).
func HasPOP3(msg formats.Message) (uidl, order bool) {
	o := msg.Ext[MetaPOP3Order]
	return msg.Ext[MetaPOP3UIDL] != "", o != "" && o != "0"
}

// SaveMetadata builds a saved message's metadata block in Dovecot's order
// (dbox_save_write_metadata): R, V, P, O, G, B (origMailbox, mdbox only),
// then msg's unknown metadata keys sorted by key. received is written as
// Dovecot's %lx of a time_t (two's complement before 1970).
func SaveMetadata(msg formats.Message, guid string, received time.Time, vsize int64, origMailbox string) Metadata {
	md := Metadata{Fields: []Field{
		{Key: MetaReceivedTime, Value: strconv.FormatUint(uint64(received.Unix()), 16)},
		{Key: MetaVirtualSize, Value: strconv.FormatInt(vsize, 16)},
	}}
	uidl, order := HasPOP3(msg)
	if uidl {
		md.Fields = append(md.Fields, Field{Key: MetaPOP3UIDL, Value: msg.Ext[MetaPOP3UIDL]})
	}
	if order {
		md.Fields = append(md.Fields, Field{Key: MetaPOP3Order, Value: msg.Ext[MetaPOP3Order]})
	}
	md.Fields = append(md.Fields, Field{Key: MetaGUID, Value: guid})
	if origMailbox != "" && ValidValue(origMailbox) {
		md.Fields = append(md.Fields, Field{Key: MetaOrigMailbox, Value: origMailbox})
	}
	keys := make([]byte, 0, len(msg.Ext))
	for k := range msg.Ext {
		if !KnownKey(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		md.Fields = append(md.Fields, Field{Key: k, Value: msg.Ext[k]})
	}
	return md
}

// FillMessage sets the fields of msg that live in a message's metadata
// (spec §3.3): GUID (G), Received (R; the epoch when absent, as Dovecot
// reads it), Size (the plain size), VSize (V, else -1), and in Ext the
// POP3 UIDL and order when uidl and order say Dovecot would honour them,
// plus unknown keys (the first of each). A non-hex R or V is an error.
func FillMessage(msg *formats.Message, m *Message, uidl, order bool) error {
	md := &m.Metadata
	msg.GUID, _ = md.Get(MetaGUID)
	r, ok, err := md.Hex(MetaReceivedTime)
	if err != nil {
		return err
	}
	msg.Received = time.Unix(0, 0)
	if ok {
		msg.Received = time.Unix(int64(r), 0) // time_t: negative times are two's complement
	}
	msg.Size, _ = m.PlainSize()
	msg.VSize = -1
	if vs, ok, err := md.Hex(MetaVirtualSize); err != nil {
		return err
	} else if ok && vs < 1<<62 {
		msg.VSize = int64(vs)
	}
	for _, f := range md.Fields {
		switch {
		case f.Key == MetaPOP3UIDL:
			if !uidl {
				continue
			}
		case f.Key == MetaPOP3Order:
			if !order {
				continue
			}
		case KnownKey(f.Key):
			continue
		}
		if _, dup := msg.Ext[f.Key]; dup {
			continue // the first one counts, as in dbox_file_metadata_get
		}
		if msg.Ext == nil {
			msg.Ext = map[byte]string{}
		}
		msg.Ext[f.Key] = f.Value
	}
	return nil
}

// CopyBody copies r into w through buf, checking ctx between reads.
func CopyBody(ctx interface{ Err() error }, w io.Writer, r io.Reader, buf []byte) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
