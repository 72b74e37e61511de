package main

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// fakeCreds is a credSwitch whose switches are recorded, not made.
func fakeCreds(euid int) (*credSwitch, *atomic.Int64, *sync.Mutex, *[]mailCreds) {
	s := newCredSwitch()
	var (
		cur mailCreds
		mu  sync.Mutex
		log []mailCreds
		in  atomic.Int64 // packed current uid+1 (0 = self)
	)
	cur = self
	s.geteuid = func() int { return euid }
	s.set = func(c mailCreds) (func() error, error) {
		mu.Lock()
		defer mu.Unlock()
		if cur != self {
			return nil, errors.New("switched twice")
		}
		cur = c
		log = append(log, c)
		in.Store(int64(c.uid + 1))
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			cur = self
			in.Store(0)
			return nil
		}, nil
	}
	return s, &in, &mu, &log
}

// Work for one uid shares a switch; work for another uid, or as
// ourselves, waits until no one holds the first; the last holder switches
// back.
func TestCredSwitch(t *testing.T) {
	s, in, mu, log := fakeCreds(0)
	a, b := mailCreds{uid: 1000, gid: 1000}, mailCreds{uid: 2000, gid: 2000}
	var wg sync.WaitGroup
	var bad atomic.Int64
	run := func(c mailCreds, d time.Duration) {
		defer wg.Done()
		err := s.do(c, func() error {
			want := int64(c.uid + 1)
			if c == self {
				want = 0
			}
			for range 5 {
				if in.Load() != want {
					bad.Add(1)
				}
				time.Sleep(d)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	for i := range 12 {
		wg.Add(1)
		switch i % 3 {
		case 0:
			go run(a, time.Millisecond)
		case 1:
			go run(b, time.Millisecond)
		default:
			go run(self, time.Millisecond)
		}
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("work ran %d times under someone else's credentials", bad.Load())
	}
	if in.Load() != 0 {
		t.Errorf("credentials not switched back")
	}
	mu.Lock()
	n := len(*log)
	mu.Unlock()
	if n < 2 || n > 8 {
		t.Errorf("%d switches for 8 users' work of two uids, want 2..8 (shared when concurrent)", n)
	}
}

// Not root: the user's own uid runs as is, another uid is refused (77).
func TestCredSwitchNotRoot(t *testing.T) {
	s, _, _, log := fakeCreds(1000)
	if err := s.do(mailCreds{uid: 1000, gid: 50}, func() error { return nil }); err != nil {
		t.Errorf("own uid: %v", err)
	}
	err := s.do(mailCreds{uid: 2000, gid: 2000}, func() error { t.Error("ran"); return nil })
	if formats.KindOf(err) != formats.KindPerm || exitCode(err) != 77 {
		t.Errorf("another uid: %v (exit %d), want a Perm error (77)", err, exitCode(err))
	}
	if len(*log) != 0 {
		t.Errorf("switched credentials without root: %v", *log)
	}
}

// TestCredSwitchEUIDWhileHeld: while one run holds a user's credentials,
// geteuid reports that user's uid; a second run for the same user must
// still run as the user (not as ourselves once the first is done). Before
// ownEUID it saw euid != 0, took the "not root" path and ran as root:
// `boxsync convert --workers 2` left root-owned files in mdbox.
func TestCredSwitchEUIDWhileHeld(t *testing.T) {
	s, in, _, _ := fakeCreds(0)
	u := mailCreds{uid: 1000, gid: 1000}
	s.geteuid = func() int {
		if v := in.Load(); v != 0 {
			return int(v - 1) // the switched effective uid, as the kernel says
		}
		return 0
	}
	firstIn, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- s.do(u, func() error { close(firstIn); <-release; return nil })
	}()
	<-firstIn
	go func() {
		done <- s.do(u, func() error {
			close(release) // let the first end while we run
			time.Sleep(20 * time.Millisecond)
			if got := in.Load(); got != int64(u.uid+1) {
				return errors.New("the second run went on without the user's credentials")
			}
			return nil
		})
	}()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the second run waited for the first to end: it would have run as root")
		}
	}
}
