package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestForceResync: an sdbox mailbox whose index files were lost still has
// its mail files. boxsync refuses it as a backup source (copying it would
// empty the destination) and `force-resync` recovers the messages with
// their UIDs, GUIDs and bytes.
func TestForceResync(t *testing.T) {
	te := newTestEnv(t)
	root := filepath.Join(te.home, "sdbox")
	src := "sdbox:" + root
	fill(t, src, map[string]int{"INBOX": 5, "Sent": 2})
	before := messageIDs(t, src, "INBOX")

	dir := filepath.Join(root, "mailboxes", "INBOX", "dbox-Mails")
	matches, _ := filepath.Glob(filepath.Join(dir, "dovecot.index*"))
	if len(matches) == 0 {
		t.Fatalf("no index files in %s", dir)
	}
	for _, m := range matches {
		os.Remove(m)
	}
	dst := "maildir:" + filepath.Join(te.home, "Backup")
	te.run(t, "backup", "--source", src, dst).expect(t, nil, 65, "force-resync")

	te.run(t, "force-resync", "--source", src, "INBOX").expect(t, nil, 0)
	if after := messageIDs(t, src, "INBOX"); !equalIDs(before, after) {
		t.Fatalf("after force-resync: %v, want %v", after, before)
	}
	te.run(t, "backup", "--source", src, dst).expect(t, nil, 0)

	te.run(t, "force-resync", "--source", src, "Nope*").expect(t, nil, 68, "no mailbox matches")
	te.run(t, "force-resync", "--source", src).expect(t, nil, 64, "mailbox mask")
	te.run(t, "force-resync", "--source", "maildir:"+filepath.Join(te.home, "Backup"), "INBOX").expect(t, nil, 65, "maildir")
}

type msgID struct {
	UID  uint32
	GUID string
	SHA  string
}

// messageIDs lists a mailbox's UIDs, GUIDs and body hashes.
func messageIDs(t *testing.T, loc, box string) []msgID {
	t.Helper()
	d, l := driverFor(t, loc)
	st, err := d.Open(context.Background(), l, formats.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tree, err := formatstest.DovecotTree(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	var mb *dovecottest.Mailbox = tree.Lookup(box)
	if mb == nil {
		t.Fatalf("no %s in %s", box, loc)
	}
	var out []msgID
	for _, m := range mb.Messages {
		out = append(out, msgID{m.UID, m.GUID, m.SHA256})
	}
	return out
}

func equalIDs(a, b []msgID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestForceResyncMdbox: an mdbox whose mailbox indexes were lost is
// refused as a backup source; `force-resync` rebuilds the storage, and
// the messages come back with their GUIDs and bytes (and, saved in
// order, their UIDs), as with `doveadm force-resync`.
func TestForceResyncMdbox(t *testing.T) {
	te := newTestEnv(t)
	root := filepath.Join(te.home, "mdbox")
	src := "mdbox:" + root
	fill(t, src, map[string]int{"INBOX": 5, "Sent": 2})
	before := messageIDs(t, src, "INBOX")
	sent := messageIDs(t, src, "Sent")

	matches, _ := filepath.Glob(filepath.Join(root, "mailboxes", "*", "dbox-Mails", "dovecot.index*"))
	if len(matches) == 0 {
		t.Fatalf("no index files in %s", root)
	}
	for _, m := range matches {
		os.Remove(m)
	}
	dst := "maildir:" + filepath.Join(te.home, "Backup")
	te.run(t, "backup", "--source", src, dst).expect(t, nil, 65, "force-resync")

	te.run(t, "force-resync", "--source", src, "*").expect(t, nil, 0)
	if after := messageIDs(t, src, "INBOX"); !equalIDs(before, after) {
		t.Fatalf("INBOX after force-resync: %v, want %v", after, before)
	}
	if after := messageIDs(t, src, "Sent"); !equalIDs(sent, after) {
		t.Fatalf("Sent after force-resync: %v, want %v", after, sent)
	}
	checkStore(t, src)
	te.run(t, "backup", "--source", src, dst).expect(t, nil, 0)
}
