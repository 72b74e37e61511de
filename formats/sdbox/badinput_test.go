package sdbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtest"
	"github.com/boxsync/boxsync/formats/mem"
	"github.com/boxsync/boxsync/formats/sdbox"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

func newStore(t *testing.T) (formats.Store, formats.Location) {
	t.Helper()
	loc := formats.Location{Driver: "sdbox", Path: filepath.Join(t.TempDir(), "sdbox")}
	return openStore(t, loc, formats.OpenOptions{Create: true}), loc
}

func inboxFile(loc formats.Location, uid string) string {
	return filepath.Join(loc.Path, "mailboxes", "INBOX", "dbox-Mails", "u."+uid)
}

// TestBadFiles damages message files the ways a disk or an admin can: a
// file missing, a broken metadata block, a truncated file. Messages still
// lists every message, Body fails for the damaged ones with an error
// naming the file, mailbox and UID, and a backup copies the rest.
func TestBadFiles(t *testing.T) {
	ctx := context.Background()
	store, loc := newStore(t)
	if err := store.Create(ctx, "INBOX", formats.GUID{}, 0); err != nil {
		t.Fatal(err)
	}
	msgs := []formats.Message{{UID: 1}, {UID: 2}, {UID: 3}, {UID: 4}, {UID: 5, Flags: formats.FlagSeen}}
	saveAll(t, store, "INBOX", msgs, 0)

	if err := os.Remove(inboxFile(loc, "2")); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(inboxFile(loc, "3"))
	os.WriteFile(inboxFile(loc, "3"), bytes.Replace(data, []byte(dbox.MagicPost), []byte("\n\x01\x04\n"), 1), 0o600)
	data, _ = os.ReadFile(inboxFile(loc, "4"))
	os.WriteFile(inboxFile(loc, "4"), data[:60], 0o600)

	mb, err := store.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	var uids []formats.UID
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatalf("Messages() = %v", err)
		}
		uids = append(uids, m.UID)
		if ok := m.UID == 1 || m.UID == 5; ok != (m.GUID != "") {
			t.Errorf("uid %d: GUID %q", m.UID, m.GUID)
		}
	}
	if len(uids) != 5 {
		t.Fatalf("Messages() = %v, want all five UIDs", uids)
	}
	for _, c := range []struct {
		uid  formats.UID
		want string
	}{
		{2, "Unexpectedly lost uid"},
		{3, "metadata header has bad magic value"},
		{4, "runs past the end of the file"},
	} {
		err := mb.Body(ctx, c.uid, func(formats.Body) error { return nil })
		var fe *formats.Error
		if !errors.As(err, &fe) || fe.Mailbox != "INBOX" || fe.UID != c.uid || !strings.Contains(err.Error(), fmt.Sprintf("/u.%d", c.uid)) {
			t.Errorf("Body(%d) = %v, want a *formats.Error naming INBOX, uid %d and its file", c.uid, err, c.uid)
			continue
		}
		if formats.KindOf(err) != formats.KindTemp || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "force-resync") {
			t.Errorf("Body(%d) = %v (kind %s), want Temp, %q and force-resync", c.uid, err, formats.KindOf(err), c.want)
		}
	}
	if c := store.(formats.Checker).Check(ctx); c == nil {
		t.Errorf("Check() = nil on a damaged store")
	}

	// A backup copies what can be read and reports the rest.
	mem.Reset()
	dst, err := mem.Driver{}.Open(ctx, formats.Location{Driver: "mem", Path: "/bad"}, formats.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := convert.Run(ctx, store, dst, convert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 3 || res.Messages.Saved != 2 {
		t.Errorf("backup: saved %d, errors %v; want 2 saved and 3 errors", res.Messages.Saved, res.Errors)
	}
}

// TestExternalAttachments refuses a message whose attachments live in
// mail_attachment_dir.
func TestExternalAttachments(t *testing.T) {
	ctx := context.Background()
	store, loc := newStore(t)
	store.Create(ctx, "INBOX", formats.GUID{}, 0)
	saveAll(t, store, "INBOX", []formats.Message{{UID: 1}}, 0)
	data, _ := os.ReadFile(inboxFile(loc, "1"))
	os.WriteFile(inboxFile(loc, "1"), bytes.Replace(data, []byte("\n\x01\x03\n"), []byte("\n\x01\x03\nX0 10 B1 ab/cd\n"), 1), 0o600)
	mb, _ := store.Open(ctx, "INBOX")
	defer mb.Close()
	err := mb.Body(ctx, 1, func(formats.Body) error { return nil })
	if !errors.Is(err, dbox.ErrExternalAttachments) || formats.KindOf(err) != formats.KindNotPossible {
		t.Errorf("Body() = %v, want ErrExternalAttachments (NotPossible)", err)
	}
}

// removeIndex deletes a mailbox's index files, as a careless admin or a
// lost INDEX= directory does.
func removeIndex(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "dovecot.index*"))
	if len(files) == 0 {
		t.Fatalf("no index files in %s", dir)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLostIndex: mail files without an index must not be read as an
// empty mailbox (a backup would wipe its copy); Rebuild recovers them.
func TestLostIndex(t *testing.T) {
	ctx := context.Background()
	store, loc := newStore(t)
	store.Create(ctx, "INBOX", formats.GUID{}, 0)
	msgs := interopMessages()
	saveAll(t, store, "INBOX", msgs, 0)
	before, err := formatstest.DovecotTree(ctx, store)
	if err != nil {
		t.Fatal(err)
	}

	// an earlier backup of it
	mem.Reset()
	dst, _ := mem.Driver{}.Open(ctx, formats.Location{Driver: "mem", Path: "/lost"}, formats.OpenOptions{Create: true})
	if _, err := convert.Run(ctx, store, dst, convert.Options{}); err != nil {
		t.Fatal(err)
	}

	removeIndex(t, filepath.Dir(inboxFile(loc, "1")))
	boxes, err := store.Mailboxes(ctx)
	if err != nil || len(boxes) != 1 || boxes[0].NoSelect {
		t.Fatalf("Mailboxes() = %+v, %v; want INBOX selectable", boxes, err)
	}
	_, err = store.Open(ctx, "INBOX")
	if formats.KindOf(err) != formats.KindNotPossible || !strings.Contains(err.Error(), "force-resync") {
		t.Fatalf("Open(lost index) = %v, want NotPossible saying force-resync", err)
	}
	if err := store.Create(ctx, "INBOX", formats.GUID{}, 0); formats.KindOf(err) != formats.KindNotPossible {
		t.Errorf("Create(lost index) = %v, want NotPossible", err)
	}
	ro := openStore(t, loc, formats.OpenOptions{ReadOnly: true})
	if _, err := ro.Open(ctx, "INBOX"); formats.KindOf(err) != formats.KindNotPossible {
		t.Errorf("read-only Open(lost index) = %v, want NotPossible", err)
	}

	// The backup leaves the destination alone and fails.
	res, err := convert.Run(ctx, ro, dst, convert.Options{})
	if err == nil && len(res.Errors) == 0 {
		t.Errorf("backup from a lost index succeeded")
	}
	if n := countMessages(t, dst, "INBOX"); n != len(msgs) {
		t.Errorf("backup from a lost index left %d messages in the destination, want %d", n, len(msgs))
	}

	if err := store.(sdbox.Rebuilder).Rebuild(ctx, "INBOX"); err != nil {
		t.Fatalf("Rebuild() = %v", err)
	}
	after, err := formatstest.DovecotTree(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	// UIDs, GUIDs, dates, sizes and bytes come back; flags, keywords,
	// modseqs, UIDVALIDITY and the mailbox GUID lived only in the lost
	// index.
	if diff := dovecottest.Diff(before, after, dovecottest.Flags, dovecottest.Keywords, dovecottest.ModSeq,
		dovecottest.HighestModSeq, dovecottest.UIDValidity, dovecottest.MailboxGUID, dovecottest.UIDNext); diff != "" {
		t.Errorf("after Rebuild:\n%s", diff)
	}
	if err := store.(formats.Checker).Check(ctx); err != nil {
		t.Errorf("Check() after Rebuild = %v", err)
	}
}

func countMessages(t *testing.T, s formats.Store, name string) int {
	t.Helper()
	return dboxtest.CountMessages(t, s, name)
}

// TestRebuildKeepsWhatTheIndexKnows: a file gone missing makes Dovecot
// rebuild; so does Rebuild, keeping the other messages' flags, keywords
// and modseqs and the mailbox's UIDVALIDITY and GUID.
func TestRebuildKeepsWhatTheIndexKnows(t *testing.T) {
	ctx := context.Background()
	store, loc := newStore(t)
	store.Create(ctx, "INBOX", formats.GUID{}, 0)
	saveAll(t, store, "INBOX", interopMessages(), 30)
	before, _ := formatstest.DovecotTree(ctx, store)
	os.Remove(inboxFile(loc, "9"))
	if err := store.(sdbox.Rebuilder).Rebuild(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	after, err := formatstest.DovecotTree(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	box := &before.Mailboxes[0]
	for i, m := range box.Messages {
		if m.UID == 9 {
			box.Messages = append(box.Messages[:i], box.Messages[i+1:]...)
			break
		}
	}
	if diff := dovecottest.Diff(before, after, dovecottest.HighestModSeq); diff != "" {
		t.Errorf("after Rebuild:\n%s", diff)
	}
	if err := store.(formats.Checker).Check(ctx); err != nil {
		t.Errorf("Check() = %v", err)
	}
}

// TestRebuildLikeDovecot rebuilds a lost index with Rebuild and, on a
// copy, with `doveadm force-resync`: both find the same messages, and
// Dovecot reads ours without complaint.
func TestRebuildLikeDovecot(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, "")
	store := openStore(t, loc, formats.OpenOptions{Create: true})
	store.Create(ctx, "INBOX", formats.GUID{}, 0)
	saveAll(t, store, "INBOX", interopMessages(), 0)
	removeIndex(t, filepath.Dir(inboxFile(loc, "1")))

	d2, loc2 := interop(t, "")
	copyTree(t, loc.Path, loc2.Path)
	d2.MustDoveadm(t, "force-resync", "INBOX")
	theirs := d2.Snapshot(t)

	if err := store.(sdbox.Rebuilder).Rebuild(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	ours := d.Snapshot(t)
	if diff := dovecottest.Diff(theirs, ours, dovecottest.UIDValidity, dovecottest.MailboxGUID, dovecottest.ModSeq,
		dovecottest.HighestModSeq, dovecottest.Saved); diff != "" {
		t.Errorf("doveadm force-resync (a) and Rebuild (b) differ:\n%s", diff)
	}
	d.CheckLogClean(t)
	compare(t, d, store)
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, src)
		if err == nil {
			err = os.Chtimes(dst, time.Now(), fi.ModTime())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
