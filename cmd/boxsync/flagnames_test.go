package main

import (
	"io"
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestNamesOnce: every flag of every command keeps its names, whether it
// takes a value, and each interface urfave/cli looks for, once wrapped;
// and a wrapped flag answers Names() without asking the flag again.
func TestNamesOnce(t *testing.T) {
	a := &app{env: systemEnv(), log: &logger{w: io.Discard}, creds: processCreds}
	orig, wrapped := a.cli(io.Discard), a.cli(io.Discard)
	namesOnce(wrapped)
	type flagSets struct {
		where   string
		in, out []cli.Flag
	}
	sets := []flagSets{{"global", orig.Flags, wrapped.Flags}}
	var walk func(prefix string, in, out []*cli.Command)
	walk = func(prefix string, in, out []*cli.Command) {
		for i := range in {
			sets = append(sets, flagSets{prefix + in[i].Name, in[i].Flags, out[i].Flags})
			walk(prefix+in[i].Name+" ", in[i].Subcommands, out[i].Subcommands)
		}
	}
	walk("", orig.Commands, wrapped.Commands)
	n := 0
	for _, s := range sets {
		if len(s.in) != len(s.out) {
			t.Fatalf("%s: %d flags became %d", s.where, len(s.in), len(s.out))
		}
		for i, f := range s.in {
			w := s.out[i]
			if !slices.Equal(f.Names(), w.Names()) {
				t.Errorf("%s: names %q became %q", s.where, f.Names(), w.Names())
			}
			if f.String() != w.String() {
				t.Errorf("%s: help %q became %q", s.where, f.String(), w.String())
			}
			for _, iface := range []struct {
				name string
				has  func(cli.Flag) bool
			}{
				{"DocGenerationFlag", func(f cli.Flag) bool { _, ok := f.(cli.DocGenerationFlag); return ok }},
				{"RequiredFlag", func(f cli.Flag) bool { _, ok := f.(cli.RequiredFlag); return ok }},
				{"VisibleFlag", func(f cli.Flag) bool { _, ok := f.(cli.VisibleFlag); return ok }},
				{"ActionableFlag", func(f cli.Flag) bool { _, ok := f.(cli.ActionableFlag); return ok }},
				{"CategorizableFlag", func(f cli.Flag) bool { _, ok := f.(cli.CategorizableFlag); return ok }},
			} {
				if iface.has(f) != iface.has(w) {
					t.Errorf("%s %q: %s %v became %v", s.where, f.Names()[0], iface.name, iface.has(f), iface.has(w))
				}
			}
			if d, ok := f.(cli.DocGenerationFlag); ok && d.TakesValue() != w.(cli.DocGenerationFlag).TakesValue() {
				t.Errorf("%s %q: TakesValue changed", s.where, f.Names()[0])
			}
			if w == f {
				continue // a type namesOnce leaves alone
			}
			n++
			if sf, ok := f.(*cli.StringFlag); ok {
				// The names were taken once: renaming the flag now
				// does not show, as it would if Names() asked it.
				old := sf.Name
				sf.Name = old + "-renamed"
				if w.Names()[0] != old {
					t.Errorf("%s %q: Names() computed again", s.where, old)
				}
				sf.Name = old
			}
		}
	}
	if n == 0 {
		t.Fatal("no flag was wrapped")
	}
}
