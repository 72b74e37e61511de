package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/userdb"
)

// User is one user to convert, as the userdb gave it.
type User struct {
	Name string
	Home string
	// Current is the user's mail location now: the userdb's mail field,
	// else the global mail_location.
	Current string
	// PasswdFile is the passwd-file userdb that holds the user; "" means
	// the switch needs Hooks.Switch.
	PasswdFile string
}

// Hooks are shell commands run with `sh -c` and BOXSYNC_USER,
// BOXSYNC_OLD_LOCATION and BOXSYNC_NEW_LOCATION in their environment. An
// empty command is not run (Switch: the passwd-file is rewritten).
type Hooks struct {
	Switch, Flush, Kick string
	// Optional: a failure of Flush or Kick is only a warning (the
	// defaults, which fail when Dovecot isn't running).
	FlushOptional, KickOptional bool
}

// OpenFunc opens a user's store at a mail location (unexpanded, "~" and
// %-variables are the user's). create is set for the destination.
type OpenFunc func(ctx context.Context, u User, location string, write bool) (formats.Store, formats.Location, error)

// Config is one rollout.
type Config struct {
	New       string // the new mail location, unexpanded (mdbox:~/mdbox)
	Threshold int    // stop repeating passes when one moved fewer messages
	MaxPasses int    // at most this many passes before the switch
	Wait      time.Duration
	Hooks     Hooks
	RemoveOld bool
	// Engine is the template for every engine run (commit interval,
	// workers per user); Mode is set per step.
	Engine  convert.Options
	Open    OpenFunc
	Journal *Journal
	// Creds, if set, runs fn with the user's credentials when mail is
	// set (the steps that read or write mail, see procedure, so that what
	// they create is the user's), else as the process itself (the switch
	// and the hooks: a passwd-file is usually root's). It is never held
	// across a wait. nil runs everything as the process.
	Creds func(u User, mail bool, fn func() error) error
	// Log receives progress lines (already prefixed by the caller per
	// user); nil discards them.
	Log func(user, level, msg string)

	slots     chan struct{}                   // Run's worker slots (nil: no limit)
	afterStep func(user string, s Step)       // tests: a hook after each recorded step
	settle    func(ctx context.Context) error // tests: replaces the wait before the kick
}

// Report is the outcome for one user.
type Report struct {
	User     string  `json:"user"`
	Old      string  `json:"old"`
	New      string  `json:"new"`
	Status   string  `json:"status"` // converted, failed, skipped, rolled-back, planned
	Step     Step    `json:"step"`   // the step reached
	Steps    []Step  `json:"steps"`  // the steps this run carried out
	Passes   int     `json:"passes"`
	Saved    int     `json:"saved"`
	Expunged int     `json:"expunged"`
	Flags    int     `json:"flag_changes"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	Verify   *Verify `json:"verify,omitempty"`
	Plan     string  `json:"plan,omitempty"`
	Error    string  `json:"error,omitempty"`
	Err      error   `json:"-"`
	Desync   bool    `json:"-"`
}

// The per-user procedure, as data: each step runs after the one the
// journal recorded and is recorded when it succeeded. Every step is
// idempotent, so a step interrupted before its record is simply redone.
//
// mail marks the steps that read or write mail: they take one of Run's
// worker slots. The others (the switch, the hooks, the wait) mostly wait,
// so a user in them holds no slot and other users' syncs go on.
var procedure = []struct {
	reached Step
	what    string
	run     func(*userRun, context.Context) error
	mail    bool
}{
	{StepSynced, "sync old -> new until a pass moves fewer than the threshold", (*userRun).passes, true},
	{StepSwitching, "", nil, false}, // recorded before the switch, so no pass ever runs after it
	{StepSwitched, "switch the userdb to the new location", (*userRun).switchLocation, false},
	{StepFlushed, "flush the auth cache", (*userRun).flush, false},
	{StepKicked, "wait, flush again, kick the user's sessions", (*userRun).kick, false},
	{StepMerged, "sync -1 old -> new (what reached the old location since the last pass)", (*userRun).merge, true},
	{StepVerified, "verify every message, UID, UIDVALIDITY, flag and keyword of old in new", (*userRun).verify, true},
	{StepRemoved, "remove the old location (--remove-old)", (*userRun).removeOld, true},
}

// next is the index in procedure of the first step to run for an entry.
func next(s Step) int {
	if s < StepSwitching {
		// Before the switch began the mark is stale: sync again.
		return 0
	}
	for i, p := range procedure {
		if p.reached == s {
			return i + 1
		}
	}
	return len(procedure)
}

type userRun struct {
	cfg        *Config
	u          User
	entry      Entry
	rep        *Report
	switchedAt time.Time // zero when the switch was in an earlier run
}

func (r *userRun) logf(level, format string, args ...any) {
	if r.cfg.Log != nil {
		r.cfg.Log(r.u.Name, level, fmt.Sprintf(format, args...))
	}
}

func (r *userRun) record(s Step) error {
	r.entry.Step = s
	r.entry.Error = ""
	r.rep.Step = s
	r.rep.Steps = append(r.rep.Steps, s)
	return r.cfg.Journal.Put(r.entry)
}

// start finds the journal entry for u and decides what to do.
func (c *Config) start(u User) (*userRun, error) {
	e := c.Journal.Get(u.Name)
	switch {
	case e.Step == StepNone, e.Step == StepRolledBack, e.New != c.New && (e.Step == StepVerified || e.Step == StepRemoved):
		// A fresh conversion (again after a rollback, or on to another location).
		if u.Current == c.New {
			return nil, errAlready
		}
		e = Entry{User: u.Name, Old: u.Current, New: c.New}
	case e.New != c.New:
		return nil, formats.Errorf(formats.KindNotPossible, "the journal has a conversion to %s at step %s: finish it (or --rollback) first", e.New, e.Step)
	case e.Step == StepRollingBack:
		return nil, formats.Errorf(formats.KindNotPossible, "a --rollback is unfinished: run it again")
	case e.Step < StepSwitching && u.Current != e.Old:
		// Not switched yet, but the userdb changed under us: start over.
		e = Entry{User: u.Name, Old: u.Current, New: c.New}
	}
	return &userRun{cfg: c, u: u, entry: e, rep: &Report{User: u.Name, Old: e.Old, New: c.New, Step: e.Step}}, nil
}

var errAlready = errors.New("already uses the new location")

// Convert runs the procedure for one user from where the journal left it.
func (c *Config) Convert(ctx context.Context, u User) *Report {
	t0 := time.Now()
	r, err := c.start(u)
	if errors.Is(err, errAlready) {
		return &Report{User: u.Name, Old: u.Current, New: c.New, Status: "skipped", Plan: "already uses " + c.New}
	}
	if err != nil {
		return failed(u, c.New, err)
	}
	defer func() { r.rep.Seconds = time.Since(t0).Seconds() }()
	last := len(procedure)
	if !c.RemoveOld {
		last-- // removeOld is the last step
	}
	if r.entry.Step >= StepVerified && (!c.RemoveOld || r.entry.Step >= StepRemoved) {
		r.rep.Status = "skipped"
		r.rep.Plan = "converted already (journal: " + r.entry.Step.String() + ")"
		return r.rep
	}
	for _, p := range procedure[next(r.entry.Step):last] {
		if err := ctx.Err(); err != nil {
			return r.fail(err)
		}
		if p.run != nil {
			r.logf("Info", "%s", p.what)
			if err := c.runStep(ctx, r, p.run, p.mail); err != nil {
				return r.fail(err)
			}
		}
		if err := r.record(p.reached); err != nil {
			return r.fail(err)
		}
		if c.afterStep != nil {
			c.afterStep(u.Name, p.reached)
		}
	}
	r.rep.Status = "converted"
	return r.rep
}

// runStep runs one step, in a worker slot if it touches mail.
func (c *Config) runStep(ctx context.Context, r *userRun, run func(*userRun, context.Context) error, mail bool) error {
	if mail && c.slots != nil {
		select {
		case c.slots <- struct{}{}:
			defer func() { <-c.slots }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if mail {
		return c.as(r.u, true, func() error { return run(r, ctx) })
	}
	return run(r, ctx)
}

// as runs fn through Creds.
func (c *Config) as(u User, mail bool, fn func() error) error {
	if c.Creds == nil {
		return fn()
	}
	return c.Creds(u, mail, fn)
}

func failed(u User, newLoc string, err error) *Report {
	return &Report{User: u.Name, Old: u.Current, New: newLoc, Status: "failed", Error: err.Error(), Err: err}
}

func (r *userRun) fail(err error) *Report {
	r.rep.Status = "failed"
	r.rep.Err = err
	r.rep.Error = err.Error()
	if !errors.Is(err, context.Canceled) {
		e := r.entry
		e.Error = err.Error()
		r.cfg.Journal.Put(e) // best effort: the step stays where it was
	}
	return r.rep
}

// Plan describes what Convert would do for u, without doing it.
func (c *Config) Plan(u User) *Report {
	r, err := c.start(u)
	if errors.Is(err, errAlready) {
		return &Report{User: u.Name, Old: u.Current, New: c.New, Status: "skipped", Plan: "already uses " + c.New}
	}
	if err != nil {
		return failed(u, c.New, err)
	}
	rep := r.rep
	rep.Status = "planned"
	if r.entry.Step >= StepVerified && (!c.RemoveOld || r.entry.Step >= StepRemoved) {
		rep.Status = "skipped"
		rep.Plan = "converted already (journal: " + r.entry.Step.String() + ")"
		return rep
	}
	var lines []string
	if r.entry.Step > StepNone {
		lines = append(lines, "resume after "+r.entry.Step.String())
	}
	last := len(procedure)
	if !c.RemoveOld {
		last--
	}
	for _, p := range procedure[next(r.entry.Step):last] {
		switch {
		case p.run == nil:
		case p.reached == StepSwitched && c.Hooks.Switch != "":
			lines = append(lines, "switch: "+c.Hooks.Switch)
		case p.reached == StepSwitched && u.PasswdFile != "":
			lines = append(lines, fmt.Sprintf("switch: userdb_mail=%s in %s", c.New, u.PasswdFile))
		case p.reached == StepSwitched:
			lines = append(lines, "switch: IMPOSSIBLE (not in a passwd-file userdb and no --switch-cmd)")
			rep.Status = "failed"
			rep.Err = formats.Errorf(formats.KindParams, "%s is not in a passwd-file userdb: use --switch-cmd", u.Name)
			rep.Error = rep.Err.Error()
		case p.reached == StepFlushed:
			lines = append(lines, "flush: "+orNone(c.Hooks.Flush))
		case p.reached == StepKicked:
			lines = append(lines, fmt.Sprintf("wait %s, kick: %s", c.Wait, orNone(c.Hooks.Kick)))
		case p.reached == StepSynced:
			lines = append(lines, fmt.Sprintf("sync %s -> %s (passes until < %d messages move, at most %d)", r.entry.Old, c.New, c.Threshold, c.MaxPasses))
		default:
			lines = append(lines, p.what)
		}
	}
	rep.Plan = strings.Join(lines, "; ")
	return rep
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// engine runs one engine pass from one location to the other.
func (r *userRun) engine(ctx context.Context, mode convert.Mode, from, to string) (convert.Result, error) {
	src, _, err := r.cfg.Open(ctx, r.u, from, false)
	if errors.Is(err, formats.ErrNotFound) {
		// A user who never had mail: Dovecot creates the location on
		// first use; so do we, so that the user can be switched.
		src, _, err = r.cfg.Open(ctx, r.u, from, true)
	}
	if err != nil {
		return convert.Result{}, err
	}
	defer src.Close()
	dst, _, err := r.cfg.Open(ctx, r.u, to, true)
	if err != nil {
		return convert.Result{}, err
	}
	opt := r.cfg.Engine
	opt.Mode = mode
	res, err := convert.Run(ctx, src, dst, opt)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	r.rep.Saved += res.Messages.Saved
	r.rep.Expunged += res.Messages.Expunged
	r.rep.Flags += res.Messages.FlagsChanged
	r.rep.Bytes += res.Bytes
	if err == nil && len(res.Errors) > 0 {
		err = res.Errors[0]
	}
	return res, err
}

// passes is steps 1 and 2: backups of old into new (old is only read;
// new becomes its mirror) until one moves fewer than Threshold messages,
// then the mark of new.
func (r *userRun) passes(ctx context.Context) error {
	r.entry.Passes = 0
	for {
		res, err := r.engine(ctx, convert.Backup, r.entry.Old, r.entry.New)
		if err != nil {
			return err
		}
		r.entry.Passes++
		r.rep.Passes++
		moved := res.Messages.Saved + res.Messages.Expunged + res.Messages.FlagsChanged
		r.logf("Info", "pass %d: %d messages moved (%d saved, %d expunged, %d flag changes)", r.entry.Passes, moved, res.Messages.Saved, res.Messages.Expunged, res.Messages.FlagsChanged)
		if (moved < r.cfg.Threshold && res.Desync == "") || r.entry.Passes >= r.cfg.MaxPasses {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	mark, err := r.mark(ctx)
	if err != nil {
		return err
	}
	r.entry.Mark = mark
	return nil
}

// mark reads the new location's mailbox states.
func (r *userRun) mark(ctx context.Context) ([]MailboxMark, error) {
	st, _, err := r.cfg.Open(ctx, r.u, r.entry.New, false)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	boxes, err := st.Mailboxes(ctx)
	if err != nil {
		return nil, err
	}
	var out []MailboxMark
	for _, b := range boxes {
		if b.NoSelect {
			continue
		}
		mb, err := st.Open(ctx, b.Name)
		if err != nil {
			return nil, err
		}
		s, err := mb.Status(ctx)
		mb.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, MailboxMark{Name: b.Name, UIDValidity: s.UIDValidity, UIDNext: s.UIDNext, HighestModSeq: s.HighestModSeq})
	}
	return out, nil
}

// switchLocation is step 3: the userdb names the new location.
func (r *userRun) switchLocation(ctx context.Context) error {
	if err := r.switchTo(ctx, r.entry.Old, r.entry.New); err != nil {
		return err
	}
	r.switchedAt = time.Now()
	return nil
}

// settle waits Config.Wait, and at least until the second after the
// switch has begun.
//
// QUIRK: Dovecot's auth process looks at a passwd-file's mtime at most once
// per second of its clock (db-passwd-file.c passwd_file_sync compares
// last_sync_time with ioloop_time). A lookup in the second of the rewrite
// may still answer, and cache, the old line, even after the flush that
// follows the switch. So the cache is flushed again once that second is
// over, right before the kick: every lookup after it reloads the file.
func (r *userRun) settle(ctx context.Context) error {
	if r.cfg.settle != nil {
		return r.cfg.settle(ctx)
	}
	at := r.switchedAt
	if at.IsZero() {
		at = time.Now() // resumed: the switch was in an earlier run
	}
	until := at.Truncate(time.Second).Add(time.Second + 20*time.Millisecond)
	if w := time.Now().Add(r.cfg.Wait); w.After(until) {
		until = w
	}
	select {
	case <-time.After(time.Until(until)):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *userRun) switchTo(ctx context.Context, from, to string) error {
	if r.cfg.Hooks.Switch != "" {
		return r.hook(ctx, "switch", r.cfg.Hooks.Switch, false, from, to)
	}
	if r.u.PasswdFile == "" {
		return formats.Errorf(formats.KindParams, "%s is not in a passwd-file userdb: use --switch-cmd", r.u.Name)
	}
	if to == r.entry.New && r.entry.OldLine == "" {
		// The line before the first switch, in the journal before the
		// file changes: a rollback puts it back byte for byte, even
		// after a kill between the switch and its journal record.
		err := r.cfg.as(r.u, false, func() (err error) {
			r.entry.OldLine, err = userdb.PasswdLine(r.u.PasswdFile, r.u.Name)
			return err
		})
		if err != nil {
			return formats.Wrap(err, formats.KindTemp, "switch", "", 0, r.u.PasswdFile)
		}
		if err := r.cfg.Journal.Put(r.entry); err != nil {
			return err
		}
	}
	if to == r.entry.Old && r.entry.OldLine != "" {
		var restored bool
		err := r.cfg.as(r.u, false, func() (err error) {
			restored, err = userdb.RestorePasswdLine(r.u.PasswdFile, r.u.Name, "userdb_mail", r.entry.OldLine)
			return err
		})
		if err != nil {
			return formats.Wrap(err, formats.KindTemp, "switch back", "", 0, r.u.PasswdFile)
		}
		if restored {
			r.logf("Info", "%s: %s's line as it was before the conversion", r.u.PasswdFile, r.u.Name)
			return nil
		}
		r.logf("Warning", "%s: %s's line was edited since the switch: only its userdb_mail goes back", r.u.PasswdFile, r.u.Name)
	}
	if to == r.entry.Old && r.entry.HadField {
		to = r.entry.OldField // switching back: the field as it was
	}
	var old string
	var had bool
	err := r.cfg.as(r.u, false, func() (err error) {
		old, had, err = userdb.SetPasswdField(r.u.PasswdFile, r.u.Name, "userdb_mail", to)
		return err
	})
	if err != nil {
		return formats.Wrap(err, formats.KindTemp, "switch", "", 0, r.u.PasswdFile)
	}
	if to == r.entry.New && (!had || old != r.entry.New) {
		// The first switch (a redone one finds the new value).
		r.entry.OldField, r.entry.HadField = old, had
	}
	r.logf("Info", "%s: userdb_mail=%s", r.u.PasswdFile, to)
	return nil
}

func (r *userRun) flush(ctx context.Context) error {
	return r.hook(ctx, "flush", r.cfg.Hooks.Flush, r.cfg.Hooks.FlushOptional, r.entry.Old, r.entry.New)
}

// kick is step 4: after the wait (settle), the auth cache is flushed once
// more and the user's sessions are ended.
func (r *userRun) kick(ctx context.Context) error {
	if err := r.settle(ctx); err != nil {
		return err
	}
	if err := r.flush(ctx); err != nil {
		return err
	}
	return r.hook(ctx, "kick", r.cfg.Hooks.Kick, r.cfg.Hooks.KickOptional, r.entry.Old, r.entry.New)
}

// hook runs one command through sh -c.
func (r *userRun) hook(ctx context.Context, what, command string, optional bool, oldLoc, newLoc string) error {
	if command == "" {
		return nil
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Env = append(os.Environ(),
		"BOXSYNC_USER="+r.u.Name,
		"BOXSYNC_OLD_LOCATION="+oldLoc,
		"BOXSYNC_NEW_LOCATION="+newLoc)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := r.cfg.as(r.u, false, cmd.Run)
	msg := strings.TrimSpace(out.String())
	if err == nil {
		if msg != "" {
			r.logf("Info", "%s: %s", what, msg)
		}
		return nil
	}
	if optional {
		r.logf("Warning", "%s (%s) failed, going on: %v %s", what, command, err, msg)
		return nil
	}
	return formats.Errorf(formats.KindTemp, "%s hook %q: %v: %s", what, command, err, msg)
}

// merge is step 5: what reached the old location after the last pass
// goes to new, as sync -1 would merge it, with one addition: flags. The
// engine lets the higher modseq win, but modseqs of two stores don't
// compare; the mark does. A message that new has not changed since the
// mark (its modseq is at most the mark's) takes old's flags, first; then
// the engine's one-way merge copies new mail, propagates old's expunges
// and, for messages changed on new, keeps new's flags (their modseqs are
// above new's mark, which the passes raised to at least old's).
func (r *userRun) merge(ctx context.Context) error {
	if err := r.oldFlagsWin(ctx); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		res, err := r.engine(ctx, convert.OneWay, r.entry.Old, r.entry.New)
		if err != nil {
			return err
		}
		if res.Desync == "" || attempt == 3 {
			if res.Desync != "" {
				r.rep.Desync = true
			}
			return nil
		}
	}
}

func (r *userRun) markOf(name string) (MailboxMark, bool) {
	for _, m := range r.entry.Mark {
		if m.Name == name {
			return m, true
		}
	}
	return MailboxMark{}, false
}

func (r *userRun) oldFlagsWin(ctx context.Context) error {
	old, _, err := r.cfg.Open(ctx, r.u, r.entry.Old, false)
	if err != nil {
		return err
	}
	defer old.Close()
	nw, _, err := r.cfg.Open(ctx, r.u, r.entry.New, true)
	if err != nil {
		return err
	}
	defer nw.Close()
	for _, mk := range r.entry.Mark {
		if err := r.oldFlagsWinIn(ctx, old, nw, mk); err != nil {
			return err
		}
	}
	return nil
}

func (r *userRun) oldFlagsWinIn(ctx context.Context, old, nw formats.Store, mk MailboxMark) error {
	ob, err := old.Open(ctx, mk.Name)
	if errors.Is(err, formats.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	defer ob.Close()
	nb, err := nw.Open(ctx, mk.Name)
	if errors.Is(err, formats.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	defer nb.Close()
	ost, err := ob.Status(ctx)
	if err != nil {
		return err
	}
	ns, err := nb.Status(ctx)
	if err != nil {
		return err
	}
	if ns.UIDValidity != mk.UIDValidity || ost.UIDValidity != mk.UIDValidity {
		return nil // recreated since: the engine's merge decides
	}
	kw := ost.Caps.Keywords && ns.Caps.Keywords
	newMsgs := map[formats.UID]formats.Message{}
	for m, err := range nb.Messages(ctx, 1) {
		if err != nil {
			return err
		}
		if m.UID < mk.UIDNext {
			newMsgs[m.UID] = m
		}
	}
	var tx formats.Tx
	defer func() {
		if tx != nil {
			tx.Rollback()
		}
	}()
	for m, err := range ob.Messages(ctx, 1) {
		if err != nil {
			return err
		}
		n, ok := newMsgs[m.UID]
		if !ok || (ns.Caps.ModSeqs && n.ModSeq > mk.HighestModSeq) {
			continue // expunged or changed on new since the switch: new's
		}
		if m.GUID != "" && n.GUID != "" && m.GUID != n.GUID {
			continue
		}
		if n.Flags == m.Flags && (!kw || formats.EqualKeywords(n.Keywords, m.Keywords)) {
			continue
		}
		if tx == nil {
			if tx, err = nb.Begin(ctx); err != nil {
				return err
			}
		}
		kws := n.Keywords
		if kw {
			kws = m.Keywords
		}
		if err := tx.SetFlags(m.UID, m.Flags, kws); err != nil {
			return err
		}
		r.rep.Flags++
	}
	if tx == nil {
		return nil
	}
	err = tx.Commit(ctx)
	tx = nil
	return err
}

// removeOld is the optional last step, after verification (again: the
// rollout that verified may have been long ago). It refuses when the
// verification that converted the user had to take mail gone from the
// new location for expunges without proof (Entry.Unproven). Mail gone
// from new since that verification, unproven because the log has been
// rotated meanwhile, was on new then: it is the user's live mailbox's
// business, not the conversion's.
func (r *userRun) removeOld(ctx context.Context) error {
	if r.entry.Unproven > 0 {
		return formats.Errorf(formats.KindNotPossible, "--remove-old: %d messages of the old location %s were gone from the new one at verification with no log to show the user expunged them; compare and remove the old location by hand", r.entry.Unproven, r.entry.Old)
	}
	if err := r.verifyOnce(ctx); err != nil && !errors.Is(err, formats.ErrNotFound) {
		return err
	}
	_, oldLoc, err := r.cfg.Open(ctx, r.u, r.entry.Old, false)
	if err != nil {
		if errors.Is(err, formats.ErrNotFound) {
			return nil // removed already
		}
		return err
	}
	_, newLoc, err := r.cfg.Open(ctx, r.u, r.entry.New, false)
	if err != nil {
		return err
	}
	var dirs []string
	for _, d := range []string{oldLoc.Path, oldLoc.Index, oldLoc.Control, oldLoc.Alt} {
		if d == "" || d == "MEMORY" {
			continue
		}
		for _, n := range []string{newLoc.Path, newLoc.Index, newLoc.Control, newLoc.Alt} {
			if n != "" && (within(n, d) || within(d, n)) {
				return formats.Errorf(formats.KindNotPossible, "--remove-old: the old location's %s and the new one's %s overlap; remove it by hand", d, n)
			}
		}
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			return formats.Wrap(err, formats.KindTemp, "remove old location", "", 0, d)
		}
		r.logf("Info", "removed %s", d)
	}
	return nil
}

func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// Rollback merges what changed on the new location since the switch back
// into the old one (sync -1 new -> old), switches the userdb back, flushes,
// kicks, and merges once more.
func (c *Config) Rollback(ctx context.Context, u User) *Report {
	t0 := time.Now()
	e := c.Journal.Get(u.Name)
	rep := &Report{User: u.Name, Old: e.Old, New: e.New}
	defer func() { rep.Seconds = time.Since(t0).Seconds() }()
	fail := func(err error) *Report {
		rep.Status, rep.Err, rep.Error = "failed", err, err.Error()
		return rep
	}
	switch {
	case e.Step == StepNone:
		return fail(formats.Errorf(formats.KindNotFound, "the journal %s has no conversion of %s", c.Journal.Path(), u.Name))
	case e.Step == StepRolledBack:
		rep.Status, rep.Plan = "skipped", "rolled back already"
		return rep
	case e.Step == StepRemoved:
		return fail(formats.Errorf(formats.KindNotPossible, "the old location %s was removed (--remove-old): nothing to roll back to", e.Old))
	}
	r := &userRun{cfg: c, u: u, entry: e, rep: rep}
	if e.Step >= StepSwitching {
		if err := r.record(StepRollingBack); err != nil {
			return fail(err)
		}
		merge := func() error {
			return c.runStep(ctx, r, func(r *userRun, ctx context.Context) error {
				_, err := r.engine(ctx, convert.OneWay, e.New, e.Old)
				return err
			}, true)
		}
		if err := merge(); err != nil {
			return fail(err)
		}
		if err := r.switchTo(ctx, e.New, e.Old); err != nil {
			return fail(err)
		}
		r.switchedAt = time.Now()
		for _, step := range []func() error{
			func() error { return r.hook(ctx, "flush", c.Hooks.Flush, c.Hooks.FlushOptional, e.New, e.Old) },
			func() error { return r.settle(ctx) },
			func() error { return r.hook(ctx, "flush", c.Hooks.Flush, c.Hooks.FlushOptional, e.New, e.Old) },
			func() error { return r.hook(ctx, "kick", c.Hooks.Kick, c.Hooks.KickOptional, e.New, e.Old) },
		} {
			if err := step(); err != nil {
				return fail(err)
			}
		}
		if err := merge(); err != nil {
			return fail(err)
		}
	}
	if err := r.record(StepRolledBack); err != nil {
		return fail(err)
	}
	rep.Status = "rolled-back"
	return rep
}

// InFlightPerWorker is how many users Run keeps in progress per worker:
// while one waits (for the auth cache, for its sessions to end) others
// use the worker slot.
const InFlightPerWorker = 8

// Run converts users, at most workers of them reading or writing mail at
// any moment (and at most InFlightPerWorker*workers in progress), and
// returns their reports in the order of users. One user's failure never
// stops the others. done is called as each user finishes (progress).
func (c *Config) Run(ctx context.Context, users []User, workers int, dryRun bool, done func(*Report)) []*Report {
	if workers < 1 {
		workers = 1
	}
	c.slots = make(chan struct{}, workers)
	defer func() { c.slots = nil }()
	reps := make([]*Report, len(users))
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := 0; w < min(workers*InFlightPerWorker, max(len(users), 1)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				var rep *Report
				if dryRun {
					rep = c.Plan(users[i])
				} else {
					rep = c.Convert(ctx, users[i])
				}
				reps[i] = rep
				if done != nil {
					mu.Lock()
					done(rep)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range users {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	for i, r := range reps {
		if r == nil {
			reps[i] = failed(users[i], c.New, context.Cause(ctx))
		}
	}
	return reps
}
