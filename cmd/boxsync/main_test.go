package main

import (
	"os"
	"testing"
)

// TestMain lets the test binary stand in for boxsync in child runs
// (child.go), which re-execute the running program.
func TestMain(m *testing.M) {
	if os.Getenv(childUserEnv) != "" {
		main()
	}
	os.Exit(m.Run())
}
