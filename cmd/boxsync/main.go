package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	adaptMemoryLimit() // memlimit.go
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfiling := startProfiling(os.Stderr)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stopProfiling()
	stop()
	os.Exit(code)
}
