package dotlock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A pid no process has (above Linux's largest pid_max).
const deadPID = 1<<30 - 1

func owner(pid int) string { return strconv.Itoa(pid) + ":" + Hostname() }

func writeFile(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

// override puts another live process's lock (a new inode) in place of
// path's lock.
func override(t *testing.T, path string) {
	t.Helper()
	tmp := path + ".other"
	writeFile(t, tmp, owner(os.Getppid()), time.Time{})
	if err := os.Rename(tmp, path+Suffix); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestStale: check_lock's rules, for a lock looked at for the first time.
func TestStale(t *testing.T) {
	const stale = time.Minute
	tests := []struct {
		name    string
		content string        // of the lock file
		lockAge time.Duration // its mtime is this long before now
		file    time.Duration // the protected file's mtime - now; 0: no file
		at      time.Duration // checked at now + at
		want    bool
	}{
		{"held, fresh", "", 0, 0, 0, false},
		{"dead owner, under 2 s old: pid not read", owner(deadPID), 0, 0, 0, false},
		{"dead owner", owner(deadPID), 3 * time.Second, 0, 0, true},
		{"dead owner, checked later", owner(deadPID), 0, 0, 3 * time.Second, true},
		{"dead owner, trailing newline", owner(deadPID) + "\n", 3 * time.Second, 0, 0, true},
		{"our own pid", owner(os.Getpid()), 3 * time.Second, 0, 0, true},
		{"live owner", owner(os.Getppid()), 3 * time.Second, 0, 0, false},
		{"live owner, unchanged past the stale timeout", owner(os.Getppid()), 3 * time.Second, 0, stale + time.Second, false},
		{"dead owner on another host", strconv.Itoa(deadPID) + ":elsewhere.invalid", 3 * time.Second, 0, 0, false},
		{"another host, unchanged past the stale timeout", strconv.Itoa(deadPID) + ":elsewhere.invalid", 3 * time.Second, 0, stale + time.Second, true},
		{"no pid, within the stale timeout", "", 0, 0, stale - time.Second, false},
		{"no pid, unchanged past the stale timeout", "", 0, 0, stale + time.Second, true},
		{"garbage, unchanged past the stale timeout", "x:" + Hostname(), 3 * time.Second, 0, stale + time.Second, true},
		{"pid 0 is no pid", owner(0), 3 * time.Second, 0, 0, false},
		// The first look takes the later of ctime and mtime, unless mtime
		// is in the future (mtime may carry metadata).
		{"mtime after ctime is the last change", "", -30 * time.Second, 0, stale + time.Second, false},
		{"future mtime is ignored", "", -time.Hour, 0, stale + time.Second, true},
		// Once possibly stale, the protected file's mtime counts too.
		{"protected file older", "", 0, -time.Hour, stale + time.Second, true},
		{"protected file changed after the lock", "", 0, 30 * time.Second, stale + time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "box")
			now := time.Now()
			writeFile(t, path+Suffix, tt.content, now.Add(-tt.lockAge))
			if tt.file != 0 {
				writeFile(t, path, "data", now.Add(tt.file))
			}
			var s staleState
			got, err := s.check(path, path+Suffix, stale, now.Add(tt.at))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("stale = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestStaleChanges: a change of the lock file or of the protected file
// starts the stale timeout again.
func TestStaleChanges(t *testing.T) {
	const stale = time.Minute
	type step struct {
		at     time.Duration // checked at now + at
		change func(t *testing.T, path string)
		want   bool
	}
	recreateLock := func(t *testing.T, path string) {
		tmp := path + ".new"
		writeFile(t, tmp, "", time.Time{})
		if err := os.Rename(tmp, path+Suffix); err != nil {
			t.Fatal(err)
		}
	}
	growLock := func(t *testing.T, path string) {
		writeFile(t, path+Suffix, "longer", time.Time{})
	}
	appendFile := func(t *testing.T, path string) {
		writeFile(t, path, "more data", time.Time{})
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"lock replaced", []step{
			{0, nil, false},
			{stale + time.Second, recreateLock, false},
			{2*stale + 2*time.Second, nil, true},
		}},
		{"lock rewritten", []step{
			{0, nil, false},
			{stale + time.Second, growLock, false},
			{2*stale + 2*time.Second, nil, true},
		}},
		{"protected file changed", []step{
			{stale + time.Second, nil, true},
			{stale + 2*time.Second, appendFile, false},
			{2*stale + 3*time.Second, nil, true},
		}},
		{"nothing changed", []step{
			{0, nil, false},
			{stale - time.Second, nil, false},
			{stale + time.Second, nil, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "box")
			now := time.Now()
			writeFile(t, path, "data", now.Add(-time.Hour))
			writeFile(t, path+Suffix, "", time.Time{})
			var s staleState
			for i, st := range tt.steps {
				if st.change != nil {
					st.change(t, path)
				}
				got, err := s.check(path, path+Suffix, stale, now.Add(st.at))
				if err != nil {
					t.Fatal(err)
				}
				if got != st.want {
					t.Errorf("step %d: stale = %v, want %v", i, got, st.want)
				}
			}
		})
	}
}

func TestStaleLockGone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "box")
	var s staleState
	if got, err := s.check(path, path+Suffix, time.Minute, time.Now()); got || err != nil {
		t.Errorf("check of a missing lock = %v, %v; want false, nil", got, err)
	}
}

func TestCreateRelease(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "box")
	l, err := Create(ctx, path, Options{Timeout: time.Second, Stale: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if l.Path() != path+Suffix {
		t.Errorf("Path = %q", l.Path())
	}
	if got, want := readFile(t, path+Suffix), owner(os.Getpid()); got != want {
		t.Errorf("lock file holds %q, want %q", got, want)
	}
	if fi, err := os.Stat(path + Suffix); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + Suffix); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file left behind: %v", err)
	}
	l, err = Create(ctx, path, Options{})
	if err != nil {
		t.Fatalf("Create after Release = %v", err)
	}
	l.Release()
}

func TestCreateMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "box")
	_, err := Create(context.Background(), path, Options{Timeout: time.Second})
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) {
		t.Fatalf("Create in a missing directory = %v, want a not-exist *fs.PathError", err)
	}
	// The in-process queue was left.
	if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l, err := Create(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
}

// TestHeld: a live owner's lock is waited for until Timeout (not at all
// with Timeout 0) or until ctx ends.
func TestHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "box")
	writeFile(t, path+Suffix, owner(os.Getppid()), time.Now().Add(-time.Hour))
	for _, timeout := range []time.Duration{0, 300 * time.Millisecond} {
		start := time.Now()
		_, err := Create(context.Background(), path, Options{Timeout: timeout, Stale: time.Minute})
		var pe *fs.PathError
		if !errors.Is(err, ErrTimeout) || !errors.As(err, &pe) || pe.Path != path+Suffix {
			t.Errorf("Timeout %v: Create = %v, want ErrTimeout", timeout, err)
		}
		if d := time.Since(start); d < timeout || d > timeout+2*time.Second {
			t.Errorf("Timeout %v: gave up after %v", timeout, d)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := Create(ctx, path, Options{Timeout: time.Hour, Stale: time.Hour}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Create with a short context = %v, want DeadlineExceeded", err)
	}
	if got := readFile(t, path+Suffix); got != owner(os.Getppid()) {
		t.Errorf("the owner's lock was changed to %q", got)
	}
}

// TestOverride: a lock whose owner is gone is taken at once, and one that
// has not changed for Stale is taken when that has passed.
func TestOverride(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "box")
	writeFile(t, path+Suffix, owner(deadPID), time.Now().Add(-10*time.Second))
	l, err := Create(ctx, path, Options{Stale: time.Hour})
	if err != nil {
		t.Fatalf("Create over a dead owner's lock = %v", err)
	}
	if got := readFile(t, path+Suffix); got != owner(os.Getpid()) {
		t.Errorf("lock file holds %q", got)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}

	writeFile(t, path+Suffix, "", time.Time{})
	start := time.Now()
	l, err = Create(ctx, path, Options{Timeout: 10 * time.Second, Stale: time.Second})
	if err != nil {
		t.Fatalf("Create over a stale lock = %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("stale lock taken after %v, before the stale timeout", d)
	}
	l.Release()
}

// TestQueue: goroutines of this process take turns.
func TestQueue(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "box")
	l, err := Create(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := Create(short, path, Options{Timeout: time.Hour}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second Create while held = %v, want DeadlineExceeded", err)
	}
	released := make(chan struct{})
	done := make(chan error)
	go func() {
		l2, err := Create(ctx, path, Options{Timeout: time.Hour})
		if err == nil {
			select {
			case <-released:
			default:
				err = errors.New("took the lock before it was released")
			}
			err = errors.Join(err, l2.Release())
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	close(released)
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestReleaseOverridden(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "box")
	l, err := Create(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Another process overrode ours and holds its own.
	override(t, path)
	if err := l.Release(); err == nil || !strings.Contains(err.Error(), "overridden") {
		t.Errorf("Release = %v, want an overridden error", err)
	}
	if got := readFile(t, path+Suffix); got != owner(os.Getppid()) {
		t.Errorf("the other lock was changed to %q", got)
	}
	os.Remove(path + Suffix)
	l, err = Create(ctx, path, Options{})
	if err != nil {
		t.Fatalf("Create after Release = %v", err)
	}
	l.Release()
}

func TestTouch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "box")
	l, err := Create(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	old := time.Now().Add(-time.Hour)
	os.Chtimes(path+Suffix, old, old)
	if err := l.Touch(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + Suffix); err != nil || time.Since(fi.ModTime()) > time.Minute {
		t.Errorf("mtime after Touch = %v, %v", fi.ModTime(), err)
	}
}

func TestReplace(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		after     time.Duration // after = now + this; 0: zero time
		wantMtime func(now, mtime time.Time) bool
	}{
		{"no mtime floor", 0, func(now, m time.Time) bool { return m.Sub(now).Abs() < time.Minute }},
		{"mtime past an older file's", -time.Hour, func(now, m time.Time) bool { return m.Sub(now).Abs() < time.Minute }},
		{"mtime past a newer file's", time.Hour, func(now, m time.Time) bool {
			return m.Equal(now.Add(time.Hour).Truncate(time.Second).Add(time.Second))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "box")
			writeFile(t, path, "old", time.Time{})
			now := time.Now()
			var after time.Time
			if tt.after != 0 {
				after = now.Add(tt.after)
			}
			l, err := Create(ctx, path, Options{Mode: 0o640, KeepOpen: true})
			if err != nil {
				t.Fatal(err)
			}
			// Until Replace, the lock names its owner: a holder killed
			// before Replace leaves a lock stale by its pid.
			if got, want := readFile(t, path+Suffix), owner(os.Getpid()); got != want {
				t.Errorf("open lock file holds %q, want %q", got, want)
			}
			if err := l.Replace([]byte("new"), true, after); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, path); got != "new" {
				t.Errorf("file holds %q", got)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.wantMtime(now, fi.ModTime()) {
				t.Errorf("mtime %v (now %v)", fi.ModTime(), now)
			}
			if fi.Mode().Perm()&^0o640 != 0 {
				t.Errorf("mode %v, want within 0640", fi.Mode())
			}
			if _, err := os.Stat(path + Suffix); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("lock file left behind: %v", err)
			}
			// The queue was left.
			l, err = Create(ctx, path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			l.Release()
		})
	}
}

func TestReplaceFails(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "box")
	writeFile(t, path, "old", time.Time{})

	// Not opened for writing: the lock is removed, the file kept.
	l, err := Create(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Replace([]byte("new"), false, time.Time{}); err == nil {
		t.Error("Replace without KeepOpen succeeded")
	}
	if _, err := os.Stat(path + Suffix); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file left behind: %v", err)
	}

	// Overridden: the other lock stays, the file is kept.
	l, err = Create(ctx, path, Options{KeepOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	override(t, path)
	if err := l.Replace([]byte("new"), false, time.Time{}); err == nil || !strings.Contains(err.Error(), "overridden") {
		t.Errorf("Replace of an overridden lock = %v", err)
	}
	if got := readFile(t, path+Suffix); got != owner(os.Getppid()) {
		t.Errorf("the other lock was changed to %q", got)
	}
	if got := readFile(t, path); got != "old" {
		t.Errorf("file holds %q", got)
	}
}

func TestProcessExists(t *testing.T) {
	if !ProcessExists(os.Getpid()) || !ProcessExists(os.Getppid()) {
		t.Error("our process or its parent does not exist")
	}
	if ProcessExists(deadPID) {
		t.Errorf("pid %d exists", deadPID)
	}
}
