package main

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/boxsync/boxsync/formats"
)

// dsyncUsage is the synopsis of sync and backup: doveadm's, plus -F and
// --source.
const dsyncUsage = "[-u <user>|-A|-F <file>] [--workers <n>] [--dry-run] [--report <file>] [-S <socket_path>] [-fPRU] [-l <secs>] [-r <rawlog path>] " +
	"[-m <mailbox>] [-g <mailbox guid>] [-n <namespace> | -N] [-x <exclude>] [-a <all mailbox>] " +
	"[-s <state>] [-T <secs>] [-t <start date>] [-e <end date>] [-O <sync flag>] [-I <max size>] " +
	"[--source <location>] -d|<dest>"

// Help texts of options that are accepted but refused when used.
const todo = " (not implemented yet)"

// dsyncFlags is the option set of sync and backup (dovecot 2.3.19
// doveadm-dsync.c DSYNC_COMMON_PARAMS and DOVEADM_CMD_MAIL_COMMON; getopt
// "+1a:dDEfg:I:l:m:n:NO:Pr:Rs:t:e:T:Ux:" plus "AF:S:u:"), with doveadm's
// long names. Values are strings so that they are checked with doveadm's
// messages.
func dsyncFlags(cmd string) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "u", Aliases: []string{"user"}, Usage: "run for `USER`, looked up in the config's userdbs (home, uid/gid, mail); with * or ?: every userdb user matching"},
		&cli.StringFlag{Name: "F", Aliases: []string{"user-file"}, Usage: "run for each user in `FILE`, one per line (- = stdin)"},
		&cli.BoolFlag{Name: "A", Aliases: []string{"all-users"}, Usage: "run for every user the userdbs list (passwd-file, system passwd)"},
		&cli.IntFlag{Name: "workers", Value: 1, Usage: "run up to `N` users at once (-A, -F, -u mask)"},
		&cli.StringFlag{Name: "report", Usage: "write a JSON summary per user to `FILE` (atomically, when the command ends)"},
		&cli.BoolFlag{Name: "dry-run", Usage: "print what would change (on stdout; each message with -v) and change nothing"},
		&cli.StringFlag{Name: "S", Aliases: []string{"socket-path"}, Usage: "run through a doveadm server at `SOCKET`" + todo},
		&cli.StringFlag{Name: "source", Usage: "the user's mail `LOCATION` (default: mail_location)"},
		&cli.BoolFlag{Name: "f", Aliases: []string{"full-sync"}, Usage: "full sync: compare every mailbox"},
		&cli.BoolFlag{Name: "R", Aliases: []string{"reverse-sync"}, Usage: "reverse: make the user's mail a copy of the destination"},
		&cli.StringFlag{Name: "l", Aliases: []string{"lock-timeout"}, Usage: "lock ~/.dovecot-sync.lock, waiting up to `SECS` seconds"},
		&cli.StringFlag{Name: "m", Aliases: []string{"mailbox"}, Usage: "only this `MAILBOX` (not its children)"},
		&cli.StringSliceFlag{Name: "x", Aliases: []string{"exclude-mailbox"}, Usage: "leave out mailboxes matching `MASK` (* and ?; repeatable)"},
		&cli.StringFlag{Name: "T", Aliases: []string{"timeout"}, Usage: "I/O timeout in `SECS`: of an imapc side's commands (imapc_cmd_timeout, unless -o sets it)"},
		&cli.StringFlag{Name: "r", Aliases: []string{"rawlog"}, Usage: "log the remote stream to `PATH` (local destinations have none, as in doveadm)"},
		&cli.BoolFlag{Name: "E", Aliases: []string{"legacy-dsync"}, Usage: "doveadm's marker for its dsync wrapper (no effect on local destinations)"},
		&cli.StringFlag{Name: "s", Aliases: []string{"state"}, Usage: "stateful sync from `STATE` ('' = the first run); prints the new state"},
		&cli.BoolFlag{Name: "P", Aliases: []string{"purge-remote"}, Usage: "purge the destination after a successful run (mdbox; a no-op for other formats)"},
		&cli.BoolFlag{Name: "U", Aliases: []string{"replicator-notify"}, Usage: "notify the remote's replicator (no effect on local destinations, as in doveadm)"},
		&cli.StringFlag{Name: "g", Aliases: []string{"mailbox-guid"}, Usage: "only the mailbox with this `GUID`"},
		&cli.StringSliceFlag{Name: "n", Aliases: []string{"namespace"}, Usage: "sync the namespace with this `PREFIX` (repeatable) instead of the inbox namespace; one with its own location= is synced from there"},
		&cli.BoolFlag{Name: "N", Aliases: []string{"all-namespaces"}, Usage: "all visible namespaces (remote only)" + todo},
		&cli.StringFlag{Name: "a", Aliases: []string{"all-mailbox"}, Usage: "mail to create is read from the written side's own copy (same GUID and size) in `MAILBOX`, not from the other side; a virtual all-mail mailbox (rules * and all) means every mailbox"},
		&cli.StringFlag{Name: "t", Aliases: []string{"sync-since-time"}, Usage: "only new mail received since `DATE`"},
		&cli.StringFlag{Name: "e", Aliases: []string{"sync-until-time"}, Usage: "only new mail received until `DATE`"},
		&cli.StringFlag{Name: "O", Aliases: []string{"sync-flags"}, Usage: "only new mail with (-FLAG: without) `FLAG`"},
		&cli.StringFlag{Name: "I", Aliases: []string{"sync-max-size"}, Usage: "only new mail up to `SIZE`"},
		&cli.BoolFlag{Name: "d", Aliases: []string{"default-destination"}, Usage: "the destination is the user's mail_replica (userdb field, else plugin setting)"},
		&cli.BoolFlag{Name: "D", Usage: "no mailbox renames" + todo + "; for debug logging put -D before the command"},
	}
	if cmd == "sync" {
		flags = append([]cli.Flag{&cli.BoolFlag{Name: "1", Aliases: []string{"oneway-sync"}, Usage: "one-way merge into the destination"}}, flags...)
	}
	return quietBools(flags)
}

// quietBools drops urfave's "(default: false)" from boolean flags' help.
func quietBools(flags []cli.Flag) []cli.Flag {
	for _, f := range flags {
		if b, ok := f.(*cli.BoolFlag); ok {
			b.DisableDefaultText = true
		}
	}
	return flags
}

// dsyncOpts are the parsed options of one sync or backup command.
type dsyncOpts struct {
	cmd    string // "sync" or "backup"
	oneway bool   // sync -1

	users          userSelection // -u, -F, -A, --workers
	dryRun         bool          // --dry-run
	report         string        // --report FILE
	user, userFile string
	source         string
	full, reverse  bool
	purge          bool // -P: purge the destination afterwards
	lock           bool
	lockTimeout    time.Duration
	mailbox        string
	mailboxGUID    formats.GUID
	namespaces     []string // -n PREFIX...
	allMailbox     string   // -a
	exclude        []string
	since, until   time.Time // -t, -e
	maxSize        int64     // -I
	syncFlag       string    // -O
	dest           []string  // the operands

	rawlog string // accepted; see the flag's help

	replica   bool          // -d: the destination is mail_replica
	notify    bool          // -U: accepted; see the flag's help
	ioTimeout time.Duration // -T; 0 = not given

	stateful bool   // -s given
	state    string // its value
}

// parseDsync reads and checks a sync/backup command line in doveadm's
// order: option values (fatal, exit 75), then the destination's presence
// (usage, 64), then everything boxsync cannot do yet (64, all reported).
func parseDsync(c *cli.Context, cmd string) (*dsyncOpts, []error) {
	o := &dsyncOpts{
		cmd:        cmd,
		oneway:     cmd == "sync" && c.Bool("1"),
		user:       c.String("u"),
		userFile:   c.String("F"),
		source:     c.String("source"),
		full:       c.Bool("f"),
		reverse:    c.Bool("R"),
		purge:      c.Bool("P"),
		mailbox:    c.String("m"),
		exclude:    c.StringSlice("x"),
		namespaces: c.StringSlice("n"),
		allMailbox: c.String("a"),
		rawlog:     c.String("r"),
		notify:     c.Bool("U"),
		dest:       c.Args().Slice(),
		stateful:   c.IsSet("s"),
		state:      c.String("s"),
	}
	o.dryRun = c.Bool("dry-run")
	o.report = c.String("report")
	o.users = userSelection{user: o.user, userFile: o.userFile, all: c.Bool("A"), workers: c.Int("workers")}
	if o.users.workers < 1 {
		return nil, []error{&usageError{msg: fmt.Sprintf("--workers %d: want at least 1", o.users.workers), usage: cmd + " " + dsyncUsage}}
	}

	// 1. Values, as cmd_dsync_preinit checks them.
	if c.IsSet("O") {
		if err := checkSyncFlag(c.String("O")); err != nil {
			return nil, []error{err}
		}
	}
	if g := c.String("g"); c.IsSet("g") && g != "" {
		if !validGUID(g) {
			return nil, []error{fatalf("Invalid -g parameter: %s", g)}
		}
		o.mailboxGUID, _ = formats.ParseGUID(strings.ToLower(g))
	}
	o.syncFlag = c.String("O")
	if c.IsSet("l") {
		secs, ok := parseUint(c.String("l"))
		if !ok {
			return nil, []error{fatalf("Invalid -l parameter: %s", c.String("l"))}
		}
		// Dovecot locks only with a nonzero timeout (dsync-brain.c).
		o.lock, o.lockTimeout = secs > 0, time.Duration(secs)*time.Second
	}
	now := time.Now()
	var since, until time.Time
	for _, d := range []struct {
		flag string
		t    *time.Time
	}{{"t", &since}, {"e", &until}} {
		if !c.IsSet(d.flag) {
			continue
		}
		t, ok := parseHumanTimestamp(c.String(d.flag), now)
		if !ok {
			return nil, []error{fatalf("Invalid -%s parameter: %s", d.flag, c.String(d.flag))}
		}
		*d.t = t
	}
	if !since.IsZero() && !until.IsZero() && since.After(until) {
		// doveadm checks this per user, after the options [observed].
		return nil, []error{fatalf("start date is later than end date")}
	}
	o.since, o.until = since, until
	if c.IsSet("I") {
		n, err := parseSize(c.String("I"))
		if err != nil {
			return nil, []error{fatalf("Invalid -I parameter '%s': %s", c.String("I"), err)}
		}
		o.maxSize = int64(min(n, 1<<62))
	}
	if c.IsSet("T") {
		secs, ok := parseUint(c.String("T"))
		if !ok {
			return nil, []error{fatalf("Invalid -T parameter: %s", c.String("T"))}
		}
		o.ioTimeout = time.Duration(secs) * time.Second
	}

	// 2. The destination (cmd_dsync_init).
	if len(o.dest) == 0 && !c.Bool("d") {
		return nil, []error{&usageError{msg: "missing destination", usage: cmd + " " + dsyncUsage}}
	}
	if o.user != "" && o.userFile != "" {
		return nil, []error{&usageError{msg: "-u and -F can't be used together", usage: cmd + " " + dsyncUsage}}
	}
	if o.users.all && (o.user != "" || o.userFile != "") {
		return nil, []error{&usageError{msg: "-A can't be used with -u or -F", usage: cmd + " " + dsyncUsage}}
	}

	// 3. What boxsync cannot do yet.
	var errs []error
	no := func(what string) { errs = append(errs, notImplemented(what)) }
	local := false
	switch {
	case c.Bool("d"):
		// Each user's mail_replica is classified when it is known.
		o.replica = true
	default:
		var err error
		if local, err = localDestination(o.dest); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Bool("N") && local {
		// cmd_dsync_prerun
		return nil, []error{fatalf("-N parameter requires syncing with remote host")}
	}
	for _, f := range []struct{ flag, what string }{
		{"N", "-N (all visible namespaces)"},
		{"D", "-D after the command (no mailbox renames; for debug logging put -D before the command)"},
		{"S", "-S (running through a doveadm server)"},
	} {
		if c.IsSet(f.flag) {
			no(f.what)
		}
	}
	if c.IsSet("a") && o.allMailbox == "" {
		errs = append(errs, &usageError{msg: "-a: empty mailbox name"})
	}
	if c.IsSet("g") && c.String("g") == "" {
		no("-g '' (the mailbox tree without mail)")
	}
	switch {
	case c.IsSet("m") && o.mailbox == "":
		no("-m '' (the mailbox tree without mail)")
	case isSpecialUse(o.mailbox):
		no(`-m \Flag (mailbox by SPECIAL-USE flag)`)
	case o.mailbox != "":
		// A name that could never exist (or would escape the mail
		// root) is a usage error, not a silent no-op.
		if err := formats.ValidateName(o.mailbox); err != nil {
			errs = append(errs, fmt.Errorf("-m: %w", err))
		}
	}
	for _, x := range o.exclude {
		if isSpecialUse(x) {
			no(`-x \Flag (excluding by SPECIAL-USE flag)`)
			break
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return o, nil
}

// locationWord is a destination that is a mail location (dovecot 2.3.19
// doveadm-dsync.c mirror_get_remote_cmd: /^[a-z0-9]+:/i).
var locationWord = regexp.MustCompile(`^[A-Za-z0-9]+:`)

// localDestination classifies the destination operands as doveadm does
// (dsync.md §1.5) and tells whether they are a local mail location; every
// remote form is refused as not implemented.
func localDestination(dest []string) (bool, error) {
	remote := func(how string) (bool, error) {
		return false, notImplemented("a remote destination (" + how + ")")
	}
	switch {
	case len(dest) > 1:
		return remote("running the command " + strings.Join(dest, " "))
	case strings.HasPrefix(dest[0], "tcp:"), strings.HasPrefix(dest[0], "tcps:"):
		return remote("doveadm protocol to " + dest[0])
	case strings.HasPrefix(dest[0], "remote:"), strings.HasPrefix(dest[0], "remoteprefix:"):
		return remote("ssh via dsync_remote_cmd to " + dest[0])
	case locationWord.MatchString(dest[0]):
		return true, nil
	case strings.ContainsAny(dest[0], " /"):
		return remote("running the command " + dest[0])
	case dest[0] == "":
		return false, &usageError{msg: "empty destination"}
	default:
		return remote("ssh to [user@]host " + dest[0])
	}
}
