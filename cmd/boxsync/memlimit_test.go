package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

func TestMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live uint64
		want int64
	}{
		{0, 13 * mib},
		{6 * mib, 13 * mib}, // the large corpus's usual live heap: the floor
		{7 * mib, 14 * mib},
		{32 * mib, 40 * mib},
		{100 * mib, 125 * mib}, // a quarter above a large heap
	} {
		if got := memoryLimit(tc.live); got != tc.want {
			t.Errorf("memoryLimit(%d MiB) = %.2f MiB, want %d MiB", tc.live/mib, float64(got)/mib, tc.want/mib)
		}
	}
}

// afterEachGC's hook runs after each collection, not once.
func TestAfterEachGC(t *testing.T) {
	var n atomic.Int32
	stop := afterEachGC(func() { n.Add(1) })
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for n.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("hook ran %d times in 10 s of collections, want 3", n.Load())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// The limit follows the live heap: 40 MiB live raise it to 50 MiB, and
// it goes back to the floor once they are garbage.
func TestAdaptMemoryLimit(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOMEMLIMIT is set: boxsync leaves the limit alone")
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	stop := adaptMemoryLimit()
	defer stop()
	waitLimit := func(ok func(int64) bool, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for lim := debug.SetMemoryLimit(-1); !ok(lim); lim = debug.SetMemoryLimit(-1) {
			if time.Now().After(deadline) {
				t.Fatalf("limit %.1f MiB, want %s", float64(lim)/(1<<20), what)
			}
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
	}
	big := make([]byte, 40<<20)
	for i := range big {
		big[i] = byte(i)
	}
	waitLimit(func(l int64) bool { return l >= 50<<20 }, ">= 50 MiB with 40 MiB live")
	runtime.KeepAlive(big)
	big = nil
	waitLimit(func(l int64) bool { return l == minMemoryLimit }, "the 13 MiB floor")
}
