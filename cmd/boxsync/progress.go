package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/boxsync/boxsync/convert"
)

// progressEvery is how often -v writes a plain progress line when stderr
// is not a terminal (a terminal's status line is redrawn at most every
// redrawEvery).
const (
	progressEvery = 10 * time.Second
	redrawEvery   = 200 * time.Millisecond
)

// isTerminal tells whether w is a terminal that takes escapes: a tty
// (TCGETS succeeds) and TERM is not "dumb".
func isTerminal(w io.Writer, getenv func(string) string) bool {
	f, ok := w.(*os.File)
	if !ok || getenv("TERM") == "dumb" {
		return false
	}
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}

// progressMeter turns the engine's progress reports for one user into -v
// output: on a terminal a status line redrawn in place (the logger clears
// it around log lines), otherwise a plain log line every progressEvery.
type progressMeter struct {
	a     *app
	user  string
	start time.Time
	every time.Duration // immutable
	tty   bool          // immutable

	mu   sync.Mutex
	last time.Time // guarded by mu
}

func (a *app) newProgressMeter(user string) *progressMeter {
	tty := a.log.tty
	every := progressEvery
	if tty {
		every = redrawEvery
	}
	if a.progressEvery != nil {
		every = *a.progressEvery
	}
	return &progressMeter{a: a, user: user, start: time.Now(), every: every, tty: tty}
}

// report is the engine's Options.Progress.
func (m *progressMeter) report(p convert.Progress) {
	now := time.Now()
	m.mu.Lock()
	if now.Sub(m.last) < m.every && !(p.Mailboxes > 0 && p.MailboxesDone == p.Mailboxes) {
		m.mu.Unlock()
		return
	}
	m.last = now
	m.mu.Unlock()
	line := progressLine(p, now.Sub(m.start))
	if m.tty {
		m.a.log.setStatus(prefix(m.user) + line)
	} else {
		m.a.log.infof(m.user, "progress: %s", line)
	}
}

// done removes the status line.
func (m *progressMeter) done() {
	if m.tty {
		m.a.log.setStatus("")
	}
}

// progressLine renders "3/10 mailboxes, 120 messages, 5.2 MB, 1.3 MB/s,
// ETA 0:05". The ETA assumes the remaining mailboxes go as fast as the
// finished ones did: a rough estimate, shown once a mailbox is done.
func progressLine(p convert.Progress, elapsed time.Duration) string {
	s := fmt.Sprintf("%d/%d mailboxes, %d messages, %s", p.MailboxesDone, p.Mailboxes, p.Saved, humanBytes(p.Bytes))
	if p.Expunged > 0 || p.FlagsChanged > 0 {
		s += fmt.Sprintf(", %d expunged, %d flag changes", p.Expunged, p.FlagsChanged)
	}
	if secs := elapsed.Seconds(); secs > 0 {
		s += fmt.Sprintf(", %s/s", humanBytes(int64(float64(p.Bytes)/secs)))
	}
	if p.MailboxesDone > 0 && p.Mailboxes > p.MailboxesDone {
		f := float64(p.MailboxesDone) / float64(p.Mailboxes)
		eta := time.Duration(float64(elapsed) * (1 - f) / f)
		s += ", ETA " + clock(eta)
	}
	return s
}

// humanBytes is n in B, kB, MB, GB (powers of 1000, one decimal).
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %cB", v, "kMGT"[i])
}

// clock is d as h:mm:ss or m:ss.
func clock(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
