package convert

import (
	"context"
	"io"
	"strings"

	"github.com/boxsync/boxsync/formats"
)

// filtering tells whether any filter of new mail is set (-t, -e, -I, -O).
func (o *Options) filtering() bool {
	return !o.Since.IsZero() || !o.Until.IsZero() || o.MaxSize > 0 || o.Flag != ""
}

// wantNew tells whether msg, which the other side lacks, may be copied
// there: dsync's dsync_mailbox_import_want_change. dsync applies it to
// the peer's records of mail missing locally (new mail, and mail it would
// otherwise restore), never to expunges or flag changes; a mail it
// rejects is invisible to that importer. Received and virtual size as
// IMAP shows them; the virtual size is counted from the body when the
// store does not know it.
func (r *run) wantNew(ctx context.Context, box formats.Mailbox, msg formats.Message) (bool, error) {
	o := &r.opt
	if !o.Since.IsZero() && msg.Received.Before(o.Since) {
		return false, nil
	}
	if !o.Until.IsZero() && msg.Received.After(o.Until) {
		return false, nil
	}
	if o.MaxSize > 0 {
		vsize := msg.VSize
		if vsize < 0 {
			var c formats.VSizeCounter
			err := box.Body(ctx, msg.UID, func(b formats.Body) error {
				_, err := io.Copy(&c, b)
				return err
			})
			if err != nil {
				return false, formats.Wrap(err, formats.KindTemp, o.Mode.String()+": virtual size", box.Name(), msg.UID, "")
			}
			vsize = c.VSize()
		}
		if vsize > o.MaxSize {
			return false, nil
		}
	}
	if o.Flag != "" {
		name, without := strings.CutPrefix(o.Flag, "-")
		has := false
		if f, ok := formats.ParseFlag(name); ok {
			has = msg.Flags&f != 0
		} else {
			for _, k := range msg.Keywords {
				has = has || strings.EqualFold(k, name)
			}
		}
		if has == without {
			return false, nil
		}
	}
	return true, nil
}
