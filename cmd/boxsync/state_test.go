package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/convert/state"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// stateDovecot is a Maildir pair (~/Maildir, ~/Replica) that the real
// doveadm synced with -f -s ”, and the state it printed.
func stateDovecot(t *testing.T) (*dovecottest.Dovecot, string) {
	t.Helper()
	d := dovecottest.New(t, "maildir:~/Maildir")
	d.MustDoveadm(t, "mailbox", "create", "-s", "Work")
	for _, s := range []string{"one", "two", "three"} {
		d.Save(t, "INBOX", []byte("Subject: "+s+"\nMessage-ID: <"+s+"@x>\n\nbody "+s+"\n"))
	}
	d.Save(t, "Work", []byte("Subject: w\n\nw\n"))
	st := strings.TrimSpace(d.MustDoveadm(t, "sync", "-f", "-s", "", "maildir:~/Replica"))
	return d, st
}

// on runs doveadm on one of the pair's sides.
func on(t *testing.T, d *dovecottest.Dovecot, side string, args ...string) {
	t.Helper()
	d.MustDoveadm(t, append([]string{"-o", "mail_location=maildir:~/" + side}, args...)...)
}

// boxsyncState runs boxsync sync -s on the pair and returns the state it
// printed.
func boxsyncState(t *testing.T, d *dovecottest.Dovecot, code int, extra ...string) (string, cliResult) {
	t.Helper()
	te := newTestEnv(t)
	args := append([]string{"-v", "-o", "mail_location=maildir:" + filepath.Join(d.Home(), "Maildir"), "sync"}, extra...)
	args = append(args, "maildir:"+filepath.Join(d.Home(), "Replica"))
	r := te.run(t, args...)
	r.expect(t, args, code)
	if strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("boxsync %q printed %q, want one state line", args, r.stdout)
	}
	return strings.TrimSpace(r.stdout), r
}

func sidesEqual(t *testing.T, d *dovecottest.Dovecot) string {
	t.Helper()
	a := dump(t, "maildir:"+filepath.Join(d.Home(), "Maildir"))
	if diff := formatstest.Diff(a, dump(t, "maildir:"+filepath.Join(d.Home(), "Replica"))); diff != "" {
		t.Fatalf("sides differ:\n%s", diff)
	}
	return a
}

// TestCLIStateInterop passes one state back and forth between doveadm
// and boxsync in a real stateful round: doveadm's state drives a boxsync
// stateful run, boxsync's state drives a doveadm stateful run, and a
// boxsync run with doveadm's state of an unchanged pair skips every
// mailbox.
func TestCLIStateInterop(t *testing.T) {
	d, st := stateDovecot(t)

	// doveadm's state -> boxsync.
	d.Save(t, "INBOX", []byte("Subject: new on the source\n\nn\n"))
	on(t, d, "Replica", "flags", "add", `\Seen`, "mailbox", "INBOX", "uid", "1")
	on(t, d, "Maildir", "flags", "add", `\Answered`, "mailbox", "INBOX", "uid", "1")
	st2, r := boxsyncState(t, d, 0, "-s", st)
	if !strings.Contains(r.stderr, "1 saved") || !strings.Contains(r.stderr, "flag changes") {
		t.Errorf("boxsync -s: want the new mail copied\n%s", r.stderr)
	}
	if _, err := state.Decode(st2); err != nil {
		t.Fatalf("boxsync printed %q: %v", st2, err)
	}
	a := sidesEqual(t, d)
	if !strings.Contains(a, "new on the source") && !strings.Contains(a, "sha256") {
		t.Fatalf("dump lacks mail:\n%s", a)
	}

	// boxsync's state -> doveadm.
	on(t, d, "Maildir", "flags", "add", `\Flagged`, "mailbox", "INBOX", "uid", "2")
	d.Save(t, "Work", []byte("Subject: w2\n\nw2\n"))
	out, err := d.Doveadm("sync", "-s", st2, "maildir:~/Replica")
	if err != nil {
		t.Fatalf("doveadm sync -s <boxsync's state>: %v", err)
	}
	st3 := strings.TrimSpace(out)
	if _, err := state.Decode(st3); err != nil || st3 == "" {
		t.Fatalf("doveadm printed %q after boxsync's state: %v", out, err)
	}
	d.CheckLogClean(t) // no "Saved sync state is invalid", no resync
	sidesEqual(t, d)

	// doveadm's state of an unchanged pair: boxsync changes nothing.
	// doveadm's last common modseq lags its own last writes (it keeps
	// the HIGHESTMODSEQ it saw before importing, dsync.md §2.8
	// Result), so the status doesn't match it yet and the mailboxes are
	// merged; boxsync's state then has the HIGHESTMODSEQ both sides
	// ended with, and the next stateful run skips every mailbox.
	st4, r := boxsyncState(t, d, 0, "-s", st3)
	if !strings.Contains(r.stderr, "0 saved (0 bytes), 0 expunged, 0 flag changes") {
		t.Errorf("boxsync -s <doveadm's state> of an unchanged pair changed something\n%s", r.stderr)
	}
	st5, r := boxsyncState(t, d, 0, "-s", st4)
	if !strings.Contains(r.stderr, "0 synced, 2 skipped") || st5 != st4 {
		t.Errorf("boxsync -s <its own state> of an unchanged pair: want every mailbox skipped and the same state (%s, %s)\n%s", st4, st5, r.stderr)
	}
	// And doveadm takes that state too.
	if out, err := d.Doveadm("sync", "-s", st5, "maildir:~/Replica"); err != nil || strings.TrimSpace(out) == "" {
		t.Errorf("doveadm sync -s <boxsync's state> = %q, %v", out, err)
	}
	d.CheckLogClean(t)
	sidesEqual(t, d)
}

// TestCLIStateDestinationOnly shows dsync's stateful blind spot and that
// boxsync has none: after a stateful sync the replica alone gets a flag;
// doveadm sync -s (on a copy) leaves the source without it, boxsync sync
// -s gives it to the source.
func TestCLIStateDestinationOnly(t *testing.T) {
	d, st := stateDovecot(t)
	// doveadm's state settles after a few unchanged runs (its last
	// common modseq lags its own writes); from then on it skips
	// unchanged mailboxes.
	for i := 0; ; i++ {
		next := strings.TrimSpace(d.MustDoveadm(t, "sync", "-s", st, "maildir:~/Replica"))
		if next == st {
			break
		}
		if i == 5 {
			t.Fatalf("doveadm's state did not settle: %s", next)
		}
		st = next
	}
	on(t, d, "Replica", "flags", "add", `\Flagged`, "mailbox", "INBOX", "uid", "2")
	home := d.Home()
	for _, p := range []string{"Maildir", "Replica"} {
		if out, err := exec.Command("cp", "-a", filepath.Join(home, p), filepath.Join(home, p+".dsync")).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
	}
	d.MustDoveadm(t, "-o", "mail_location=maildir:~/Maildir.dsync", "sync", "-s", st, "maildir:~/Replica.dsync")
	flagged := func(loc string) bool {
		for _, line := range strings.Split(dump(t, loc), "\n") {
			if strings.Contains(line, "uid=2 ") || strings.HasPrefix(strings.TrimSpace(line), "2 ") {
				return strings.Contains(line, `\Flagged`)
			}
		}
		t.Fatalf("no UID 2 in %s:\n%s", loc, dump(t, loc))
		return false
	}
	if flagged("maildir:" + filepath.Join(home, "Maildir.dsync")) {
		t.Fatal("doveadm sync -s found the replica-only change: dsync.md §2.5 says it doesn't")
	}
	boxsyncState(t, d, 0, "-s", st)
	if !flagged("maildir:" + filepath.Join(home, "Maildir")) {
		t.Fatalf("boxsync sync -s missed the replica-only change:\n%s", dump(t, "maildir:"+filepath.Join(home, "Maildir")))
	}
	sidesEqual(t, d)
}

// TestCLIStateBad: a state that doesn't decode is doveadm's "Saved sync
// state is invalid" error, a full sync and exit 0; a stale one (the
// stores went back behind it) is a warning, an empty state line and exit
// 2, for sync and backup alike.
func TestCLIStateBad(t *testing.T) {
	for _, cmd := range []string{"sync", "backup"} {
		t.Run(cmd, func(t *testing.T) {
			te := newTestEnv(t)
			src := "maildir:" + filepath.Join(te.home, "Maildir")
			dst := "maildir:" + filepath.Join(te.home, "replica")
			fill(t, src, map[string]int{"INBOX": 3, "Work": 1})
			first := []string{"-o", "mail_location=" + src, cmd, "-f", "-s", "", dst}
			r := te.run(t, first...)
			r.expect(t, first, 0)
			good, err := state.Decode(strings.TrimSpace(r.stdout))
			if err != nil || len(good) != 2 {
				t.Fatalf("first run printed %q: %v", r.stdout, err)
			}
			var inbox formats.GUID
			for g, e := range good {
				if e.MessagesCount == 3 {
					inbox = g
				}
			}
			stale := func(f func(*state.Mailbox)) string {
				s := state.State{}
				for g, e := range good {
					if g == inbox {
						f(&e)
					}
					s[g] = e
				}
				return state.Encode(s)
			}
			e := good[inbox]
			for _, tc := range []struct {
				name, state string
				code        int
				stdout      string // "" = a valid state
				want        string
			}{
				{"bad base64", "garbage!", 0, "", "Error: Saved sync state is invalid, falling back to full sync: Invalid base64 data"},
				{"bad CRC", "AQAAAHm4+Jj=", 0, "", "Error: Saved sync state is invalid, falling back to full sync: CRC32 mismatch"},
				{"too small", "AQAA", 0, "", "Error: Saved sync state is invalid, falling back to full sync: Input too small"},
				{"UIDNEXT behind", stale(func(m *state.Mailbox) { m.LastCommonUID = 1000 }), 2, "\n",
					"Warning: Failed to do incremental sync for mailbox INBOX, retry with a full sync (uidnext 4 < 1000)"},
				{"HIGHESTMODSEQ behind", stale(func(m *state.Mailbox) { m.LastCommonModSeq = 5000 }), 2, "\n",
					"Warning: Failed to do incremental sync for mailbox INBOX, retry with a full sync (highest_modseq "},
				{"good", state.Encode(good), 0, "", ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					args := []string{"-o", "mail_location=" + src, cmd, "-s", tc.state, dst}
					r := te.run(t, args...)
					r.expect(t, args, tc.code, tc.want)
					if tc.code == 2 && !strings.Contains(r.stderr, "Mailbox changes caused a desync") {
						t.Errorf("no desync warning:\n%s", r.stderr)
					}
					if tc.stdout != "" {
						if r.stdout != tc.stdout {
							t.Errorf("stdout = %q, want %q", r.stdout, tc.stdout)
						}
						return
					}
					if s, err := state.Decode(strings.TrimSpace(r.stdout)); err != nil || len(s) != 2 || s[inbox].LastCommonUID != e.LastCommonUID {
						t.Errorf("stdout = %q (%v, %v), want a state like the first", r.stdout, s, err)
					}
				})
			}
		})
	}
}
