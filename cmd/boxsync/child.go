package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Users of different uids in parallel. Credentials belong to a process
// (credSwitch), so a root run with --workers > 1 whose users don't all
// share one uid runs each user in a child process: the same command line,
// with the user already resolved, and the child switches to the user's
// uid as a single run would. The parent copies the children's output
// line by line (lines stay whole), takes their exit codes into its own
// and merges their --report entries.
const (
	childUserEnv   = "BOXSYNC_CHILD_USER"   // the resolved user (childUser JSON)
	childConfigEnv = "BOXSYNC_CHILD_CONFIG" // the parent's default config path
	childReportEnv = "BOXSYNC_CHILD_REPORT" // where the child writes its --report
)

// childUser is a mailUser on its way to a child.
type childUser struct {
	Name, Home, Mail, Replica, Source string
	UID, GID                          int
}

func toChild(u mailUser) childUser {
	return childUser{Name: u.name, Home: u.home, Mail: u.mail, Replica: u.replica, Source: u.source, UID: u.creds.uid, GID: u.creds.gid}
}

func (c childUser) user() mailUser {
	return mailUser{name: c.Name, home: c.Home, mail: c.Mail, replica: c.Replica, source: c.Source, creds: mailCreds{uid: c.UID, gid: c.GID}}
}

// childJob is the user a child run was started for; ok=false in a
// parent.
func (a *app) childJob() (mailUser, bool, error) {
	v := a.env.getenv(childUserEnv)
	if v == "" {
		return mailUser{}, false, nil
	}
	var c childUser
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		return mailUser{}, true, fmt.Errorf("%s: %w", childUserEnv, err)
	}
	return c.user(), true, nil
}

// needChildren tells whether users must run in child processes: as root,
// several workers, and more than one set of credentials among them.
func (a *app) needChildren(workers int, list []mailUser) bool {
	if !a.forkable || workers < 2 || a.creds.geteuid() != 0 {
		return false
	}
	for _, u := range list[min(1, len(list)):] {
		if u.creds != list[0].creds {
			return true
		}
	}
	return false
}

// runChild runs the command line for u in a child process and records
// its exit code.
func (a *app) runChild(ctx context.Context, u mailUser) {
	exe, err := a.env.executable()
	if err != nil {
		a.report(u.name, fmt.Errorf("can't run a child for the user: %w", err))
		return
	}
	job, err := json.Marshal(toChild(u))
	if err != nil {
		a.report(u.name, err)
		return
	}
	cmd := exec.CommandContext(ctx, exe, a.args[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	cmd.Env = append(os.Environ(), childUserEnv+"="+string(job), childConfigEnv+"="+a.env.configPath)
	var reportPath string
	if a.runReport != nil {
		dir, err := os.MkdirTemp("", "boxsync-child-")
		if err != nil {
			a.report(u.name, err)
			return
		}
		defer os.RemoveAll(dir)
		reportPath = filepath.Join(dir, "report.json")
		cmd.Env = append(cmd.Env, childReportEnv+"="+reportPath)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		a.report(u.name, err)
		return
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		a.report(u.name, err)
		return
	}
	if err := cmd.Start(); err != nil {
		a.report(u.name, fmt.Errorf("can't run a child for the user: %w", err))
		return
	}
	a.log.debugf(u.name, "running in child process %d (uid %d)", cmd.Process.Pid, u.creds.uid)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		copyLines(stdout, func(line string) {
			a.outMu.Lock()
			io.WriteString(a.stdout, line)
			a.outMu.Unlock()
		})
	}()
	go func() {
		defer wg.Done()
		copyLines(stderr, a.log.raw)
	}()
	wg.Wait()
	err = cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		a.status.set(exit.ExitCode())
	case ctx.Err() != nil:
		a.status.set(exitInterrupted)
	default:
		a.report(u.name, fmt.Errorf("child run: %w", err))
	}
	if reportPath != "" {
		if err := a.runReport.merge(reportPath); err != nil {
			a.report(u.name, err)
		}
	}
}

// copyLines calls emit with each whole line of r (newline included; a
// last line without one gets it).
func copyLines(r io.Reader, emit func(string)) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if line[len(line)-1] != '\n' {
				line += "\n"
			}
			emit(line)
		}
		if err != nil {
			return
		}
	}
}

// merge adds the users of a child's report.
func (r *runReport) merge(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // the child failed before it could write one
	}
	if err != nil {
		return err
	}
	var doc struct {
		Users []*userReport `json:"users"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("a child's report: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range doc.Users {
		u.status.set(u.ExitCode)
		r.users[u.User] = u
	}
	return nil
}
