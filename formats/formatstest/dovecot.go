package formatstest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"sort"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// DovecotTree renders a store the way dovecottest.Snapshot renders what
// Dovecot sees, so a driver's view can be diffed against the real
// Dovecot's with dovecottest.Diff. Sizes and hashes come from the bytes
// Body yields; a VSize the driver does not know is computed from them.
func DovecotTree(ctx context.Context, store formats.Store) (dovecottest.Tree, error) {
	var tree dovecottest.Tree
	boxes, err := store.Mailboxes(ctx)
	if err != nil {
		return tree, err
	}
	for _, info := range boxes {
		box := dovecottest.Mailbox{Name: info.Name, Subscribed: info.Subscribed}
		if !info.NoSelect {
			box.GUID = info.GUID.String()
			if err := fillMailbox(ctx, store, &box); err != nil {
				return tree, err
			}
		}
		tree.Mailboxes = append(tree.Mailboxes, box)
	}
	sort.Slice(tree.Mailboxes, func(i, j int) bool { return tree.Mailboxes[i].Name < tree.Mailboxes[j].Name })
	return tree, nil
}

func fillMailbox(ctx context.Context, store formats.Store, box *dovecottest.Mailbox) error {
	mb, err := store.Open(ctx, box.Name)
	if err != nil {
		return err
	}
	defer mb.Close()
	st, err := mb.Status(ctx)
	if err != nil {
		return err
	}
	box.GUID = st.GUID.String()
	box.UIDValidity, box.UIDNext, box.HighestModSeq = st.UIDValidity, uint32(st.UIDNext), uint64(st.HighestModSeq)
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			return err
		}
		msg := dovecottest.Message{
			UID: uint32(m.UID), GUID: m.GUID, Keywords: append([]string(nil), m.Keywords...),
			Received: m.Received.Unix(), ModSeq: uint64(m.ModSeq), VSize: m.VSize,
		}
		if !m.Saved.IsZero() {
			msg.Saved = m.Saved.Unix()
		}
		for _, f := range (m.Flags & formats.SystemFlags).Names() {
			msg.Flags = append(msg.Flags, f)
		}
		sort.Strings(msg.Flags)
		sort.Strings(msg.Keywords)
		if len(msg.Keywords) == 0 {
			msg.Keywords = nil
		}
		err := mb.Body(ctx, m.UID, func(b formats.Body) error {
			h := sha256.New()
			var vs formats.VSizeCounter
			n, err := io.Copy(io.MultiWriter(h, &vs), b)
			msg.Size, msg.SHA256 = n, hex.EncodeToString(h.Sum(nil))
			if msg.VSize < 0 {
				msg.VSize = vs.VSize()
			}
			return err
		})
		if err != nil {
			return err
		}
		box.Messages = append(box.Messages, msg)
	}
	return nil
}
