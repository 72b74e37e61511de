package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/doveconf"
)

const resyncUsage = "[-u <user>|-F <file>] [-f] [--source <location>] <mailbox mask>"

// forceResyncCommand is doveadm's force-resync: rebuild the index of the
// mailboxes matching a mask from their mail files. For a dbox mailbox
// whose index files were lost (Dovecot then shows it empty, with a new
// UIDVALIDITY) it recovers the messages, their UIDs and GUIDs.
func (a *app) forceResyncCommand() *cli.Command {
	return &cli.Command{
		Name:      "force-resync",
		Usage:     "rebuild mailbox indexes from the mail files (doveadm force-resync)",
		UsageText: "boxsync [global options] force-resync " + resyncUsage,
		Flags: quietBools([]cli.Flag{
			&cli.StringFlag{Name: "u", Aliases: []string{"user"}, Usage: "run for `USER`, looked up in the config's userdbs (home, uid/gid, mail)"},
			&cli.StringFlag{Name: "F", Aliases: []string{"user-file"}, Usage: "run for each user in `FILE`, one per line (- = stdin)"},
			&cli.StringFlag{Name: "source", Usage: "the user's mail `LOCATION` (default: mail_location)"},
			&cli.BoolFlag{Name: "f", Aliases: []string{"fsck"}, Usage: "check everything (a rebuild always does)"},
		}),
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return &usageError{msg: err.Error(), usage: "force-resync " + resyncUsage}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				a.report("", &usageError{msg: "force-resync needs one mailbox mask", usage: "force-resync " + resyncUsage})
				return nil
			}
			if c.IsSet("u") && c.IsSet("F") {
				a.report("", &usageError{msg: "-u and -F can't be used together", usage: "force-resync " + resyncUsage})
				return nil
			}
			o := &dsyncOpts{cmd: "force-resync", user: c.String("u"), userFile: c.String("F"), source: c.String("source")}
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			mask := c.Args().First()
			sel := userSelection{user: o.user, userFile: o.userFile}
			a.forEachUser(c.Context, cfg, sel, func(u mailUser) {
				if err := a.asUser(u, func() error { a.resyncUser(c.Context, cfg, o, u, mask); return nil }); err != nil {
					a.report(u.name, err)
				}
			})
			return nil
		},
	}
}

func (a *app) resyncUser(ctx context.Context, cfg *doveconf.Config, o *dsyncOpts, u mailUser, mask string) {
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
	st, err := drv.Open(ctx, loc, formats.OpenOptions{})
	if err != nil {
		fail(err)
		return
	}
	defer func() { fail(st.Close()) }()
	rb, ok := st.(formats.Rebuilder)
	if !ok {
		fail(formats.Errorf(formats.KindNotPossible, "force-resync: %s stores have no index to rebuild from their files with boxsync yet", loc.Driver))
		return
	}
	boxes, err := st.Mailboxes(ctx)
	if err != nil {
		fail(err)
		return
	}
	n := 0
	for _, b := range boxes {
		if b.NoSelect || !convert.MatchMask(mask, b.Name) {
			continue
		}
		n++
		if err := rb.Rebuild(ctx, b.Name); err != nil {
			fail(err)
			continue
		}
		if a.global.verbose || a.global.debug {
			a.log.infof(u.name, "force-resync: rebuilt %s", b.Name)
		}
	}
	if n == 0 {
		fail(formats.Errorf(formats.KindNotFound, "force-resync: no mailbox matches %q", mask))
	}
}
