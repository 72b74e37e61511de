package mdbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/fixtures"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/all"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtest"
	"github.com/boxsync/boxsync/formats/mdbox"
	"github.com/boxsync/boxsync/formats/mem"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

func newStore(t *testing.T, d mdbox.Driver) (formats.Store, formats.Location) {
	t.Helper()
	loc := formats.Location{Driver: "mdbox", Path: filepath.Join(t.TempDir(), "mdbox")}
	s, err := d.Open(context.Background(), loc, formats.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, loc
}

func backup(t *testing.T, src, dst formats.Store) convert.Result {
	t.Helper()
	return dboxtest.Backup(t, src, dst)
}

// TestRotation saves with a tiny mdbox_rotate_size: messages spread over
// many m.* files, each transaction continuing the newest file while it
// has room, and Dovecot reads them all and keeps appending and purging.
func TestRotation(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, "")
	drv, err := mdbox.Driver{}.Configure(map[string]string{"mdbox_rotate_size": "1k"})
	if err != nil {
		t.Fatal(err)
	}
	store, err := drv.Open(ctx, loc, formats.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	store.Create(ctx, "INBOX", formats.GUID{}, 0)
	for range 3 {
		saveAll(t, store, "INBOX", []formats.Message{{}, {}, {}, {}, {}}, 0)
	}
	big := bytes.Repeat([]byte("x"), 3000)
	mb, _ := store.Open(ctx, "INBOX")
	tx, _ := mb.Begin(ctx)
	if _, err := tx.Save(ctx, formats.Message{Size: int64(len(big))}, bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	tx.Commit(ctx)
	mb.Close()
	files, _ := filepath.Glob(filepath.Join(loc.Path, "storage", "m.*"))
	if len(files) < 3 {
		t.Errorf("%d m.* files with a 1k rotate size, want several", len(files))
	}
	for _, f := range files {
		if fi, _ := os.Stat(f); fi.Size() > 1024+200 && fi.Size() < 3000 { // Dovecot also counts only the body
			t.Errorf("%s has %d bytes, above mdbox_rotate_size", f, fi.Size())
		}
	}
	compare(t, d, store)
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "2:7")
	d.MustDoveadm(t, "purge")
	compare(t, d, store)
}

// TestBadInput damages an mdbox store: a message whose m.* file is gone,
// a truncated file, a map record pointing into the middle of a message.
// Messages lists every message; Body fails for the damaged ones naming
// the mailbox, UID and file; a backup copies the rest.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	store, loc := newStore(t, mdbox.Driver{RotateSize: 50})
	store.Create(ctx, "INBOX", formats.GUID{}, 0)
	saveAll(t, store, "INBOX", []formats.Message{{UID: 1}, {UID: 2}, {UID: 3}, {UID: 4}}, 0)
	files, _ := filepath.Glob(filepath.Join(loc.Path, "storage", "m.*"))
	if len(files) != 4 {
		t.Fatalf("files %v, want one per message", files)
	}
	m := func(id int) string { return filepath.Join(loc.Path, "storage", fmt.Sprintf("m.%d", id)) }
	os.Remove(m(2))
	data, _ := os.ReadFile(m(3))
	os.WriteFile(m(3), data[:len(data)-20], 0o600)
	data, _ = os.ReadFile(m(4))
	os.WriteFile(m(4), bytes.Replace(data, []byte(dbox.MagicPre), []byte("XX"), 1), 0o600)

	mb, err := store.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	n := 0
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		if m.GUID == "" {
			t.Errorf("uid %d: no GUID (the guid extension has it)", m.UID)
		}
		n++
	}
	if n != 4 {
		t.Fatalf("Messages() yielded %d, want 4", n)
	}
	for uid, want := range map[formats.UID]string{2: "Unexpectedly lost", 3: "missing end-of-metadata line", 4: "bad magic value"} {
		err := mb.Body(ctx, uid, func(formats.Body) error { return nil })
		var fe *formats.Error
		if !errors.As(err, &fe) || fe.Mailbox != "INBOX" || fe.UID != uid || !strings.Contains(err.Error(), fmt.Sprintf("m.%d", uid)) ||
			!strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "force-resync") || formats.KindOf(err) != formats.KindTemp {
			t.Errorf("Body(%d) = %v (kind %s), want Temp naming INBOX, uid, m.%d, %q, force-resync", uid, err, formats.KindOf(err), uid, want)
		}
	}
	mem.Reset()
	dst, _ := mem.Driver{}.Open(ctx, formats.Location{Driver: "mem", Path: "/bad"}, formats.OpenOptions{Create: true})
	res, err := convert.Run(ctx, store, dst, convert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 3 || res.Messages.Saved != 1 {
		t.Errorf("backup: saved %d, errors %v; want 1 saved, 3 errors", res.Messages.Saved, res.Errors)
	}
}

// TestLostIndexes: a mailbox index or the map gone must not read as an
// empty mailbox.
func TestLostIndexes(t *testing.T) {
	ctx := context.Background()
	store, loc := newStore(t, mdbox.Driver{})
	store.Create(ctx, "INBOX", formats.GUID{}, 0)
	saveAll(t, store, "INBOX", interopMessages(), 0)
	mapFiles, _ := filepath.Glob(filepath.Join(loc.Path, "storage", "dovecot.map.index*"))
	for _, f := range mapFiles {
		os.Rename(f, f+".away")
	}
	ro := openStore(t, loc, formats.OpenOptions{ReadOnly: true})
	if _, err := ro.Open(ctx, "INBOX"); formats.KindOf(err) != formats.KindNotPossible || !strings.Contains(err.Error(), "force-resync") {
		t.Errorf("Open(lost map) = %v, want NotPossible saying force-resync", err)
	}
	for _, f := range mapFiles {
		os.Rename(f+".away", f)
	}
	boxFiles, _ := filepath.Glob(filepath.Join(loc.Path, "mailboxes", "INBOX", "dbox-Mails", "dovecot.index*"))
	for _, f := range boxFiles {
		os.Remove(f)
	}
	boxes, err := ro.Mailboxes(ctx)
	if err != nil || len(boxes) != 1 || boxes[0].NoSelect {
		t.Fatalf("Mailboxes() = %+v, %v; want INBOX selectable", boxes, err)
	}
	if _, err := ro.Open(ctx, "INBOX"); formats.KindOf(err) != formats.KindNotPossible || !strings.Contains(err.Error(), "force-resync") {
		t.Errorf("Open(lost mailbox index) = %v, want NotPossible saying force-resync", err)
	}
	if err := store.Create(ctx, "INBOX", formats.GUID{}, 0); formats.KindOf(err) != formats.KindNotPossible {
		t.Errorf("Create(lost mailbox index) = %v, want NotPossible", err)
	}
}

// TestBackupMaildirToMdbox is the headline use: a Maildir that Dovecot
// made, backed up into mdbox, reads back through Dovecot the same.
func TestBackupMaildirToMdbox(t *testing.T) { dt.BackupMaildir(t) }

// TestBackupMdboxToMdbox: between two mdbox stores everything is carried,
// the save date included (mdbox keeps it in its index).
func TestBackupMdboxToMdbox(t *testing.T) {
	src := dovecottest.New(t, "mdbox:~/mdbox")
	dovecotWrites(t, src)
	want := src.Snapshot(t)
	loc, _ := formats.ParseLocation("mdbox:"+src.Root(), formats.Vars{})
	srcStore := openStore(t, loc, formats.OpenOptions{ReadOnly: true})

	d, dloc := interop(t, "")
	backup(t, srcStore, openStore(t, dloc, formats.OpenOptions{Create: true}))
	got := d.Snapshot(t)
	if diff := dovecottest.Diff(want, got); diff != "" {
		t.Errorf("Dovecot sees the mdbox backup differently (a=source b=backup):\n%s\nsource:\n%s\nbackup:\n%s", diff, want, got)
	}
	d.CheckLogClean(t)
}

// TestBackupCorpus: the generated corpus backed up into mdbox reads back
// through Dovecot equal to the source.
func TestBackupCorpus(t *testing.T) {
	ctx := context.Background()
	mem.Reset()
	src, _ := mem.Driver{}.Open(ctx, formats.Location{Driver: "mem", Path: "/corpus"}, formats.OpenOptions{Create: true})
	if _, err := fixturesPopulate(ctx, src); err != nil {
		t.Fatal(err)
	}
	want, err := formatstest.DovecotTree(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	d, dloc := interop(t, "")
	backup(t, src, openStore(t, dloc, formats.OpenOptions{Create: true}))
	got := d.Snapshot(t)
	if diff := dovecottest.Diff(want, got, dovecottest.ModSeq, dovecottest.HighestModSeq); diff != "" {
		t.Errorf("Dovecot sees the backup differently (a=source b=backup):\n%s", diff)
	}
	d.CheckLogClean(t)
}

func fixturesPopulate(ctx context.Context, s formats.Store) (any, error) {
	return fixtures.Populate(ctx, s, 1, fixtures.Small)
}

// TestBackupToMaildir: mdbox → Maildir, where the plain messages are
// copied in the kernel (formats.FileSection, copy_file_range) with the
// source's virtual size, and mail Dovecot's zlib plugin compressed is
// decompressed on the way: Dovecot reads the Maildir as it reads the
// mdbox, bytes, sizes and virtual sizes included.
func TestBackupToMaildir(t *testing.T) {
	ctx := context.Background()
	d := dovecottest.New(t, "mdbox:~/mdbox", "mail_plugins = zlib", "plugin {\n  zlib_save = gz\n}")
	d.Save(t, "INBOX", []byte("Subject: compressed\n\n"+strings.Repeat("line\n", 2000)))
	loc, _ := formats.ParseLocation(d.Location(), formats.Vars{User: "dovecottest", Home: d.Home()})
	store := openStore(t, loc, formats.OpenOptions{})
	saveAll(t, store, "INBOX", []formats.Message{{}, {}, {}, {}, {}, {}}, 0) // plain: CRLF, mixed, 8-bit, empty
	big := []byte("Subject: big\r\n\r\n" + strings.Repeat("0123456789\n", 30000))
	mb, _ := store.Open(ctx, "INBOX")
	tx, _ := mb.Begin(ctx)
	if _, err := tx.Save(ctx, formats.Message{Size: int64(len(big))}, bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	mb.Close()
	want := d.Snapshot(t)

	m := dovecottest.New(t, "maildir:~/Maildir")
	mloc, _ := formats.ParseLocation(m.Location(), formats.Vars{User: "dovecottest", Home: m.Home()})
	dst, err := all.Lookup("maildir")
	if !err {
		t.Fatal("no maildir driver")
	}
	dstStore, oerr := dst.Open(ctx, mloc, formats.OpenOptions{Create: true})
	if oerr != nil {
		t.Fatal(oerr)
	}
	defer dstStore.Close()
	backup(t, openStore(t, loc, formats.OpenOptions{ReadOnly: true}), dstStore)
	got := m.Snapshot(t)
	if diff := dovecottest.Diff(want, got, dovecottest.Saved, dovecottest.ModSeq, dovecottest.HighestModSeq); diff != "" {
		t.Errorf("Dovecot sees the Maildir backup differently (a=mdbox b=Maildir):\n%s", diff)
	}
	m.CheckLogClean(t)
}
