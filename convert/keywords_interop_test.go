package convert_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
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
// all of them (the rollout's verification reads through it).
func TestInteropBackupManyKeywords(t *testing.T) {
	src := dovecottest.New(t, "maildir:~/Maildir")
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
	if n := len(want.Lookup("INBOX").Lookup(2).Keywords); n != 40 {
		t.Fatalf("Dovecot shows %d keywords on uid 2, want 40:\n%s", n, want)
	}

	srcStore := openMaildir(t, src.Root(), formats.OpenOptions{ReadOnly: true})
	for _, format := range []string{"maildir", "sdbox", "mdbox"} {
		t.Run(format, func(t *testing.T) {
			dst := dovecottest.New(t, format+":~/"+format)
			dstStore := openLoc(t, format+":"+dst.Root(), formats.OpenOptions{Create: true})
			backup(t, srcStore, dstStore, convert.Options{})
			got := dst.Snapshot(t)
			if d := dovecottest.Diff(want, got, dovecottest.Saved, dovecottest.ModSeq, dovecottest.HighestModSeq); d != "" {
				t.Errorf("Dovecot sees the %s backup differently (a=source b=backup):\n%s", format, d)
			}
			modSeqsKept(t, want, got)
			dst.CheckLogClean(t)
			if res := backup(t, srcStore, dstStore, convert.Options{}); res.Messages.Saved+res.Messages.Expunged+res.Messages.FlagsChanged != 0 {
				t.Errorf("second backup into %s not a no-op: %+v", format, res)
			}
		})
	}
	src.CheckLogClean(t)
}
