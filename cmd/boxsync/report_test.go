package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type reportDoc struct {
	ExitCode int `json:"exit_code"`
	Users    []struct {
		User      string  `json:"user"`
		ExitCode  int     `json:"exit_code"`
		Duration  float64 `json:"duration_seconds"`
		DryRun    bool    `json:"dry_run"`
		Mailboxes struct {
			Created, Deleted, Synced, Skipped int
		} `json:"mailboxes"`
		Messages struct {
			Copied       int `json:"copied"`
			Expunged     int `json:"expunged"`
			FlagsChanged int `json:"flags_changed"`
		} `json:"messages"`
		Bytes  int64    `json:"bytes"`
		Errors []string `json:"errors"`
	} `json:"users"`
}

func readReport(t *testing.T, path string) reportDoc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc reportDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, b)
	}
	return doc
}

// --report: one entry per user with the engine's counters, the user's own
// exit code and errors; nothing else left in the report's directory.
func TestReport(t *testing.T) {
	te, _ := userdbEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "report.json")
	dst := memPath(t, "backup") + "/%u"
	args := []string{"backup", "-A", "--workers", "2", "--report", path, dst}
	te.run(t, args...).expect(t, args, 68)
	doc := readReport(t, path)
	if doc.ExitCode != 68 || len(doc.Users) != 4 {
		t.Fatalf("report: exit %d, %d users; want 68, 4:\n%+v", doc.ExitCode, len(doc.Users), doc)
	}
	want := map[string]struct{ code, copied, boxes int }{
		"ann": {68, 0, 0}, "bob": {0, 4, 2}, "jane": {0, 3, 2}, "joe": {0, 1, 1},
	}
	for _, u := range doc.Users {
		w := want[u.User]
		if u.ExitCode != w.code || u.Messages.Copied != w.copied || u.Mailboxes.Created != w.boxes {
			t.Errorf("%s: exit %d, %d copied, %d created; want %d, %d, %d", u.User, u.ExitCode, u.Messages.Copied, u.Mailboxes.Created, w.code, w.copied, w.boxes)
		}
		if (w.code != 0) != (len(u.Errors) > 0) {
			t.Errorf("%s: errors %q with exit %d", u.User, u.Errors, u.ExitCode)
		}
		if w.copied > 0 && u.Bytes <= 0 {
			t.Errorf("%s: %d bytes", u.User, u.Bytes)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("report dir holds %d entries, want only the report", len(ents))
	}

	// Rerun with --dry-run: it replaces the report; nothing to copy.
	args = []string{"backup", "-u", "bob", "--dry-run", "--report", path, dst}
	r := te.run(t, args...)
	r.expect(t, args, 0)
	doc = readReport(t, path)
	if len(doc.Users) != 1 || doc.Users[0].User != "bob" || !doc.Users[0].DryRun || doc.Users[0].Messages.Copied != 0 {
		t.Errorf("dry-run report: %+v", doc)
	}
	if !strings.Contains(r.stdout, "dry-run(bob): nothing to change") {
		t.Errorf("dry run stdout: %q", r.stdout)
	}

	// An unwritable report is an error, after the run.
	args = []string{"backup", "-u", "bob", "--report", filepath.Join(dir, "no", "such", "dir", "r.json"), dst}
	te.run(t, args...).expect(t, args, 75, "--report: ")
}
