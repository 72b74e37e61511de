package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// optionSpec tells, for each single-letter option, whether it takes a
// value (getopt's "m:"), and for each long option the same.
type optionSpec map[string]bool

// specOf builds an optionSpec from urfave flags: every name and alias;
// only boolean flags take no value (TakesValue, which namesOnce's
// wrappers keep).
func specOf(flags []cli.Flag) optionSpec {
	spec := optionSpec{}
	for _, f := range flags {
		takes := true
		if d, ok := f.(cli.DocGenerationFlag); ok {
			takes = d.TakesValue()
		}
		for _, n := range f.Names() {
			spec[n] = takes
		}
	}
	return spec
}

// getoptArgs rewrites a command line the way POSIX getopt (with doveadm's
// leading '+') reads it, into one option per word, so that Go's flag
// package under urfave/cli parses it identically:
//
//	-fR          → -f -R
//	-mINBOX      → -m INBOX
//	-fm INBOX    → -f -m INBOX
//	-m -x        → -m -x        (-x is -m's value, for getopt and flag alike)
//
// The global options are rewritten up to the command word, then the
// command's own options up to the first operand or "--". Long options
// ("--source") pass unchanged. A letter that is no option stays a word of
// its own, so that flag reports it as undefined.
func getoptArgs(args []string, global optionSpec, commands map[string]optionSpec) []string {
	if len(args) == 0 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	var opts []string
	opts, rest = getoptSplit(rest, global)
	out = append(out, opts...)
	if len(rest) == 0 {
		return out
	}
	spec, ok := commands[rest[0]]
	out = append(out, rest[0])
	rest = rest[1:]
	if !ok {
		return append(out, rest...)
	}
	opts, rest = getoptSplit(rest, spec)
	out = append(out, opts...)
	return append(out, rest...)
}

// getoptSplit rewrites the options at the front of args and returns them
// and the words after them (starting with "--" if one ended them).
func getoptSplit(args []string, spec optionSpec) (opts, rest []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--" || a == "-" || !strings.HasPrefix(a, "-"):
			return opts, args[i:]
		case strings.HasPrefix(a, "--"):
			opts = append(opts, a)
			name, _, hasValue := strings.Cut(a[2:], "=")
			if spec[name] && !hasValue && i+1 < len(args) {
				i++
				opts = append(opts, args[i])
			}
			continue
		}
		for j := 1; j < len(a); j++ {
			letter := a[j : j+1]
			takesValue, known := spec[letter]
			opts = append(opts, "-"+letter)
			if !known || !takesValue {
				continue
			}
			if j+1 < len(a) {
				opts = append(opts, a[j+1:])
			} else if i+1 < len(args) {
				i++
				opts = append(opts, args[i])
			}
			break
		}
	}
	return opts, nil
}
