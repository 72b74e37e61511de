package main

import (
	"context"
	"os"
	"testing"

	"github.com/boxsync/boxsync/internal/build"
)

// TestMain lets the test binary stand in for boxsync in child runs
// (child.go), which re-execute the running program.
func TestMain(m *testing.M) {
	if os.Getenv(childUserEnv) != "" {
		main()
	}
	os.Exit(m.Run())
}

// buildBinary builds boxsync into path as make build does (internal/build):
// the tests that run the binary run the static one users get.
func buildBinary(t *testing.T, path string) {
	t.Helper()
	if out, err := build.Command(context.Background(), ".", path, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if static, err := build.Static(path); err != nil || !static {
		t.Fatalf("%s is not a static binary (%v)", path, err)
	}
}
