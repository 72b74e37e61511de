package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/boxsync/boxsync/formats"
)

const purgeUsage = "[-u <user>|-F <file>] [--source <location>]"

// purgeCommand is doveadm's purge: rewrite an mdbox store's files to drop
// the mail no mailbox references any more. Formats that free mail at
// expunge (maildir, sdbox, mbox) have nothing to purge, as for doveadm.
func (a *app) purgeCommand() *cli.Command {
	return a.storeCommand(storeCommand{
		name:  "purge",
		usage: purgeUsage,
		help:  "remove expunged mail from mdbox storage files (doveadm purge)",
		check: func(c *cli.Context) string {
			if c.NArg() != 0 {
				return "purge takes no arguments"
			}
			return ""
		},
		run: func(ctx context.Context, _ *cli.Context, u mailUser, loc formats.Location, st formats.Store) error {
			// purgeStore has logged its error.
			if err := a.purgeStore(ctx, u.name, loc.Driver, st); err != nil {
				a.status.fail(err)
			}
			return nil
		},
	})
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
