package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// Hidden profiling hooks for speed work (issue 6): BOXSYNC_CPUPROFILE
// names a file for a CPU profile (go tool pprof) and BOXSYNC_TRACE one
// for an execution trace (go tool trace), which shows where a run waits
// on fsync and the file system as well as where it computes. Neither is
// an option: they are for developers and not part of the CLI.
const (
	cpuProfileEnv = "BOXSYNC_CPUPROFILE"
	traceEnv      = "BOXSYNC_TRACE"
)

// startProfiling starts what the environment asks for and returns the
// function that stops it and writes the files.
func startProfiling(stderr io.Writer) (stop func()) {
	var stops []func()
	if path := os.Getenv(cpuProfileEnv); path != "" {
		if f, err := os.Create(path); err != nil {
			fmt.Fprintf(stderr, "boxsync: %s: %v\n", cpuProfileEnv, err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "boxsync: %s: %v\n", cpuProfileEnv, err)
			f.Close()
		} else {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if path := os.Getenv(traceEnv); path != "" {
		if f, err := os.Create(path); err != nil {
			fmt.Fprintf(stderr, "boxsync: %s: %v\n", traceEnv, err)
		} else if err := trace.Start(f); err != nil {
			fmt.Fprintf(stderr, "boxsync: %s: %v\n", traceEnv, err)
			f.Close()
		} else {
			stops = append(stops, func() { trace.Stop(); f.Close() })
		}
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
