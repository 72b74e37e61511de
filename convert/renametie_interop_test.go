package convert_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
)

// tieRenameLogs gives every rename record in the stores' mailbox logs
// (dovecot.mailbox.log and its rotated .2, dovecot-storage.md §8.6:
// 24-byte records, u8 type 3 = rename, big-endian u32 UNIX time at
// offset 20) the newest of their times, so that renames made a second
// apart tie as if logged in the same second.
func tieRenameLogs(t *testing.T, roots ...string) {
	t.Helper()
	const recSize, rename = 24, 3
	files := map[string][]byte{}
	var newest uint32
	for _, root := range roots {
		for _, name := range []string{"dovecot.mailbox.log.2", "dovecot.mailbox.log"} {
			p := filepath.Join(root, name)
			data, err := os.ReadFile(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				t.Fatal(err)
			}
			files[p] = data
			for r := data; len(r) >= recSize; r = r[recSize:] {
				if r[0] == rename {
					newest = max(newest, binary.BigEndian.Uint32(r[20:24]))
				}
			}
		}
	}
	if newest == 0 {
		t.Fatalf("no rename records in the mailbox logs of %v", roots)
	}
	for p, data := range files {
		out := bytes.Clone(data)
		for off := 0; off+recSize <= len(out); off += recSize {
			if out[off] == rename {
				binary.BigEndian.PutUint32(out[off+20:off+24], newest)
			}
		}
		if err := os.WriteFile(p, out, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInteropSyncRenameTie: renames on both sides logged in the same
// second (dsync.md §2.4 step 3, "Ties"). doveadm sync on one copy of the
// pair and boxsync sync on another must end with the same names and GUIDs
// on both sides: the same mailbox renamed to different names (whichever
// comes first in dsync's tree walk keeps its name, which is not always
// the byte-wise smaller full name), and two different mailboxes renamed to
// the same name (the lower GUID keeps it, the other returns to its old
// name), in both GUID orders.
func TestInteropSyncRenameTie(t *testing.T) {
	type rename struct{ side, box, to string } // box "lo"/"hi": Keep or Other, by GUID
	cases := []struct {
		name    string
		renames []rename
		want    map[string]string // name after the sync → box ("lo", "hi" as a name: its old one)
	}{
		{"same mailbox, A's name first", []rename{{"A", "Other", "Tie1"}, {"B", "Other", "Tie2"}},
			map[string]string{"Tie1": "Other"}},
		{"same mailbox, B's name first", []rename{{"A", "Other", "Tie2"}, {"B", "Other", "Tie1"}},
			map[string]string{"Tie1": "Other"}},
		// "Old-x" < "Old/Other" byte-wise, but dsync's walk visits Old's
		// children before the sibling "Old-x".
		{"same mailbox, child before sibling", []rename{{"A", "Other", "Old-x"}, {"B", "Other", "Old/Other"}},
			map[string]string{"Old/Other": "Other"}},
		{"two mailboxes, lower GUID on A", []rename{{"A", "lo", "Same"}, {"B", "hi", "Same"}},
			map[string]string{"Same": "lo", "hi": "hi"}},
		{"two mailboxes, lower GUID on B", []rename{{"A", "hi", "Same"}, {"B", "lo", "Same"}},
			map[string]string{"Same": "lo", "hi": "hi"}},
	}
	for _, f := range []string{"maildir", "sdbox"} {
		for _, tc := range cases {
			t.Run(f+"/"+tc.name, func(t *testing.T) {
				d, on := treeInteropStart(t, f)
				start := mailboxGUIDs(t, f, filepath.Join(d.Home(), "A"))
				lo, hi := "Keep", "Other"
				if gl, gh := start[lo], start[hi]; bytes.Compare(gl[:], gh[:]) > 0 {
					lo, hi = hi, lo
				}
				names := map[string]string{"lo": lo, "hi": hi, "Other": "Other"}
				for _, r := range tc.renames {
					on(r.side, "mailbox", "rename", names[r.box], r.to)
				}
				tieRenameLogs(t, filepath.Join(d.Home(), "A"), filepath.Join(d.Home(), "B"))
				copyStores(t, d, [2]string{"A", "A2"}, [2]string{"B", "B2"})

				// Twice, for dsync 2.3's subscription of renamed
				// mailboxes (see TestInteropSyncTreeDifferential).
				again := doveadmSync(t, d, f, "A", "B")
				again = doveadmSync(t, d, f, "A", "B") || again
				a := openLoc(t, f+":"+filepath.Join(d.Home(), "A2"), formats.OpenOptions{})
				b := openLoc(t, f+":"+filepath.Join(d.Home(), "B2"), formats.OpenOptions{})
				run(t, a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Full})
				a.Close()
				b.Close()
				for _, p := range [][2]string{{"A", "A2"}, {"B", "B2"}} {
					theirs, ours := treeDump(t, f, filepath.Join(d.Home(), p[0])), treeDump(t, f, filepath.Join(d.Home(), p[1]))
					if diff := formatstest.Diff(theirs, ours); diff != "" {
						t.Errorf("%s: doveadm sync (-) and boxsync (+) differ:\n%s\ndoveadm:\n%s", p[0], diff, theirs)
					}
					got := mailboxGUIDs(t, f, filepath.Join(d.Home(), p[1]))
					for name, box := range tc.want {
						if n, ok := names[name]; ok {
							name = n // the box's name before the renames
						}
						if want := names[box]; got[name] != start[want] {
							t.Errorf("%s: %q has GUID %s, want %s (%s before the renames)", p[1], name, got[name], start[want], want)
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
