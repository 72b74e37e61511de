// Package build says how the boxsync binary is built, so that make build,
// the tests that run the binary and the bench all build the same one.
//
// The binary is static (CGO_ENABLED=0): neither libc nor the dynamic
// loader is mapped, 1.3-1.9 MB less peak RSS (issue 4's 20 MB goal). The
// only thing cgo brought was NSS for users and groups, which
// internal/userdb now gets from /etc/passwd, /etc/group and getent(1).
// The tag urfave_cli_no_docs leaves out urfave/cli's man and Markdown
// generators (and blackfriday with them), which boxsync never calls:
// 0.4 MB less binary, and less of it paged in.
//
// The Makefile's build line can't import this package: TestMakefile
// checks that it says the same.
package build

import (
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
)

// Tags are the build tags of the binary.
const Tags = "urfave_cli_no_docs"

// Env is what the build's environment adds.
var Env = []string{"CGO_ENABLED=0"}

// Command is `go build` of pkg (run in dir) into out, as make build does.
func Command(ctx context.Context, dir, out, pkg string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", Tags, "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), Env...)
	return cmd
}

// Static reports whether the ELF executable at path needs no dynamic
// loader (no PT_INTERP program header).
func Static(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return false, errors.New(path + ": not an executable")
	}
	return true, nil
}
