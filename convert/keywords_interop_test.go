package convert_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/convert/rollout"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// manyKeywords returns n keyword names kw00 … kw<n-1> with a few
// spellings thrown in (a $-name, mixed case).
func manyKeywords(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	out[0] = "$" + out[0]
	out[n-1] = strings.ToUpper(out[n-1])
	return out
}

// TestInteropBackupManyKeywords: Dovecot's Maildir keeps at most 26
// keywords in file names (letters a–z); it keeps the rest in its index
// only (maildir-sync-index.c: "index-only keywords"). A message with 30
// keywords set by doveadm, and one with 40 on a mailbox whose letters are
// all taken, must arrive whole in a Maildir, sdbox and mdbox backup, as
// the real Dovecot shows them, and the boxsync Maildir driver must read
// all of them (the rollout's verification reads through it). The source
// index is a log only, or (rewrite settings) a dovecot.index Dovecot
// wrote with 40+ keywords plus its log.
func TestInteropBackupManyKeywords(t *testing.T) {
	for _, c := range []struct {
		name string
		conf []string
	}{
		{"log", nil},
		{"dovecot.index", []string{"mail_index_rewrite_min_log_bytes = 1", "mail_index_rewrite_max_log_bytes = 1"}},
	} {
		t.Run(c.name, func(t *testing.T) { testBackupManyKeywords(t, c.conf) })
	}
}

func testBackupManyKeywords(t *testing.T, conf []string) {
	src := dovecottest.New(t, "maildir:~/Maildir", conf...)
	src.MustDoveadm(t, "mailbox", "create", "Work")
	src.Save(t, "INBOX", []byte("Subject: thirty\n\nbody\n"))
	src.Save(t, "INBOX", []byte("Subject: forty\n\nbody\n"))
	src.Save(t, "INBOX", []byte("Subject: few\n\nbody\n"))
	src.Save(t, "Work", []byte("Subject: w\n\nw\n"))
	src.MustDoveadm(t, "flags", "add", `\Seen `+strings.Join(manyKeywords("kw", 30), " "), "mailbox", "INBOX", "uid", "1")
	src.MustDoveadm(t, "flags", "add", strings.Join(manyKeywords("more", 40), " "), "mailbox", "INBOX", "uid", "2")
	src.MustDoveadm(t, "flags", "add", `\Flagged kw03 more39`, "mailbox", "INBOX", "uid", "3")
	src.MustDoveadm(t, "flags", "add", strings.Join(manyKeywords("w", 27), " "), "mailbox", "Work", "all")
	want := src.Snapshot(t)
	if _, err := os.Stat(filepath.Join(src.Root(), "dovecot.index")); (err == nil) != (conf != nil) {
		t.Fatalf("dovecot.index: %v, want it only with %q", err, conf)
	}
	if n := len(want.Lookup("INBOX").Lookup(2).Keywords); n != 40 {
		t.Fatalf("Dovecot shows %d keywords on uid 2, want 40:\n%s", n, want)
	}

	srcStore := openMaildir(t, src.Root(), formats.OpenOptions{ReadOnly: true})
	ours, err := formatstest.DovecotTree(context.Background(), srcStore)
	if err != nil {
		t.Fatal(err)
	}
	if d := dovecottest.Diff(want, ours, dovecottest.Saved); d != "" {
		t.Errorf("boxsync reads Dovecot's Maildir differently (a=Dovecot b=boxsync):\n%s", d)
	}
	for _, format := range []string{"maildir", "sdbox", "mdbox"} {
		t.Run(format, func(t *testing.T) {
			dst := dovecottest.New(t, format+":~/"+format)
			dstStore := openLoc(t, format+":"+dst.Root(), formats.OpenOptions{Create: true})
			backup(t, srcStore, dstStore, convert.Options{})
			got := dst.Snapshot(t)
			if d := dovecottest.Diff(want, got, dovecottest.Saved); d != "" {
				t.Errorf("Dovecot sees the %s backup differently (a=source b=backup):\n%s", format, d)
			}
			dst.CheckLogClean(t)
			if res := backup(t, srcStore, dstStore, convert.Options{}); res.Messages.Saved+res.Messages.Expunged+res.Messages.FlagsChanged != 0 {
				t.Errorf("second backup into %s not a no-op: %+v", format, res)
			}

			// boxsync's copy → a new Maildir (boxsync) → Dovecot.
			back := dovecottest.New(t, "maildir:~/Maildir")
			backStore := openMaildir(t, back.Root(), formats.OpenOptions{Create: true})
			backup(t, openLoc(t, format+":"+dst.Root(), formats.OpenOptions{ReadOnly: true}), backStore, convert.Options{})
			if d := dovecottest.Diff(want, back.Snapshot(t), dovecottest.Saved); d != "" {
				t.Errorf("Dovecot sees %s -> maildir differently (a=source b=maildir):\n%s", format, d)
			}
			back.CheckLogClean(t)

			// The rollout's verification reads the old side through
			// the same driver: it now sees a keyword beyond the
			// letters go missing on the new side.
			if _, err := rollout.VerifyStores(context.Background(), srcStore, dstStore, nil); err != nil {
				t.Errorf("VerifyStores after the backup = %v", err)
			}
			dst.MustDoveadm(t, "flags", "remove", "kw28", "mailbox", "INBOX", "uid", "1")
			_, err := rollout.VerifyStores(context.Background(), srcStore, openLoc(t, format+":"+dst.Root(), formats.OpenOptions{ReadOnly: true}), nil)
			if formats.KindOf(err) != formats.KindInvalidData || !strings.Contains(err.Error(), "kw28") {
				t.Errorf("VerifyStores with kw28 gone from the copy = %v, want InvalidData naming it", err)
			}
		})
	}
	src.CheckLogClean(t)
}

// TestInteropManyKeywordsChanged: Dovecot changes index-only keywords on
// a Maildir boxsync wrote, boxsync reads the change, and the next backup
// puts the source's keywords back, as Dovecot then shows them.
func TestInteropManyKeywordsChanged(t *testing.T) {
	ctx := context.Background()
	src := dovecottest.New(t, "maildir:~/Maildir")
	src.Save(t, "INBOX", []byte("Subject: forty\n\nbody\n"))
	src.Save(t, "INBOX", []byte("Subject: none\n\nbody\n"))
	src.MustDoveadm(t, "flags", "add", strings.Join(manyKeywords("kw", 40), " "), "mailbox", "INBOX", "uid", "1")
	want := src.Snapshot(t)
	srcStore := openMaildir(t, src.Root(), formats.OpenOptions{ReadOnly: true})

	dst := dovecottest.New(t, "maildir:~/Maildir")
	backup(t, srcStore, openMaildir(t, dst.Root(), formats.OpenOptions{Create: true}), convert.Options{})
	if d := dovecottest.Diff(want, dst.Snapshot(t), dovecottest.Saved); d != "" {
		t.Fatalf("Dovecot sees the backup differently (a=source b=backup):\n%s", d)
	}
	// Index-only keywords removed and added (kw30..kw38 have no letter),
	// on a message that has them and on one that has none.
	dst.MustDoveadm(t, "flags", "remove", "kw30 kw31 kw05", "mailbox", "INBOX", "uid", "1")
	dst.MustDoveadm(t, "flags", "add", "local1 local2", "mailbox", "INBOX", "all")
	changed := dst.Snapshot(t)
	if kws := changed.Lookup("INBOX").Lookup(2).Keywords; len(kws) != 2 {
		t.Fatalf("Dovecot shows %q on uid 2", kws)
	}
	dstStore := openMaildir(t, dst.Root(), formats.OpenOptions{Create: true})
	ours, err := formatstest.DovecotTree(ctx, dstStore)
	if err != nil {
		t.Fatal(err)
	}
	if d := dovecottest.Diff(changed, ours, dovecottest.Saved); d != "" {
		t.Errorf("boxsync reads Dovecot's changes differently (a=Dovecot b=boxsync):\n%s", d)
	}
	res := backup(t, srcStore, dstStore, convert.Options{})
	if res.Messages.FlagsChanged != 2 {
		t.Errorf("backup changed flags of %d messages, want 2: %+v", res.Messages.FlagsChanged, res)
	}
	if d := dovecottest.Diff(want, dst.Snapshot(t), dovecottest.Saved, dovecottest.ModSeq, dovecottest.HighestModSeq); d != "" {
		t.Errorf("backup did not revert Dovecot's changes (a=source b=backup):\n%s", d)
	}
	dst.CheckLogClean(t)
}
