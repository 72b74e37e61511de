package main

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/boxsync/boxsync/convert"
)

func TestProgressLine(t *testing.T) {
	tests := []struct {
		p       convert.Progress
		elapsed time.Duration
		want    string
	}{
		{convert.Progress{Mailboxes: 10}, 0, "0/10 mailboxes, 0 messages, 0 B"},
		{convert.Progress{Mailboxes: 4, MailboxesDone: 1, Saved: 120, Bytes: 5_200_000}, 4 * time.Second,
			"1/4 mailboxes, 120 messages, 5.2 MB, 1.3 MB/s, ETA 0:12"},
		{convert.Progress{Mailboxes: 2, MailboxesDone: 2, Saved: 3, Bytes: 999, Expunged: 1, FlagsChanged: 2}, time.Second,
			"2/2 mailboxes, 3 messages, 999 B, 1 expunged, 2 flag changes, 999 B/s"},
		{convert.Progress{Mailboxes: 100, MailboxesDone: 1, Bytes: 2_500_000_000}, time.Minute,
			"1/100 mailboxes, 0 messages, 2.5 GB, 41.7 MB/s, ETA 1:39:00"},
	}
	for _, tc := range tests {
		if got := progressLine(tc.p, tc.elapsed); got != tc.want {
			t.Errorf("progressLine(%+v, %v) = %q, want %q", tc.p, tc.elapsed, got, tc.want)
		}
	}
}

// -v into a pipe or file: plain progress lines, no terminal escapes.
func TestProgressPlain(t *testing.T) {
	te := newTestEnv(t)
	src, dst := memPath(t, "src"), memPath(t, "dst")
	fill(t, src, map[string]int{"INBOX": 3, "Work": 2, "Work/Projects": 1, "Spam": 2})
	args := []string{"-v", "-o", "mail_location=" + src, "backup", dst}
	r := te.run(t, args...)
	r.expect(t, args, 0, "boxsync(jane): Info: progress: 4/4 mailboxes, 8 messages, ")
	if strings.Contains(r.stderr, "\x1b") || strings.Contains(r.stderr, "\r") {
		t.Errorf("terminal escapes in plain output:\n%q", r.stderr)
	}
	// Without -v: nothing.
	dst2 := memPath(t, "dst2")
	args = []string{"-o", "mail_location=" + src, "backup", dst2}
	if r := te.run(t, args...); strings.Contains(r.stderr, "progress") {
		t.Errorf("progress without -v:\n%s", r.stderr)
	}
}

// openPTY returns a pseudo-terminal's master and slave (Linux).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// -v on a terminal: a status line redrawn in place and cleared around log
// lines, which stay whole.
func TestProgressTerminal(t *testing.T) {
	master, slave := openPTY(t)
	if !isTerminal(slave, func(string) string { return "xterm" }) || isTerminal(slave, func(string) string { return "dumb" }) {
		t.Fatal("isTerminal: a pty with TERM=xterm is a terminal, with TERM=dumb not")
	}
	te := newTestEnv(t)
	te.vars["TERM"] = "xterm"
	src, dst := memPath(t, "src"), memPath(t, "dst")
	fill(t, src, map[string]int{"INBOX": 3, "Work": 2})
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(master)
		out <- string(b)
	}()
	args := []string{"boxsync", "-v", "-o", "mail_location=" + src, "backup", dst}
	code := runEnv(context.Background(), te.env, args, strings.NewReader(""), io.Discard, slave)
	slave.Close()
	var got string
	select {
	case got = <-out:
	case <-time.After(5 * time.Second):
		master.Close()
		got = <-out
	}
	if code != 0 {
		t.Fatalf("exit %d:\n%q", code, got)
	}
	if !strings.Contains(got, clearStatus+"boxsync(jane): 2/2 mailboxes, 5 messages") {
		t.Errorf("no status line redrawn:\n%q", got)
	}
	// Every log line starts at a line start: after a clear or a newline.
	for _, l := range []string{"boxsync(jane): Info: backup ", "boxsync(jane): Info: mailboxes: "} {
		i := strings.Index(got, l)
		if i < 0 {
			t.Errorf("log line %q missing:\n%q", l, got)
			continue
		}
		if before := got[:i]; i > 0 && !strings.HasSuffix(before, "\n") && !strings.HasSuffix(before, clearStatus) {
			t.Errorf("log line %q doesn't start a line:\n%q", l, got)
		}
	}
	if !strings.HasSuffix(strings.ReplaceAll(got, "\r\n", "\n"), "\n") {
		t.Errorf("output doesn't end with the status line cleared and a whole log line:\n%q", got)
	}
}
