package convert_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
)

// TestBackupFollowsRenames: a mailbox renamed on the source is renamed on
// the destination, as doveadm backup does (it keeps the files: measured
// with Maildir inodes), instead of being deleted and copied again. Each
// step checks the mirror is exact and that no message was copied.
func TestBackupFollowsRenames(t *testing.T) {
	ctx := context.Background()
	steps := []struct {
		from, to    string
		wantRenamed int // renames on the destination (children move along)
	}{
		{"Old", "New", 1},                 // a parent: Old/Child moves along
		{"New/Child", "Elsewhere/Kid", 1}, // a child into a new parent
		{"New", "Deep/Down/Under", 1},     // below missing parents
		{"Elsewhere/Kid", "Deep/Down/Kid", 1},
	}
	for _, kind := range treeKinds() {
		t.Run(kind.name, func(t *testing.T) {
			src, dst := kind.new(t), kind.new(t)
			guids := map[string]formats.GUID{}
			for i, name := range []string{"INBOX", "Old", "Old/Child", "Keep"} {
				g := formats.NewGUID()
				guids[name] = g
				if err := src.Create(ctx, name, g, uint32(1000+i)); err != nil {
					t.Fatal(err)
				}
				src.SetSubscribed(ctx, name, true)
				mb, err := src.Open(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				tx, _ := mb.Begin(ctx)
				for uid := formats.UID(1); uid <= 3; uid++ {
					body := fmt.Appendf(nil, "Subject: %s %d\r\n\r\nbody\r\n", name, uid)
					m := formats.Message{UID: uid, GUID: fmt.Sprintf("%s-%d", g, uid), Flags: formats.FlagSeen,
						Received: time.Unix(1e9, 0), Size: int64(len(body))}
					if _, err := tx.Save(ctx, m, bytes.NewReader(body)); err != nil {
						t.Fatal(err)
					}
				}
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				mb.Close()
			}
			backup(t, src, dst, convert.Options{Mode: convert.Backup})
			for _, st := range steps {
				if err := src.(formats.Renamer).Rename(ctx, st.from, st.to); err != nil {
					t.Fatalf("source rename %s → %s: %v", st.from, st.to, err)
				}
				src.SetSubscribed(ctx, st.from, false)
				src.SetSubscribed(ctx, st.to, true)
				res := backup(t, src, dst, convert.Options{Mode: convert.Backup})
				if res.Mailboxes.Renamed != st.wantRenamed || res.Messages.Saved != 0 || res.Mailboxes.Created != 0 || res.Mailboxes.Deleted != 0 {
					t.Errorf("%s → %s: renamed %d, created %d, deleted %d mailboxes, saved %d messages; want %d renamed and nothing copied",
						st.from, st.to, res.Mailboxes.Renamed, res.Mailboxes.Created, res.Mailboxes.Deleted, res.Messages.Saved, st.wantRenamed)
				}
				if s, d := dump(t, src), dump(t, dst); s != d {
					t.Fatalf("%s → %s: destination differs from the source:\n%s\nwant\n%s", st.from, st.to, d, s)
				}
				if res := backup(t, src, dst, convert.Options{Mode: convert.Backup}); res.Mailboxes.Renamed+res.Messages.Saved+res.Mailboxes.Created+res.Mailboxes.Deleted != 0 {
					t.Errorf("%s → %s: a second backup changed something: %+v", st.from, st.to, res.Mailboxes)
				}
			}
			// The moved mailboxes kept their identity on the destination.
			want := map[string]formats.GUID{"Deep/Down/Under": guids["Old"], "Deep/Down/Kid": guids["Old/Child"], "Keep": guids["Keep"]}
			boxes, err := dst.Mailboxes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range boxes {
				if g, ok := want[b.Name]; ok && b.GUID != g {
					t.Errorf("destination %s has GUID %s, want %s", b.Name, b.GUID, g)
				}
			}
		})
	}
}

// TestInteropBackupRenameDifferential: Dovecot renames a subtree on the
// source after a first backup; doveadm backup and boxsync backup of
// identical copies end with the same tree and mail, and boxsync, like
// doveadm, keeps the destination's mailbox GUIDs and copies nothing.
func TestInteropBackupRenameDifferential(t *testing.T) {
	for _, f := range []string{"maildir", "sdbox", "mdbox"} {
		t.Run(f, func(t *testing.T) {
			d, on := treeInteropStart(t, f) // A backed up to B by doveadm
			on("A", "mailbox", "rename", "Old", "Moved")
			on("A", "mailbox", "rename", "Other", "Other renamed")
			copyStores(t, d, [2]string{"B", "B2"})
			guidsBefore := mailboxGUIDs(t, f, filepath.Join(d.Home(), "B"))

			d.MustDoveadm(t, "backup", f+":~/B")
			src := openLoc(t, f+":"+filepath.Join(d.Home(), "A"), formats.OpenOptions{ReadOnly: true})
			dst := openLoc(t, f+":"+filepath.Join(d.Home(), "B2"), formats.OpenOptions{})
			res := backup(t, src, dst, convert.Options{Mode: convert.Backup})
			src.Close()
			dst.Close()
			d.Chown(t, filepath.Join(d.Home(), "B2"))
			if res.Messages.Saved != 0 || res.Mailboxes.Renamed != 2 {
				t.Errorf("boxsync renamed %d mailboxes and saved %d messages, want 2 and 0", res.Mailboxes.Renamed, res.Messages.Saved)
			}
			if got, want := treeDump(t, f, filepath.Join(d.Home(), "B2")), treeDump(t, f, filepath.Join(d.Home(), "B")); got != want {
				t.Errorf("boxsync backup:\n%s\ndoveadm backup:\n%s", got, want)
			}
			after := mailboxGUIDs(t, f, filepath.Join(d.Home(), "B2"))
			for old, moved := range map[string]string{"Old": "Moved", "Old/Child": "Moved/Child", "Other": "Other renamed"} {
				if after[moved] != guidsBefore[old] {
					t.Errorf("%s is GUID %s, want %s's %s", moved, after[moved], old, guidsBefore[old])
				}
			}
			d.CheckLogClean(t)
		})
	}
}

// mailboxGUIDs lists a store's mailbox GUIDs by name.
func mailboxGUIDs(t *testing.T, f, root string) map[string]formats.GUID {
	t.Helper()
	s := openLoc(t, f+":"+root, formats.OpenOptions{ReadOnly: true})
	defer s.Close()
	boxes, err := s.Mailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]formats.GUID{}
	for _, b := range boxes {
		out[b.Name] = b.GUID
	}
	return out
}
