package maildir

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

// A mailbox deleted between the directory scan and the GUID lookup (by
// another worker of a sync, or by Dovecot) is left out of the listing, not
// an error for the whole store; a deleted parent stays as a container.
func TestMailboxesDeletedDuringListing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	ctx := context.Background()
	st, err := Driver{}.Open(ctx, formats.Location{Driver: "maildir", Path: root}, formats.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, n := range []string{"Keep", "Leaf", "Parent", "Parent/Child"} {
		if err := st.Create(ctx, n, formats.GUID{}, 0); err != nil {
			t.Fatal(err)
		}
	}
	// Without a uidlist the GUID lookup has to load (and lock) the
	// mailbox, which is what failed.
	for _, d := range []string{".Leaf", ".Parent"} {
		os.Remove(filepath.Join(root, d, "dovecot-uidlist"))
	}
	testHookListed = func() {
		os.RemoveAll(filepath.Join(root, ".Leaf"))
		os.RemoveAll(filepath.Join(root, ".Parent"))
	}
	defer func() { testHookListed = nil }()
	boxes, err := st.Mailboxes(ctx)
	if err != nil {
		t.Fatalf("Mailboxes() = %v", err)
	}
	got := map[string]formats.MailboxInfo{}
	for _, b := range boxes {
		got[b.Name] = b
	}
	if _, ok := got["Leaf"]; ok {
		t.Errorf("deleted Leaf listed: %+v", got["Leaf"])
	}
	if p, ok := got["Parent"]; !ok || !p.NoSelect {
		t.Errorf("deleted Parent = %+v (listed %v), want a NoSelect container", p, ok)
	}
	if k, ok := got["Keep"]; !ok || k.GUID.IsZero() {
		t.Errorf("Keep = %+v", k)
	}
}
