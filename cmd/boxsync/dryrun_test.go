package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// treeState is every file and directory under root with its mode, mtime
// and (files) content hash.
func treeState(t *testing.T, root string) map[string]string {
	t.Helper()
	st := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d", fi.Mode(), fi.ModTime().UnixNano())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		st[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func diffStates(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if b[k] != v {
			out = append(out, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("%s: new %q", k, v))
		}
	}
	slices.Sort(out)
	return out
}

// storeSnapAt opens loc read-only and snapshots it.
func storeSnapAt(t *testing.T, loc string) storeSnap {
	t.Helper()
	d, l := driverFor(t, loc)
	st, err := d.Open(context.Background(), l, formats.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	snap, err := snapshot(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// mutate applies changes to the store at loc: new mail in the INBOX (if
// save), a flag change, an expunge, a new mailbox and a deleted one.
func mutate(t *testing.T, loc string, save bool, expunge formats.UID, newBox, delBox string) {
	t.Helper()
	ctx := context.Background()
	d, l := driverFor(t, loc)
	st, err := d.Open(ctx, l, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mb, err := st.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if save {
		body := "From: b@example.com\nSubject: new\n\nnew mail\n"
		if _, err := tx.Save(ctx, formats.Message{Received: time.Unix(1700100000, 0), Size: int64(len(body))}, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.SetFlags(1, formats.FlagSeen|formats.FlagFlagged, []string{"$Work"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Expunge(expunge); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	mb.Close()
	if newBox != "" {
		if err := st.Create(ctx, newBox, formats.GUID{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if delBox != "" {
		if err := st.Delete(ctx, delBox); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDryRun: --dry-run leaves the destination byte for byte and mtime for
// mtime as it was, and the plan it prints is exactly what the real run
// then does, in backup, one-way and two-way modes.
func TestDryRun(t *testing.T) {
	for _, tc := range []struct {
		cmd   []string
		sides []string // the sides a run writes
	}{
		{[]string{"backup"}, []string{"destination"}},
		{[]string{"sync", "-1"}, []string{"destination"}},
		{[]string{"sync"}, []string{"source", "destination"}},
	} {
		t.Run(strings.Join(tc.cmd, " "), func(t *testing.T) {
			te := newTestEnv(t)
			srcRoot := filepath.Join(te.home, "Maildir")
			dstRoot := filepath.Join(te.home, "mdbox")
			src, dst := "maildir:"+srcRoot, "mdbox:"+dstRoot
			fill(t, src, map[string]int{"INBOX": 4, "Sent": 2, "Old": 1, "Work/Projects": 1})
			base := []string{"-o", "mail_location=maildir:~/Maildir", "backup", "mdbox:~/mdbox"}
			te.run(t, base...).expect(t, base, 0)
			// Both sides change.
			mutate(t, src, true, 2, "New", "Old")
			mutate(t, dst, false, 3, "Extra", "")

			roots := map[string]string{"source": srcRoot, "destination": dstRoot}
			locs := map[string]string{"source": src, "destination": dst}
			before := map[string]map[string]string{}
			snaps := map[string]storeSnap{}
			for side, root := range roots {
				before[side] = treeState(t, root)
				snaps[side] = storeSnapAt(t, locs[side])
			}

			args := append(append([]string{"-v", "-o", "mail_location=maildir:~/Maildir"}, tc.cmd...), "--dry-run", "mdbox:~/mdbox")
			r := te.run(t, args...)
			r.expect(t, args, 0)
			for side, root := range roots {
				if d := diffStates(before[side], treeState(t, root)); len(d) > 0 {
					t.Fatalf("--dry-run changed the %s:\n%s", side, strings.Join(d, "\n"))
				}
			}
			var plan []string
			for l := range strings.Lines(r.stdout) {
				plan = append(plan, strings.TrimSuffix(l, "\n"))
			}
			if len(plan) < 3 {
				t.Fatalf("plan too short to prove anything:\n%s", r.stdout)
			}

			real := append(append([]string{"-o", "mail_location=maildir:~/Maildir"}, tc.cmd...), "mdbox:~/mdbox")
			te.run(t, real...).expect(t, real, 0)
			var did []string
			for _, side := range tc.sides {
				for _, l := range planDiff(snaps[side], storeSnapAt(t, locs[side]), true) {
					did = append(did, "dry-run(jane): "+side+": "+l)
				}
			}
			if strings.Join(plan, "\n") != strings.Join(did, "\n") {
				t.Errorf("the dry run's plan:\n%s\n\nwhat the real run did:\n%s", strings.Join(plan, "\n"), strings.Join(did, "\n"))
			}
			// A dry run of the now equal stores has nothing to do.
			r = te.run(t, args...)
			r.expect(t, args, 0)
			if r.stdout != "dry-run(jane): nothing to change\n" {
				t.Errorf("dry run after the real run:\n%s", r.stdout)
			}
		})
	}
}

// A dry run can't copy a remote (imapc) side to run on: refused.
func TestDryRunImapc(t *testing.T) {
	te := newTestEnv(t)
	src := memPath(t, "src")
	fill(t, src, map[string]int{"INBOX": 1})
	args := []string{"-o", "imapc_host=127.0.0.1", "backup", "--source", src, "--dry-run", "imapc:"}
	te.run(t, args...).expect(t, args, 64, "--dry-run: an imapc store can't be copied to run on")
}
