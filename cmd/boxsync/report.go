package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/boxsync/boxsync/convert"
)

// runReport is --report FILE: a JSON summary of the run, one entry per
// user, written atomically when the command ends.
type runReport struct {
	mu      sync.Mutex
	started time.Time
	users   map[string]*userReport // guarded by mu
}

// userReport is one user's entry.
type userReport struct {
	mu       sync.Mutex
	User     string  `json:"user"`
	ExitCode int     `json:"exit_code"`
	Duration float64 `json:"duration_seconds"`
	DryRun   bool    `json:"dry_run,omitempty"`

	Mailboxes struct {
		Created int `json:"created"`
		Deleted int `json:"deleted"`
		Synced  int `json:"synced"`
		Skipped int `json:"skipped"`
	} `json:"mailboxes"`
	Messages struct {
		Copied       int `json:"copied"`
		Expunged     int `json:"expunged"`
		FlagsChanged int `json:"flags_changed"`
	} `json:"messages"`
	Bytes  int64    `json:"bytes"`
	Desync string   `json:"desync,omitempty"`
	Errors []string `json:"errors"`

	status status
	start  time.Time
}

// reportFor returns user's entry, creating it; nil without --report.
func (a *app) reportFor(user string) *userReport {
	r := a.runReport
	if r == nil || user == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.users[user]
	if u == nil {
		u = &userReport{User: user, Errors: []string{}, start: time.Now()}
		r.users[user] = u
	}
	return u
}

// fail records one of the user's errors.
func (u *userReport) fail(err error) {
	if u == nil || err == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.Errors = append(u.Errors, err.Error())
	u.status.fail(err)
}

// result records what the engine did.
func (u *userReport) result(res convert.Result, dryRun bool) {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.DryRun = dryRun
	u.Mailboxes.Created, u.Mailboxes.Deleted = res.Mailboxes.Created, res.Mailboxes.Deleted
	u.Mailboxes.Synced, u.Mailboxes.Skipped = res.Mailboxes.Synced, res.Mailboxes.Skipped
	u.Messages.Copied, u.Messages.Expunged, u.Messages.FlagsChanged = res.Messages.Saved, res.Messages.Expunged, res.Messages.FlagsChanged
	u.Bytes = res.Bytes
	if res.Desync != "" {
		u.Desync = res.Desync
		u.status.desync()
	}
}

// finish stops the user's clock.
func (u *userReport) finish() {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.Duration = time.Since(u.start).Round(time.Millisecond).Seconds()
}

// write saves the report to path atomically: a temporary file in the same
// directory, fsynced, renamed over path, the directory fsynced.
func (r *runReport) write(path string, code int) (err error) {
	r.mu.Lock()
	var users []*userReport
	for _, u := range r.users {
		u.mu.Lock()
		u.ExitCode = u.status.get()
		users = append(users, u)
	}
	sort.Slice(users, func(i, j int) bool { return users[i].User < users[j].User })
	doc := struct {
		Started  time.Time     `json:"started"`
		Finished time.Time     `json:"finished"`
		ExitCode int           `json:"exit_code"`
		Users    []*userReport `json:"users"`
	}{r.started.UTC(), time.Now().UTC(), code, users}
	data, err := json.MarshalIndent(doc, "", "  ")
	for _, u := range users {
		u.mu.Unlock()
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	data = append(data, '\n')

	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
			err = fmt.Errorf("--report: %w", err)
		}
	}()
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
