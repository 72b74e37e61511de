package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
)

const resyncUsage = "[-u <user>|-F <file>] [-f] [--source <location>] <mailbox mask>"

// forceResyncCommand is doveadm's force-resync: rebuild the index of the
// mailboxes matching a mask from their mail files. For a dbox mailbox
// whose index files were lost (Dovecot then shows it empty, with a new
// UIDVALIDITY) it recovers the messages, their UIDs and GUIDs.
func (a *app) forceResyncCommand() *cli.Command {
	return a.storeCommand(storeCommand{
		name:  "force-resync",
		usage: resyncUsage,
		help:  "rebuild mailbox indexes from the mail files (doveadm force-resync)",
		flags: []cli.Flag{&cli.BoolFlag{Name: "f", Aliases: []string{"fsck"}, Usage: "check everything (a rebuild always does)"}},
		check: func(c *cli.Context) string {
			if c.NArg() != 1 {
				return "force-resync needs one mailbox mask"
			}
			return ""
		},
		run: func(ctx context.Context, c *cli.Context, u mailUser, loc formats.Location, st formats.Store) error {
			return a.resync(ctx, u, loc, st, c.Args().First())
		},
	})
}

// resync rebuilds the mailboxes of st matching mask.
func (a *app) resync(ctx context.Context, u mailUser, loc formats.Location, st formats.Store, mask string) error {
	rb, ok := st.(formats.Rebuilder)
	if !ok {
		return formats.Errorf(formats.KindNotPossible, "force-resync: %s stores have no index to rebuild from their files with boxsync yet", loc.Driver)
	}
	boxes, err := st.Mailboxes(ctx)
	if err != nil {
		return err
	}
	n := 0
	for _, b := range boxes {
		if b.NoSelect || !convert.MatchMask(mask, b.Name) {
			continue
		}
		n++
		if err := rb.Rebuild(ctx, b.Name); err != nil {
			// Each failed mailbox is logged; the others go on.
			a.log.errorf(u.name, "%s", err)
			a.status.fail(err)
			continue
		}
		if a.global.verbose || a.global.debug {
			a.log.infof(u.name, "force-resync: rebuilt %s", b.Name)
		}
	}
	if n == 0 {
		return formats.Errorf(formats.KindNotFound, "force-resync: no mailbox matches %q", mask)
	}
	return nil
}
