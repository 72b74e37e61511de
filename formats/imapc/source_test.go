package imapc

import (
	"context"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// sourceScript fills a store through raw IMAP: unicode names (sent in
// modified UTF-7), flags, keywords, INTERNALDATEs, a subscription of a
// missing mailbox.
func sourceScript() string {
	var b strings.Builder
	b.WriteString("a1 CREATE \"Entw&APw-rfe\"\r\n")
	b.WriteString("a2 CREATE \"&ZeVnLIqe-/Sub\"\r\n")
	b.WriteString("a3 CREATE \"R&-D\"\r\n")
	b.WriteString("a4 CREATE \"Work/Projects 2024\"\r\n")
	b.WriteString("a5 SUBSCRIBE INBOX\r\na6 SUBSCRIBE \"Entw&APw-rfe\"\r\n")
	b.WriteString(appendCmd("b1", "INBOX", `\Seen $Forwarded Important`, "04-Mar-2021 05:06:07 +0000",
		"From: a@example.com\r\nDate: Thu, 4 Mar 2021 05:06:07 +0000\r\nMessage-ID: <1@x>\r\nSubject: one\r\n\r\nbody one\r\n"))
	b.WriteString(appendCmd("b2", "INBOX", `\Answered \Flagged \Draft \Deleted`, "01-Jan-2001 00:00:00 +0200",
		"Subject: two\r\n\r\nbody two with \xc3\xa4 8bit\r\n"))
	b.WriteString(appendCmd("b3", "Entw&APw-rfe", `$Junk`, "", "Subject: =?utf-8?q?Entw=C3=BCrfe?=\r\n\r\n\xc3\xa4\r\n"))
	b.WriteString(appendCmd("b4", "&ZeVnLIqe-/Sub", ``, "31-Dec-1999 23:59:59 -0800", "Subject: jp\r\n\r\nno final newline"))
	b.WriteString(appendCmd("b5", "R&-D", `\Seen`, "", "Subject: rd\r\n\r\nx\r\n"))
	b.WriteString(appendCmd("b6", "INBOX", ``, "", "Subject: three\r\n\r\nthree\r\n"))
	b.WriteString("c1 SELECT INBOX\r\nc2 UID STORE 3 +FLAGS (work)\r\n")
	return b.String()
}

// TestSourceMatchesDovecot reads a store through imapc and compares it
// with what doveadm sees in the same store, field by field.
func TestSourceMatchesDovecot(t *testing.T) {
	d, st := newStore(t)
	imapScript(t, d, sourceScript())
	want := d.Snapshot(t)
	got, err := formatstest.DovecotTree(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if diff := dovecottest.Diff(want, got); diff != "" {
		t.Errorf("imapc view differs from doveadm's:\n%s\nwant:\n%s\ngot:\n%s", diff, want, got)
	}
	// Mailbox GUIDs are Dovecot's real ones (STATUS X-GUID); the names
	// are UTF-8 with '/'.
	boxes, err := st.Mailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Name)
	}
	for _, n := range []string{"INBOX", "Entwürfe", "日本語", "日本語/Sub", "R&D", "Work", "Work/Projects 2024"} {
		if !strings.Contains("\x00"+strings.Join(names, "\x00")+"\x00", "\x00"+n+"\x00") {
			t.Errorf("Mailboxes() lacks %q: %q", n, names)
		}
	}
	mb, err := st.Open(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	stat, err := mb.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !stat.Caps.GUIDs || !stat.Caps.ModSeqs || stat.Caps.SaveUIDs || stat.Caps.SaveGUIDs {
		t.Errorf("Status().Caps = %+v, want GUIDs and ModSeqs only", stat.Caps)
	}
}
