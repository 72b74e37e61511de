package mbox_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gombox "github.com/emersion/go-mbox"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/mbox"
)

// openFile opens one mbox file as the INBOX of a read-only store.
func openFile(t *testing.T, path string) formats.Mailbox {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inbox := filepath.Join(dir, "inbox")
	if err := os.WriteFile(inbox, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := mbox.Driver{Location: time.UTC}.Open(ctx, formats.Location{Driver: "mbox", Path: dir, Inbox: inbox, Index: "MEMORY"}, formats.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	mb, err := s.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mb.Close() })
	return mb
}

type readMsg struct {
	m    formats.Message
	body string
}

func readMailbox(t *testing.T, mb formats.Mailbox) []readMsg {
	t.Helper()
	ctx := context.Background()
	var out []readMsg
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		var body []byte
		err := mb.Body(ctx, m.UID, func(b formats.Body) error {
			var err error
			body, err = io.ReadAll(b)
			if err == nil && int64(len(body)) != b.Size() {
				t.Errorf("uid %d: read %d bytes, Size() %d", m.UID, len(body), b.Size())
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if m.Size != int64(len(body)) {
			t.Errorf("uid %d: Message.Size %d, body %d bytes", m.UID, m.Size, len(body))
		}
		out = append(out, readMsg{m, string(body)})
	}
	return out
}

type flavoured interface {
	Flavour(context.Context) (mbox.Flavour, error)
	Warnings(context.Context) ([]mbox.Warning, error)
}

// TestForeign reads mbox files as other software writes them.
func TestForeign(t *testing.T) {
	tests := []struct {
		file     string
		flavour  mbox.Flavour
		bodies   []string
		flags    []formats.Flags
		received []string // RFC 3339, UTC
		warnings int
	}{
		{
			file:    "python-mboxo.mbox",
			flavour: mbox.FlavourMboxo,
			bodies: []string{
				"Return-Path: <alice@example.org>\nFrom: Alice <alice@example.org>\nTo: bob@example.com\nSubject: Lunch\n" +
					"Date: Wed, 01 Mar 2023 12:00:00 +0000\nMessage-ID: <lunch@example.org>\n\nAre you free?\n>From the canteen, I mean.\n",
				"From: Bob <bob@example.com>\nSubject: Re: Lunch\nIn-Reply-To: <lunch@example.org>\n\nSure.\n",
			},
			flags:    []formats.Flags{formats.FlagSeen, formats.FlagAnswered},
			received: []string{"2023-03-01T12:00:00Z", "2023-03-01T13:30:05Z"},
		},
		{
			file:    "thunderbird.mbox",
			flavour: mbox.FlavourMboxo,
			bodies: []string{
				"X-Mozilla-Status: 0001\nX-Mozilla-Status2: 00000000\nX-Mozilla-Keys:" + strings.Repeat(" ", 81) + "\n" +
					"Message-ID: <tb1@example.net>\nDate: Thu, 16 Feb 2023 09:14:58 +0100\nFrom: Carol <carol@example.net>\n" +
					"Subject: Minutes\nContent-Type: text/plain; charset=UTF-8\n\nMinutes attached.\n>From now on we meet on Thursdays.\n",
				// The file's last LF ends the file, not the message.
				"X-Mozilla-Status: 0000\nMessage-ID: <tb2@example.net>\nFrom: Dave <dave@example.net>\n" +
					"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\n\nGr\u00fc\u00dfe",
			},
			flags:    []formats.Flags{0, 0},
			received: []string{"2023-02-16T09:15:00Z", "2023-02-17T10:00:00Z"},
		},
		{
			file:    "takeout-mboxrd.mbox",
			flavour: mbox.FlavourMboxrd,
			bodies: []string{
				"X-GM-THRID: 1698051396271412345\nX-Gmail-Labels: Inbox,Important,Opened\nDelivered-To: erin@gmail.com\r\n" +
					"Date: Mon, 26 Apr 2021 19:14:40 +0200\r\nFrom: Frank <frank@example.com>\r\nSubject: quoting\r\n" +
					"Message-ID: <q1@example.com>\r\n\r\nFrom the start:\r\n>From a quote of a quote\r\nplain line\r\n",
				"X-GM-THRID: 1698051396271412346\nX-Gmail-Labels: Sent\nFrom: Erin <erin@gmail.com>\r\nSubject: Re: quoting\r\n\r\nok\r\n",
			},
			flags: []formats.Flags{0, 0},
			// "+0000" before the year is skipped as a zone name, as
			// Dovecot does: the time is local (UTC here).
			received: []string{"2021-04-26T17:14:46Z", "2021-04-27T08:00:00Z"},
		},
		{
			file:    "sysv-mboxcl.mbox",
			flavour: mbox.FlavourMboxcl,
			bodies: []string{
				"From: root@localhost\nSubject: cron\n\nJob done.\n>From cron, with love.\n\n",
				"From: root@localhost\nSubject: cron again\n\nAgain\n",
			},
			flags:    []formats.Flags{0, 0},
			received: []string{"2006-01-07T04:05:06Z", "2006-01-07T05:05:06Z"},
		},
		{
			file:    "mutt-mboxcl2.mbox",
			flavour: mbox.FlavourMboxcl2,
			bodies: []string{
				"From: Gina <gina@example.com>\nSubject: forwarded mbox\nLines: 4\n\nHere it is:\n" +
					"From hank@example.com Sat Nov  4 10:00:00 2017\nSubject: original\n\noriginal body\n",
				"From: Gina <gina@example.com>\nSubject: short\nLines: 0\n\n",
			},
			flags:    []formats.Flags{0, 0},
			received: []string{"2017-11-05T18:00:00Z", "2017-11-05T18:05:00Z"},
		},
		{
			file:    "ambiguous.mbox",
			flavour: mbox.FlavourMboxo,
			bodies: []string{
				"From: Ivan <ivan@example.com>\nSubject: unquoted\n\nSomeone forgot to quote this:\n",
				"and this is still the body.\n",
				"From: Judy <judy@example.com>\nSubject: next\n\nbye\n",
			},
			flags:    []formats.Flags{0, 0, 0},
			received: []string{"2006-01-02T03:04:05Z", "2006-01-02T03:04:05Z", "2006-01-03T03:04:05Z"},
			warnings: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			ctx := context.Background()
			mb := openFile(t, filepath.Join("testdata", tc.file))
			got := readMailbox(t, mb)
			if len(got) != len(tc.bodies) {
				t.Fatalf("%d messages, want %d: %+v", len(got), len(tc.bodies), got)
			}
			for i, g := range got {
				if g.body != tc.bodies[i] {
					t.Errorf("message %d: body\n%q\nwant\n%q", i+1, g.body, tc.bodies[i])
				}
				if g.m.UID != formats.UID(i+1) {
					t.Errorf("message %d: UID %d", i+1, g.m.UID)
				}
				if g.m.Flags != tc.flags[i] {
					t.Errorf("message %d: flags %s, want %s", i+1, g.m.Flags, tc.flags[i])
				}
				if r := g.m.Received.UTC().Format(time.RFC3339); r != tc.received[i] {
					t.Errorf("message %d: received %s, want %s", i+1, r, tc.received[i])
				}
			}
			fl := mb.(flavoured)
			if f, err := fl.Flavour(ctx); err != nil || f != tc.flavour {
				t.Errorf("Flavour() = %s, %v; want %s", f, err, tc.flavour)
			}
			ws, err := fl.Warnings(ctx)
			if err != nil || len(ws) != tc.warnings {
				t.Errorf("Warnings() = %v, %v; want %d", ws, err, tc.warnings)
			}
			st, err := mb.Status(ctx)
			if err != nil || st.UIDNext != formats.UID(len(got)+1) || st.UIDValidity == 0 {
				t.Errorf("Status() = %+v, %v", st, err)
			}
		})
	}
}

// TestForeignRewrite: writing to a foreign mbox makes it a Dovecot one
// whose messages read as before.
func TestForeignRewrite(t *testing.T) {
	ctx := context.Background()
	for _, file := range []string{"python-mboxo.mbox", "takeout-mboxrd.mbox", "mutt-mboxcl2.mbox", "sysv-mboxcl.mbox"} {
		t.Run(file, func(t *testing.T) {
			dir := t.TempDir()
			data, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			inbox := filepath.Join(dir, "inbox")
			os.WriteFile(inbox, data, 0o600)
			s, err := mbox.Driver{Location: time.UTC}.Open(ctx, formats.Location{Driver: "mbox", Path: dir, Inbox: inbox}, formats.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			mb, err := s.Open(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			before := readMailbox(t, mb)
			tx, _ := mb.Begin(ctx)
			tx.SetFlags(before[0].m.UID, formats.FlagFlagged, []string{"Work"})
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			after := readMailbox(t, mb)
			if len(after) != len(before) {
				t.Fatalf("%d messages after the rewrite, %d before", len(after), len(before))
			}
			for i := range after {
				if after[i].body != before[i].body || after[i].m.UID != before[i].m.UID {
					t.Errorf("message %d changed:\n%q\n%q", i, before[i].body, after[i].body)
				}
			}
			if after[0].m.Flags != formats.FlagFlagged || len(after[0].m.Keywords) != 1 {
				t.Errorf("flags after rewrite: %s %q", after[0].m.Flags, after[0].m.Keywords)
			}
			if f, _ := mb.(flavoured).Flavour(ctx); f != mbox.FlavourDovecot {
				t.Errorf("flavour after rewrite %s", f)
			}
		})
	}
}

// TestGoMboxIsLossy shows why the driver does not use go-mbox v1.0.4: its
// reader turns every line end into CRLF, splits on any "From " line
// without checking the date, and unquotes ">From " one level; its writer
// turns CRLF into LF, quotes only "From " (so ">From " and "From " come
// back the same) and ends a message that has its final LF with two more.
func TestGoMboxIsLossy(t *testing.T) {
	msg := "Subject: lossy\r\n\r\nFrom here\n>From there\nlast\n"
	var buf bytes.Buffer
	w := gombox.NewWriter(&buf)
	mw, err := w.CreateMessage("a@example.com", time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(mw, msg)
	w.Close()
	if want := "From a@example.com Thu Jan  2 03:04:05 2020\nSubject: lossy\n\n>From here\n>From there\nlast\n\n\n"; buf.String() != want {
		t.Errorf("go-mbox wrote\n%q\nexpected\n%q", buf.String(), want)
	}
	r := gombox.NewReader(&buf)
	mr, err := r.NextMessage()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(mr)
	// Both quoted lines come back as "From ", every LF as CRLF, and
	// the message grew two empty lines.
	if want := "Subject: lossy\r\n\r\nFrom here\r\nFrom there\r\nlast\r\n\r\n\r\n"; string(got) != want {
		t.Errorf("go-mbox read\n%q\nexpected\n%q", got, want)
	}
	if string(got) == msg {
		t.Errorf("go-mbox round-tripped the message; the driver could use it")
	}
	// And a body line "From " without a date splits the message.
	r = gombox.NewReader(strings.NewReader("From a Thu Jan  2 03:04:05 2020\nSubject: x\n\nFrom my desk\nbye\n"))
	n := 0
	for {
		mr, err := r.NextMessage()
		if err != nil {
			break
		}
		io.Copy(io.Discard, mr)
		n++
	}
	if n != 2 {
		t.Errorf("go-mbox split into %d messages, expected its 2", n)
	}
	// boxsync's driver keeps the message whole.
	mb := openFileBytes(t, []byte("From a Thu Jan  2 03:04:05 2020\nSubject: x\n\nFrom my desk\nbye\n"))
	if got := readMailbox(t, mb); len(got) != 1 || got[0].body != "Subject: x\n\nFrom my desk\nbye" {
		t.Errorf("driver read %+v", got)
	}
}

func openFileBytes(t *testing.T, data []byte) formats.Mailbox {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return openFile(t, path)
}
