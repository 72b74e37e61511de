package convert_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/convert/state"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestInteropFlagMerge is the per-flag merge against the real doveadm
// sync, stateless (-f) and stateful (-s): after a sync, both sides change
// flags and keywords of the same messages (through Dovecot, and on the
// replica also by a mail client renaming the Maildir file, which only
// Dovecot's next sync logs); doveadm and boxsync run on identical copies
// and must end with the same flags and keywords everywhere. Here dsync
// merges per flag (merge_flags: both \Seen and \Answered survive) since
// both sides' changes are in their transaction logs; a merge that took the
// whole flag set of the side with the higher modseq would drop one.
func TestInteropFlagMerge(t *testing.T) {
	for _, stateful := range []bool{false, true} {
		name := "full"
		if stateful {
			name = "stateful"
		}
		t.Run(name, func(t *testing.T) {
			d := dovecottest.New(t, "maildir:~/Maildir")
			for _, s := range []string{"one", "two", "three", "four", "five"} {
				d.Save(t, "INBOX", []byte("Subject: "+s+"\nMessage-ID: <"+s+"@x>\n\nbody "+s+"\n"))
			}
			on := func(loc string, args ...string) {
				d.MustDoveadm(t, append([]string{"-o", "mail_location=maildir:~/" + loc}, args...)...)
			}
			on("Maildir", "flags", "add", `\Flagged $Work`, "mailbox", "INBOX", "uid", "3")
			st := strings.TrimSpace(d.MustDoveadm(t, "sync", "-f", "-s", "", "maildir:~/Replica"))
			for i := 0; i < 5; i++ { // let doveadm's state settle
				next := strings.TrimSpace(d.MustDoveadm(t, "sync", "-s", st, "maildir:~/Replica"))
				if next == st {
					break
				}
				st = next
			}

			// The same message, different flags on each side.
			on("Maildir", "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "1")
			on("Replica", "flags", "add", `\Answered`, "mailbox", "INBOX", "uid", "1")
			on("Maildir", "flags", "add", `kwA`, "mailbox", "INBOX", "uid", "2")
			on("Replica", "flags", "add", `kwB`, "mailbox", "INBOX", "uid", "2")
			// A removal on one side, another flag added on the other.
			on("Maildir", "flags", "remove", `\Flagged $Work`, "mailbox", "INBOX", "uid", "3")
			on("Replica", "flags", "add", `\Draft`, "mailbox", "INBOX", "uid", "3")
			// A conflict: added on one side, removed on the other (the
			// later change, by modseq, wins).
			on("Replica", "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "4")
			on("Maildir", "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "4")
			on("Replica", "flags", "remove", `\Seen`, "mailbox", "INBOX", "uid", "4")
			// A mail client renames the replica's file (adds R).
			muaAddFlag(t, filepath.Join(d.Home(), "Replica"), "body five", 'R')
			on("Maildir", "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "5")

			home := d.Home()
			for _, p := range []string{"Maildir", "Replica"} {
				if out, err := exec.Command("cp", "-a", filepath.Join(home, p), filepath.Join(home, p+"2")).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v\n%s", err, out)
				}
			}
			opt := convert.Options{Mode: convert.Sync, Algorithm: convert.Full}
			if stateful {
				d.MustDoveadm(t, "sync", "-s", st, "maildir:~/Replica")
				s, err := state.Decode(st)
				if err != nil {
					t.Fatal(err)
				}
				opt.Algorithm, opt.State = convert.Stateful, s
			} else {
				d.MustDoveadm(t, "sync", "-f", "maildir:~/Replica")
			}
			a := openMaildir(t, filepath.Join(home, "Maildir2"), formats.OpenOptions{})
			b := openMaildir(t, filepath.Join(home, "Replica2"), formats.OpenOptions{})
			res, err := convert.Run(context.Background(), a, b, opt)
			if err != nil || len(res.Errors) > 0 || res.Desync != "" {
				t.Fatalf("Run = %v %v %q", err, res.Errors, res.Desync)
			}
			for _, p := range []string{"Maildir", "Replica"} {
				theirs := flagDump(t, filepath.Join(home, p))
				ours := flagDump(t, filepath.Join(home, p+"2"))
				if diff := formatstest.Diff(theirs, ours); diff != "" {
					t.Errorf("%s: doveadm (-) and boxsync (+) differ:\n%s", p, diff)
				}
				// Both sides' changes survive where they don't conflict.
				for uid, want := range map[string]string{"1": `flags="\\Answered \\Seen" kw=""`, "2": `flags="" kw="kwA kwB"`,
					"3": `flags="\\Draft" kw=""`, "5": `flags="\\Answered \\Seen" kw=""`} {
					if !regexp.MustCompile(`uid=` + uid + ` .*` + regexp.QuoteMeta(want)).MatchString(ours) {
						t.Errorf("%s: boxsync's UID %s lacks %s:\n%s", p, uid, want, ours)
					}
				}
			}
			d.CheckLogClean(t)
		})
	}
}

// muaAddFlag renames the Maildir file holding text as a mail client that
// doesn't use Dovecot would, adding flag letter.
func muaAddFlag(t *testing.T, root, text string, flag byte) {
	t.Helper()
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(root, sub)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), text) {
				continue
			}
			base, letters, _ := strings.Cut(e.Name(), ":2,")
			l := []byte(letters + string(flag))
			sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
			if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(root, "cur", base+":2,"+string(l))); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no message with %q in %s", text, root)
}

var kwField = regexp.MustCompile(`kw="([^"]*)"`)

// flagDump is the canonical dump without sizes and modseqs, keywords
// sorted (stores list them in their own order).
func flagDump(t *testing.T, root string) string {
	t.Helper()
	s, err := formatstest.Dump(context.Background(), openMaildir(t, root, formats.OpenOptions{ReadOnly: true}), formatstest.FieldsBackup&^formatstest.FieldVSize)
	if err != nil {
		t.Fatal(err)
	}
	return kwField.ReplaceAllStringFunc(s, func(m string) string {
		kws := strings.Fields(kwField.FindStringSubmatch(m)[1])
		sort.Strings(kws)
		return `kw="` + strings.Join(kws, " ") + `"`
	})
}

// TestInteropFlagMergeChain is where dsync drops a flag and boxsync keeps
// it: A and B replicate statefully, B also replicates with C. C sets
// \Flagged, which reaches B through a B↔C doveadm sync (a SYNC-flagged
// change on B); A meanwhile sets \Seen on the same message. The next A↔B
// stateful doveadm sync ends with \Seen only on both sides: dsync's log
// scan skips SYNC-flagged records, so B's \Flagged is no change to it,
// and A's flags win. boxsync, on identical copies with the same state,
// counts changes written by syncs after the last common modseq and keeps
// both flags. Everything else is the same as doveadm's result.
func TestInteropFlagMergeChain(t *testing.T) {
	d := dovecottest.New(t, "maildir:~/A")
	for _, s := range []string{"one", "two", "three"} {
		d.Save(t, "INBOX", []byte("Subject: "+s+"\nMessage-ID: <"+s+"@x>\n\nbody "+s+"\n"))
	}
	on := func(loc string, args ...string) {
		d.MustDoveadm(t, append([]string{"-o", "mail_location=maildir:~/" + loc}, args...)...)
	}
	st := strings.TrimSpace(d.MustDoveadm(t, "sync", "-f", "-s", "", "maildir:~/B"))
	for i := 0; i < 5; i++ {
		next := strings.TrimSpace(d.MustDoveadm(t, "sync", "-s", st, "maildir:~/B"))
		if next == st {
			break
		}
		st = next
	}
	on("B", "sync", "-f", "maildir:~/C")
	on("C", "flags", "add", `\Flagged`, "mailbox", "INBOX", "uid", "1")
	on("B", "sync", "-f", "maildir:~/C")
	on("A", "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "1")
	on("A", "flags", "add", `\Answered`, "mailbox", "INBOX", "uid", "2") // an ordinary change

	home := d.Home()
	for _, p := range []string{"A", "B"} {
		if out, err := exec.Command("cp", "-a", filepath.Join(home, p), filepath.Join(home, p+"2")).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
	}
	d.MustDoveadm(t, "sync", "-s", st, "maildir:~/B")
	s, err := state.Decode(st)
	if err != nil {
		t.Fatal(err)
	}
	a := openMaildir(t, filepath.Join(home, "A2"), formats.OpenOptions{})
	b := openMaildir(t, filepath.Join(home, "B2"), formats.OpenOptions{})
	res, err := convert.Run(context.Background(), a, b, convert.Options{Mode: convert.Sync, Algorithm: convert.Stateful, State: s})
	if err != nil || len(res.Errors) > 0 || res.Desync != "" {
		t.Fatalf("Run = %v %v %q", err, res.Errors, res.Desync)
	}
	uid1 := regexp.MustCompile(`uid=1 .*flags="([^"]*)"`)
	for _, p := range []string{"A", "B"} {
		theirs, ours := flagDump(t, filepath.Join(home, p)), flagDump(t, filepath.Join(home, p+"2"))
		if m := uid1.FindStringSubmatch(theirs); m == nil || m[1] != `\\Seen` {
			t.Errorf("%s: doveadm's UID 1 = %v, want \\Seen only (dsync drops B's \\Flagged)", p, m)
		}
		if m := uid1.FindStringSubmatch(ours); m == nil || m[1] != `\\Flagged \\Seen` {
			t.Errorf("%s: boxsync's UID 1 = %v, want \\Flagged \\Seen", p, m)
		}
		// Apart from that flag, the same as doveadm.
		if diff := formatstest.Diff(strings.Replace(theirs, `flags="\\Seen"`, `flags="\\Flagged \\Seen"`, 1), ours); diff != "" {
			t.Errorf("%s: doveadm (-) and boxsync (+) differ beyond UID 1's \\Flagged:\n%s", p, diff)
		}
	}
	d.CheckLogClean(t)
}
