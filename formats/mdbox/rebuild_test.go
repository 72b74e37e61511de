package mdbox_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestRebuild damages an mdbox (index files deleted) written by boxsync
// or by Dovecot, copies it, and rebuilds one copy with our Rebuild and
// the other with `doveadm force-resync`: Dovecot must then see both the
// same, read ours without complaint, and with only the map lost, see
// every message as before (UIDs, flags, keywords, modseqs, save dates).
//
// Not compared with doveadm's: the new mailbox GUIDs, UIDVALIDITYs and
// save dates (random or the clock on both sides), and modseqs: Dovecot's
// rebuild raises them all (its own flag updates), ours keeps those the
// old index had. Mail expunged but not purged comes back where the map
// was lost, on both sides (Dovecot restores refcount-0 mail it finds no
// map record for).
func TestRebuild(t *testing.T) {
	ctx := context.Background()
	ours := func(t *testing.T, d *dovecottest.Dovecot, loc formats.Location) {
		store := openStore(t, loc, formats.OpenOptions{Create: true})
		for _, name := range []string{"INBOX", "Work"} {
			if err := store.Create(ctx, name, formats.GUID{}, 0); err != nil {
				t.Fatal(err)
			}
		}
		saveAll(t, store, "INBOX", interopMessages(), 0)
		saveBodies(t, store, "Work", 1, 6)
		expunge(t, store, "Work", 2) // refcount 0, not purged
		store.Close()
	}
	oursPurged := func(t *testing.T, d *dovecottest.Dovecot, loc formats.Location) {
		ours(t, d, loc)
		d.MustDoveadm(t, "purge")
	}
	theirs := func(t *testing.T, d *dovecottest.Dovecot, loc formats.Location) {
		dovecotWrites(t, d)
		d.MustDoveadm(t, "copy", "Work", "mailbox", "INBOX", "uid", "1:2") // shared map UIDs
	}
	mailboxIndexes := []string{"mailboxes/*/dbox-Mails/dovecot.index*", "mailboxes/*/*/dbox-Mails/dovecot.index*"}
	mapIndex := []string{"storage/dovecot.map.index*"}
	newIDs := []dovecottest.Field{dovecottest.UIDValidity, dovecottest.MailboxGUID, dovecottest.Saved,
		dovecottest.ModSeq, dovecottest.HighestModSeq}
	theirsAlt := func(t *testing.T, d *dovecottest.Dovecot, loc formats.Location) {
		theirs(t, d, loc)
		d.MustDoveadm(t, "altmove", "mailbox", "INBOX", "all")
	}
	for _, tc := range []struct {
		name   string
		write  func(*testing.T, *dovecottest.Dovecot, formats.Location)
		remove []string
		// intact: the store must read as before the damage
		intact bool
		opts   string // location options
	}{
		{"ours/mailbox indexes", ours, mailboxIndexes, false, ""},
		{"ours/map", ours, mapIndex, true, ""},
		{"ours purged/map", oursPurged, mapIndex, true, ""},
		{"ours/all indexes", ours, append(mailboxIndexes, mapIndex...), false, ""},
		{"dovecot/mailbox indexes", theirs, mailboxIndexes, false, ""},
		{"dovecot/map", theirs, mapIndex, true, ""},
		{"dovecot/all indexes", theirs, append(mailboxIndexes, mapIndex...), false, ""},
		{"dovecot alt/all indexes", theirsAlt, append(mailboxIndexes, mapIndex...), false, ":ALT=~/alt"},
		{"dovecot alt/map", theirsAlt, mapIndex, true, ":ALT=~/alt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, loc := interop(t, tc.opts)
			tc.write(t, d, loc)
			before := d.Snapshot(t)
			twin, tloc := interop(t, tc.opts)
			for _, dirs := range [][2]string{{d.Root(), twin.Root()}, {loc.Alt, tloc.Alt}} {
				if dirs[0] == "" {
					continue
				}
				if err := os.RemoveAll(dirs[1]); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command("cp", "-a", dirs[0], dirs[1]).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v: %s", err, out)
				}
				twin.Chown(t, dirs[1])
			}
			for _, root := range []string{d.Root(), twin.Root()} {
				n := 0
				for _, pat := range tc.remove {
					files, _ := filepath.Glob(filepath.Join(root, pat))
					for _, f := range files {
						if err := os.Remove(f); err != nil {
							t.Fatal(err)
						}
						n++
					}
				}
				if n == 0 {
					t.Fatalf("nothing matches %v in %s", tc.remove, root)
				}
			}

			store := openStore(t, loc, formats.OpenOptions{})
			ro := openStore(t, loc, formats.OpenOptions{ReadOnly: true})
			if _, err := ro.Open(ctx, "INBOX"); formats.KindOf(err) != formats.KindNotPossible {
				t.Fatalf("Open(damaged) = %v, want NotPossible", err)
			}
			for _, name := range []string{"INBOX", "Work"} {
				if err := store.(formats.Rebuilder).Rebuild(ctx, name); err != nil {
					t.Fatalf("Rebuild(%s) = %v", name, err)
				}
			}
			twin.MustDoveadm(t, "force-resync", "*")

			got, want := d.Snapshot(t), twin.Snapshot(t)
			if diff := dovecottest.Diff(want, got, newIDs...); diff != "" {
				t.Errorf("after rebuilding, Dovecot sees doveadm's (a) and ours (b) differently:\n%s\ndoveadm:\n%s\nours:\n%s", diff, want, got)
			}
			if tc.intact {
				if diff := dovecottest.Diff(before, known(got, before)); diff != "" {
					t.Errorf("after rebuilding a lost map, the store differs (a=before b=after):\n%s", diff)
				}
			}
			compare(t, d, store)
		})
	}
}

// known is got without the messages before did not have (mail a rebuild
// restored), with before's next UIDs.
func known(got, before dovecottest.Tree) dovecottest.Tree {
	var out dovecottest.Tree
	for _, mb := range got.Mailboxes {
		if b := before.Lookup(mb.Name); b != nil {
			var msgs []dovecottest.Message
			for _, m := range mb.Messages {
				if b.Lookup(m.UID) != nil {
					msgs = append(msgs, m)
				}
			}
			mb.Messages, mb.UIDNext = msgs, b.UIDNext
		}
		out.Mailboxes = append(out.Mailboxes, mb)
	}
	return out
}
