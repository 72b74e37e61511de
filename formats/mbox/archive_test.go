package mbox_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/mbox"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// fillArchive saves n messages per mailbox in two commits each.
func fillArchive(t *testing.T, s formats.Store, boxes []string, n int) {
	t.Helper()
	ctx := context.Background()
	for bi, name := range boxes {
		if err := s.Create(ctx, name, formats.NewGUID(), uint32(1500000000+bi)); err != nil {
			t.Fatal(err)
		}
		mb, err := s.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for half := 0; half < 2; half++ {
			tx, err := mb.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := half * n / 2; i < (half+1)*n/2; i++ {
				body := interopBodies[i%len(interopBodies)].body
				m := formats.Message{UID: formats.UID(2*i + 5), Flags: formats.Flags(i) & formats.SystemFlags,
					Received: time.Unix(int64(1e9+3600*i), 0), Size: int64(len(body))}
				if i%3 == 0 {
					m.Keywords = []string{"$Forwarded", fmt.Sprintf("k%d", i%5)}
				}
				if _, err := tx.Save(ctx, m, bytes.NewReader(body)); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		mb.Close()
	}
}

// TestCompressedArchive writes compressed mbox archives (COMPRESS=), checks
// that zstdcat/gzip -dc give valid mbox files, and reads them back with
// every field intact.
func TestCompressedArchive(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ compress, ext, tool string }{
		{"zstd", ".zstd", "zstdcat"},
		{"gz", ".gz", "zcat"},
		{"zstd,19", ".zstd", "zstdcat"},
	} {
		t.Run(tc.compress, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "archive")
			loc := formats.Location{Driver: "mbox", Path: root, Other: map[string]string{"COMPRESS": tc.compress}}
			s := newStore(t, loc, formats.OpenOptions{Create: true})
			boxes := []string{"INBOX", "Work/Projects", "Entwürfe"}
			fillArchive(t, s, boxes, 24)
			// Flag changes and an expunge rewrite the compressed file.
			mb, err := s.Open(ctx, "Work/Projects")
			if err != nil {
				t.Fatal(err)
			}
			tx, _ := mb.Begin(ctx)
			tx.SetFlags(5, formats.FlagSeen|formats.FlagFlagged, []string{"Archived"})
			tx.Expunge(7)
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			mb.Close()
			want, err := formatstest.Dump(ctx, s, formatstest.FieldsAll)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(want, `mailbox "Work/Projects" uidvalidity=1500000001 uidnext=52`) ||
				!strings.Contains(want, `messages=23`) || !strings.Contains(want, `kw="Archived"`) {
				t.Errorf("dump:\n%s", want)
			}
			for _, f := range []string{"inbox" + tc.ext, "Work/Projects" + tc.ext, "Entw&APw-rfe" + tc.ext} {
				path := filepath.Join(root, f)
				if _, err := os.Stat(path); err != nil {
					t.Fatalf("archive file: %v", err)
				}
				if _, err := exec.LookPath(tc.tool); err != nil {
					t.Logf("%s not installed", tc.tool)
					continue
				}
				out, err := exec.Command(tc.tool, path).Output()
				if err != nil {
					t.Fatalf("%s %s: %v", tc.tool, f, err)
				}
				if !bytes.HasPrefix(out, []byte("From ")) || !bytes.Contains(out, []byte("\nX-IMAPbase: ")) {
					t.Errorf("%s %s gives no Dovecot mbox: %.200q", tc.tool, f, out)
				}
				// The decompressed file reads as the same mailbox.
				plain := openFileBytes(t, out)
				got := readMailbox(t, plain)
				if len(got) < 20 {
					t.Errorf("%s %s: %d messages", tc.tool, f, len(got))
				}
			}
			// Reopened read-only: the same dump.
			ro := newStore(t, loc, formats.OpenOptions{ReadOnly: true})
			got, err := formatstest.Dump(ctx, ro, formatstest.FieldsAll)
			if err != nil {
				t.Fatal(err)
			}
			if d := formatstest.Diff(want, got); d != "" {
				t.Errorf("reopened archive differs:\n%s", d)
			}
		})
	}
}

// TestDovecotReadsArchive: Dovecot with the zlib plugin opens a boxsync
// .zstd archive as a read-only mailbox named "<name>.zstd".
func TestDovecotReadsArchive(t *testing.T) {
	ctx := context.Background()
	d := dovecottest.New(t, "mbox:~/mail:INBOX=~/mail/inbox", "mail_plugins = $mail_plugins zlib")
	root := filepath.Join(d.Home(), "mail")
	loc := formats.Location{Driver: "mbox", Path: root, Inbox: filepath.Join(root, "inbox"), Other: map[string]string{"COMPRESS": "zstd"}}
	s := newStore(t, loc, formats.OpenOptions{Create: true})
	fillArchive(t, s, []string{"Old"}, 10)
	ours, err := formatstest.DovecotTree(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string][]byte{}
	for _, b := range interopBodies {
		bodies[b.name] = b.body
	}
	expectDovecotView(t, &ours, bodies)
	theirs := d.Snapshot(t)
	box := theirs.Lookup("Old.zstd")
	if box == nil {
		t.Fatalf("Dovecot doesn't list Old.zstd:\n%s", theirs)
	}
	box.Name = "Old"
	ours.Mailboxes[0].GUID = box.GUID // Dovecot keeps no index for a read-only archive
	if diff := dovecottest.Diff(dovecottest.Tree{Mailboxes: []dovecottest.Mailbox{*box}}, ours,
		dovecottest.Saved, dovecottest.ModSeq, dovecottest.HighestModSeq); diff != "" {
		t.Errorf("Dovecot (a) and boxsync (b) differ:\n%s\nDovecot:\n%s\nboxsync:\n%s", diff, theirs, ours)
	}
}

// TestArchiveStreams: reading a compressed archive in UID order
// decompresses it once, not once per message.
func TestArchiveStreams(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "archive")
	loc := formats.Location{Driver: "mbox", Path: root, Other: map[string]string{"COMPRESS": "zstd"}}
	s := newStore(t, loc, formats.OpenOptions{Create: true})
	fillArchive(t, s, []string{"Big"}, 200)
	mb, err := s.Open(ctx, "Big")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	got := readMailbox(t, mb)
	if len(got) != 200 {
		t.Fatalf("%d messages", len(got))
	}
	if n := mbox.DecompressionRestarts(mb); n > 2 {
		t.Errorf("reading 200 bodies in order restarted decompression %d times", n)
	}
}
