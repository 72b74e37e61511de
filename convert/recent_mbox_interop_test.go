package convert_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// mboxLoc is a Dovecot mail_location of an mbox tree under ~/dir.
func mboxLoc(dir string) string { return "mbox:~/" + dir + ":INBOX=~/" + dir + "/inbox" }

// ourMboxLoc is the same location for our driver.
func ourMboxLoc(home, dir string) string {
	root := filepath.Join(home, dir)
	return "mbox:" + root + ":INBOX=" + filepath.Join(root, "inbox")
}

// mboxMail is one hand-written mbox message; headers are its extra
// header lines (a Status line, or none).
func mboxMail(i int, headers string) string {
	return fmt.Sprintf("From sender@example.com  Mon Jan  1 00:00:%02d 2001\nSubject: %d\nMessage-ID: <%d@x>\n%s\nbody %d\n\n", i, i, i, headers, i)
}

// writeMboxSource writes an mbox tree under ~/dir as mail clients and
// delivery agents leave it, never opened by Dovecot: INBOX has mail a
// client read ("Status: RO"), saw ("Status: O"), and mail never seen
// (no Status, "Status: R", only "X-Status: F"); Work has mail without
// Status around one with 'O', which takes \Recent from the one before
// it too.
func writeMboxSource(t *testing.T, d *dovecottest.Dovecot, dir string) {
	t.Helper()
	root := filepath.Join(d.Home(), dir)
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string][]string{
		"inbox": {"Status: RO\n", "Status: O\n", "", "Status: R\n", "X-Status: F\n"},
		"Work":  {"", "Status: O\n", "", ""},
	}
	for name, headers := range files {
		var b strings.Builder
		for i, h := range headers {
			b.WriteString(mboxMail(i+1, h))
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d.Chown(t, root)
}

// appendMbox appends a delivered message (no Status) to an mbox file.
func appendMbox(t *testing.T, d *dovecottest.Dovecot, path string, i int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(mboxMail(i, "")); err != nil {
		t.Fatal(err)
	}
}

// TestInteropRecentFromMbox runs doveadm backup and boxsync's backup
// from identical copies of an mbox tree that Dovecot never indexed (mail
// with and without 'O' in Status) into an empty Maildir: the replicas
// must place the same UIDs into new/ and cur/, Dovecot must report
// \Recent on the same UIDs of both replicas (and of both sources), and
// our reader must agree with Dovecot on both sources. Then after a
// delivery appended to the sources, and after the sources' IMAP sessions
// claimed \Recent (first_recent_uid in the mbox index; the replicas'
// first_recent_uid is raised to it).
func TestInteropRecentFromMbox(t *testing.T) {
	d := dovecottest.New(t, "maildir:~/Maildir")
	home := d.Home()
	writeMboxSource(t, d, "mbox")
	if out, err := exec.Command("cp", "-a", filepath.Join(home, "mbox"), filepath.Join(home, "mbox2")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	boxes := []struct{ name, file, dir string }{{"INBOX", "inbox", ""}, {"Work", "Work", ".Work"}}
	// Before anything indexed the source: what we read is what
	// Dovecot then reports of its copy.
	for _, box := range boxes {
		ours := ourRecentAt(t, ourMboxLoc(home, "mbox2"), box.name)
		if theirs := recentUIDs(t, d, mboxLoc("mbox"), box.name); ours != theirs {
			t.Errorf("never indexed: %s: we read Recent on UIDs %q, Dovecot %q", box.name, ours, theirs)
		}
	}
	run := func() {
		t.Helper()
		d.MustDoveadm(t, "-o", "mail_location="+mboxLoc("mbox"), "backup", "maildir:~/Replica")
		a := openLoc(t, ourMboxLoc(home, "mbox2"), formats.OpenOptions{ReadOnly: true})
		b := openMaildir(t, filepath.Join(home, "Replica2"), formats.OpenOptions{Create: true})
		res, err := convert.Run(context.Background(), a, b, convert.Options{Mode: convert.Backup})
		if err != nil || len(res.Errors) > 0 {
			t.Fatalf("Run = %v %v (desync %q)", err, res.Errors, res.Desync)
		}
		a.Close()
		b.Close()
	}
	// compare checks the replicas, and our reading of both sources
	// against Dovecot's of doveadm's. With dovecotReadsOurs Dovecot
	// reads our source too, which makes it index the file (and give
	// it a UIDVALIDITY and mailbox GUID of its own).
	compare := func(when string, dovecotReadsOurs bool) {
		t.Helper()
		for _, box := range boxes {
			theirs := placement(t, filepath.Join(home, "Replica", box.dir))
			ours := placement(t, filepath.Join(home, "Replica2", box.dir))
			if fmt.Sprint(theirs) != fmt.Sprint(ours) {
				t.Errorf("%s: %s: doveadm's replica has\n\t%q\nboxsync's\n\t%q", when, box.name, theirs, ours)
			}
			src := recentUIDs(t, d, mboxLoc("mbox"), box.name)
			for _, s := range []string{"mbox", "mbox2"} {
				if got := ourRecentAt(t, ourMboxLoc(home, s), box.name); got != src {
					t.Errorf("%s: %s: we read Recent on UIDs %q of ~/%s, Dovecot %q of doveadm's source", when, box.name, got, s, src)
				}
			}
			if dovecotReadsOurs {
				if ourSrc := recentUIDs(t, d, mboxLoc("mbox2"), box.name); src != ourSrc {
					t.Errorf("%s: %s: Dovecot reports \\Recent on UIDs %q of doveadm's source, %q of boxsync's", when, box.name, src, ourSrc)
				}
			}
			theirRecent := recentUIDs(t, d, "maildir:~/Replica", box.name)
			ourRecent := recentUIDs(t, d, "maildir:~/Replica2", box.name)
			if theirRecent != ourRecent {
				t.Errorf("%s: %s: Dovecot reports \\Recent on UIDs %q of doveadm's replica, %q of boxsync's (source %q)",
					when, box.name, theirRecent, ourRecent, src)
			}
		}
	}
	run()
	compare("first run", false)
	// Checked outright too: flagless \Recent mail in new/.
	if got, want := placement(t, filepath.Join(home, "Replica2")), []string{"1 cur/:2,S", "2 cur/:2,", "3 new/", "4 cur/:2,S", "5 cur/:2,F"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("boxsync's INBOX replica: %q, want %q", got, want)
	}
	if got, want := placement(t, filepath.Join(home, "Replica2", ".Work")), []string{"1 cur/:2,", "2 cur/:2,", "3 new/", "4 new/"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("boxsync's Work replica: %q, want %q", got, want)
	}

	// Dovecot now indexes our source too, which gives its mailboxes a
	// UIDVALIDITY and GUID of Dovecot's choosing; our replica of the
	// unindexed one is made again from it, as doveadm's was.
	compare("Dovecot indexed boxsync's source", true)
	if err := os.RemoveAll(filepath.Join(home, "Replica2")); err != nil {
		t.Fatal(err)
	}
	run()
	compare("a new replica of the indexed source", true)

	for _, s := range []string{"mbox", "mbox2"} {
		appendMbox(t, d, filepath.Join(home, s, "inbox"), 40)
	}
	run()
	compare("after a delivery", true)

	for _, s := range []string{"mbox", "mbox2"} {
		for _, box := range boxes {
			d.IMAPSelect(t, box.name, mboxLoc(s))
		}
	}
	run()
	compare("after the sources' sessions claimed \\Recent", true)
	for _, box := range boxes {
		if got := recentUIDs(t, d, "maildir:~/Replica2", box.name); got != "" {
			t.Errorf("%s: \\Recent on UIDs %q of boxsync's replica after the source's session claimed it", box.name, got)
		}
	}
	d.CheckLogClean(t)
}

// statusLines is the Status header of each message of an mbox file, in
// file order ("-" for none), the pseudo message left out: what a Dovecot that never indexed the file
// takes \Recent from.
func statusLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	inHeader := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "From "):
			inHeader = true
			out = append(out, "-")
		case inHeader && strings.HasPrefix(line, "X-IMAP:"):
			// c-client's pseudo message, which Dovecot hides.
			out = out[:len(out)-1]
			inHeader = false
		case inHeader && line == "":
			inHeader = false
		case inHeader && strings.HasPrefix(line, "Status:"):
			out[len(out)-1] = fmt.Sprintf("%q", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestInteropRecentIntoMbox runs doveadm backup and boxsync's backup
// from identical copies of recentSource (a Maildir with claimed and
// \Recent mail, flagless and not) into an empty mbox tree: Dovecot must
// report \Recent on the same UIDs of both replicas, our reader must
// agree, and the files must hold the same Status lines (doveadm's from
// Dovecot's mbox save). Then after the sources' IMAP sessions claimed
// \Recent (doveadm raises the replica index's first_recent_uid, we put
// 'O' into Status), after a delivery, and after the replicas' sessions
// claimed \Recent.
func TestInteropRecentIntoMbox(t *testing.T) {
	d := recentSource(t)
	home := d.Home()
	if out, err := exec.Command("cp", "-a", filepath.Join(home, "Maildir"), filepath.Join(home, "Maildir2")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	run := func() {
		t.Helper()
		d.MustDoveadm(t, "backup", mboxLoc("Replica"))
		a := openMaildir(t, filepath.Join(home, "Maildir2"), formats.OpenOptions{ReadOnly: true})
		b := openLoc(t, ourMboxLoc(home, "Replica2"), formats.OpenOptions{Create: true})
		res, err := convert.Run(context.Background(), a, b, convert.Options{Mode: convert.Backup})
		if err != nil || len(res.Errors) > 0 {
			t.Fatalf("Run = %v %v (desync %q)", err, res.Errors, res.Desync)
		}
		a.Close()
		b.Close()
	}
	boxes := []struct{ name, file string }{{"INBOX", "inbox"}, {"Work", "Work"}}
	compare := func(when string, statusToo bool) {
		t.Helper()
		for _, box := range boxes {
			src, ourSrc := recentUIDs(t, d, "maildir:~/Maildir", box.name), recentUIDs(t, d, "maildir:~/Maildir2", box.name)
			theirs, ours := recentUIDs(t, d, mboxLoc("Replica"), box.name), recentUIDs(t, d, mboxLoc("Replica2"), box.name)
			if src != ourSrc || theirs != ours {
				t.Errorf("%s: %s: Dovecot reports \\Recent on UIDs %q of doveadm's source, %q of ours; %q of doveadm's replica, %q of ours",
					when, box.name, src, ourSrc, theirs, ours)
			}
			if got := ourRecentAt(t, ourMboxLoc(home, "Replica2"), box.name); got != ours {
				t.Errorf("%s: %s: we read Recent on UIDs %q of our replica, Dovecot %q", when, box.name, got, ours)
			}
			if got := ourRecentAt(t, ourMboxLoc(home, "Replica"), box.name); got != theirs {
				t.Errorf("%s: %s: we read Recent on UIDs %q of doveadm's replica, Dovecot %q", when, box.name, got, theirs)
			}
			if statusToo {
				theirStatus := statusLines(t, filepath.Join(home, "Replica", box.file))
				ourStatus := statusLines(t, filepath.Join(home, "Replica2", box.file))
				if fmt.Sprint(theirStatus) != fmt.Sprint(ourStatus) {
					t.Errorf("%s: %s: Status lines of doveadm's mbox\n\t%s\nof ours\n\t%s", when, box.name, theirStatus, ourStatus)
				}
			}
		}
	}
	run()
	compare("first run", true)
	if got := recentUIDs(t, d, mboxLoc("Replica2"), "INBOX"); got != "3 4 5" {
		t.Errorf("\\Recent on UIDs %q of our INBOX replica, want 3 4 5", got)
	}

	for _, src := range []string{"Maildir", "Maildir2"} {
		for _, box := range boxes {
			d.IMAPSelect(t, box.name, "maildir:~/"+src)
		}
	}
	run()
	compare("after the sources' sessions claimed \\Recent", false)
	for _, box := range boxes {
		if got := recentUIDs(t, d, mboxLoc("Replica2"), box.name); got != "" {
			t.Errorf("%s: \\Recent on UIDs %q of our replica after the source's session claimed it", box.name, got)
		}
	}

	for _, src := range []string{"Maildir", "Maildir2"} {
		p := filepath.Join(home, src, "new", "1700000000.M9P9.mx")
		if err := os.WriteFile(p, []byte("Subject: delivered\n\nbody\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run()
	compare("after a delivery", false)
	if got := recentUIDs(t, d, mboxLoc("Replica2"), "INBOX"); got != "6" {
		t.Errorf("\\Recent on UIDs %q of our replica after a delivery, want the delivered 6", got)
	}
	for _, replica := range []string{"Replica", "Replica2"} {
		d.IMAPSelect(t, "INBOX", mboxLoc(replica))
	}
	run()
	compare("after the replicas' sessions claimed \\Recent", false)
	d.CheckLogClean(t)
}
