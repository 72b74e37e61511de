package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// The Go runtime's soft memory limit, set after each garbage collection
// from the heap that survived it (issue 4: peak RSS within 20 MB on the
// large corpus, whose live heap is 3-7 MB).
//
// While the live heap is small the limit is minMemoryLimit: without one,
// the collector lets the heap grow to twice the live heap and keeps the
// freed pages, and peak RSS follows the heap's highest point (measured on
// the large corpus's Maildir->mdbox backup: a fixed 16 MiB gave 21.4-21.9
// MB peak RSS, 13 MiB 19.2-19.7 MB for 10 % more CPU time, 12 MiB a third
// more CPU time). A larger live heap (a
// mailbox of 200,000 messages) gets room above it, a quarter of it and at
// least memoryHeadroom, so that the collector does not run back to back
// as it would under a fixed limit near the live heap (the runtime then
// gives it up to half the CPU).
//
// GOMEMLIMIT in the environment overrides all of it.
const (
	minMemoryLimit = 13 << 20
	memoryHeadroom = 7 << 20
)

// memoryLimit is the limit for a live heap of live bytes.
func memoryLimit(live uint64) int64 {
	return max(minMemoryLimit, int64(live)+max(memoryHeadroom, int64(live/4)))
}

// adaptMemoryLimit sets the limit now and after every collection, until
// stop is called.
func adaptMemoryLimit() (stop func()) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	debug.SetMemoryLimit(minMemoryLimit)
	return afterEachGC(func() {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(memoryLimit(s[0].Value.Uint64()))
		}
	})
}

// gcSentinel is an object nothing refers to: its cleanup runs after the
// collection that finds it unreachable. It holds a pointer and is 16
// bytes or more, so the runtime does not batch it with others.
type gcSentinel struct {
	p *int
	_ [16]byte
}

// afterEachGC runs fn after each garbage collection (in the runtime's
// cleanup goroutine) until stop is called.
func afterEachGC(fn func()) (stop func()) {
	var stopped atomic.Bool
	var arm func()
	arm = func() {
		runtime.AddCleanup(&gcSentinel{}, func(struct{}) {
			if !stopped.Load() {
				fn()
				arm()
			}
		}, struct{}{})
	}
	arm()
	return func() { stopped.Store(true) }
}
