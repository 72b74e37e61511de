package convert_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// treeInteropStart has Dovecot build store A in format f (mail in every
// mailbox, a subtree, subscriptions) and back it up to B, so both share
// mailbox GUIDs as after a first sync. extra names more mailboxes made
// the same way.
func treeInteropStart(t *testing.T, f string, extra ...string) (d *dovecottest.Dovecot, on func(store string, args ...string)) {
	t.Helper()
	return treeInteropStartGUIDs(t, f, nil, extra...)
}

// treeInteropStartGUIDs is treeInteropStart where guid, if not nil, gives
// each mailbox its GUID (hex), so that GUID-order ties replay.
func treeInteropStartGUIDs(t *testing.T, f string, guid func(box string) string, extra ...string) (d *dovecottest.Dovecot, on func(store string, args ...string)) {
	t.Helper()
	d = dovecottest.New(t, f+":~/A")
	for _, box := range append([]string{"Keep", "Gone", "Old", "Old/Child", "Other"}, extra...) {
		args := []string{"mailbox", "create", "-s"}
		if guid != nil {
			args = append(args, "-g", guid(box))
		}
		d.MustDoveadm(t, append(args, box)...)
		d.Save(t, box, []byte("Subject: in "+box+"\nMessage-ID: <"+box+"@x>\n\nbody of "+box+"\n"))
	}
	d.Save(t, "INBOX", []byte("Subject: inbox\n\nhi\n"))
	d.MustDoveadm(t, "backup", f+":~/B")
	on = func(store string, args ...string) {
		t.Helper()
		d.MustDoveadm(t, append([]string{"-o", "mail_location=" + f + ":~/" + store}, args...)...)
	}
	return d, on
}

// doveadmSync runs doveadm sync -f between two stores. On dbox, 2.3
// renaming a directory whose child it has to create exits 2 ("Mailbox
// changes caused a desync ... mailbox_create conflict"), as dsync.md §6
// describes; a second run converges, so it is run again then.
func doveadmSync(t *testing.T, d *dovecottest.Dovecot, f, a, b string) (again bool) {
	t.Helper()
	args := []string{"-o", "mail_location=" + f + ":~/" + a, "sync", "-f", f + ":~/" + b}
	if _, err := d.Doveadm(args...); err != nil {
		if !strings.Contains(err.Error(), "desync") {
			t.Fatal(err)
		}
		t.Logf("doveadm sync exit 2, run again: %v", err)
		d.MustDoveadm(t, args...)
		return true
	}
	return false
}

// copyStores copies DIR/home/<from> to <to> for each pair.
func copyStores(t *testing.T, d *dovecottest.Dovecot, pairs ...[2]string) {
	t.Helper()
	for _, p := range pairs {
		if out, err := exec.Command("cp", "-a", filepath.Join(d.Home(), p[0]), filepath.Join(d.Home(), p[1])).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
	}
}

// treeDump is a store's tree and mail in every field both tools must
// agree on (modseqs and save dates are the writer's own).
func treeDump(t *testing.T, f, root string) string {
	t.Helper()
	s := openLoc(t, f+":"+root, formats.OpenOptions{ReadOnly: true})
	out, err := formatstest.Dump(context.Background(), s, formatstest.FieldsBackup&^formatstest.FieldVSize)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestInteropSyncTreeDifferential runs doveadm sync and boxsync sync on
// identical copies of a pair where each side deleted and renamed
// mailboxes after a first sync (with Dovecot's own dovecot.mailbox.log
// recording it), and compares the resulting trees and mail.
func TestInteropSyncTreeDifferential(t *testing.T) {
	for _, f := range []string{"maildir", "sdbox", "mdbox"} {
		t.Run(f, func(t *testing.T) {
			d, on := treeInteropStart(t, f)
			// A deletes one mailbox and renames a subtree; B renames
			// another mailbox, unsubscribes one and gets new mail in it.
			// (A subtree moved under a new parent, Old → Moved/Here,
			// makes doveadm 2.3 itself exit 2 on dbox: "Mailbox Moved
			// mailbox_create conflict".)
			on("A", "mailbox", "delete", "Gone")
			on("A", "mailbox", "rename", "Old", "Moved")
			on("B", "mailbox", "rename", "Other", "Other renamed")
			on("B", "mailbox", "unsubscribe", "Keep")
			c := d.Cmd(t, "-o", "mail_location="+f+":~/B", "save", "-m", "Other renamed")
			c.Stdin = strings.NewReader("Subject: new on B\n\nb\n")
			if err := c.Run(); err != nil {
				t.Fatalf("doveadm save: %v\n%s", err, d.Log())
			}
			copyStores(t, d, [2]string{"A", "A2"}, [2]string{"B", "B2"})

			// dsync 2.3 subscribes a renamed mailbox's new name only
			// on the side that did not rename; the second run
			// completes it (boxsync does it in one run).
			again := doveadmSync(t, d, f, "A", "B")
			again = doveadmSync(t, d, f, "A", "B") || again
			a := openLoc(t, f+":"+filepath.Join(d.Home(), "A2"), formats.OpenOptions{})
			b := openLoc(t, f+":"+filepath.Join(d.Home(), "B2"), formats.OpenOptions{})
			res := run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Full})
			if res.Mailboxes.Deleted != 1 || res.Mailboxes.Renamed != 2 {
				t.Errorf("boxsync deleted %d and renamed %d mailboxes, want 1 and 2", res.Mailboxes.Deleted, res.Mailboxes.Renamed)
			}
			for _, p := range [][2]string{{"A", "A2"}, {"B", "B2"}} {
				theirs, ours := treeDump(t, f, filepath.Join(d.Home(), p[0])), treeDump(t, f, filepath.Join(d.Home(), p[1]))
				if diff := formatstest.Diff(theirs, ours); diff != "" {
					t.Errorf("%s: doveadm sync (-) and boxsync (+) differ:\n%s\ndoveadm:\n%s", p[0], diff, theirs)
				}
			}
			if !again {
				d.CheckLogClean(t)
			}
		})
	}
}

// TestInteropDovecotReadsOurMailboxLog: deletes and renames made by
// boxsync's drivers are logged so that Dovecot's own doveadm sync
// propagates them exactly as when Dovecot made them.
func TestInteropDovecotReadsOurMailboxLog(t *testing.T) {
	for _, f := range []string{"maildir", "sdbox", "mdbox"} {
		t.Run(f, func(t *testing.T) {
			d, on := treeInteropStart(t, f)
			copyStores(t, d, [2]string{"A", "A2"}, [2]string{"B", "B2"})
			// The changes go in a later second than the first sync's
			// records: an unsubscribe in the same second ties with the
			// subscribe, and the tie (subscribed wins) would otherwise
			// depend on whether Dovecot's change and ours, made one
			// after the other, fell into that second (a CI flake).
			time.Sleep(1100 * time.Millisecond)
			// The same changes: by doveadm in A, by our driver in A2.
			on("A", "mailbox", "delete", "Gone")
			on("A", "mailbox", "rename", "Old", "Moved")
			on("A", "mailbox", "unsubscribe", "Keep")
			ctx := context.Background()
			a2 := openLoc(t, f+":"+filepath.Join(d.Home(), "A2"), formats.OpenOptions{})
			if err := a2.Delete(ctx, "Gone"); err != nil {
				t.Fatal(err)
			}
			if err := a2.(formats.Renamer).Rename(ctx, "Old", "Moved"); err != nil {
				t.Fatal(err)
			}
			if err := a2.SetSubscribed(ctx, "Keep", false); err != nil {
				t.Fatal(err)
			}
			a2.Close()
			d.Chown(t, filepath.Join(d.Home(), "A2"))
			again := doveadmSync(t, d, f, "A", "B")
			again = doveadmSync(t, d, f, "A2", "B2") || again
			for _, p := range [][2]string{{"A", "A2"}, {"B", "B2"}} {
				theirs, ours := treeDump(t, f, filepath.Join(d.Home(), p[0])), treeDump(t, f, filepath.Join(d.Home(), p[1]))
				if diff := formatstest.Diff(theirs, ours); diff != "" {
					t.Errorf("%s: after Dovecot's changes (-) and ours (+), doveadm sync differs:\n%s\nDovecot's:\n%s", p[0], diff, theirs)
				}
			}
			if got := treeDump(t, f, filepath.Join(d.Home(), "B2")); strings.Contains(got, `mailbox "Gone"`) || !strings.Contains(got, `mailbox "Moved/Child"`) {
				t.Errorf("doveadm sync did not carry our delete and rename to B:\n%s", got)
			}
			if !again {
				d.CheckLogClean(t)
			}
		})
	}
}

// TestInteropSyncBothRenamed: both sides renamed the same mailbox, B a
// second later; doveadm sync and boxsync both keep the newer name (the
// rename conflict rule of dsync.md §2.4 step 3), on every format.
func TestInteropSyncBothRenamed(t *testing.T) {
	for _, f := range []string{"maildir", "sdbox", "mdbox"} {
		t.Run(f, func(t *testing.T) {
			d, on := treeInteropStart(t, f)
			on("A", "mailbox", "rename", "Other", "Other by A")
			time.Sleep(1100 * time.Millisecond) // the log has 1 s resolution
			on("B", "mailbox", "rename", "Other", "Other by B")
			copyStores(t, d, [2]string{"A", "A2"}, [2]string{"B", "B2"})
			again := doveadmSync(t, d, f, "A", "B")
			again = doveadmSync(t, d, f, "A", "B") || again
			a := openLoc(t, f+":"+filepath.Join(d.Home(), "A2"), formats.OpenOptions{})
			b := openLoc(t, f+":"+filepath.Join(d.Home(), "B2"), formats.OpenOptions{})
			run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Full})
			for _, p := range [][2]string{{"A", "A2"}, {"B", "B2"}} {
				theirs, ours := treeDump(t, f, filepath.Join(d.Home(), p[0])), treeDump(t, f, filepath.Join(d.Home(), p[1]))
				if diff := formatstest.Diff(theirs, ours); diff != "" {
					t.Errorf("%s: doveadm sync (-) and boxsync (+) differ:\n%s\ndoveadm:\n%s", p[0], diff, theirs)
				}
				if !strings.Contains(ours, `mailbox "Other by B"`) || strings.Contains(ours, `mailbox "Other by A"`) {
					t.Errorf("%s: the newer rename did not win:\n%s", p[1], ours)
				}
			}
			if !again {
				d.CheckLogClean(t)
			}
		})
	}
}

// TestInteropSyncOneWayTree: sync -1 after the source renamed mailboxes
// (a subtree among them) and deleted one. Renames reach the destination
// as with doveadm sync -1, so the trees agree; the delete does not:
// doveadm sync -1 deletes the destination's copy [observed], boxsync's
// sync -1 never deletes (the test shows both).
func TestInteropSyncOneWayTree(t *testing.T) {
	for _, f := range []string{"maildir", "sdbox", "mdbox"} {
		t.Run(f, func(t *testing.T) {
			d, on := treeInteropStart(t, f)
			on("A", "mailbox", "rename", "Old", "Moved")
			on("A", "mailbox", "rename", "Other", "Other renamed")
			on("A", "mailbox", "delete", "Gone")
			copyStores(t, d, [2]string{"A", "A2"}, [2]string{"B", "B2"})
			args := []string{"-o", "mail_location=" + f + ":~/A", "sync", "-1", "-f", f + ":~/B"}
			d.MustDoveadm(t, args...)
			a := openLoc(t, f+":"+filepath.Join(d.Home(), "A2"), formats.OpenOptions{ReadOnly: true})
			b := openLoc(t, f+":"+filepath.Join(d.Home(), "B2"), formats.OpenOptions{})
			res := run(t, a, b, convert.Options{Mode: convert.OneWay, Algorithm: convert.Full})
			if res.Mailboxes.Renamed != 2 || res.Mailboxes.Deleted != 0 {
				t.Errorf("boxsync sync -1 renamed %d and deleted %d mailboxes, want 2 and 0", res.Mailboxes.Renamed, res.Mailboxes.Deleted)
			}
			theirs, ours := treeDump(t, f, filepath.Join(d.Home(), "B")), treeDump(t, f, filepath.Join(d.Home(), "B2"))
			if strings.Contains(theirs, `mailbox "Gone"`) || !strings.Contains(ours, `mailbox "Gone"`) {
				t.Errorf("want doveadm sync -1 to delete Gone and boxsync to keep it:\ndoveadm:\n%s\nboxsync:\n%s", theirs, ours)
			}
			// Apart from that, the same: doveadm's subscribed
			// container "Gone" is boxsync's subscribed mailbox.
			var kept []string
			sha := goneSHA(ours)
			for _, line := range strings.SplitAfter(ours, "\n") {
				switch {
				case strings.HasPrefix(line, `mailbox "Gone"`):
					kept = append(kept, "container \"Gone\" subscribed\n")
				case !strings.Contains(line, "sha256="+sha):
					kept = append(kept, line)
				}
			}
			if diff := formatstest.Diff(theirs, strings.Join(kept, "")); diff != "" {
				t.Errorf("B: doveadm sync -1 (-) and boxsync (+) differ beyond Gone:\n%s\ndoveadm:\n%s", diff, theirs)
			}
			d.CheckLogClean(t)
		})
	}
}

// goneSHA is the body hash of the message in mailbox "Gone" in a dump.
func goneSHA(dump string) string {
	in := false
	for _, line := range strings.Split(dump, "\n") {
		if strings.HasPrefix(line, "mailbox ") {
			in = strings.HasPrefix(line, `mailbox "Gone"`)
			continue
		}
		if i := strings.Index(line, "sha256="); in && i >= 0 {
			return line[i+len("sha256="):]
		}
	}
	return "-"
}

// TestInteropSyncDeletedMailboxKeepsNewMail: A deletes a mailbox, then
// (a second later) mail is delivered to it on B. doveadm sync deletes it
// on B with the new mail (dsync's TWOWAY delete: the mail is lost, which
// the test checks too); boxsync keeps the new
// mail: both sides end with the mailbox (same GUID) holding only it, and
// Dovecot reads the result cleanly.
func TestInteropSyncDeletedMailboxKeepsNewMail(t *testing.T) {
	for _, f := range []string{"maildir", "sdbox", "mdbox"} {
		t.Run(f, func(t *testing.T) {
			d, on := treeInteropStart(t, f)
			guid := mailboxGUIDs(t, f, filepath.Join(d.Home(), "B"))["Gone"]
			// Copies for boxsync first: a copy's files get new ctimes,
			// which Maildir (and dbox without a saved date) report as
			// save dates; the changes then go to both pairs.
			copyStores(t, d, [2]string{"A", "A2"}, [2]string{"B", "B2"})
			time.Sleep(1100 * time.Millisecond) // the delete in a later second than the copy
			on("A", "mailbox", "delete", "Gone")
			on("A2", "mailbox", "delete", "Gone")
			time.Sleep(1100 * time.Millisecond) // a later second than the logged delete
			for _, side := range []string{"B", "B2"} {
				c := d.Cmd(t, "-o", "mail_location="+f+":~/"+side, "save", "-m", "Gone")
				c.Stdin = strings.NewReader("Subject: late\nMessage-ID: <late@x>\n\ndelivered after the delete\n")
				if err := c.Run(); err != nil {
					t.Fatalf("doveadm save: %v\n%s", err, d.Log())
				}
			}

			doveadmSync(t, d, f, "A", "B")
			for _, side := range []string{"A", "B"} {
				if g := mailboxGUIDs(t, f, filepath.Join(d.Home(), side))["Gone"]; !g.IsZero() {
					t.Errorf("doveadm sync kept Gone on %s: dsync 2.3's TWOWAY delete, which this test shows, has changed", side)
				}
			}

			a := openLoc(t, f+":"+filepath.Join(d.Home(), "A2"), formats.OpenOptions{})
			b := openLoc(t, f+":"+filepath.Join(d.Home(), "B2"), formats.OpenOptions{})
			res := run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Full})
			if res.Mailboxes.Deleted != 0 || res.Messages.Expunged != 1 {
				t.Errorf("boxsync deleted %d mailboxes and expunged %d messages, want 0 and 1 (Gone's old mail)", res.Mailboxes.Deleted, res.Messages.Expunged)
			}
			if res := run(t, a, b, convert.Options{Mode: convert.Sync}); !noOp(res) {
				t.Errorf("a second boxsync sync was not a no-op: %+v", res)
			}
			a.Close()
			b.Close()
			d.Chown(t, filepath.Join(d.Home(), "A2"))
			d.Chown(t, filepath.Join(d.Home(), "B2"))
			for _, side := range []string{"A2", "B2"} {
				boxes := mailboxGUIDs(t, f, filepath.Join(d.Home(), side))
				if boxes["Gone"] != guid {
					t.Errorf("%s: Gone has GUID %s, want %s", side, boxes["Gone"], guid)
				}
				out := d.MustDoveadm(t, "-o", "mail_location="+f+":~/"+side, "fetch", "hdr.subject", "mailbox", "Gone", "all")
				if strings.Count(out, "hdr.subject:") != 1 || !strings.Contains(out, "late") {
					t.Errorf("%s: Dovecot shows Gone as:\n%s\nwant only the late message", side, out)
				}
			}
			d.CheckLogClean(t)
		})
	}
}

// TestInteropSyncRenameShapes: renames on one side that move mailboxes
// through each other's places (a parent and its child swapped, a parent
// moved below its former child) or move a directory with the mailboxes
// below it. doveadm sync and boxsync sync end with the same names, GUIDs,
// mail and subscriptions, and boxsync gets there without a desync. In
// dsync's tree a subscription belongs to its node and moves with it, so
// the subscription a rename leaves at a mailbox's old name is no child of
// the mailbox that later takes that name, and a name this run vacated has
// no age (its log record of this run's rename does not count).
// QUIRK: after a directory rename, doveadm 2.3 on dbox makes the old
// directory, emptied by the renames, again on both sides (dsync's tree
// still had it); boxsync leaves no such empty container.
func TestInteropSyncRenameShapes(t *testing.T) {
	cases := []struct {
		name string
		ops  [][]string // doveadm mailbox commands on A
		opsB [][]string // and on B, after A's
		// dbox only: on Maildir++ doveadm 2.3 gives another result
		// that boxsync deliberately does not copy (QUIRK, see the case).
		dboxOnly bool
		// tie logs all renames in one second (tieRenameLogs).
		tie  bool
		want map[string]string // name after the sync → name before
		// dsyncOnly matches lines of doveadm's result on dbox that
		// boxsync is known not to make.
		dsyncOnly string
	}{
		{name: "parent and child swapped",
			ops:  [][]string{{"rename", "Old/Child", "Tmp"}, {"rename", "Old", "Tmp/Child"}, {"rename", "Tmp", "Old"}},
			want: map[string]string{"Old": "Old/Child", "Old/Child": "Old"}},
		{name: "parent moved below its former child",
			ops:  [][]string{{"rename", "Old/Child", "Tmp"}, {"rename", "Old", "Tmp/Old"}},
			want: map[string]string{"Tmp": "Old/Child", "Tmp/Old": "Old"}},
		{name: "directory renamed",
			ops:       [][]string{{"rename", "Dir", "Dir2"}},
			want:      map[string]string{"Dir2/One": "Dir/One", "Dir2/Two": "Dir/Two"},
			dsyncOnly: `container "Dir"`},
		// A child carried along by its parent's rename, then renamed
		// itself: its subscription moves on with it. QUIRK: on
		// Maildir++, doveadm 2.3 matches the name Dir (only implied by
		// its children there) with Old/Child by the mailboxes below them
		// (sync_rename_directory) and renames the mailbox Old/Child to
		// Dir, Dir/One/N12 to Dir-temp-1/One/N12, and N8 to Dir/N8:
		// mail under names no one gave it; boxsync keeps the names.
		{name: "child carried along, then renamed",
			ops:      [][]string{{"rename", "Dir/One", "Old/Child/N8"}, {"rename", "Dir/Two", "Dir/One/N12"}},
			want:     map[string]string{"Old/Child/N8": "Dir/One", "Dir/One/N12": "Dir/Two"},
			dboxOnly: true},
		// B's unsubscribe belongs to the node that A's rename moves:
		// A's subscription left at the old name wins there.
		{name: "unsubscribed on B, renamed on A",
			ops:  [][]string{{"rename", "Old/Child", "Child"}},
			opsB: [][]string{{"unsubscribe", "Old/Child"}},
			want: map[string]string{"Child": "Old/Child"}},
		// A moved the child out, B renamed the parent, in the same
		// second: the child keeps A's name, and the subscription A's
		// rename left at its old name moves with the parent (in
		// dsync's tree it is a child node of Old).
		{name: "child moved out on A, parent renamed on B",
			ops:  [][]string{{"rename", "Old/Child", "Dir/One-3"}},
			opsB: [][]string{{"rename", "Old", "Other-15"}},
			want: map[string]string{"Other-15": "Old", "Dir/One-3": "Old/Child"},
			tie:  true},
		// A directory and a mailbox swapped: the directory's
		// children keep their subscriptions under the new name.
		{name: "directory and mailbox swapped",
			ops:  [][]string{{"rename", "Dir", "Tmp"}, {"rename", "Keep", "Dir"}, {"rename", "Tmp", "Keep"}},
			want: map[string]string{"Dir": "Keep", "Keep/One": "Dir/One", "Keep/Two": "Dir/Two"}},
		// A mailbox made below a name B's renames moved away: on A the
		// subscriptions the renames there leave (Old, Old/Child) are
		// no directory where Maildir++ has only names, so the mailbox
		// that takes the name Old does not have to move one aside
		// (there is none: boxsync failed, "can't move directory").
		{name: "created below a name renamed away on the other side",
			ops: [][]string{{"create", "-s", "Old/Child/N17"}},
			opsB: [][]string{{"rename", "Old", "T1"}, {"rename", "Dir/One", "Old"}, {"rename", "T1", "Dir/One"},
				{"rename", "Dir/One", "Keep/N6"}},
			want: map[string]string{"Old": "Dir/One", "Keep/N6": "Old", "Keep/N6/Child": "Old/Child"}},
		// The same with the subscriptions a user's rename left (a
		// chain of them, no directory): the mailbox takes the name.
		{name: "renamed onto a chain of subscriptions",
			ops:  [][]string{{"rename", "Old", "X"}, {"subscribe", "Old/Child/Deep"}},
			opsB: [][]string{{"rename", "Old", "X"}, {"rename", "Dir/One", "Old"}},
			want: map[string]string{"Old": "Dir/One", "X": "Old", "X/Child": "Old/Child"}},
		{name: "directory moved deeper",
			ops:       [][]string{{"rename", "Dir", "New/Dir"}},
			want:      map[string]string{"New/Dir/One": "Dir/One", "New/Dir/Two": "Dir/Two"},
			dsyncOnly: `container "Dir"`},
	}
	for _, f := range []string{"maildir", "sdbox", "mdbox"} {
		for _, tc := range cases {
			if tc.dboxOnly && f == "maildir" {
				continue
			}
			t.Run(f+"/"+tc.name, func(t *testing.T) {
				d, on := treeInteropStart(t, f, "Dir/One", "Dir/Two")
				start := mailboxGUIDs(t, f, filepath.Join(d.Home(), "A"))
				// A's renames a second after the first sync, and ours a
				// second after them, so that the records our renames log
				// are newer than A's (the ages dsync's tree gives the
				// names they make must win over those records).
				time.Sleep(1100 * time.Millisecond)
				for _, op := range tc.ops {
					on("A", append([]string{"mailbox"}, op...)...)
				}
				for _, op := range tc.opsB {
					on("B", append([]string{"mailbox"}, op...)...)
				}
				if tc.tie {
					tieRenameLogs(t, nil, filepath.Join(d.Home(), "A"), filepath.Join(d.Home(), "B"))
				}
				copyStores(t, d, [2]string{"A", "A2"}, [2]string{"B", "B2"})
				time.Sleep(1100 * time.Millisecond)

				// Twice, for dsync 2.3's subscription of renamed
				// mailboxes (see TestInteropSyncTreeDifferential).
				again := doveadmSync(t, d, f, "A", "B")
				again = doveadmSync(t, d, f, "A", "B") || again
				a := openLoc(t, f+":"+filepath.Join(d.Home(), "A2"), formats.OpenOptions{})
				b := openLoc(t, f+":"+filepath.Join(d.Home(), "B2"), formats.OpenOptions{})
				if res := run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Full}); res.Desync != "" {
					t.Errorf("boxsync sync: desync: %s", res.Desync)
				}
				if res := run(t, a, b, convert.Options{Mode: convert.Sync}); !noOp(res) || res.Mailboxes.Renamed > 0 {
					t.Errorf("second boxsync sync was not a no-op: %+v", res)
				}
				a.Close()
				b.Close()
				for _, p := range [][2]string{{"A", "A2"}, {"B", "B2"}} {
					theirs, ours := treeDump(t, f, filepath.Join(d.Home(), p[0])), treeDump(t, f, filepath.Join(d.Home(), p[1]))
					if tc.dsyncOnly != "" && f != "maildir" {
						kept := strings.Replace(theirs, tc.dsyncOnly+"\n", "", 1)
						if kept == theirs {
							t.Errorf("%s: doveadm sync no longer makes %s: drop the QUIRK", p[0], tc.dsyncOnly)
						}
						theirs = kept
					}
					if diff := formatstest.Diff(theirs, ours); diff != "" {
						t.Errorf("%s: doveadm sync (-) and boxsync (+) differ:\n%s\ndoveadm:\n%s", p[0], diff, theirs)
					}
					got := mailboxGUIDs(t, f, filepath.Join(d.Home(), p[1]))
					for name, was := range tc.want {
						if got[name] != start[was] {
							t.Errorf("%s: %q has GUID %s, want %s (%s before)", p[1], name, got[name], start[was], was)
						}
					}
				}
				if !again {
					d.CheckLogClean(t)
				}
			})
		}
	}
}
