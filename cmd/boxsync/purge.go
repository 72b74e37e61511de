package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/doveconf"
)

const purgeUsage = "[-u <user>|-F <file>] [--source <location>]"

// purgeCommand is doveadm's purge: rewrite an mdbox store's files to drop
// the mail no mailbox references any more. Formats that free mail at
// expunge (maildir, sdbox, mbox) have nothing to purge, as for doveadm.
func (a *app) purgeCommand() *cli.Command {
	return &cli.Command{
		Name:      "purge",
		Usage:     "remove expunged mail from mdbox storage files (doveadm purge)",
		UsageText: "boxsync [global options] purge " + purgeUsage,
		Flags: quietBools([]cli.Flag{
			&cli.StringFlag{Name: "u", Aliases: []string{"user"}, Usage: "run for `USER`, looked up in the config's userdbs (home, uid/gid, mail)"},
			&cli.StringFlag{Name: "F", Aliases: []string{"user-file"}, Usage: "run for each user in `FILE`, one per line (- = stdin)"},
			&cli.StringFlag{Name: "source", Usage: "the user's mail `LOCATION` (default: mail_location)"},
		}),
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return &usageError{msg: err.Error(), usage: "purge " + purgeUsage}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				a.report("", &usageError{msg: "purge takes no arguments", usage: "purge " + purgeUsage})
				return nil
			}
			if c.IsSet("u") && c.IsSet("F") {
				a.report("", &usageError{msg: "-u and -F can't be used together", usage: "purge " + purgeUsage})
				return nil
			}
			o := &dsyncOpts{cmd: "purge", user: c.String("u"), userFile: c.String("F"), source: c.String("source")}
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			sel := userSelection{user: o.user, userFile: o.userFile}
			a.forEachUser(c.Context, cfg, sel, func(u mailUser) {
				if err := a.asUser(u, func() error { a.purgeUser(c.Context, cfg, o, u); return nil }); err != nil {
					a.report(u.name, err)
				}
			})
			return nil
		},
	}
}

func (a *app) purgeUser(ctx context.Context, cfg *doveconf.Config, o *dsyncOpts, u mailUser) {
	fail := func(err error) {
		if err != nil {
			a.log.errorf(u.name, "%s", err)
			a.status.fail(err)
		}
	}
	spec, _, err := sourceLocation(cfg, o, u)
	if err != nil {
		fail(err)
		return
	}
	loc, err := formats.ParseLocation(spec, formats.Vars{User: u.name, Home: u.home})
	if err != nil {
		fail(err)
		return
	}
	drv, err := lookupDriver(cfg, loc.Driver)
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
	st, err := drv.Open(ctx, loc, opt)
	if err != nil {
		fail(err)
		return
	}
	defer func() { fail(st.Close()) }()
	if err := a.purgeStore(ctx, u.name, loc.Driver, st); err != nil {
		a.status.fail(err)
	}
}

// purgeStore purges st if its format keeps expunged mail (formats.Purger)
// and logs the outcome; it returns the purge's error, already logged.
// Other formats have nothing to purge.
func (a *app) purgeStore(ctx context.Context, user, driver string, st formats.Store) error {
	p, ok := st.(formats.Purger)
	if !ok {
		a.log.debugf(user, "purge: %s stores have nothing to purge", driver)
		return nil
	}
	res, err := p.Purge(ctx)
	if err != nil {
		// doveadm: "Purging namespace '%s' failed: %s"
		a.log.errorf(user, "Purging namespace '' failed: %s", err)
	}
	if a.global.verbose || a.global.debug {
		a.log.infof(user, "purge: %d files rewritten, %d messages dropped, %d moved, %d bytes freed, %d files skipped",
			res.Files, res.Messages, res.Copied, res.Freed, res.Skipped)
	}
	return err
}
