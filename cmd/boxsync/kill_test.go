package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// TestKilledBackupRerun kills the real binary (SIGKILL, no cleanup) at
// random points of a Maildir backup, then reruns it: the rerun must finish
// the job with every message exactly once.
func TestKilledBackupRerun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary and copies 40 MB")
	}
	bin := filepath.Join(t.TempDir(), "boxsync")
	buildBinary(t, bin)
	dir := t.TempDir()
	src := "maildir:" + filepath.Join(dir, "src")
	fillSized(t, src, 2000)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	command := func(dst string) *exec.Cmd {
		cmd := exec.Command(bin, "backup", "--source", src, dst)
		cmd.Env = []string{"USER=jane", "HOME=" + dir, "PATH=" + os.Getenv("PATH")}
		return cmd
	}
	// How long a whole run takes here: the kills fall within it.
	start := time.Now()
	if out, err := command("maildir:" + filepath.Join(dir, "timed")).CombinedOutput(); err != nil {
		t.Fatalf("a whole run: %v\n%s", err, out)
	}
	whole := time.Since(start)
	killed := 0
	for i := 0; i < 4; i++ {
		dst := "maildir:" + filepath.Join(dir, fmt.Sprintf("dst%d", i))
		run := func() *exec.Cmd { return command(dst) }
		// Kill it once or twice, at random moments.
		for k := 0; k <= i%2; k++ {
			cmd := run()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Anywhere from start-up to near the end of a whole run.
			time.Sleep(whole/20 + time.Duration(rng.Int64N(int64(whole*17/20))))
			cmd.Process.Signal(syscall.SIGKILL)
			if err := cmd.Wait(); err != nil && strings.Contains(err.Error(), "killed") {
				killed++
			}
		}
		// KNOWN: a run killed while it created a mailbox's first
		// dovecot.index.log leaves dovecot.index.log.newlock, which
		// holds the new log, not a pid; the rerun waits until it is 3
		// minutes old, as Dovecot does (index/log createExcl). Seen in
		// one of 10 runs; logged, not failed.
		rerun := time.Now()
		if out, err := run().CombinedOutput(); err != nil {
			t.Fatalf("rerun after kill: %v\n%s", err, out)
		}
		if d := time.Since(rerun); d > whole*10+10*time.Second {
			t.Logf("rerun %d took %v (a whole run %v): it waited out a lock the killed run left", i, d, whole)
		}
		if d := diffLines(dump(t, src), dump(t, dst)); d != "" {
			t.Fatalf("after kill and rerun %d:\n%s", i, d)
		}
	}
	if killed == 0 {
		t.Fatalf("no run was still going when killed: the test proved nothing")
	}
	t.Logf("%d runs killed mid-way", killed)
}

// fillSized makes a store of n messages of 1–40 KB over a few mailboxes.
func fillSized(t *testing.T, loc string, n int) {
	t.Helper()
	ctx := context.Background()
	d, l := driverFor(t, loc)
	st, err := d.Open(ctx, l, formats.OpenOptions{Create: true, Fsync: formats.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	boxes := []string{"INBOX", "Sent", "Archive/2024", "Entwürfe"}
	for bi, name := range boxes {
		if err := st.Create(ctx, name, formats.GUID{}, 0); err != nil {
			t.Fatal(err)
		}
		mb, _ := st.Open(ctx, name)
		tx, _ := mb.Begin(ctx)
		for i := bi; i < n; i += len(boxes) {
			body := fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", 1000+rng.IntN(40000)))
			m := formats.Message{Flags: formats.Flags(rng.IntN(32)), Keywords: []string{"k" + fmt.Sprint(i%5)},
				Received: time.Unix(1.6e9+int64(i), 0), Size: int64(len(body))}
			if _, err := tx.Save(ctx, m, strings.NewReader(body)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		mb.Close()
	}
}
