package sdbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxlist"
	"github.com/boxsync/boxsync/index"
)

// Check verifies every mailbox: its index is readable with a dbox-hdr GUID
// and UIDVALIDITY, UIDs ascend below the next UID, every record has a
// readable u.<uid> file, message GUIDs are unique, and no u.<uid> file
// lacks a record. It changes nothing.
func (s *Store) Check(ctx context.Context) error {
	_, boxes, err := s.l.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range boxes {
		errs = append(errs, s.checkBox(ctx, b)...)
	}
	return errors.Join(errs...)
}

func (s *Store) checkBox(ctx context.Context, b *dboxlist.Box) []error {
	ix, err := index.Open(b.IndexDir, index.Prefix, s.indexOptions())
	if err != nil {
		return []error{wrap(err, "check", b.Name, 0, b.IndexDir)}
	}
	m := &mailbox{s: s, b: b, ix: ix}
	v, err := m.view("check")
	if err != nil {
		return []error{err}
	}
	var errs []error
	bad := func(uid uint32, format string, args ...any) {
		errs = append(errs, fail(formats.KindInvalidData, "check", b.Name, formats.UID(uid), "", fmt.Errorf(format, args...)))
	}
	indexed := map[uint32]bool{}
	guids := map[string]uint32{}
	var last uint32
	for i := range v.Count() {
		uid := v.Message(i).UID
		if uid <= last || uid >= v.NextUID() {
			bad(uid, "UID out of order or not below the next UID %d", v.NextUID())
		}
		last = uid
		indexed[uid] = true
		mf, err := m.openMail(uid)
		if err != nil {
			errs = append(errs, m.readErr("check", uid, err))
			continue
		}
		g, _ := mf.msg.Metadata.Get('G')
		mf.Close()
		if prev, dup := guids[g]; dup {
			bad(uid, "GUID %q also used by UID %d", g, prev)
		}
		guids[g] = uid
	}
	files, dir, err := mailFiles(b)
	if err != nil {
		return append(errs, wrap(err, "check", b.Name, 0, dir))
	}
	for _, uid := range slices.Sorted(maps.Keys(files)) {
		if !indexed[uid] {
			bad(uid, "file %s has no index record", files[uid])
		}
	}
	return errs
}
