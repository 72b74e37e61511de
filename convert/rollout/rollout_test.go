package rollout

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/mem"
)

// memOpen opens mem stores: "mem:/x" locations, one table per process.
func memOpen(ctx context.Context, u User, spec string, write bool) (formats.Store, formats.Location, error) {
	loc, err := formats.ParseLocation(spec, formats.Vars{User: u.Name, Home: u.Home})
	if err != nil {
		return nil, loc, err
	}
	st, err := mem.Driver{}.Open(ctx, loc, formats.OpenOptions{Create: write, ReadOnly: !write})
	return st, loc, err
}

func open(t *testing.T, spec string) formats.Store {
	t.Helper()
	st, _, err := memOpen(context.Background(), User{Name: "u"}, spec, true)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// fill creates mailboxes with n messages each and returns the store.
func fill(t *testing.T, spec string, n int) {
	t.Helper()
	ctx := context.Background()
	st := open(t, spec)
	defer st.Close()
	for _, name := range []string{"INBOX", "Archive/2024"} {
		if err := st.Create(ctx, name, formats.GUID{}, 0); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			appendMsg(t, st, name, fmt.Sprintf("%s %d", name, i), formats.Flags(i%4), nil)
		}
	}
}

func appendMsg(t *testing.T, st formats.Store, box, subject string, f formats.Flags, kw []string) {
	t.Helper()
	ctx := context.Background()
	mb, err := st.Open(ctx, box)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	body := "Subject: " + subject + "\r\n\r\nbody\r\n"
	if _, err := tx.Save(ctx, formats.Message{Flags: f, Keywords: kw, Size: int64(len(body)), Received: time.Unix(1.7e9, 0)}, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// change runs fn in one transaction on box.
func change(t *testing.T, spec, box string, fn func(formats.Tx, []formats.Message)) {
	t.Helper()
	ctx := context.Background()
	st := open(t, spec)
	defer st.Close()
	mb, err := st.Open(ctx, box)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	var msgs []formats.Message
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fn(tx, msgs)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func dump(t *testing.T, spec string) string {
	t.Helper()
	st := open(t, spec)
	defer st.Close()
	d, err := formatstest.Dump(context.Background(), st, formatstest.FieldsBackup)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const passwdText = "# mail users\r\n" +
	"other:{PLAIN}x:1000:1000::/home/other::userdb_mail=maildir:~/Maildir userdb_quota_rule=*:storage=1G\n" +
	"\n" +
	"   # indented comment: keep me\n" +
	"jane:{SHA512-CRYPT}$6$salt$hash:1001:1001:Jane Doe,,,:/home/jane:/bin/false:nopassword userdb_mail=mem:/old-jane allow_nets=127.0.0.1/8\n" +
	"weird:{PLAIN}a:b:c:1002:1002::/home/weird::userdb_mail=mem:/w userdb_x=a=b=c\n" +
	"last-line-without-newline:{PLAIN}y:1003:1003::/h::"

func newConfig(t *testing.T, newLoc string) *Config {
	t.Helper()
	j, err := OpenJournal(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return &Config{New: newLoc, Threshold: 5, MaxPasses: 3, Open: memOpen, Journal: j,
		settle: func(context.Context) error { return nil }}
}

// TestConvertPasswdFile converts one user with the built-in switch: the
// new store is the old one's copy, the passwd-file changed in the one
// field, and a rerun does nothing.
func TestConvertPasswdFile(t *testing.T) {
	mem.Reset()
	fill(t, "mem:/old-jane", 20)
	pf := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(pf, []byte(passwdText), 0o640); err != nil {
		t.Fatal(err)
	}
	c := newConfig(t, "mem:/new-jane")
	u := User{Name: "jane", Home: "/home/jane", Current: "mem:/old-jane", PasswdFile: pf}
	rep := c.Convert(context.Background(), u)
	if rep.Err != nil || rep.Status != "converted" {
		t.Fatalf("%+v", rep)
	}
	if d := formatstest.Diff(dump(t, "mem:/old-jane"), dump(t, "mem:/new-jane")); d != "" {
		t.Fatalf("new differs from old:\n%s", d)
	}
	got, _ := os.ReadFile(pf)
	want := strings.Replace(passwdText, "userdb_mail=mem:/old-jane", "userdb_mail=mem:/new-jane", 1)
	if string(got) != want {
		t.Fatalf("passwd-file:\n%q\nwant\n%q", got, want)
	}
	if e := c.Journal.Get("jane"); e.Step != StepVerified || !e.HadField || e.OldField != "mem:/old-jane" {
		t.Fatalf("journal: %+v", e)
	}
	if rep.Verify == nil || rep.Verify.Messages != 40 {
		t.Fatalf("verify: %+v", rep.Verify)
	}
	// The userdb now says new; the journal says done.
	u.Current = "mem:/new-jane"
	if rep := c.Convert(context.Background(), u); rep.Status != "skipped" || rep.Err != nil {
		t.Fatalf("rerun: %+v", rep)
	}
}

// TestFinalMerge changes both locations between the switch and the kick,
// as users still on the old location and users already on the new one
// would: every change survives, and UIDs don't move.
func TestFinalMerge(t *testing.T) {
	mem.Reset()
	fill(t, "mem:/old", 10)
	c := newConfig(t, "mem:/new")
	c.Hooks.Switch = "true"
	c.afterStep = func(_ string, s Step) {
		if s != StepSwitched {
			return
		}
		// Old: flag 1, keyword on 2, expunge 3, new mail.
		change(t, "mem:/old", "INBOX", func(tx formats.Tx, m []formats.Message) {
			tx.SetFlags(m[0].UID, m[0].Flags|formats.FlagFlagged, m[0].Keywords)
			tx.SetFlags(m[1].UID, m[1].Flags, []string{"$late"})
			tx.Expunge(m[2].UID)
		})
		appendMsg(t, open(t, "mem:/old"), "INBOX", "late to old", formats.FlagSeen, nil)
		// New: unflag 4 (flagged? set Answered instead), expunge 5.
		change(t, "mem:/new", "INBOX", func(tx formats.Tx, m []formats.Message) {
			tx.SetFlags(m[4].UID, m[4].Flags|formats.FlagAnswered, []string{"$onnew"})
			tx.Expunge(m[5].UID)
		})
	}
	rep := c.Convert(context.Background(), User{Name: "x", Current: "mem:/old"})
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	st := open(t, "mem:/new")
	mb, _ := st.Open(context.Background(), "INBOX")
	byUID := map[formats.UID]formats.Message{}
	for m, err := range mb.Messages(context.Background(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		byUID[m.UID] = m
	}
	check := func(uid formats.UID, ok bool, f formats.Flags, kw string) {
		t.Helper()
		m, there := byUID[uid]
		if there != ok {
			t.Fatalf("UID %d present=%v, want %v (%v)", uid, there, ok, byUID)
		}
		if ok && (m.Flags != f || strings.Join(m.Keywords, " ") != kw) {
			t.Errorf("UID %d: %v %v, want %v %q", uid, m.Flags, m.Keywords, f, kw)
		}
	}
	check(1, true, formats.Flags(0)|formats.FlagFlagged, "")
	check(2, true, formats.Flags(1), "$late")
	check(3, false, 0, "")
	check(5, true, formats.Flags(0)|formats.FlagAnswered, "$onnew")
	check(6, false, 0, "")
	check(11, true, formats.FlagSeen, "")
	if len(byUID) != 9 {
		t.Errorf("%d messages, want 9", len(byUID))
	}
	if v := rep.Verify; v == nil || v.ChangedOnNew != 1 || v.ExpungedOnNew != 1 {
		t.Errorf("verify: %+v", rep.Verify)
	}
}

// TestResume interrupts the conversion after each step in turn (as a
// SIGKILL right after a journal write would), changing the old location
// each time, then reruns: same end state, nothing duplicated.
func TestResume(t *testing.T) {
	for stop := StepSynced; stop <= StepMerged; stop++ {
		t.Run(stop.String(), func(t *testing.T) {
			mem.Reset()
			fill(t, "mem:/old", 8)
			c := newConfig(t, "mem:/new")
			c.Hooks.Switch = "true"
			ctx, cancel := context.WithCancel(context.Background())
			c.afterStep = func(_ string, s Step) {
				if s == stop {
					appendMsg(t, open(t, "mem:/old"), "INBOX", "during "+s.String(), 0, nil)
					cancel()
				}
			}
			rep := c.Convert(ctx, User{Name: "x", Current: "mem:/old"})
			if !errors.Is(rep.Err, context.Canceled) {
				t.Fatalf("first run: %+v", rep)
			}
			c.afterStep = nil
			rep = c.Convert(context.Background(), User{Name: "x", Current: "mem:/old"})
			if rep.Err != nil || rep.Status != "converted" {
				t.Fatalf("rerun: %+v", rep)
			}
			if d := formatstest.Diff(dump(t, "mem:/old"), dump(t, "mem:/new")); d != "" {
				t.Fatalf("after resume:\n%s", d)
			}
			if stop >= StepSwitching && rep.Passes != 0 {
				t.Errorf("a pass ran after the switch began")
			}
		})
	}
}

// TestVerifyFinds changes the new location behind the rollout's back
// and expects verification to name the difference.
func TestVerifyFinds(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T)
		want   string // "" = verification passes
		mark   bool   // record the damage as the user's, after the mark
	}{
		{"identical", func(t *testing.T) {}, "", false},
		{"lost mail", func(t *testing.T) {
			change(t, "mem:/new", "INBOX", func(tx formats.Tx, m []formats.Message) { tx.Expunge(m[1].UID) })
		}, "UID 2", false},
		{"lost flag", func(t *testing.T) {
			change(t, "mem:/new", "INBOX", func(tx formats.Tx, m []formats.Message) { tx.SetFlags(m[3].UID, 0, nil) })
		}, "flags", false},
		{"lost mailbox", func(t *testing.T) {
			open(t, "mem:/new").Delete(context.Background(), "Archive/2024")
		}, "Archive/2024", false},
		{"user expunged on new", func(t *testing.T) {
			change(t, "mem:/new", "INBOX", func(tx formats.Tx, m []formats.Message) { tx.Expunge(m[1].UID) })
		}, "", true},
		{"user flagged on new", func(t *testing.T) {
			change(t, "mem:/new", "INBOX", func(tx formats.Tx, m []formats.Message) { tx.SetFlags(m[1].UID, formats.FlagDeleted, nil) })
		}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem.Reset()
			fill(t, "mem:/old", 5)
			c := newConfig(t, "mem:/new")
			r := &userRun{cfg: c, u: User{Name: "x"}, entry: Entry{User: "x", Old: "mem:/old", New: "mem:/new"}, rep: &Report{}}
			ctx := context.Background()
			if err := r.passes(ctx); err != nil {
				t.Fatal(err)
			}
			if !tc.mark {
				// Damage before the mark: not the user's doing.
				tc.damage(t)
				var err error
				if r.entry.Mark, err = r.mark(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				tc.damage(t)
			}
			err := r.verifyOnce(ctx)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("verify: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("verify: %v, want an error naming %q", err, tc.want)
			case tc.want != "" && formats.KindOf(err) != formats.KindInvalidData:
				t.Fatalf("verify: kind %v", formats.KindOf(err))
			}
		})
	}
}

// TestRollback converts, lets the user work on the new location, then
// rolls back: the old location gets those changes, the passwd-file its
// old value.
func TestRollback(t *testing.T) {
	mem.Reset()
	fill(t, "mem:/old-jane", 6)
	pf := filepath.Join(t.TempDir(), "users")
	os.WriteFile(pf, []byte(passwdText), 0o600)
	c := newConfig(t, "mem:/new-jane")
	u := User{Name: "jane", Current: "mem:/old-jane", PasswdFile: pf}
	if rep := c.Convert(context.Background(), u); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	appendMsg(t, open(t, "mem:/new-jane"), "INBOX", "on new", 0, nil)
	change(t, "mem:/new-jane", "INBOX", func(tx formats.Tx, m []formats.Message) { tx.SetFlags(m[0].UID, formats.FlagDraft, nil) })
	rep := c.Rollback(context.Background(), u)
	if rep.Err != nil || rep.Status != "rolled-back" {
		t.Fatalf("%+v", rep)
	}
	if d := formatstest.Diff(dump(t, "mem:/new-jane"), dump(t, "mem:/old-jane")); d != "" {
		t.Fatalf("old after rollback:\n%s", d)
	}
	if got, _ := os.ReadFile(pf); string(got) != passwdText {
		t.Fatalf("passwd-file not restored:\n%s", got)
	}
	// Converting again works from the old location.
	u.Current = "mem:/old-jane"
	if rep := c.Convert(context.Background(), u); rep.Err != nil || rep.Status != "converted" {
		t.Fatalf("again: %+v", rep)
	}
}

// TestJournal: entries survive reopening, a torn last line is ignored, a
// second rollout can't take the journal.
func TestJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenJournal(path); formats.KindOf(err) != formats.KindInUse {
		t.Fatalf("second open: %v", err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	want := map[string]Step{}
	for i := 0; i < 50; i++ {
		u := fmt.Sprintf("u%d", rng.IntN(8))
		s := Step(rng.IntN(int(StepRolledBack) + 1))
		if err := j.Put(Entry{User: u, Step: s, Mark: []MailboxMark{{Name: "INBOX", UIDNext: 3}}}); err != nil {
			t.Fatal(err)
		}
		want[u] = s
	}
	j.Close()
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"user":"u1","step":"verif`)
	f.Close()
	j, err = OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for u, s := range want {
		if got := j.Get(u); got.Step != s || len(got.Mark) != 1 {
			t.Errorf("%s: %+v, want step %s", u, got, s)
		}
	}
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "\n"); n != len(want) {
		t.Errorf("compacted journal has %d lines, want %d", n, len(want))
	}
	// A damaged line in the middle is not a torn write: refuse.
	os.WriteFile(path+"2", []byte("garbage\n"+string(data)), 0o600)
	if _, err := OpenJournal(path + "2"); err == nil {
		t.Fatal("a damaged journal opened")
	}
}

// TestCreds: the steps that touch mail run with the user's credentials,
// the switch and each hook as the process.
func TestCreds(t *testing.T) {
	mem.Reset()
	fill(t, "mem:/old", 3)
	c := newConfig(t, "mem:/new")
	calls := map[bool]int{}
	c.Creds = func(u User, mail bool, fn func() error) error {
		calls[mail]++
		return fn()
	}
	c.Hooks = Hooks{Switch: "true", Flush: "true", Kick: "true"}
	if rep := c.Convert(context.Background(), User{Name: "x", Current: "mem:/old"}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if calls[true] != 3 || calls[false] != 4 {
		t.Fatalf("as the user %d times, want 3 (passes, merge, verify); as the process %d, want 4 (switch, flush, flush, kick)", calls[true], calls[false])
	}
}

// TestStart: what a rerun does for each journal state.
func TestStart(t *testing.T) {
	cases := []struct {
		entry   Entry // User "x" filled in
		current string
		want    string // "fresh", "resume STEP", "already", "error"
	}{
		{Entry{}, "mem:/old", "fresh"},
		{Entry{}, "mem:/new", "already"},
		{Entry{Step: StepSynced, Old: "mem:/old", New: "mem:/new"}, "mem:/old", "resume synced"},
		{Entry{Step: StepSynced, Old: "mem:/other", New: "mem:/new"}, "mem:/old", "fresh"},
		{Entry{Step: StepSwitching, Old: "mem:/old", New: "mem:/new"}, "mem:/new", "resume switching"},
		{Entry{Step: StepKicked, Old: "mem:/old", New: "mem:/new"}, "mem:/new", "resume kicked"},
		{Entry{Step: StepKicked, Old: "mem:/old", New: "mem:/elsewhere"}, "mem:/elsewhere", "error"},
		{Entry{Step: StepVerified, Old: "mem:/old", New: "mem:/new"}, "mem:/new", "resume verified"},
		{Entry{Step: StepVerified, Old: "mem:/older", New: "mem:/old"}, "mem:/old", "fresh"},
		{Entry{Step: StepRollingBack, Old: "mem:/old", New: "mem:/new"}, "mem:/new", "error"},
		{Entry{Step: StepRollingBack, Old: "mem:/old", New: "mem:/x"}, "mem:/old", "error"},
		{Entry{Step: StepRolledBack, Old: "mem:/old", New: "mem:/new"}, "mem:/old", "fresh"},
	}
	for _, tc := range cases {
		c := newConfig(t, "mem:/new")
		if tc.entry.Step != StepNone {
			tc.entry.User = "x"
			if err := c.Journal.Put(tc.entry); err != nil {
				t.Fatal(err)
			}
		}
		r, err := c.start(User{Name: "x", Current: tc.current})
		got := ""
		switch {
		case errors.Is(err, errAlready):
			got = "already"
		case err != nil:
			got = "error"
		case r.entry.Step == StepNone:
			got = "fresh"
			if r.entry.Old != tc.current {
				got += " from " + r.entry.Old
			}
		default:
			got = "resume " + r.entry.Step.String()
		}
		if got != tc.want {
			t.Errorf("journal %s %s->%s, userdb %s: %s, want %s", tc.entry.Step, tc.entry.Old, tc.entry.New, tc.current, got, tc.want)
		}
	}
}

// TestRemoveOldRefusesUnproven: mail gone from the new location that no
// log shows the user expunged (mem keeps no expunge log) is tolerated by
// verification but counted, and --remove-old then keeps the old location.
func TestRemoveOldRefusesUnproven(t *testing.T) {
	mem.Reset()
	fill(t, "mem:/old", 6)
	c := newConfig(t, "mem:/new")
	c.Hooks.Switch = "true"
	c.RemoveOld = true
	c.afterStep = func(_ string, s Step) {
		if s == StepSwitched {
			change(t, "mem:/new", "INBOX", func(tx formats.Tx, m []formats.Message) { tx.Expunge(m[2].UID) })
		}
	}
	rep := c.Convert(context.Background(), User{Name: "x", Current: "mem:/old"})
	if formats.KindOf(rep.Err) != formats.KindNotPossible || !strings.Contains(rep.Error, "1 messages") || rep.Step != StepVerified {
		t.Fatalf("%+v", rep)
	}
	if v := rep.Verify; v == nil || v.ExpungedOnNew != 1 || v.ExpungesUnproven != 1 {
		t.Fatalf("verify: %+v", rep.Verify)
	}
	if e := c.Journal.Get("x"); e.Unproven != 1 || e.Step != StepVerified {
		t.Fatalf("journal: %+v", e)
	}
	if slices.Contains(rep.Steps, StepRemoved) {
		t.Fatalf("steps %v: removed", rep.Steps)
	}
}

// TestRollbackRestoresLine: after a conversion and a rollback the
// passwd-file is byte for byte what it was, for a user whose line had a
// userdb_mail field and for users whose line had none (the field, and
// the colons it needed, go again) — also when the rollout died between
// the switch and its journal record (the journal fails right after the
// passwd-file changed), and was resumed.
func TestRollbackRestoresLine(t *testing.T) {
	for _, user := range []string{"jane", "weird", "last-line-without-newline", "other"} {
		for _, dies := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/dies=%v", user, dies), func(t *testing.T) {
				mem.Reset()
				fill(t, "mem:/old", 3)
				pf := filepath.Join(t.TempDir(), "users")
				os.WriteFile(pf, []byte(passwdText), 0o600)
				c := newConfig(t, "mem:/new")
				u := User{Name: user, Current: "mem:/old", PasswdFile: pf}
				if dies {
					calls := 0
					c.Creds = func(_ User, mail bool, fn func() error) error {
						err := fn()
						if !mail {
							if calls++; calls == 2 { // PasswdLine, then SetPasswdField
								c.Journal.Close()
							}
						}
						return err
					}
					if rep := c.Convert(context.Background(), u); rep.Err == nil || c.Journal.Get(user).Step != StepSwitching {
						t.Fatalf("first run: %+v", rep)
					}
					if got, _ := os.ReadFile(pf); string(got) == passwdText {
						t.Fatal("the first run did not switch")
					}
					j, err := OpenJournal(c.Journal.Path())
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { j.Close() })
					c.Journal, c.Creds = j, nil
					u.Current = "mem:/new" // the userdb says so now
				}
				if rep := c.Convert(context.Background(), u); rep.Err != nil || rep.Status != "converted" {
					t.Fatalf("convert: %+v", rep)
				}
				if got, _ := os.ReadFile(pf); !strings.Contains(string(got), user+":") || !strings.Contains(string(got), "userdb_mail=mem:/new") {
					t.Fatalf("not switched:\n%s", got)
				}
				if rep := c.Rollback(context.Background(), u); rep.Err != nil || rep.Status != "rolled-back" {
					t.Fatalf("rollback: %+v", rep)
				}
				if got, _ := os.ReadFile(pf); string(got) != passwdText {
					t.Fatalf("passwd-file after the rollback:\n%q\nwant\n%q", got, passwdText)
				}
			})
		}
	}
}
