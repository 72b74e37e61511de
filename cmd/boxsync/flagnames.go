package main

import "github.com/urfave/cli/v2"

// Flag names computed once (issue 6, the cost of a run without changes).
// urfave/cli v2 computes a flag's names anew on every Names() call, with
// a regular expression (FlagNames strips a v1 "name, alias" spelling),
// and its Context.IsSet finds an unset flag by calling Names() on every
// flag before it. Command.Run calls IsSet for every flag of the command
// (runFlagActions), so parsing a sync command line cost hundreds of
// regular-expression replacements: 0.7-0.9 ms of the 6-8 ms of a
// stateful sync of an unchanged pair (measured with phase timestamps,
// 40 alternated runs). The wrappers answer Names() from a slice made
// once; every other method, and so every interface urfave/cli looks for
// (help text, required flags, separators, actions), is the embedded
// flag's. They are pointers, so urfave/cli's flag comparisons (hasFlag)
// keep working.

type boolFlag struct {
	*cli.BoolFlag
	names []string
}

func (f *boolFlag) Names() []string { return f.names }

type stringFlag struct {
	*cli.StringFlag
	names []string
}

func (f *stringFlag) Names() []string { return f.names }

type stringSliceFlag struct {
	*cli.StringSliceFlag
	names []string
}

func (f *stringSliceFlag) Names() []string { return f.names }

type intFlag struct {
	*cli.IntFlag
	names []string
}

func (f *intFlag) Names() []string { return f.names }

type durationFlag struct {
	*cli.DurationFlag
	names []string
}

func (f *durationFlag) Names() []string { return f.names }

// namesOnce makes the flags of app and of all its commands answer
// Names() from names computed once. Flags of other types stay as they
// are.
func namesOnce(app *cli.App) {
	app.Flags = namedFlags(app.Flags)
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.Flags = namedFlags(c.Flags)
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}

func namedFlags(flags []cli.Flag) []cli.Flag {
	out := make([]cli.Flag, len(flags))
	for i, f := range flags {
		switch f := f.(type) {
		case *cli.BoolFlag:
			out[i] = &boolFlag{f, f.Names()}
		case *cli.StringFlag:
			out[i] = &stringFlag{f, f.Names()}
		case *cli.StringSliceFlag:
			out[i] = &stringSliceFlag{f, f.Names()}
		case *cli.IntFlag:
			out[i] = &intFlag{f, f.Names()}
		case *cli.DurationFlag:
			out[i] = &durationFlag{f, f.Names()}
		default:
			out[i] = f
		}
	}
	return out
}
