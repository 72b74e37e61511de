package imapc

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// A server without CONDSTORE, QRESYNC, LIST-STATUS, ESEARCH and
// MULTIAPPEND still lists everything; only modseqs are missing.
func TestNoCondstore(t *testing.T) {
	// `doveadm exec imap` ignores imap_capability, so this needs the
	// listening server.
	srv := startServer(t, false, "imap_capability = IMAP4rev1 LITERAL+ SASL-IR ID UIDPLUS UNSELECT CHILDREN NAMESPACE LIST-EXTENDED")
	d, st := srv.d, openStore(t, srv.settings(), formats.OpenOptions{})
	imapScript(t, d, sourceScript())
	if st.modseqs() || st.has("ESEARCH") || st.has("LIST-STATUS") {
		t.Fatalf("capabilities not narrowed: %v", st.caps)
	}
	want := d.Snapshot(t)
	got, err := formatstest.DovecotTree(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if diff := dovecottest.Diff(want, got, dovecottest.ModSeq, dovecottest.HighestModSeq, dovecottest.Saved); diff != "" {
		t.Errorf("imapc view differs from doveadm's:\n%s", diff)
	}
	for _, b := range got.Mailboxes {
		if b.HighestModSeq != 0 {
			t.Errorf("%q: HIGHESTMODSEQ %d without CONDSTORE", b.Name, b.HighestModSeq)
		}
	}
	// Saving works with one APPEND per message (no MULTIAPPEND).
	mb, err := st.Open(context.Background(), "R&D")
	if err != nil {
		t.Fatal(err)
	}
	ftx, _ := mb.Begin(context.Background())
	for i := 0; i < 3; i++ {
		if _, err := ftx.Save(context.Background(), formats.Message{Flags: formats.FlagSeen}, stringsReader("Subject: n\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := ftx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if uids := ftx.(*tx).SavedUIDs(); len(uids) != 3 || uids[0] != 2 || uids[2] != 4 {
		t.Errorf("SavedUIDs() = %v, want 2 3 4", uids)
	}
}

// Without ID the server is not known to be Dovecot: no X-GUID, so message
// GUIDs are empty and mailbox GUIDs are Dovecot imapc's name hashes.
func TestNameGUIDsWithoutID(t *testing.T) {
	srv := startServer(t, false, "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS LIST-EXTENDED CONDSTORE")
	d, st := srv.d, openStore(t, srv.settings(), formats.OpenOptions{})
	imapScript(t, d, sourceScript())
	boxes, err := st.Mailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		// doveadm mailbox status guid with mail_location=imapc: against
		// the same names (see TestNameGUIDMatchesDoveadmImapc).
		"INBOX":    "c92f64f79f0d1ed01e6d5b314f04886c",
		"Entwürfe": "d615cdbee662a5c6fd78f6050c80f1be",
		"R&D":      "502fb18917f6e64380121b61b01c18ad",
	}
	for _, b := range boxes {
		if w, ok := want[b.Name]; ok && b.GUID.String() != w {
			t.Errorf("%q GUID = %s, want %s", b.Name, b.GUID, w)
		}
	}
	mb, err := st.Open(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for m, err := range mb.Messages(context.Background(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		if m.GUID != "" {
			t.Errorf("uid %d GUID = %q without X-GUID", m.UID, m.GUID)
		}
	}
	if s, _ := mb.Status(context.Background()); s.Caps.GUIDs {
		t.Errorf("Caps.GUIDs without X-GUID")
	}
}

// Dovecot's own imapc is the oracle for names and name-hash GUIDs: doveadm
// with mail_location=imapc: against the same server must list the same
// names with the same GUIDs.
func TestMatchesDoveadmImapc(t *testing.T) {
	srv := startServer(t, false)
	names := []string{"Entwürfe", "R&D", "Work/Sub", "a%b", "日本語/x y", "50%/~tilde", "Archive/2020", "Archive/Ä/b"}
	srv.d.MustDoveadm(t, append([]string{"mailbox", "create"}, names...)...)
	for _, prefix := range []string{"", "Archive"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			conf := []string{"imapc_host = 127.0.0.1", fmt.Sprintf("imapc_port = %d", srv.port),
				"imapc_user = u1", "imapc_password = " + testPassword}
			if prefix != "" {
				conf = append(conf, "imapc_list_prefix = "+prefix)
			}
			client := dovecottest.New(t, "imapc:~/imapc-index", conf...)
			out := client.MustDoveadm(t, "mailbox", "status", "guid", "*")
			want := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				name, guid, ok := strings.Cut(line, " guid=")
				if !ok {
					t.Fatalf("doveadm output %q", line)
				}
				want[name] = guid
			}
			s := srv.settings()
			s.Features = []string{"name-mailbox-guids"}
			s.ListPrefix = prefix
			st := openStore(t, s, formats.OpenOptions{})
			got := map[string]string{}
			for name, info := range list(t, st) {
				if !info.NoSelect {
					got[name] = info.GUID.String()
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("imapc mailboxes/GUIDs differ from doveadm's imapc:\n got %v\nwant %v", got, want)
			}
		})
	}
}
