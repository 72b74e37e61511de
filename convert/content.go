package convert

import (
	"context"
	"io"
	"slices"
	"strconv"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/imapc/hdrhash"
)

// syncByContent mirrors a source mailbox into a destination that cannot
// keep UIDs (an IMAP server: APPEND picks the UID). Messages are matched
// by dsync's header hash plus virtual size (dsync.md §2.9), as a multiset,
// so identical messages pair up one to one: source mail without a match
// is saved, destination mail without one is expunged, matched pairs get
// the source's flags and keywords. A rerun therefore moves only what
// changed and never duplicates (dsync cannot back up to IMAP at all).
func (r *run) syncByContent(ctx context.Context, srcBox, dstBox formats.Mailbox, srcSt formats.Status) error {
	name := srcBox.Name()
	dstMsgs := map[formats.UID]formats.Message{}
	for m, err := range dstBox.Messages(ctx, 1) {
		if err != nil {
			return formats.Wrap(err, formats.KindTemp, "backup: list destination", name, 0, "")
		}
		dstMsgs[m.UID] = m
	}
	dstHashes, err := hdrHashes(ctx, dstBox, dstMsgs)
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, "backup: destination header hashes", name, 0, "")
	}
	byKey := map[string][]formats.UID{} // unmatched destination UIDs, ascending
	for uid := range dstMsgs {
		k := dstHashes[uid] + "/" + strconv.FormatInt(dstMsgs[uid].VSize, 10)
		byKey[k] = append(byKey[k], uid)
	}
	for k := range byKey {
		slices.Sort(byKey[k])
	}

	ms := &mailboxSync{r: r, name: name, src: srcBox, dst: dstBox, anyUID: true}
	defer ms.rollback()
	for m, err := range srcBox.Messages(ctx, 1) {
		if err != nil {
			return formats.Wrap(err, formats.KindTemp, "backup: list source", name, 0, "")
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		k, err := contentKey(ctx, srcBox, m)
		if err != nil {
			ms.errs++
			r.fail(err)
			continue
		}
		if uids := byKey[k]; len(uids) > 0 {
			d := dstMsgs[uids[0]]
			byKey[k] = uids[1:]
			if d.Flags != m.Flags || !formats.EqualKeywords(d.Keywords, m.Keywords) {
				if err := ms.setFlags(ctx, formats.Message{UID: d.UID, Flags: m.Flags, Keywords: m.Keywords}); err != nil {
					return err
				}
			}
			continue
		}
		m.GUID = "" // the destination makes its own
		if err := ms.save(ctx, m); err != nil {
			return err
		}
	}
	for _, uids := range byKey {
		if ms.errs > 0 {
			// A source message we could not read may be one of these:
			// expunge nothing rather than drop its copy.
			break
		}
		for _, uid := range uids {
			if err := ms.expunge(ctx, uid); err != nil {
				return err
			}
		}
	}
	if err := ms.commit(ctx, 0); err != nil {
		return err
	}
	r.update(func(res *Result) {
		res.Mailboxes.Synced++
		res.Messages.Saved += ms.counts.Saved
		res.Messages.Expunged += ms.counts.Expunged
		res.Messages.FlagsChanged += ms.counts.FlagsChanged
		res.Bytes += ms.bytes
	})
	return nil
}

// hdrHashes gets every listed message's header hash, the cheap way where
// the mailbox offers one (formats.HdrHasher), else from its bytes.
func hdrHashes(ctx context.Context, mb formats.Mailbox, msgs map[formats.UID]formats.Message) (map[formats.UID]string, error) {
	if h, ok := mb.(formats.HdrHasher); ok {
		return h.HdrHashes(ctx, 1, nil)
	}
	out := make(map[formats.UID]string, len(msgs))
	for uid := range msgs {
		err := mb.Body(ctx, uid, func(b formats.Body) error {
			v, err := hdrhash.V3(b, hdrhash.DefaultHeaders)
			out[uid] = v
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// contentKey is a source message's header hash and virtual size (the
// CRLF-counted size an IMAP server reports as RFC822.SIZE).
func contentKey(ctx context.Context, mb formats.Mailbox, m formats.Message) (string, error) {
	var key string
	err := mb.Body(ctx, m.UID, func(b formats.Body) error {
		var vs formats.VSizeCounter
		tee := io.TeeReader(b, &vs)
		h, err := hdrhash.V3(tee, hdrhash.DefaultHeaders)
		if err != nil {
			return err
		}
		vsize := m.VSize
		if vsize < 0 {
			// Count the rest of the message too.
			if _, err := io.Copy(io.Discard, tee); err != nil {
				return err
			}
			vsize = vs.VSize()
		}
		key = h + "/" + strconv.FormatInt(vsize, 10)
		return nil
	})
	if err != nil {
		return "", formats.Wrap(err, formats.KindTemp, "backup: header hash", mb.Name(), m.UID, "")
	}
	return key, nil
}
