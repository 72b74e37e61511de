package convert_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/fixtures"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/all"
	"github.com/boxsync/boxsync/formats/formatstest"
)

func openLoc(t *testing.T, loc string, opt formats.OpenOptions) formats.Store {
	t.Helper()
	l, err := formats.ParseLocation(loc, formats.Vars{})
	if err != nil {
		t.Fatal(err)
	}
	d, ok := all.Lookup(l.Driver)
	if !ok {
		t.Fatalf("no driver %s", l.Driver)
	}
	s, err := d.Open(context.Background(), l, opt)
	if err != nil {
		t.Fatalf("open %s: %v", loc, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRoundTripThroughEveryFormat backs the generated corpus up from
// Maildir into each other on-disk format and back into a new Maildir:
// everything both formats keep survives, byte for byte, and a second pass
// over each hop is a no-op.
func TestRoundTripThroughEveryFormat(t *testing.T) {
	ctx := context.Background()
	for _, via := range []string{"mbox"} {
		t.Run(via, func(t *testing.T) {
			dir := t.TempDir()
			src := openLoc(t, "maildir:"+filepath.Join(dir, "src"), formats.OpenOptions{Create: true})
			if _, err := fixtures.Populate(ctx, src, 1, fixtures.Small); err != nil {
				t.Fatal(err)
			}
			mid := openLoc(t, via+":"+filepath.Join(dir, via), formats.OpenOptions{Create: true})
			back := openLoc(t, "maildir:"+filepath.Join(dir, "back"), formats.OpenOptions{Create: true})
			// mbox mailboxes are files and can't have children (nor can
			// Dovecot's): leave the nested ones out.
			opt := convert.Options{Exclude: []string{"Archive/*", "Work/*"}}
			if err := src.Delete(ctx, "Archive/2023/Q1"); err != nil {
				t.Fatal(err)
			}
			if err := src.Delete(ctx, "Work/Projects 2024"); err != nil {
				t.Fatal(err)
			}
			src.SetSubscribed(ctx, "Archive/2023/Q1", false)
			src.SetSubscribed(ctx, "Work/Projects 2024", false)
			for _, hop := range []struct{ from, to formats.Store }{{src, mid}, {mid, back}} {
				backup(t, hop.from, hop.to, opt)
				if res := backup(t, hop.from, hop.to, opt); res.Messages.Saved+res.Messages.Expunged+res.Messages.FlagsChanged+res.Mailboxes.Created+res.Mailboxes.Deleted != 0 {
					t.Errorf("second pass not a no-op: %+v", res)
				}
			}
			fields := formatstest.FieldsBackup &^ formatstest.FieldGUID
			want, err := formatstest.Dump(ctx, src, fields)
			if err != nil {
				t.Fatal(err)
			}
			got, err := formatstest.Dump(ctx, back, fields)
			if err != nil {
				t.Fatal(err)
			}
			if d := formatstest.Diff(want, got); d != "" {
				t.Errorf("maildir -> %s -> maildir differs:\n%s", via, d)
			}
		})
	}
}
