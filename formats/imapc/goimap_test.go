package imapc

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestGoIMAPIsLossy shows why this driver speaks IMAP itself instead of
// through github.com/emersion/go-imap/v2 (v2.0.0-beta.8): a migration must
// keep Dovecot's message and mailbox GUIDs (X-GUID), and go-imap's client
// has no way to ask for them. Its FETCH and STATUS options are closed
// structs with no field for extra items, and its results have nowhere to
// put them. Our driver fetches X-GUID from the same server. If a later
// go-imap grows such fields, this test fails: reconsider using it then.
func TestGoIMAPIsLossy(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeOf(imap.FetchOptions{}), reflect.TypeOf(imapclient.FetchMessageBuffer{}),
		reflect.TypeOf(imap.StatusOptions{}), reflect.TypeOf(imap.StatusData{}),
	} {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if strings.Contains(strings.ToLower(f.Name), "guid") || strings.Contains(strings.ToLower(f.Name), "extra") {
				t.Errorf("go-imap %s now has field %s: it may be able to fetch X-GUID; reconsider using it", typ, f.Name)
			}
		}
	}

	// Live, against the real Dovecot: go-imap reads the message, but
	// what it returns carries no GUID; our driver returns Dovecot's.
	d, st := newStore(t)
	d.Save(t, "INBOX", []byte("Subject: guid\r\n\r\nbody\r\n"))
	want := strings.TrimSpace(d.MustDoveadm(t, "-f", "flow", "fetch", "guid", "mailbox", "INBOX", "uid", "1"))
	want = strings.TrimPrefix(want, "guid=")

	conn, err := execDialer(t, d)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := imapclient.New(conn, nil)
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("go-imap fetch: %v, %d messages", err, len(msgs))
	}
	if want == "" {
		t.Fatal("doveadm printed no GUID")
	}
	if got := fmt.Sprintf("%+v", *msgs[0]); strings.Contains(got, want) {
		t.Errorf("go-imap's result carries the GUID after all: %s", got)
	}

	mb, err := st.Open(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	for m, err := range mb.Messages(context.Background(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		if m.GUID != want {
			t.Errorf("our driver's GUID = %q, Dovecot's %q", m.GUID, want)
		}
	}
}
