package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/boxsync/boxsync/convert"
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
		cfg, err := a.loadConfig()
		if err != nil {
			return err
		}
		a.forEachUser(c.Context, o, func(u mailUser) { a.backupUser(c.Context, cfg, o, u) })
		return nil
	}
}

// sourceLocation finds the user's mail_location: --source, else -o
// mail_location, else the configuration (protocol doveadm { } first).
func sourceLocation(cfg *doveconf.Config, o *dsyncOpts) (loc, from string, err error) {
	if o.source != "" {
		return o.source, "--source", nil
	}
	st, ok := cfg.LookupProtocol("doveadm", "mail_location")
	switch {
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
	fail := func(err error) {
		if err == nil {
			return
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			a.log.warnf(u.name, "Killed: %s", context.Cause(ctx))
		} else {
			a.log.errorf(u.name, "%s", err)
		}
		a.status.fail(err)
	}
	vars := formats.Vars{User: u.name, Home: u.home}

	srcSpec, from, err := sourceLocation(cfg, o)
	if err != nil {
		fail(err)
		return
	}
	a.log.debugf(u.name, "mail_location %s (from %s)", srcSpec, from)
	src, err := formats.ParseLocation(srcSpec, vars)
	if err != nil {
		fail(err)
		return
	}
	dst, err := formats.ParseLocation(o.dest[0], vars)
	if err != nil {
		fail(err)
		return
	}
	var opt formats.OpenOptions
	if v, err := setting(cfg, "mail_fsync"); err != nil {
		fail(err)
		return
	} else if opt.Fsync, err = formats.ParseFsyncMode(v); err != nil {
		fail(&formats.Error{Kind: formats.KindConfig, Err: err})
		return
	}
	opts := convert.Options{
		Mode:    dsyncMode(o),
		Mailbox: o.mailbox,
		Exclude: o.exclude,
		Verbose: a.global.verbose || a.global.debug,
	}
	if o.full {
		opts.Algorithm = convert.Full
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

	if a.global.verbose || a.global.debug {
		a.log.infof(u.name, "%s %s -> %s", opts.Mode, src, dst)
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

	lw := a.log.writer(u.name)
	opts.Log = lw
	res, err := convert.Run(ctx, srcStore, dstStore, opts)
	lw.Flush()
	// The engine logged each of res.Errors through opts.Log as it
	// happened; they only count here. The first one decides the exit
	// code unless a 75 follows.
	for _, e := range res.Errors {
		a.status.fail(e)
	}
	fail(err)
	if o.purge && err == nil && len(res.Errors) == 0 {
		// dsync_brain_deinit: the destination's brain purges when
		// nothing failed; a failed purge is logged only.
		a.purgeStore(ctx, u.name, dst.Driver, dstStore)
	}
	if res.Desync != "" {
		a.log.warnf(u.name, "Mailbox changes caused a desync. You may want to run dsync again: %s", res.Desync)
		a.status.desync()
	}
	if a.global.verbose || a.global.debug {
		a.log.infof(u.name, "mailboxes: %d created, %d deleted, %d synced, %d skipped; messages: %d saved (%d bytes), %d expunged, %d flag changes",
			res.Mailboxes.Created, res.Mailboxes.Deleted, res.Mailboxes.Synced, res.Mailboxes.Skipped,
			res.Messages.Saved, res.Bytes, res.Messages.Expunged, res.Messages.FlagsChanged)
	}
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
