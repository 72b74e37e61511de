package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/convert/state"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/all"
	"github.com/boxsync/boxsync/internal/doveconf"
)

// dsync is the action of sync and backup: check the command line, read the
// configuration, and run for each user.
func (a *app) dsync(cmd string) cli.ActionFunc {
	return func(c *cli.Context) error {
		o, errs := parseDsync(c, cmd)
		for _, err := range errs {
			a.report("", err)
		}
		if o == nil {
			return nil
		}
		if o.rawlog != "" {
			a.log.debugf("", "-r %s: a local destination has no stream to log (as in doveadm)", o.rawlog)
		}
		if o.notify {
			// doveadm passes -U to a remote dsync-server, whose
			// replicator it notifies; a local run notifies no one.
			a.log.debugf("", "-U: a local destination has no dsync-server to notify its replicator (as in doveadm)")
		}
		if o.replica && len(o.dest) > 0 {
			// cmd_dsync_init: logged, then ignored.
			a.log.errorf("", "Don't give mail location with -d parameter")
			o.dest = nil
		}
		cfg, err := a.loadConfig()
		if err != nil {
			return err
		}
		if o.ioTimeout > 0 && !cfg.Overridden("imapc_cmd_timeout") {
			// -T: dsync's stream timeout; here, an imapc side's
			// command timeout (-o imapc_cmd_timeout wins).
			if err := cfg.Override("imapc_cmd_timeout", fmt.Sprintf("%ds", int(o.ioTimeout/time.Second))); err != nil {
				return err
			}
		}
		// Users of different uids may run in child processes
		// (child.go); a child writes its report where the parent
		// merges it.
		a.forkable = true
		if p := a.env.getenv(childReportEnv); p != "" {
			o.report = p
		}
		if o.report != "" {
			a.runReport = &runReport{started: time.Now(), users: map[string]*userReport{}}
			defer func() {
				if err := a.runReport.write(o.report, a.status.get()); err != nil {
					a.report("", err)
				}
			}()
		}
		a.forEachUser(c.Context, cfg, o.users, func(u mailUser) {
			// The user's mail is read and written with the user's
			// credentials (credSwitch); failures are recorded inside.
			if err := a.asUser(u, func() error { a.backupUser(c.Context, cfg, o, u); return nil }); err != nil {
				a.report(u.name, err)
			}
		})
		return nil
	}
}

// sourceLocation finds the user's mail_location: --source, else -o
// mail_location, else the userdb's mail field, else the configuration
// (protocol doveadm { } first).
func sourceLocation(cfg *doveconf.Config, o *dsyncOpts, u mailUser) (loc, from string, err error) {
	if o.source != "" {
		return o.source, "--source", nil
	}
	st, ok := cfg.LookupProtocol("doveadm", "mail_location")
	switch {
	case st.Err == nil && ok && st.File == "" && st.Value != "":
		return st.Value, "-o mail_location", nil
	case u.mail != "":
		// The userdb's mail field overrides mail_location
		// (mail-storage-service.c: userdb fields are settings).
		return u.mail, "userdb " + u.source, nil
	case st.Err != nil:
		return "", "", &formats.Error{Kind: formats.KindConfig, Err: st.Err}
	case !ok || st.Value == "":
		return "", "", formats.Errorf(formats.KindConfig, "mail_location not set: use -o mail_location=… or --source")
	case st.File == "":
		return st.Value, "-o mail_location", nil
	}
	return st.Value, fmt.Sprintf("mail_location at %s:%d", st.File, st.Line), nil
}

// setting returns a doveadm setting's value, an unreadable value being a
// configuration error.
func setting(cfg *doveconf.Config, key string) (string, error) {
	st, _ := cfg.LookupProtocol("doveadm", key)
	if st.Err != nil {
		return "", &formats.Error{Kind: formats.KindConfig, Err: st.Err}
	}
	return st.Value, nil
}

// lookupDriver finds a format's driver and hands it the settings it takes
// (imapc_host, ...) from the config and -o.
func lookupDriver(cfg *doveconf.Config, name string) (formats.Driver, error) {
	d, ok := all.Lookup(name)
	if !ok {
		return nil, notImplemented("the " + name + " mail storage format")
	}
	c, ok := d.(formats.Configurable)
	if !ok {
		return d, nil
	}
	settings := map[string]string{}
	for _, key := range c.SettingNames() {
		v, err := setting(cfg, key)
		if err != nil {
			return nil, err
		}
		if v != "" {
			settings[key] = v
		}
	}
	return c.Configure(settings)
}

// backupUser runs one user's backup and records its outcome.
func (a *app) backupUser(ctx context.Context, cfg *doveconf.Config, o *dsyncOpts, u mailUser) {
	rep := a.reportFor(u.name)
	defer rep.finish()
	fail := func(err error) {
		if err == nil {
			return
		}
		rep.fail(err)
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			a.log.warnf(u.name, "Killed: %s", context.Cause(ctx))
		} else {
			a.log.errorf(u.name, "%s", err)
		}
		a.status.fail(err)
	}
	vars := formats.Vars{User: u.name, Home: u.home}
	var err error

	ns := inboxNamespaceOf(cfg)
	if len(o.namespaces) > 0 {
		if ns, err = selectNamespaces(cfg, o.namespaces); err != nil {
			fail(err)
			return
		}
		if o.mailbox != "" && !ns.inside(o.mailbox) {
			fail(&usageError{msg: fmt.Sprintf("-m %s: not a mailbox of the namespace %s", o.mailbox, ns.shown())})
			return
		}
		var exclude []string
		for _, x := range o.exclude {
			switch {
			case ns.inside(x):
				exclude = append(exclude, x)
			case !strings.ContainsAny(x, "*?"):
				// Names another namespace's mailbox: nothing here
				// matches it (as in doveadm).
			default:
				fail(&usageError{msg: fmt.Sprintf("-x %s: with -n %s, write masks with the namespace's prefix (%s…)", x, ns.prefix, ns.prefix)})
				return
			}
		}
		o.exclude = exclude
	}
	srcSpec, from, err := sourceLocation(cfg, o, u)
	if err != nil && ns.location == "" {
		fail(err)
		return
	}
	if ns.location != "" {
		// -n of a namespace with its own location= (namespace.go).
		srcSpec, from = ns.location, "namespace "+ns.shown()
	}
	a.log.debugf(u.name, "mail_location %s (from %s)", srcSpec, from)
	src, err := formats.ParseLocation(srcSpec, vars)
	if err != nil {
		fail(err)
		return
	}
	dstSpec, err := a.destination(cfg, o, u)
	if err != nil {
		fail(err)
		return
	}
	dst, err := formats.ParseLocation(dstSpec, vars)
	if err != nil {
		fail(err)
		return
	}
	var opt formats.OpenOptions
	if opt.Fsync, err = fsyncMode(cfg); err != nil {
		fail(err)
		return
	}
	var allMail convert.AllMail
	if o.allMailbox != "" {
		allMail, err = allMailOf(cfg, ns, o.allMailbox, vars)
		switch {
		case errors.Is(err, errNoAllMailbox):
			// dsync logs it and syncs without (exit 0) [observed].
			a.log.errorf(u.name, "%s", err)
		case err != nil:
			fail(err)
			return
		}
	}
	opts := convert.Options{
		AllMail:     allMail,
		Mode:        dsyncMode(o),
		Mailbox:     ns.storageName(o.mailbox),
		MailboxGUID: o.mailboxGUID,
		Exclude:     ns.storageNames(o.exclude),
		Since:       o.since,
		Until:       o.until,
		MaxSize:     o.maxSize,
		Flag:        o.syncFlag,
		Verbose:     a.global.verbose || a.global.debug,
	}
	if o.full {
		opts.Algorithm = convert.Full
	}
	if o.stateful {
		// dsync-brain.c: a state that does not decode is logged and
		// replaced by a full sync (exit 0); a valid one makes the run
		// stateful unless -f asks for a full one (the replicator's
		// periodic "-f -s STATE"). Either way a new state is printed.
		opts.State = state.State{}
		switch s, err := state.Decode(o.state); {
		case err != nil:
			var ie *state.InvalidError
			errors.As(err, &ie)
			a.log.errorf(u.name, "Saved sync state is invalid, falling back to full sync: %s", ie.Reason)
			opts.Algorithm = convert.Full
		case o.full:
			opts.State = s // kept for the mailboxes -m/-x leave out
		default:
			opts.State, opts.Algorithm = s, convert.Stateful
		}
	}
	if v, err := setting(cfg, "dsync_commit_msgs_interval"); err != nil {
		fail(err)
		return
	} else if v != "" {
		n, ok := parseUint(v)
		if !ok {
			fail(formats.Errorf(formats.KindConfig, "dsync_commit_msgs_interval=%q: want a number", v))
			return
		}
		opts.CommitEvery = int(n)
	}
	if o.reverse {
		// -R: backup in the other direction.
		src, dst = dst, src
	}
	if sameStore(src, dst) {
		// QUIRK: doveadm sets EX_CONFIG here, but the failed brain
		// overrides it with 75 [observed, dsync.md §1.5].
		fail(fmt.Errorf("Both source and destination mail_location points to same directory: %s", src.Path))
		return
	}
	srcDrv, err := lookupDriver(cfg, src.Driver)
	if err != nil {
		fail(err)
		return
	}
	dstDrv, err := lookupDriver(cfg, dst.Driver)
	if err != nil {
		fail(err)
		return
	}

	if o.lock {
		unlock, err := lockUser(ctx, u.home, o.lockTimeout)
		if err != nil {
			fail(err)
			return
		}
		a.log.debugf(u.name, "locked %s", filepath.Join(u.home, syncLockName))
		defer func() { fail(unlock()) }()
	}

	shown := fmt.Sprintf("%s -> %s", src, dst)
	var dry *dryRun
	if o.dryRun {
		opt.Fsync = formats.FsyncNever // copies, removed afterwards
		// Work on copies of the sides the run writes (dryrun.go).
		if dry, src, dst, err = newDryRun(opts.Mode, src, dst, a.global.verbose); err != nil {
			fail(err)
			return
		}
		defer dry.cleanup()
	}

	if a.global.verbose || a.global.debug {
		a.log.infof(u.name, "%s %s", opts.Mode, shown)
	}
	// Only a two-way sync writes to the source.
	srcStore, err := srcDrv.Open(ctx, src, formats.OpenOptions{ReadOnly: opts.Mode != convert.Sync, Fsync: opt.Fsync})
	if err != nil {
		fail(err)
		return
	}
	defer func() { fail(srcStore.Close()) }()
	dstStore, err := dstDrv.Open(ctx, dst, formats.OpenOptions{Create: true, Fsync: opt.Fsync})
	if err != nil {
		fail(err)
		return
	}
	defer func() { fail(dstStore.Close()) }()

	if dry != nil {
		if opts.Mode == convert.Sync {
			if err := dry.watch(ctx, "source", srcStore); err != nil {
				fail(err)
				return
			}
		}
		if err := dry.watch(ctx, "destination", dstStore); err != nil {
			fail(err)
			return
		}
	}

	lw := a.log.writer(u.name)
	opts.Log = lw
	var meter *progressMeter
	if a.global.verbose {
		meter = a.newProgressMeter(u.name)
		opts.Progress = meter.report
	}
	res, err := convert.Run(ctx, srcStore, dstStore, opts)
	if meter != nil {
		meter.done()
	}
	lw.Flush()
	// The engine logged each of res.Errors through opts.Log as it
	// happened; they only count here. The first one decides the exit
	// code unless a 75 follows.
	rep.result(res, o.dryRun)
	for _, e := range res.Errors {
		a.status.fail(e)
		rep.fail(e)
	}
	fail(err)
	if o.purge && !o.dryRun && err == nil && len(res.Errors) == 0 {
		// dsync_brain_deinit: the destination's brain purges when
		// nothing failed; a failed purge is logged only.
		a.purgeStore(ctx, u.name, dst.Driver, dstStore)
	}
	if dry != nil {
		plan, err := dry.plan(ctx)
		a.printPlan(u.name, plan)
		fail(err)
	}
	if o.stateful && err == nil && !o.dryRun {
		a.outMu.Lock()
		fmt.Fprintln(a.stdout, res.State)
		a.outMu.Unlock()
	}
	if res.Desync != "" {
		a.log.warnf(u.name, "Mailbox changes caused a desync. You may want to run dsync again: %s", res.Desync)
		a.status.desync()
	}
	if a.global.verbose || a.global.debug {
		a.log.infof(u.name, "mailboxes: %d created, %d deleted, %d renamed, %d synced, %d skipped; messages: %d saved (%d bytes), %d expunged, %d flag changes",
			res.Mailboxes.Created, res.Mailboxes.Deleted, res.Mailboxes.Renamed, res.Mailboxes.Synced, res.Mailboxes.Skipped,
			res.Messages.Saved, res.Bytes, res.Messages.Expunged, res.Messages.FlagsChanged)
		if o.allMailbox != "" {
			a.log.infof(u.name, "-a %s: %d saved messages read from a copy the written side already had", o.allMailbox, res.Local)
		}
	}
}

// destination is the user's destination: the operand, or with -d the
// user's mail_replica (the userdb field, else plugin { mail_replica };
// doveadm-dsync.c cmd_dsync_prerun), which must be a local location.
func (a *app) destination(cfg *doveconf.Config, o *dsyncOpts, u mailUser) (string, error) {
	if !o.replica {
		return o.dest[0], nil
	}
	spec := u.replica
	if spec == "" {
		v, err := setting(cfg, "plugin/mail_replica")
		if err != nil {
			return "", err
		}
		spec = v
	}
	if spec == "" {
		return "", formats.Errorf(formats.KindNotFound, "User has no mail_replica in userdb")
	}
	if _, err := localDestination([]string{spec}); err != nil {
		return "", fmt.Errorf("mail_replica %s: %w", spec, err)
	}
	a.log.debugf(u.name, "destination: mail_replica %s", spec)
	return spec, nil
}

// dsyncMode is the engine mode of a sync/backup command line.
func dsyncMode(o *dsyncOpts) convert.Mode {
	switch {
	case o.cmd == "sync" && o.oneway:
		return convert.OneWay
	case o.cmd == "sync":
		return convert.Sync
	}
	return convert.Backup
}

// sameStore tells whether two locations share their mail and index roots
// (doveadm-dsync.c cmd_dsync_run_local: paths_are_equal).
func sameStore(a, b formats.Location) bool {
	index := func(l formats.Location) string {
		if l.Index != "" {
			return l.Index
		}
		return l.Path
	}
	return a.Path == b.Path && index(a) == index(b)
}
