package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
)

// logger writes doveadm-style log lines to stderr:
//
//	boxsync(jane): Error: mailbox "INBOX": ...
//	boxsync: Fatal: Invalid -g parameter: 1234
//
// (doveadm writes "doveadm(jane): Error: ..." and, inside a local dsync,
// "dsync(jane): ...").
type logger struct {
	mu    sync.Mutex
	w     io.Writer // guarded by mu
	debug bool      // immutable
	// tty: w is a terminal, where -v redraws a status line in place;
	// status is that line ("" = none shown). Log lines clear it and
	// draw it again below themselves, so they stay whole.
	tty    bool   // immutable after the start
	status string // guarded by mu
}

// clearStatus is a terminal's "go to the line start, erase the line".
const clearStatus = "\r\x1b[K"

// setStatus replaces the terminal status line.
func (l *logger) setStatus(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.tty {
		return
	}
	if l.status != "" {
		io.WriteString(l.w, clearStatus)
	}
	l.status = s
	io.WriteString(l.w, s)
}

// levels a line may already start with; other lines get "Info: ".
var logLevels = []string{"Debug: ", "Info: ", "Warning: ", "Error: ", "Fatal: ", "Panic: "}

func prefix(user string) string {
	if user == "" {
		return "boxsync: "
	}
	return "boxsync(" + user + "): "
}

func (l *logger) line(user, level, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.status != "" {
		io.WriteString(l.w, clearStatus)
	}
	for _, s := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		fmt.Fprintf(l.w, "%s%s: %s\n", prefix(user), level, s)
	}
	if l.status != "" {
		io.WriteString(l.w, l.status)
	}
}

// raw writes a whole line that is already formatted (a child's).
func (l *logger) raw(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.status != "" {
		io.WriteString(l.w, clearStatus)
	}
	io.WriteString(l.w, line)
	if l.status != "" {
		io.WriteString(l.w, l.status)
	}
}

func (l *logger) errorf(user, format string, args ...any) {
	l.line(user, "Error", fmt.Sprintf(format, args...))
}

func (l *logger) warnf(user, format string, args ...any) {
	l.line(user, "Warning", fmt.Sprintf(format, args...))
}

func (l *logger) infof(user, format string, args ...any) {
	l.line(user, "Info", fmt.Sprintf(format, args...))
}

func (l *logger) debugf(user, format string, args ...any) {
	if l.debug {
		l.line(user, "Debug", fmt.Sprintf(format, args...))
	}
}

// writer returns an io.Writer for the engine's Options.Log: each line it
// writes gets the user's prefix, and "Info: " unless it names its level.
func (l *logger) writer(user string) *lineWriter { return &lineWriter{l: l, user: user} }

type lineWriter struct {
	l    *logger
	user string
	mu   sync.Mutex
	buf  []byte // an incomplete last line; guarded by mu
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.emit(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func (w *lineWriter) emit(s string) {
	for _, lvl := range logLevels {
		if rest, ok := strings.CutPrefix(s, lvl); ok {
			w.l.line(w.user, strings.TrimSuffix(lvl, ": "), rest)
			return
		}
	}
	w.l.line(w.user, "Info", s)
}

// Flush writes an incomplete last line.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}
