package main

import (
	"bufio"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/boxsync/boxsync/index"
)

// indexCommand is `boxsync index dump PATH`: Dovecot's index, map index or
// transaction log in readable form, the tool to reach for when Dovecot
// says "corrupted" (compare `doveadm dump`).
func (a *app) indexCommand() *cli.Command {
	return &cli.Command{
		Name:  "index",
		Usage: "inspect Dovecot index files",
		Subcommands: []*cli.Command{{
			Name:      "dump",
			Usage:     "print a dovecot.index, dovecot.index.log[.2], map index, or a directory's replayed index",
			UsageText: "boxsync index dump PATH",
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					a.report("", &usageError{msg: "index dump takes one PATH", usage: "index dump PATH"})
					return nil
				}
				w := bufio.NewWriter(a.stdout)
				err := index.Dump(w, c.Args().First())
				if ferr := w.Flush(); err == nil && ferr != nil {
					err = fmt.Errorf("write: %w", ferr)
				}
				if err != nil {
					a.report("", err)
				}
				return nil
			},
		}},
	}
}
