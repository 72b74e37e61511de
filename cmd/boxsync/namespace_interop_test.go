package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// archiveConf adds a namespace with its own location to dovecottest's
// inbox namespace (prefix "", separator '/').
const archiveConf = "namespace archive {\n  prefix = Archive/\n  location = mdbox:~/Archive\n}\n"

// namespaceDovecot is a user with mail in the inbox namespace (Maildir at
// mail_location) and in an Archive/ namespace with its own mdbox.
func namespaceDovecot(t *testing.T) *dovecottest.Dovecot {
	t.Helper()
	d := dovecottest.New(t, "maildir:~/Maildir", archiveConf)
	d.MustDoveadm(t, "mailbox", "create", "-s", "Work", "Archive/2020", "Archive/2021/Q1")
	d.Save(t, "INBOX", []byte("Subject: one\nMessage-ID: <1@x>\n\nbody one\n"))
	d.Save(t, "INBOX", []byte("Subject: two\nMessage-ID: <2@x>\n\nbody two\n"))
	d.Save(t, "Work", []byte("Subject: work\n\nw\n"))
	d.Save(t, "Archive/2020", []byte("Subject: old\n\nold\n"))
	d.Save(t, "Archive/2020", []byte("Subject: older\n\nolder\n"))
	d.Save(t, "Archive/2021/Q1", []byte("Subject: q1\n\nq1\n"))
	d.MustDoveadm(t, "flags", "add", `\Seen $Label1`, "mailbox", "INBOX", "uid", "2")
	d.MustDoveadm(t, "flags", "add", `\Flagged`, "mailbox", "Archive/2020", "uid", "1")
	return d
}

// TestNamespaceInterop runs doveadm and boxsync with the same -n on the
// same configuration and stores and compares what they wrote (GUIDs,
// UIDs, UIDVALIDITY, flags, keywords, bodies), and checks what boxsync
// does where doveadm refuses.
func TestNamespaceInterop(t *testing.T) {
	d := namespaceDovecot(t)
	home := d.Home()
	boxsync := func(t *testing.T, code int, args ...string) cliResult {
		t.Helper()
		te := newTestEnv(t)
		te.vars["HOME"] = home
		args = append([]string{"-c", d.Config()}, args...)
		r := te.run(t, args...)
		r.expect(t, args, code)
		return r
	}
	same := func(t *testing.T, doveLoc, boxLoc string) {
		t.Helper()
		dove, box := dump(t, doveLoc), dump(t, boxLoc)
		if dove == "" || box == "" {
			t.Fatalf("empty dump: doveadm's %q:\n%s\nboxsync's %q:\n%s", doveLoc, dove, boxLoc, box)
		}
		if diff := formatstest.Diff(dove, box); diff != "" {
			t.Errorf("doveadm's %s and boxsync's %s differ:\n%s", doveLoc, boxLoc, diff)
		}
	}
	at := func(loc string) string { // "maildir:~/X" with ~ expanded
		return strings.Replace(loc, "~", home, 1)
	}

	// Same result as doveadm: the inbox namespace (mail_location), however
	// it is selected; Archive/ stays out.
	for i, tc := range []struct {
		cmd string
		ns  []string
	}{
		{"backup", nil},
		{"backup", []string{""}},
		{"backup", []string{"", ""}},
		{"sync", []string{""}},
	} {
		var nargs []string
		for _, p := range tc.ns {
			nargs = append(nargs, "-n", p)
		}
		name := tc.cmd + " " + strings.Join(nargs, " ")
		t.Run(name, func(t *testing.T) {
			doveDst, boxDst := "maildir:~/dove"+string(rune('a'+i)), "maildir:~/box"+string(rune('a'+i))
			d.MustDoveadm(t, append(append([]string{tc.cmd}, nargs...), doveDst)...)
			boxsync(t, 0, append(append([]string{tc.cmd}, nargs...), at(boxDst))...)
			same(t, at(doveDst), at(boxDst))
			// And Dovecot reads boxsync's copy as it reads its own.
			dv, bx := dovecottest.New(t, at(doveDst)), dovecottest.New(t, at(boxDst))
			bx.Chown(t, strings.TrimPrefix(at(boxDst), "maildir:"))
			if diff := dovecottest.Diff(dv.Snapshot(t), bx.Snapshot(t), dovecottest.Saved, dovecottest.ModSeq, dovecottest.HighestModSeq); diff != "" {
				t.Errorf("Dovecot reads doveadm's and boxsync's copies differently:\n%s", diff)
			}
			if d := dump(t, at(boxDst)); strings.Contains(dumpNames(d), "2020") || !strings.Contains(dumpNames(d), `"Work"`) {
				t.Errorf("boxsync %s: want the inbox namespace only:\n%s", name, d)
			}
		})
	}

	// -n Archive/: doveadm refuses (the destination user's Archive/ is
	// the same mdbox) [observed]; boxsync copies that namespace's own
	// location, giving what doveadm gives with mail_location pointed at
	// it.
	t.Run("backup -n Archive/", func(t *testing.T) {
		out, err := d.Doveadm("backup", "-n", "Archive/", "maildir:~/doveArchive")
		if err == nil || !strings.Contains(err.Error(), "points to same directory") {
			t.Errorf("doveadm backup -n Archive/ = %q, %v; want the same-directory refusal", out, err)
		}
		for _, p := range []string{"Archive/", "Archive"} {
			boxDst := at("maildir:~/box-" + strings.TrimSuffix(p, "/"))
			boxsync(t, 0, "backup", "-n", p, boxDst)
			same(t, "mdbox:"+filepath.Join(home, "Archive"), boxDst)
		}
		ref := dovecottest.New(t, "mdbox:"+filepath.Join(home, "Archive"))
		ref.MustDoveadm(t, "backup", "maildir:"+filepath.Join(ref.Home(), "ref"))
		refDump := dump(t, "maildir:"+filepath.Join(ref.Home(), "ref"))
		boxDump := dump(t, at("maildir:~/box-Archive"))
		// doveadm's mail_location user has an INBOX (autocreated in
		// the archive): the Archive/ namespace has none. And doveadm
		// turns the container 2021 into an empty Maildir++ folder,
		// which boxsync's backups keep a container, -n or not.
		if diff := formatstest.Diff(refDump, boxDump); diff != "" && !onlyAbout(diff, `"INBOX"`, `"2021"`) {
			t.Errorf("doveadm -o mail_location=<Archive/'s location> and boxsync -n Archive/ differ:\n%s", diff)
		}
	})
	d.CheckLogCleanExcept(t, "points to same directory")
}

// onlyAbout tells whether every line of a dump diff is about one of the
// mailboxes names (quoted as the dump quotes them).
func onlyAbout(diff string, names ...string) bool {
	for _, l := range strings.Split(diff, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		about := false
		for _, n := range names {
			about = about || strings.Contains(l, `container `+n) || strings.Contains(l, `mailbox `+n+` `)
		}
		if !about {
			return false
		}
	}
	return true
}
