package sdbox_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/fixtures"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtest"
	"github.com/boxsync/boxsync/formats/mem"
	"github.com/boxsync/boxsync/formats/sdbox"
	"github.com/boxsync/boxsync/index"
	"github.com/boxsync/boxsync/index/log"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

func backup(t *testing.T, src, dst formats.Store) convert.Result {
	t.Helper()
	return dboxtest.Backup(t, src, dst)
}

// TestBackupMaildirToSdbox is the headline use: a Maildir that Dovecot
// made, backed up into sdbox by boxsync, reads back through the real
// Dovecot with the same mailboxes, UIDs, UIDVALIDITY, UIDNEXT, GUIDs,
// flags, keywords, dates, sizes and bytes. Modseqs are not compared (the
// Maildir driver keeps none) nor save dates (nobody can set a ctime).
func TestBackupMaildirToSdbox(t *testing.T) { dt.BackupMaildir(t) }

// TestBackupSdboxToSdbox: between two dbox stores everything but the save
// date is carried, modseqs and HIGHESTMODSEQ included.
func TestBackupSdboxToSdbox(t *testing.T) {
	src := dovecottest.New(t, "sdbox:~/sdbox")
	dovecotWrites(t, src)
	src.MustDoveadm(t, "flags", "add", `$Label2`, "mailbox", "INBOX", "uid", "1")
	want := src.Snapshot(t)
	loc, _ := formats.ParseLocation("sdbox:"+src.Root(), formats.Vars{})
	srcStore := openStore(t, loc, formats.OpenOptions{ReadOnly: true})

	d, dloc := interop(t, "")
	dst := openStore(t, dloc, formats.OpenOptions{Create: true})
	backup(t, srcStore, dst)
	got := d.Snapshot(t)
	if diff := dovecottest.Diff(want, got, dovecottest.Saved); diff != "" {
		t.Errorf("Dovecot sees the sdbox backup differently (a=source b=backup):\n%s\nsource:\n%s\nbackup:\n%s", diff, want, got)
	}
	d.CheckLogClean(t)
}

// TestBackupCorpus: the generated corpus backed up into sdbox reads back
// through Dovecot equal to the source.
func TestBackupCorpus(t *testing.T) {
	ctx := context.Background()
	mem.Reset()
	src, err := mem.Driver{}.Open(ctx, formats.Location{Driver: "mem", Path: "/corpus"}, formats.OpenOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fixtures.Populate(ctx, src, 1, fixtures.Small); err != nil {
		t.Fatal(err)
	}
	want, err := formatstest.DovecotTree(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	d, dloc := interop(t, "")
	backup(t, src, openStore(t, dloc, formats.OpenOptions{Create: true}))
	got := d.Snapshot(t)
	// mem's modseqs start low; the first save into sdbox counts from 2.
	if diff := dovecottest.Diff(want, got, dovecottest.Saved, dovecottest.ModSeq, dovecottest.HighestModSeq); diff != "" {
		t.Errorf("Dovecot sees the backup differently (a=source b=backup):\n%s", diff)
	}
	d.CheckLogClean(t)
}

// TestExpungeGUID: Dovecot's expunge of a message whose GUID is in its
// cache logs the GUID in Dovecot's 128-bit form; for a GUID that is not
// 32 hex digits that is the hash boxsync computes (dbox.GUID128).
func TestExpungeGUID(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, "")
	store := openStore(t, loc, formats.OpenOptions{Create: true})
	store.Create(ctx, "INBOX", formats.GUID{}, 0)
	saveAll(t, store, "INBOX", interopMessages(), 0)
	d.MustDoveadm(t, "fetch", "guid", "mailbox", "INBOX", "all") // into Dovecot's cache
	d.MustDoveadm(t, "expunge", "mailbox", "INBOX", "uid", "1,7")
	ix, err := index.Open(filepath.Join(loc.Path, "mailboxes", "INBOX", "dbox-Mails"), index.Prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint32][16]byte{1: sdbox.GUID128("0123456789abcdef0123456789abcdef"), 7: sdbox.GUID128("1600000000.M1P2.other,S=26,W=27")}
	got := map[uint32][16]byte{}
	err = ix.ScanLog(0, func(e index.LogEntry) error {
		if ex, ok := e.Record.(*log.ExpungeGUID); ok {
			for _, g := range ex.Entries {
				if g.GUID != ([16]byte{}) {
					got[g.UID] = g.GUID
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != want[1] || got[7] != want[7] {
		t.Errorf("Dovecot logged expunge GUIDs %x, want %x", got, want)
	}
}
