package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/convert/rollout"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/doveconf"
)

const convertUsage = "convert [-u USER|-A|-F FILE] [--workers N] [--dry-run] [--rollback USER] [options] <new-location>"

// convertCommand is `boxsync convert`: the whole per-user rollout from
// each user's current mail location to a new one (convert/rollout).
func (a *app) convertCommand() *cli.Command {
	return &cli.Command{
		Name:      "convert",
		Usage:     "move users to a new mail location while they keep reading mail",
		UsageText: "boxsync [global options] " + convertUsage,
		Description: "For each user: sync the current location into <new-location> until a pass moves\n" +
			"little, switch the userdb (passwd-file userdb_mail=, or --switch-cmd), flush the auth\n" +
			"cache, wait, kick the user's sessions, merge what reached the old location meanwhile\n" +
			"(sync -1) and verify every message, UID, UIDVALIDITY, flag and keyword. A journal\n" +
			"records each user's step, so a rerun resumes where a killed run stopped.",
		Flags: quietBools([]cli.Flag{
			&cli.StringSliceFlag{Name: "u", Aliases: []string{"user"}, Usage: "convert `USER` (* and ? masks over the userdb's users; repeatable)"},
			&cli.BoolFlag{Name: "A", Aliases: []string{"all-users"}, Usage: "convert every user the userdb lists"},
			&cli.StringFlag{Name: "F", Aliases: []string{"user-file"}, Usage: "convert each user in `FILE`, one per line (- = stdin)"},
			&cli.IntFlag{Name: "workers", Value: 1, Usage: "convert `N` users at once"},
			&cli.IntFlag{Name: "threshold", Value: 100, Usage: "repeat passes until one moves fewer than `N` messages"},
			&cli.IntFlag{Name: "max-passes", Value: 5, Usage: "at most `N` passes before the switch"},
			&cli.DurationFlag{Name: "wait", Value: 2 * time.Second, Usage: "between the auth cache flush and the kick"},
			&cli.StringFlag{Name: "switch-cmd", Usage: "switch the user's location with `CMD` (sh -c; default: rewrite userdb_mail= in the user's passwd-file)"},
			&cli.StringFlag{Name: "flush-cmd", Usage: "flush the auth cache with `CMD` (default: doveadm [-c CONF] auth cache flush $BOXSYNC_USER; \"\" = none)"},
			&cli.StringFlag{Name: "kick-cmd", Usage: "end the user's sessions with `CMD` (default: doveadm [-c CONF] kick $BOXSYNC_USER; \"\" = none)"},
			&cli.StringFlag{Name: "journal", Usage: "the rollout journal `FILE` (default: state_dir/boxsync-convert.journal)"},
			&cli.BoolFlag{Name: "remove-old", Usage: "delete the old location after a successful verification"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the plan, change nothing"},
			&cli.StringFlag{Name: "rollback", Usage: "merge `USER`'s changes since the switch back into the old location and switch back"},
			&cli.StringFlag{Name: "report", Usage: "write the JSON summary to `FILE` (- = stdout)"},
		}),
		Action: a.convert,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return &usageError{msg: err.Error(), usage: convertUsage}
		},
	}
}

func (a *app) convert(c *cli.Context) error {
	ctx := c.Context
	usage := func(msg string) error { return &usageError{msg: msg, usage: convertUsage} }
	rollback := c.String("rollback")
	newLoc := c.Args().First()
	switch {
	case c.NArg() > 1:
		return usage("convert takes one new location")
	case newLoc == "" && rollback == "":
		return usage("missing the new location")
	case rollback != "" && (c.IsSet("u") || c.Bool("A") || c.IsSet("F")):
		return usage("--rollback names its one user")
	case rollback == "" && !c.IsSet("u") && !c.Bool("A") && !c.IsSet("F"):
		return usage("name the users: -u USER, -A or -F FILE")
	case c.Int("workers") < 1 || c.Int("max-passes") < 1:
		return usage("--workers and --max-passes must be at least 1")
	}
	if newLoc != "" {
		if _, err := formats.ParseLocation(newLoc, formats.Vars{User: "u", Home: "/h"}); err != nil {
			return err
		}
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	db, err := a.newUsers(cfg)
	if err != nil {
		return err
	}
	creds := map[string]mailCreds{} // filled before any user runs
	journalPath := c.String("journal")
	if journalPath == "" {
		dir, _ := cfg.Get("state_dir")
		if dir == "" {
			dir = "/var/lib/dovecot"
		}
		journalPath = filepath.Join(dir, "boxsync-convert.journal")
	}
	var fsync formats.FsyncMode
	if v, err := setting(cfg, "mail_fsync"); err != nil {
		return err
	} else if fsync, err = formats.ParseFsyncMode(v); err != nil {
		return &formats.Error{Kind: formats.KindConfig, Err: err}
	}
	workers := c.Int("workers")
	engine := convert.Options{Log: io.Discard}
	if workers > 1 {
		engine.Workers = 1 // users run in parallel; mailboxes one by one
	}
	if v, err := setting(cfg, "dsync_commit_msgs_interval"); err != nil {
		return err
	} else if n, ok := parseUint(v); ok && v != "" {
		engine.CommitEvery = int(n)
	}
	rc := &rollout.Config{
		New:       newLoc,
		Threshold: c.Int("threshold"),
		MaxPasses: c.Int("max-passes"),
		Wait:      c.Duration("wait"),
		RemoveOld: c.Bool("remove-old"),
		Engine:    engine,
		Hooks:     a.convertHooks(c),
		Open: func(ctx context.Context, u rollout.User, spec string, write bool) (formats.Store, formats.Location, error) {
			loc, err := formats.ParseLocation(spec, formats.Vars{User: u.Name, Home: u.Home})
			if err != nil {
				return nil, loc, err
			}
			drv, err := lookupDriver(cfg, loc.Driver)
			if err != nil {
				return nil, loc, err
			}
			st, err := drv.Open(ctx, loc, formats.OpenOptions{Create: write, ReadOnly: !write, Fsync: fsync})
			return st, loc, err
		},
		// Mail steps run as the user (what they create is the user's, as
		// with Dovecot); the switch and the hooks as we are.
		Creds: func(u rollout.User, mail bool, fn func() error) error {
			if !mail {
				return a.creds.do(self, fn)
			}
			c, ok := creds[u.Name]
			if !ok {
				c = self
			}
			return a.creds.do(c, fn)
		},
		Log: func(user, level, msg string) {
			if level != "Info" || a.global.verbose || a.global.debug {
				a.log.line(user, level, msg)
			}
		},
	}
	if c.Bool("dry-run") {
		// The plan reads the journal without locking it against a
		// running rollout: it only prints.
		rc.Journal, err = rollout.ReadJournal(journalPath)
	} else {
		rc.Journal, err = rollout.OpenJournal(journalPath)
	}
	if err != nil {
		return err
	}
	defer rc.Journal.Close()

	var reps []*rollout.Report
	t0 := time.Now()
	if rollback != "" {
		u, cr, err := a.convertUser(cfg, db, rollback)
		if err != nil {
			return err
		}
		creds[u.Name] = cr
		e := rc.Journal.Get(rollback)
		if newLoc != "" && e.New != "" && e.New != newLoc {
			return usage(fmt.Sprintf("the journal converted %s to %s, not %s", rollback, e.New, newLoc))
		}
		rc.New = e.New
		if c.Bool("dry-run") {
			reps = []*rollout.Report{{User: rollback, Old: e.Old, New: e.New, Status: "planned", Step: e.Step,
				Plan: "sync -1 new -> old; switch back; flush; wait; kick; sync -1 new -> old"}}
		} else {
			reps = []*rollout.Report{rc.Rollback(ctx, u)}
		}
	} else {
		users, err := a.convertUsers(ctx, c, cfg, db, newLoc, creds)
		if err != nil {
			return err
		}
		finished := 0
		var bytes int64
		reps = rc.Run(ctx, users, workers, c.Bool("dry-run"), func(r *rollout.Report) {
			finished++
			bytes += r.Bytes
			if a.global.verbose && !c.Bool("dry-run") {
				el := time.Since(t0)
				eta := time.Duration(float64(el) / float64(finished) * float64(len(users)-finished))
				a.log.infof("", "%d/%d users done (%s %s), %s, %.1f MB/s, ETA %s", finished, len(users), r.User, r.Status,
					fmtBytes(bytes), float64(bytes)/1e6/el.Seconds(), eta.Round(time.Second))
			}
		})
	}
	a.convertSummary(c, reps, time.Since(t0))
	return nil
}

// convertHooks are the switch, flush and kick commands: the options, else
// doveadm's when it is on PATH (their failure then is only a warning:
// without a running Dovecot there is no cache and no session).
func (a *app) convertHooks(c *cli.Context) rollout.Hooks {
	h := rollout.Hooks{Switch: c.String("switch-cmd")}
	doveadm := ""
	if _, err := exec.LookPath("doveadm"); err == nil {
		doveadm = "doveadm"
		if a.global.config != "" {
			doveadm += " -c " + shellQuote(a.global.config)
		}
	}
	if c.IsSet("flush-cmd") {
		h.Flush = c.String("flush-cmd")
	} else if doveadm != "" {
		h.Flush, h.FlushOptional = doveadm+` auth cache flush "$BOXSYNC_USER"`, true
	}
	if c.IsSet("kick-cmd") {
		h.Kick = c.String("kick-cmd")
	} else if doveadm != "" {
		// doveadm kick exits 68 when the user has no session.
		h.Kick, h.KickOptional = doveadm+` kick "$BOXSYNC_USER" || [ $? = 68 ]`, true
	}
	return h
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// convertUser looks a user up in the userdb: the current location, the
// passwd-file holding the user, and the credentials of the user's mail.
func (a *app) convertUser(cfg *doveconf.Config, us *users, name string) (rollout.User, mailCreds, error) {
	mu, err := us.lookup(name)
	if err != nil {
		return rollout.User{}, self, err
	}
	current := mu.mail
	if current == "" {
		if current, err = setting(cfg, "mail_location"); err != nil {
			return rollout.User{}, self, err
		}
	}
	var pf string
	err = us.creds.do(self, func() error {
		us.lookupMu.Lock()
		defer us.lookupMu.Unlock()
		var err error
		pf, err = us.db.PasswdFile(name)
		return err
	})
	if err != nil {
		return rollout.User{}, self, &lookupError{err: err}
	}
	return rollout.User{Name: mu.name, Home: mu.home, Current: current, PasswdFile: pf}, mu.creds, nil
}

// convertUsers resolves -u (names and masks), -A and -F into users.
// Unknown users are reported (exit 67) and left out; the rest still run.
func (a *app) convertUsers(ctx context.Context, c *cli.Context, cfg *doveconf.Config, us *users, newLoc string, creds map[string]mailCreds) ([]rollout.User, error) {
	var names []string
	var all []string
	listAll := func() ([]string, error) {
		if all == nil {
			var err error
			if all, err = us.list(); err != nil {
				return nil, err
			}
		}
		return all, nil
	}
	if c.Bool("A") {
		l, err := listAll()
		if err != nil {
			return nil, err
		}
		names = append(names, l...)
	}
	for _, mask := range c.StringSlice("u") {
		if !strings.ContainsAny(mask, "*?") {
			names = append(names, mask)
			continue
		}
		l, err := listAll()
		if err != nil {
			return nil, err
		}
		for _, n := range l {
			if wildcardMatch(n, mask) {
				names = append(names, n)
			}
		}
	}
	if f := c.String("F"); f != "" {
		var r io.Reader = a.stdin
		if f != "-" {
			fh, err := os.Open(f)
			if err != nil {
				return nil, err
			}
			defer fh.Close()
			r = fh
		}
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if n := strings.TrimSpace(sc.Text()); n != "" && !strings.HasPrefix(n, "#") {
				names = append(names, n)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	var out []rollout.User
	for _, n := range names {
		if seen[n] || ctx.Err() != nil {
			continue
		}
		seen[n] = true
		u, cr, err := a.convertUser(cfg, us, n)
		if err != nil {
			a.report(n, err)
			continue
		}
		if sameLocation(u, u.Current, newLoc) {
			u.Current = newLoc
		}
		creds[u.Name] = cr
		out = append(out, u)
	}
	return out, nil
}

// sameLocation tells whether two location strings name the same store
// for u (after ~ and %-variables).
func sameLocation(u rollout.User, x, y string) bool {
	if x == y {
		return true
	}
	v := formats.Vars{User: u.Name, Home: u.Home}
	lx, err1 := formats.ParseLocation(x, v)
	ly, err2 := formats.ParseLocation(y, v)
	return err1 == nil && err2 == nil && lx.Driver == ly.Driver && sameStore(lx, ly)
}

// convertSummary prints the human summary, writes the JSON one and sets
// the exit code from every user's outcome.
func (a *app) convertSummary(c *cli.Context, reps []*rollout.Report, took time.Duration) {
	counts := map[string]int{}
	w := a.stdout
	for _, r := range reps {
		counts[r.Status]++
		switch {
		case r.Status == "planned" || r.Status == "skipped":
			fmt.Fprintf(w, "%s: %s: %s -> %s: %s\n", r.User, r.Status, r.Old, r.New, r.Plan)
		case r.Status == "failed":
			fmt.Fprintf(w, "%s: failed at step %s: %s\n", r.User, stepAfter(r.Step), firstLine(r.Error))
		default:
			fmt.Fprintf(w, "%s: %s: %s -> %s: %d passes, %d saved, %d expunged, %d flag changes, %s, %.1fs\n",
				r.User, r.Status, r.Old, r.New, r.Passes, r.Saved, r.Expunged, r.Flags, fmtBytes(r.Bytes), r.Seconds)
		}
		if r.Err != nil {
			a.log.errorf(r.User, "%s", r.Err)
			a.status.fail(r.Err)
		}
		if r.Desync {
			a.status.desync()
		}
	}
	var parts []string
	for _, s := range []string{"converted", "rolled-back", "planned", "skipped", "failed"} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	fmt.Fprintf(w, "%d users: %s (%s)\n", len(reps), strings.Join(parts, ", "), took.Round(time.Millisecond))
	if f := c.String("report"); f != "" {
		data, err := json.MarshalIndent(struct {
			Users   []*rollout.Report `json:"users"`
			Counts  map[string]int    `json:"counts"`
			Seconds float64           `json:"seconds"`
		}{reps, counts, took.Seconds()}, "", "  ")
		if err != nil {
			a.report("", err)
			return
		}
		data = append(data, '\n')
		if f == "-" {
			w.Write(data)
		} else if err := os.WriteFile(f, data, 0o644); err != nil {
			a.report("", fmt.Errorf("--report: %w", err))
		}
	}
}

// stepAfter names the step a failed user was working on.
func stepAfter(s rollout.Step) string {
	switch s {
	case rollout.StepNone:
		return "sync"
	case rollout.StepSwitching:
		return "switch"
	}
	return "after " + s.String()
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
