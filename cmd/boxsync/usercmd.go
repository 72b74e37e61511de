package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/doveconf"
)

// storeCommand is a doveadm maintenance command run on each user's own
// mail location (purge, force-resync): -u/-F select users through the
// userdbs, --source overrides the location, the work runs with the user's
// credentials on one opened store, and failures are logged per user.
type storeCommand struct {
	name, usage, help string
	flags             []cli.Flag // beyond -u, -F and --source
	// check validates the operands; a non-empty message is a usage error.
	check func(c *cli.Context) string
	// run works on the user's store; its error is logged for the user.
	run func(ctx context.Context, c *cli.Context, u mailUser, loc formats.Location, st formats.Store) error
}

func (a *app) storeCommand(sc storeCommand) *cli.Command {
	usage := func(msg string) error { return &usageError{msg: msg, usage: sc.name + " " + sc.usage} }
	return &cli.Command{
		Name:      sc.name,
		Usage:     sc.help,
		UsageText: "boxsync [global options] " + sc.name + " " + sc.usage,
		Flags: quietBools(append([]cli.Flag{
			&cli.StringFlag{Name: "u", Aliases: []string{"user"}, Usage: "run for `USER`, looked up in the config's userdbs (home, uid/gid, mail)"},
			&cli.StringFlag{Name: "F", Aliases: []string{"user-file"}, Usage: "run for each user in `FILE`, one per line (- = stdin)"},
			&cli.StringFlag{Name: "source", Usage: "the user's mail `LOCATION` (default: mail_location)"},
		}, sc.flags...)),
		OnUsageError: func(c *cli.Context, err error, _ bool) error { return usage(err.Error()) },
		Action: func(c *cli.Context) error {
			if msg := sc.check(c); msg != "" {
				a.report("", usage(msg))
				return nil
			}
			if c.IsSet("u") && c.IsSet("F") {
				a.report("", usage("-u and -F can't be used together"))
				return nil
			}
			o := &dsyncOpts{cmd: sc.name, user: c.String("u"), userFile: c.String("F"), source: c.String("source")}
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			sel := userSelection{user: o.user, userFile: o.userFile}
			a.forEachUser(c.Context, cfg, sel, func(u mailUser) {
				err := a.asUser(u, func() error {
					a.storeCommandUser(c, cfg, o, u, sc.run)
					return nil
				})
				if err != nil {
					a.report(u.name, err)
				}
			})
			return nil
		},
	}
}

// storeCommandUser opens the user's store and runs fn on it.
func (a *app) storeCommandUser(c *cli.Context, cfg *doveconf.Config, o *dsyncOpts, u mailUser,
	fn func(context.Context, *cli.Context, mailUser, formats.Location, formats.Store) error) {
	ctx := c.Context
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
	fsync, err := fsyncMode(cfg)
	if err != nil {
		fail(err)
		return
	}
	st, err := drv.Open(ctx, loc, formats.OpenOptions{Fsync: fsync})
	if err != nil {
		fail(err)
		return
	}
	defer func() { fail(st.Close()) }()
	fail(fn(ctx, c, u, loc, st))
}

// fsyncMode is the mail_fsync setting.
func fsyncMode(cfg *doveconf.Config) (formats.FsyncMode, error) {
	v, err := setting(cfg, "mail_fsync")
	if err != nil {
		return 0, err
	}
	m, err := formats.ParseFsyncMode(v)
	if err != nil {
		return 0, &formats.Error{Kind: formats.KindConfig, Err: err}
	}
	return m, nil
}
