package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLockHelperProcess is not a test: run by holdLock in a child process,
// it write-locks the file named by $BOXSYNC_HOLD_LOCK (fcntl, as Dovecot
// does), says "locked" and holds the lock until stdin closes.
func TestLockHelperProcess(t *testing.T) {
	path := os.Getenv("BOXSYNC_HOLD_LOCK")
	if path == "" {
		t.Skip("helper process for the lock tests")
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLKW, &lk); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("locked")
	bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(0)
}

// holdLock makes another process hold an fcntl write lock on path until
// the returned release is called. It returns the process's pid.
func holdLock(t *testing.T, path string) (pid int, release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), "BOXSYNC_HOLD_LOCK="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("lock helper said %q, %v", line, err)
	}
	released := false
	release = func() {
		if !released {
			released = true
			stdin.Close()
			cmd.Wait()
		}
	}
	t.Cleanup(release)
	return cmd.Process.Pid, release
}

func TestLock(t *testing.T) {
	te := newTestEnv(t)
	if err := os.MkdirAll(te.home, 0o700); err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(te.home, ".dovecot-sync.lock")
	src := memPath(t, "src")
	fill(t, src, map[string]int{"INBOX": 1})
	backup := func(lockArgs ...string) []string {
		return append(append([]string{"-D", "backup", "--source", src}, lockArgs...), memPath(t, "dst"))
	}

	// Uncontended: taken, and removed afterwards.
	args := backup("-l", "5")
	te.run(t, args...).expect(t, args, 0, "Debug: locked "+lockPath)
	if _, err := os.Stat(lockPath); !os.IsNotExist(err) {
		t.Errorf("lock file left behind: %v", err)
	}

	pid, release := holdLock(t, lockPath)
	// Held by someone else: 75 after the timeout, naming the holder.
	args = backup("-l", "1")
	te.run(t, args...).expect(t, args, 75, "Couldn't lock "+lockPath,
		fmt.Sprintf("Timed out after 1 seconds (WRITE lock held by pid %d)", pid))
	// -l 0 takes no lock, as in Dovecot.
	args = backup("-l", "0")
	r := te.run(t, args...)
	r.expect(t, args, 0)
	if strings.Contains(r.stderr, "locked") {
		t.Errorf("-l 0 took the lock:\n%s", r.stderr)
	}
	// Once released, the lock is ours.
	release()
	args = backup("--lock-timeout", "1")
	te.run(t, args...).expect(t, args, 0, "Debug: locked")

	// The home directory is created for the lock, as Dovecot does.
	te.vars["HOME"] = filepath.Join(t.TempDir(), "new", "home")
	args = backup("-l", "1")
	te.run(t, args...).expect(t, args, 0)

	// No home: no lock.
	te.vars["HOME"] = ""
	args = backup("-l", "1")
	te.run(t, args...).expect(t, args, 75, "User has no home directory")
}
