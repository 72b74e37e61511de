package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/doveconf"
	"github.com/boxsync/boxsync/internal/userdb"
)

// defaultConfig is where doveadm reads its configuration.
const defaultConfig = "/etc/dovecot/dovecot.conf"

// env is what a run takes from the system, so tests can replace it.
type env struct {
	configPath string // the default config, used when it exists
	getenv     func(string) string
	// lookupUser and lookupGroup find system users and groups (the
	// passwd userdb, mail_uid/mail_gid by name): internal/userdb's, which
	// read /etc/passwd and /etc/group and ask getent for the rest, as
	// the binary is static (no libc for NSS).
	lookupUser  func(name string) (*user.User, error)
	lookupGroup func(name string) (*user.Group, error)
	executable  func() (string, error) // this program, for child runs (child.go)
}

func systemEnv() env {
	e := env{configPath: defaultConfig, getenv: os.Getenv, lookupUser: userdb.LookupUser, lookupGroup: userdb.LookupGroup, executable: os.Executable}
	if p, ok := os.LookupEnv(childConfigEnv); ok {
		e.configPath = p // a child reads what its parent read
	}
	return e
}

// globalOpts are the options before the command (doveadm's).
type globalOpts struct {
	config    string   // -c
	overrides []string // -o KEY=VALUE
	debug     bool     // -D
	verbose   bool     // -v
}

// app is one run of the command line.
type app struct {
	env    env
	stdin  io.Reader
	stdout io.Writer
	log    *logger
	global globalOpts
	status status
	creds  *credSwitch // whose credentials users' mail work runs with

	progressEvery *time.Duration // tests: -v progress line interval
	outMu         sync.Mutex     // keeps each user's stdout lines together
	runReport     *runReport     // --report; nil without
	args          []string       // the command line, for child runs
	forkable      bool           // the command may run users in child processes
}

// run runs the command line args and returns the exit code. It never
// calls os.Exit.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(ctx, systemEnv(), args, stdin, stdout, stderr)
}

func runEnv(ctx context.Context, e env, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{env: e, stdin: stdin, stdout: stdout, log: &logger{w: stderr, tty: isTerminal(stderr, e.getenv)}, creds: processCreds}
	a.args = args
	c := a.cli(stderr)
	namesOnce(c)
	cmdSpecs := map[string]optionSpec{}
	for _, cmd := range c.Commands {
		cmdSpecs[cmd.Name] = specOf(cmd.Flags)
	}
	if err := c.RunContext(ctx, getoptArgs(args, specOf(c.Flags), cmdSpecs)); err != nil {
		a.report("", err)
	}
	if ctx.Err() != nil {
		a.status.set(exitInterrupted)
	}
	return a.status.get()
}

// cli builds the urfave/cli application.
func (a *app) cli(stderr io.Writer) *cli.App {
	usageErr := func(usage string) cli.OnUsageErrorFunc {
		return func(_ *cli.Context, err error, _ bool) error {
			msg := err.Error()
			if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
				msg = "Unknown option " + name
			} else if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
				msg = "Option " + name + " needs a value"
			}
			return &usageError{msg: msg, usage: usage}
		}
	}
	commands := []*cli.Command{
		{
			Name:      "backup",
			Usage:     "make the destination a copy of the user's mail (doveadm backup)",
			UsageText: "boxsync [global options] backup " + dsyncUsage,
			Description: "Make <dest>, a mail location such as mdbox:~/backup, identical to the user's mail\n" +
				"(mail_location, or --source), which is only read. Mail, flags and mailboxes that\n" +
				"exist only in the destination are removed. -R makes the user's mail a copy of <dest>.",
			Flags:        dsyncFlags("backup"),
			Action:       a.dsync("backup"),
			OnUsageError: usageErr("backup " + dsyncUsage),
		},
		{
			Name:         "sync",
			Usage:        "two-way sync; -1: one-way merge (doveadm sync)",
			UsageText:    "boxsync [global options] sync [-1] " + dsyncUsage,
			Flags:        dsyncFlags("sync"),
			Action:       a.dsync("sync"),
			OnUsageError: usageErr("sync [-1] " + dsyncUsage),
		},
		a.convertCommand(),
		a.indexCommand(),
		a.forceResyncCommand(),
		a.purgeCommand(),
	}
	for _, cmd := range commands {
		cmd.HideHelpCommand = true
	}
	return &cli.App{
		Name:      "boxsync",
		Usage:     "Dovecot dsync (doveadm sync/backup) in Go",
		UsageText: "boxsync [-Dv] [-c <config>] [-o <key>=<value>]... backup|sync [options] <dest>",
		Flags: quietBools([]cli.Flag{
			&cli.StringFlag{Name: "c", Aliases: []string{"config"}, Usage: "read Dovecot's configuration from `FILE` (default " + defaultConfig + " when it exists)"},
			&cli.StringSliceFlag{Name: "o", Usage: "override a setting, e.g. mail_location=maildir:~/Maildir (`KEY=VALUE`; repeatable)"},
			&cli.BoolFlag{Name: "D", Usage: "debug logging"},
			&cli.BoolFlag{Name: "v", Usage: "verbose: progress on stderr"},
		}),
		Commands:                  commands,
		HideVersion:               true,
		HideHelpCommand:           true,
		DisableSliceFlagSeparator: true,
		Reader:                    a.stdin,
		Writer:                    a.stdout,
		ErrWriter:                 stderr,
		ExitErrHandler:            func(*cli.Context, error) {},
		OnUsageError:              usageErr("[-Dv] [-c <config>] [-o <key>=<value>]... backup|sync [options] <dest>"),
		Before: func(c *cli.Context) error {
			a.global = globalOpts{
				config:    c.String("c"),
				overrides: c.StringSlice("o"),
				debug:     c.Bool("D"),
				verbose:   c.Bool("v"),
			}
			a.log.debug = a.global.debug
			return nil
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return &usageError{msg: "Unknown command " + c.Args().First(), usage: "[-Dv] [-c <config>] [-o <key>=<value>]... backup|sync [options] <dest>"}
			}
			return &usageError{msg: "missing command", usage: "[-Dv] [-c <config>] [-o <key>=<value>]... backup|sync [options] <dest>"}
		},
	}
}

// report logs err for user (a usage error with the synopsis) and
// records its exit code.
func (a *app) report(user string, err error) {
	var (
		usage *usageError
		fatal *fatalError
	)
	switch {
	case errors.As(err, &usage):
		a.log.line(user, "Error", usage.msg)
		if usage.usage != "" {
			a.log.mu.Lock()
			fmt.Fprintf(a.log.w, "usage: boxsync %s\n", usage.usage)
			a.log.mu.Unlock()
		}
	case errors.As(err, &fatal):
		a.log.line(user, "Fatal", fatal.msg)
	default:
		a.log.errorf(user, "%s", err)
	}
	a.status.fail(err)
	a.reportFor(user).fail(err)
}

// loadConfig reads the configuration (-c, else the default file when it
// exists) and applies the -o overrides. With no file it is empty.
func (a *app) loadConfig() (*doveconf.Config, error) {
	path, explicit := a.global.config, true
	if path == "" {
		path, explicit = a.env.configPath, false
	}
	cfg := &doveconf.Config{Root: &doveconf.Section{}}
	if path != "" {
		c, err := doveconf.ParseFile(path, &doveconf.Options{Getenv: a.env.getenv})
		var perr *doveconf.Error
		switch {
		case err == nil:
			cfg = c
			a.log.debugf("", "read configuration from %s", strings.Join(c.Files, ", "))
		case !explicit && errors.As(err, &perr) && perr.File == path && errors.Is(err, os.ErrNotExist):
			a.log.debugf("", "no %s: using no configuration file", path)
		default:
			return nil, &formats.Error{Kind: formats.KindConfig, Err: err}
		}
	}
	for _, kv := range a.global.overrides {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, &usageError{msg: "-o parameter doesn't contain '=': " + kv}
		}
		if err := cfg.Override(strings.TrimSpace(key), value); err != nil {
			return nil, &usageError{msg: "-o " + kv + ": " + err.Error()}
		}
	}
	return cfg, nil
}
