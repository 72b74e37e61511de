package mdbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index"
)

// Check verifies the store: every mailbox index is readable with an
// mdbox-hdr naming the map's UIDVALIDITY, its UIDs ascend below the next
// UID, every message has a map UID the map knows and a readable copy,
// message GUIDs are unique within a mailbox and match the guid extension,
// and each map refcount equals the number of mailbox records that use the
// map UID. It changes nothing.
func (s *Store) Check(ctx context.Context) error {
	_, boxes, err := s.l.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	refs := map[uint32]int{}
	for _, b := range boxes {
		ix, err := index.Open(b.IndexDir, index.Prefix, s.indexOptions())
		if err != nil {
			errs = append(errs, wrap(err, "check", b.Name, 0, b.IndexDir))
			continue
		}
		m := &mailbox{s: s, b: b, ix: ix}
		v, mv, err := m.views("check")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		bad := func(uid uint32, format string, args ...any) {
			errs = append(errs, fail(formats.KindInvalidData, "check", b.Name, formats.UID(uid), "", fmt.Errorf(format, args...)))
		}
		c := &fileCache{s: s}
		guids := map[string]uint32{}
		var last uint32
		for i := range v.Count() {
			uid := v.Message(i).UID
			if uid <= last || uid >= v.NextUID() {
				bad(uid, "UID out of order or not below the next UID %d", v.NextUID())
			}
			last = uid
			if r, ok := v.MdboxRec(i); ok {
				refs[r.MapUID]++
			}
			_, dm, err := c.read(v, mv, i)
			if err != nil {
				bad(uid, "%s", err)
				continue
			}
			g, _ := dm.Metadata.Get('G')
			if g16, ok := v.GUID(i); !ok || g16 != guid128(g) {
				bad(uid, "guid extension %x does not match GUID %q", g16, g)
			}
			if prev, dup := guids[g]; dup {
				bad(uid, "GUID %q also used by UID %d", g, prev)
			}
			guids[g] = uid
		}
		c.close()
	}
	mv, err := s.mapView("check")
	if err != nil {
		if len(refs) > 0 || formats.KindOf(err) != formats.KindNotPossible {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	for i := range mv.Count() {
		mapUID := mv.Message(i).UID
		ref, _ := mv.RefCount(i)
		if int(ref) != refs[mapUID] {
			errs = append(errs, fail(formats.KindInvalidData, "check", "", 0, s.mapDir,
				fmt.Errorf("map uid %d has refcount %d but %d mailbox records", mapUID, ref, refs[mapUID])))
		}
		delete(refs, mapUID)
	}
	for mapUID := range refs {
		errs = append(errs, fail(formats.KindInvalidData, "check", "", 0, s.mapDir, fmt.Errorf("map uid %d is used but not in the map", mapUID)))
	}
	return errors.Join(errs...)
}
