package convert_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/convert/state"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// recentSource has Dovecot build a Maildir whose mail is \Recent in
// every way dsync carries it: INBOX has mail an IMAP SELECT claimed
// (moved to cur/, one with \Seen), then new deliveries in new/: one
// plain, one given \Seen and one a keyword there (renamed in place,
// "new/...:2,S"). Work has files a delivery agent left, one of them in
// cur/ without flags (":2,"), which Dovecot finds first, so it is \Recent
// in cur/. Dovecot indexes both mailboxes before the test copies the
// store, so that doveadm and boxsync start from the same state.
func recentSource(t *testing.T) *dovecottest.Dovecot {
	t.Helper()
	d := dovecottest.New(t, "maildir:~/Maildir")
	d.MustDoveadm(t, "mailbox", "create", "-s", "Work")
	d.Save(t, "INBOX", []byte("Subject: one\nMessage-ID: <1@x>\n\nbody one\n"))
	d.Save(t, "INBOX", []byte("Subject: two\nMessage-ID: <2@x>\n\nbody two\n"))
	d.IMAPSelect(t, "INBOX", "maildir:~/Maildir")
	d.MustDoveadm(t, "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "2")
	for _, s := range []string{"three", "four", "five"} {
		d.Save(t, "INBOX", []byte("Subject: "+s+"\nMessage-ID: <"+s+"@x>\n\nbody "+s+"\n"))
	}
	d.MustDoveadm(t, "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "4")
	d.MustDoveadm(t, "flags", "add", `$Label1`, "mailbox", "INBOX", "uid", "5")
	work := filepath.Join(d.Root(), ".Work")
	for i, f := range []string{"new/1600000001.M1P1.mx", "cur/1600000002.M1P1.mx:2,", "new/1600000003.M1P1.mx"} {
		p := filepath.Join(work, f)
		if err := os.WriteFile(p, []byte(fmt.Sprintf("Subject: work %d\n\nbody\n", i)), 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Unix(1600000001+int64(i), 0)
		os.Chtimes(p, mt, mt)
	}
	for _, box := range []string{"INBOX", "Work"} {
		d.MustDoveadm(t, "fetch", "uid", "mailbox", box, "all")
	}
	return d
}

// placement lists where a Maildir mailbox keeps each message, by UID
// (from dovecot-uidlist): "UID new/" or "UID cur/:2,FLAGS", the flag part
// of its file name. Base names are left out: Dovecot keeps a source base
// name without ,S= for a hard-linked copy, which we rename (a difference
// that is not about \Recent).
func placement(t *testing.T, dir string) []string {
	t.Helper()
	where := map[string]string{}
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			base, info, ok := strings.Cut(e.Name(), ":")
			if ok {
				info = ":" + info
			}
			where[base] = sub + "/" + info
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "dovecot-uidlist"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		fields, base, ok := strings.Cut(line, " :")
		if i == 0 || !ok {
			continue
		}
		uid, _, _ := strings.Cut(fields, " ")
		if w, ok := where[base]; ok {
			out = append(out, uid+" "+w)
		}
	}
	return out
}

// recentUIDs is what `doveadm fetch flags` reports \Recent in a mailbox
// of the store at loc, as "uid uid ...".
func recentUIDs(t *testing.T, d *dovecottest.Dovecot, loc, mailbox string) string {
	t.Helper()
	var uids []string
	for _, u := range dovecottest.RecentUIDs[uint32](t, d, mailbox, "-o", "mail_location="+loc) {
		uids = append(uids, strconv.FormatUint(uint64(u), 10))
	}
	return strings.Join(uids, " ")
}

// TestInteropRecentDifferential runs doveadm backup / sync / sync -1 and
// boxsync's, fast and full (-f), from identical copies of a Maildir with \Recent
// mail in new/ (plain, with \Seen, with a keyword), claimed mail in cur/
// (":2," and ":2,S") and \Recent mail in cur/, into an empty Maildir, then
// delivers one more message into the source's new/ and syncs again: the
// replicas must have the same files (new/ vs cur/, base names and flag
// parts), Dovecot must report \Recent on the same UIDs in both, and our
// reader must agree with it. Then the sources' IMAP sessions claim
// \Recent and a run takes it from the replicas' mail too (dsync raises
// first_recent_uid at the end of a mailbox); then the replicas' sessions
// claim new mail, which a sync (only) takes from the sources' too.
func TestInteropRecentDifferential(t *testing.T) {
	for _, tc := range []struct {
		name    string
		doveadm []string
		mode    convert.Mode
		alg     convert.Algorithm
	}{
		{"backup", []string{"backup"}, convert.Backup, convert.Fast},
		{"sync", []string{"sync"}, convert.Sync, convert.Fast},
		{"sync -1", []string{"sync", "-1"}, convert.OneWay, convert.Fast},
		{"backup -f", []string{"backup", "-f"}, convert.Backup, convert.Full},
		{"sync -f", []string{"sync", "-f"}, convert.Sync, convert.Full},
		{"sync -1 -f", []string{"sync", "-1", "-f"}, convert.OneWay, convert.Full},
		// No "sync -s": there doveadm's state for a Maildir INBOX with a
		// keyword records a last common modseq below its source's
		// HIGHESTMODSEQ (dsync raises merged messages' modseqs, which
		// we can't), so its next stateful run syncs INBOX where ours
		// skips it; that is not about \Recent.
		{"backup -s", []string{"backup"}, convert.Backup, convert.Stateful},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := recentSource(t)
			home := d.Home()
			if out, err := exec.Command("cp", "-a", filepath.Join(home, "Maildir"), filepath.Join(home, "Maildir2")).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v\n%s", err, out)
			}
			// With -s each side carries its own state from run to
			// run; the first is a full one that makes it.
			stateful := tc.alg == convert.Stateful
			theirState, ourState := "", state.State(nil)
			run := func() {
				t.Helper()
				args := slices.Clone(tc.doveadm)
				opt := convert.Options{Mode: tc.mode, Algorithm: tc.alg}
				if stateful {
					args = append(args, "-s", theirState)
					if theirState == "" {
						// A first sync with -s may end in "Remote
						// lost mailbox" (the INBOXes' GUIDs conflict
						// and are merged); the state comes from a
						// second, full one.
						d.MustDoveadm(t, append(slices.Clone(tc.doveadm), "maildir:~/Replica")...)
						args = append(args, "-f")
					}
					opt.State = ourState
					if ourState == nil {
						opt.Algorithm, opt.State = convert.Full, state.State{}
					}
				}
				out := d.MustDoveadm(t, append(args, "maildir:~/Replica")...)
				if stateful {
					theirState = strings.TrimSpace(out)
				}
				a := openMaildir(t, filepath.Join(home, "Maildir2"), formats.OpenOptions{ReadOnly: tc.mode != convert.Sync})
				b := openMaildir(t, filepath.Join(home, "Replica2"), formats.OpenOptions{Create: true})
				if stateful && ourState == nil {
					// As doveadm's: a first run, then the full one
					// with a state.
					if res, err := convert.Run(context.Background(), a, b, convert.Options{Mode: tc.mode}); err != nil || len(res.Errors) > 0 {
						t.Fatalf("Run = %v %v", err, res.Errors)
					}
				}
				res, err := convert.Run(context.Background(), a, b, opt)
				if err != nil || len(res.Errors) > 0 {
					t.Fatalf("Run = %v %v (desync %q)", err, res.Errors, res.Desync)
				}
				if stateful {
					if ourState, err = state.Decode(res.State); err != nil {
						t.Fatal(err)
					}
				}
				a.Close()
				b.Close()
			}
			compare := func(when string) {
				t.Helper()
				for _, box := range []struct{ name, dir string }{{"INBOX", ""}, {"Work", ".Work"}} {
					theirs := placement(t, filepath.Join(home, "Replica", box.dir))
					ours := placement(t, filepath.Join(home, "Replica2", box.dir))
					if fmt.Sprint(theirs) != fmt.Sprint(ours) {
						t.Errorf("%s: %s: doveadm's replica has\n\t%q\nboxsync's\n\t%q", when, box.name, theirs, ours)
					}
					src := recentUIDs(t, d, "maildir:~/Maildir", box.name)
					if ourSrc := recentUIDs(t, d, "maildir:~/Maildir2", box.name); ourSrc != src {
						t.Errorf("%s: %s: Dovecot reports \\Recent on UIDs %q of doveadm's source, %q of boxsync's",
							when, box.name, src, ourSrc)
					}
					theirRecent := recentUIDs(t, d, "maildir:~/Replica", box.name)
					ourRecent := recentUIDs(t, d, "maildir:~/Replica2", box.name)
					if theirRecent != ourRecent {
						t.Errorf("%s: %s: Dovecot reports \\Recent on UIDs %q of doveadm's replica, %q of boxsync's (source %q)",
							when, box.name, theirRecent, ourRecent, src)
					}
					if got := ourRecentAt(t, "maildir:"+filepath.Join(home, "Replica2"), box.name); got != ourRecent {
						t.Errorf("%s: %s: we read Recent on UIDs %q of our replica, Dovecot %q", when, box.name, got, ourRecent)
					}
					if got := ourRecentAt(t, "maildir:"+filepath.Join(home, "Replica"), box.name); got != theirRecent {
						t.Errorf("%s: %s: we read Recent on UIDs %q of doveadm's replica, Dovecot %q", when, box.name, got, theirRecent)
					}
				}
				fields := formatstest.FieldsBackup &^ formatstest.FieldVSize
				theirs, err := formatstest.Dump(context.Background(), openMaildir(t, filepath.Join(home, "Replica"), formats.OpenOptions{ReadOnly: true}), fields)
				if err != nil {
					t.Fatal(err)
				}
				ours, err := formatstest.Dump(context.Background(), openMaildir(t, filepath.Join(home, "Replica2"), formats.OpenOptions{ReadOnly: true}), fields)
				if err != nil {
					t.Fatal(err)
				}
				if diff := formatstest.Diff(theirs, ours); diff != "" {
					t.Errorf("%s: doveadm (-) and boxsync (+) differ:\n%s", when, diff)
				}
			}
			run()
			compare("first run")
			// Checked outright too: \Recent flagless mail in new/,
			// with a flag or keyword in cur/, claimed mail in cur/.
			want := []string{"1 cur/:2,", "2 cur/:2,S", "3 new/", "4 cur/:2,S", "5 cur/:2,a"}
			if got := placement(t, filepath.Join(home, "Replica2")); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("boxsync's INBOX replica: %q, want %q", got, want)
			}
			if got := placement(t, filepath.Join(home, "Replica2", ".Work")); fmt.Sprint(got) != fmt.Sprint([]string{"1 new/", "2 new/", "3 new/"}) {
				t.Errorf("boxsync's Work replica: %q, want all in new/", got)
			}

			// A delivery into both sources' new/.
			for _, src := range []string{"Maildir", "Maildir2"} {
				p := filepath.Join(home, src, "new", "1700000000.M9P9.mx")
				if err := os.WriteFile(p, []byte("Subject: delivered\n\nbody\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				mt := time.Unix(1700000000, 0)
				os.Chtimes(p, mt, mt)
			}
			curBefore, err := os.Stat(filepath.Join(home, "Replica2", "cur"))
			if err != nil {
				t.Fatal(err)
			}
			run()
			compare("after a delivery")
			// The new mail went to new/ only: the replica's cur/ is
			// as it was, so the next run need not read it again.
			cur, err := os.Stat(filepath.Join(home, "Replica2", "cur"))
			if err != nil {
				t.Fatal(err)
			}
			if !cur.ModTime().Equal(curBefore.ModTime()) {
				t.Errorf("the replica's cur/ changed: mtime %v, was %v", cur.ModTime(), curBefore.ModTime())
			}

			// The sources' IMAP sessions claim \Recent: the next run
			// raises the replicas' first_recent_uid to the sources'
			// (dsync's importer finish), so nothing there is \Recent
			// any more, though the files stay in new/.
			boxes := []string{"INBOX", "Work"}
			for _, src := range []string{"Maildir", "Maildir2"} {
				for _, box := range boxes {
					d.IMAPSelect(t, box, "maildir:~/"+src)
				}
			}
			run()
			compare("after the sources' sessions claimed \\Recent")
			for _, box := range boxes {
				got := recentUIDs(t, d, "maildir:~/Replica2", box)
				switch {
				case !stateful && got != "":
					t.Errorf("%s: \\Recent on UIDs %q of boxsync's replica after the source's session claimed it", box, got)
				case stateful && got == "":
					// dsync's state check ignores first_recent_uid:
					// the unchanged mailbox is skipped, not raised.
					t.Errorf("%s: a stateful run took \\Recent from boxsync's replica of an unchanged mailbox", box)
				}
			}

			// The other way: new mail reaches the replicas, whose
			// sessions claim it. A sync raises the sources too; a
			// backup or sync -1 leaves them alone.
			for _, src := range []string{"Maildir", "Maildir2"} {
				p := filepath.Join(home, src, "new", "1700000100.M9P9.mx")
				if err := os.WriteFile(p, []byte("Subject: delivered later\n\nbody\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			run()
			compare("after a second delivery")
			for _, replica := range []string{"Replica", "Replica2"} {
				d.IMAPSelect(t, "INBOX", "maildir:~/"+replica)
			}
			run()
			compare("after the replicas' sessions claimed \\Recent")
			wantSrc := "7"
			if tc.mode == convert.Sync {
				wantSrc = ""
			}
			if got := recentUIDs(t, d, "maildir:~/Maildir2", "INBOX"); got != wantSrc {
				t.Errorf("\\Recent on UIDs %q of boxsync's source after the replica's session claimed it, want %q", got, wantSrc)
			}
			d.CheckLogClean(t)
		})
	}
}

// ourRecentAt is the UIDs our driver of loc ("sdbox:/path") reports
// Recent in mailbox.
func ourRecentAt(t *testing.T, loc, mailbox string) string {
	t.Helper()
	s := openLoc(t, loc, formats.OpenOptions{ReadOnly: true})
	defer s.Close()
	mb, err := s.Open(context.Background(), mailbox)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	var uids []string
	for m, err := range mb.Messages(context.Background(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		if m.Recent {
			uids = append(uids, fmt.Sprint(m.UID))
		}
	}
	return strings.Join(uids, " ")
}

// TestInteropRecentIntoDbox is TestInteropRecentDifferential's sibling
// for sdbox and mdbox replicas, whose saves are always \Recent (so only
// first_recent_uid says what is not): doveadm backup / sync / sync -1
// and ours from identical copies of recentSource, then runs after the
// sources' IMAP sessions claimed \Recent, after a delivery, and after the
// replicas' sessions claimed it: Dovecot must report \Recent on the same
// UIDs of doveadm's replica and ours (and of both sources), and our
// reader must agree.
func TestInteropRecentIntoDbox(t *testing.T) {
	for _, format := range []string{"sdbox", "mdbox"} {
		for _, tc := range []struct {
			name    string
			doveadm []string
			mode    convert.Mode
		}{
			{"backup", []string{"backup"}, convert.Backup},
			{"sync", []string{"sync"}, convert.Sync},
			{"sync -1", []string{"sync", "-1"}, convert.OneWay},
		} {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				d := recentSource(t)
				home := d.Home()
				if out, err := exec.Command("cp", "-a", filepath.Join(home, "Maildir"), filepath.Join(home, "Maildir2")).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v\n%s", err, out)
				}
				theirLoc, ourLoc := format+":~/Replica", format+":~/Replica2"
				run := func() {
					t.Helper()
					d.MustDoveadm(t, append(tc.doveadm, theirLoc)...)
					a := openMaildir(t, filepath.Join(home, "Maildir2"), formats.OpenOptions{ReadOnly: tc.mode != convert.Sync})
					b := openLoc(t, format+":"+filepath.Join(home, "Replica2"), formats.OpenOptions{Create: true})
					res, err := convert.Run(context.Background(), a, b, convert.Options{Mode: tc.mode})
					if err != nil || len(res.Errors) > 0 {
						t.Fatalf("Run = %v %v", err, res.Errors)
					}
					a.Close()
					b.Close()
				}
				boxes := []string{"INBOX", "Work"}
				compare := func(when string) {
					t.Helper()
					for _, box := range boxes {
						src, ourSrc := recentUIDs(t, d, "maildir:~/Maildir", box), recentUIDs(t, d, "maildir:~/Maildir2", box)
						theirs, ours := recentUIDs(t, d, theirLoc, box), recentUIDs(t, d, ourLoc, box)
						if src != ourSrc || theirs != ours {
							t.Errorf("%s: %s: Dovecot reports \\Recent on UIDs %q of doveadm's source, %q of ours; %q of doveadm's replica, %q of ours",
								when, box, src, ourSrc, theirs, ours)
						}
						if got := ourRecentAt(t, format+":"+filepath.Join(home, "Replica2"), box); got != ours {
							t.Errorf("%s: %s: we read Recent on UIDs %q of our replica, Dovecot %q", when, box, got, ours)
						}
					}
				}
				run()
				compare("first run")
				for _, src := range []string{"Maildir", "Maildir2"} {
					for _, box := range boxes {
						d.IMAPSelect(t, box, "maildir:~/"+src)
					}
				}
				run()
				compare("after the sources' sessions claimed \\Recent")
				for _, box := range boxes {
					if got := recentUIDs(t, d, ourLoc, box); got != "" {
						t.Errorf("%s: \\Recent on UIDs %q of our replica after the source's session claimed it", box, got)
					}
				}
				for _, src := range []string{"Maildir", "Maildir2"} {
					p := filepath.Join(home, src, "new", "1700000000.M9P9.mx")
					if err := os.WriteFile(p, []byte("Subject: delivered\n\nbody\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				run()
				compare("after a delivery")
				if got := recentUIDs(t, d, ourLoc, "INBOX"); got != "6" {
					t.Errorf("\\Recent on UIDs %q of our replica after a delivery, want the delivered 6", got)
				}
				for _, replica := range []string{"Replica", "Replica2"} {
					d.IMAPSelect(t, "INBOX", format+":~/"+replica)
				}
				run()
				compare("after the replicas' sessions claimed \\Recent")
				d.CheckLogClean(t)
			})
		}
	}
}
