package rollout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// Step is how far one user's conversion got. The order matters: a rerun
// resumes after the step the journal recorded (see procedure).
type Step int

const (
	StepNone        Step = iota // nothing recorded
	StepSynced                  // passes done, Mark recorded; the switch has not begun
	StepSwitching               // the switch may have happened: never sync old->new again
	StepSwitched                // the userdb names the new location
	StepFlushed                 // the auth cache no longer holds the old location
	StepKicked                  // sessions on the old location were ended
	StepMerged                  // the final sync -1 old->new ran
	StepVerified                // verified: the user is converted
	StepRemoved                 // --remove-old deleted the old location
	StepRollingBack             // --rollback began: the switch back may have happened
	StepRolledBack              // the user is back on the old location
)

var stepNames = [...]string{"none", "synced", "switching", "switched", "flushed", "kicked", "merged", "verified", "removed", "rolling-back", "rolled-back"}

func (s Step) String() string {
	if s >= 0 && int(s) < len(stepNames) {
		return stepNames[s]
	}
	return fmt.Sprintf("step%d", int(s))
}

func (s Step) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s *Step) UnmarshalText(b []byte) error {
	for i, n := range stepNames {
		if n == string(b) {
			*s = Step(i)
			return nil
		}
	}
	return fmt.Errorf("unknown step %q", b)
}

// MailboxMark is the new location's state of one mailbox when the last
// pass before the switch ended. Until the switch nobody but the rollout
// writes there, so a message whose modseq is above HighestModSeq was
// changed by the user on the new location, and a UID at or above UIDNext
// reached it after the switch.
type MailboxMark struct {
	Name          string         `json:"name"`
	UIDValidity   uint32         `json:"uidvalidity"`
	UIDNext       formats.UID    `json:"uidnext"`
	HighestModSeq formats.ModSeq `json:"highestmodseq"`
}

// Entry is one user's journal record. The last entry written for a user
// is its state.
type Entry struct {
	User string `json:"user"`
	Step Step   `json:"step"`
	Old  string `json:"old"` // the old mail location, as the userdb gave it
	New  string `json:"new"`
	// OldField is the passwd-file userdb_mail value before the switch;
	// HadField false means the user had none (the global mail_location).
	OldField string `json:"old_field,omitempty"`
	// OldLine is the user's passwd-file line before the first switch
	// (without its line end), recorded before the file changes: a
	// rollback puts it back byte for byte (userdb.RestorePasswdLine).
	OldLine  string `json:"old_line,omitempty"`
	HadField bool   `json:"had_field,omitempty"`
	Passes   int    `json:"passes,omitempty"`
	// Unproven is Verify.ExpungesUnproven of the verification that
	// converted the user: mail gone from the new location that its log
	// could not show the user expunged. --remove-old refuses then.
	Unproven int           `json:"unproven_expunges,omitempty"`
	Mark     []MailboxMark `json:"mark,omitempty"`
	Error    string        `json:"error,omitempty"`
	Time     time.Time     `json:"time"`
}

// Journal is the rollout's record of every user's step: one file of JSON
// lines, appended to with one write and fsync per entry. A rollout killed
// in the middle of a write leaves at most a torn last line, which
// OpenJournal ignores (the step it recorded is then redone; every step is
// idempotent). OpenJournal compacts the file (one line per user, written
// to a temporary file, fsynced and renamed over it) and holds an
// exclusive lock on it, so two rollouts never share a journal.
type Journal struct {
	path string

	mu       sync.Mutex
	f        *os.File          // guarded by mu
	entries  map[string]*Entry // guarded by mu
	lockFile *os.File          // holds the flock until Close
}

// OpenJournal opens (creating it and its directory if needed) the
// journal at path.
func OpenJournal(path string) (*Journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, formats.Wrap(err, formats.KindTemp, "journal", "", 0, path)
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, formats.Wrap(err, formats.KindTemp, "journal", "", 0, path)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, formats.Errorf(formats.KindInUse, "journal %s: another boxsync convert is using it (%v)", path, err)
	}
	fail := func(err error) (*Journal, error) {
		lock.Close()
		return nil, formats.Wrap(err, formats.KindTemp, "journal", "", 0, path)
	}
	j, err := ReadJournal(path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	if err := j.compact(); err != nil {
		return fail(err)
	}
	j.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fail(err)
	}
	// The lock lives as long as the process holds the lock file open;
	// it is closed with the journal.
	j.lockFile = lock
	return j, nil
}

// ReadJournal reads the journal at path (none = empty) for a dry run: it
// takes no lock and Put fails.
func ReadJournal(path string) (*Journal, error) {
	j := &Journal{path: path, entries: map[string]*Entry{}}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, formats.Wrap(err, formats.KindTemp, "journal", "", 0, path)
	}
	lines := bytes.Split(data, []byte("\n"))
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil || e.User == "" {
			if i == len(lines)-1 {
				continue // a torn last write: its step is redone
			}
			return nil, formats.Errorf(formats.KindInvalidData, "journal %s line %d: not a journal entry: %q", path, i+1, line)
		}
		j.entries[e.User] = &e
	}
	return j, nil
}

// compact rewrites the file with one line per user, atomically.
func (j *Journal) compact() error {
	var b bytes.Buffer
	for _, e := range j.sorted() {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return writeFileAtomic(j.path, b.Bytes(), 0o600)
}

func (j *Journal) sorted() []*Entry {
	out := make([]*Entry, 0, len(j.entries))
	for _, e := range j.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].User < out[b].User })
	return out
}

// Get returns a user's entry (Step StepNone if there is none).
func (j *Journal) Get(user string) Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e, ok := j.entries[user]; ok {
		c := *e
		c.Mark = append([]MailboxMark(nil), e.Mark...)
		return c
	}
	return Entry{User: user}
}

// Entries returns every user's entry, by name.
func (j *Journal) Entries() []Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []Entry
	for _, e := range j.sorted() {
		out = append(out, *e)
	}
	return out
}

// Put records e durably (append, fsync) before returning.
func (j *Journal) Put(e Entry) error {
	e.Time = time.Now().UTC().Truncate(time.Millisecond)
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return formats.Errorf(formats.KindParams, "journal %s is open read-only", j.path)
	}
	// One write: the kernel appends it whole or, on a crash, leaves a
	// torn last line that OpenJournal skips.
	if _, err := j.f.Write(line); err != nil {
		return formats.Wrap(err, formats.KindTemp, "journal", "", 0, j.path)
	}
	if err := j.f.Sync(); err != nil {
		return formats.Wrap(err, formats.KindTemp, "journal", "", 0, j.path)
	}
	j.entries[e.User] = &e
	return nil
}

// Path is the journal file.
func (j *Journal) Path() string { return j.path }

// Close releases the journal and its lock.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.lockFile.Close()
	return err
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory: write, fsync, rename, fsync the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = os.Chmod(tmp.Name(), perm); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
