package userdb

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// PasswdEntry is one line of a passwd-file:
//
//	user:password:uid:gid:(gecos):home:(shell):extra_fields
//
// (Dovecot 2.3 db-passwd-file.c). Everything after the seventh colon is
// the extra fields, colons included, split at spaces; a userdb reads only
// the fields named userdb_KEY=VALUE (userdb-passwd-file.c), passdb fields
// are the others.
type PasswdEntry struct {
	User       string
	Password   string
	UID, GID   string // as written: a number, a name or ""
	Home       string
	Extra      []string // KEY=VALUE or KEY, in file order
	Line       int      // 1-based
	userdbOnly bool     // has a uid/gid part (a userdb entry, not passdb-only)
}

// UserdbFields returns the userdb_ extra fields without their prefix.
func (e PasswdEntry) UserdbFields() map[string]string {
	m := map[string]string{}
	for _, f := range e.Extra {
		key, ok := strings.CutPrefix(f, "userdb_")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(key, "=")
		m[k] = v
	}
	return m
}

// ParsePasswdLine parses one passwd-file line. ok is false for lines
// Dovecot skips: empty, comments, and lines without a user name.
func ParsePasswdLine(line string) (e PasswdEntry, ok bool) {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" || line[0] == '#' || line[0] == ':' {
		return PasswdEntry{}, false
	}
	parts := strings.SplitN(line, ":", 8)
	e.User = parts[0]
	field := func(i int) string {
		if i < len(parts) {
			return parts[i]
		}
		return ""
	}
	e.Password = field(1)
	e.UID, e.GID = field(2), field(3)
	e.Home = field(5)
	e.userdbOnly = len(parts) > 2
	if len(parts) == 8 {
		// Split at spaces only (db-passwd-file.c: p_strsplit_spaces
		// with " "), not at tabs or other white space.
		for _, f := range strings.Split(parts[7], " ") {
			if f != "" {
				e.Extra = append(e.Extra, f)
			}
		}
	}
	return e, true
}

// ReadPasswdFile reads every entry of a passwd-file. A user listed twice
// is kept once, the first time, as Dovecot does.
func ReadPasswdFile(path string) ([]PasswdEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []PasswdEntry
	seen := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		e, ok := ParsePasswdLine(line)
		if !ok || seen[e.User] {
			continue
		}
		seen[e.User] = true
		e.Line = i + 1
		out = append(out, e)
	}
	return out, nil
}

// SetPasswdField sets the extra field key (e.g. "userdb_mail") of user's
// line in the passwd-file at path to value, replacing the file atomically
// (temp file with the same owner and mode, fsync, rename, directory
// fsync) under an exclusive lock on path+".boxsync-lock", so that
// concurrent switches never lose each other's changes. Every other line
// and every other byte of the user's line stay as they were. It returns
// the previous value (had tells whether the field existed).
//
// value may not contain spaces or line breaks (Dovecot splits extra
// fields at spaces).
func SetPasswdField(path, user, key, value string) (old string, had bool, err error) {
	if strings.ContainsAny(value, " \t\r\n") || strings.ContainsAny(key, " \t\r\n=") || key == "" {
		return "", false, fmt.Errorf("%s: can't store %s=%q in a passwd-file (no spaces or line breaks)", path, key, value)
	}
	unlock, err := lockFile(path + ".boxsync-lock")
	if err != nil {
		return "", false, err
	}
	defer unlock()

	data, err := os.ReadFile(path)
	if err != nil {
		return "", false, err
	}
	lines, at, err := findUserLine(path, data, user)
	if err != nil {
		return "", false, err
	}
	newLine, old, had := setExtraField(string(lines[at]), key, value)
	if had && old == value {
		return old, had, nil
	}
	lines[at] = []byte(newLine)
	if err := replaceFile(path, bytes.Join(lines, nil)); err != nil {
		return "", false, err
	}
	return old, had, nil
}

// findUserLine splits data into lines (each with its end) and finds
// user's, refusing a user listed twice.
func findUserLine(path string, data []byte, user string) ([][]byte, int, error) {
	lines := bytes.SplitAfter(data, []byte("\n"))
	at := -1
	for i, l := range lines {
		e, ok := ParsePasswdLine(string(l))
		if !ok || e.User != user {
			continue
		}
		if at >= 0 {
			return nil, 0, fmt.Errorf("%s: user %s is on lines %d and %d; fix the file first", path, user, at+1, i+1)
		}
		at = i
	}
	if at < 0 {
		return nil, 0, fmt.Errorf("%s: no line for user %s", path, user)
	}
	return lines, at, nil
}

// PasswdLine returns user's line of the passwd-file at path as it is,
// without its line end: what RestorePasswdLine can put back.
func PasswdLine(path, user string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	lines, at, err := findUserLine(path, data, user)
	if err != nil {
		return "", err
	}
	body, _ := splitLineEnd(string(lines[at]))
	return body, nil
}

// RestorePasswdLine puts user's line back to line (from PasswdLine, before
// SetPasswdField changed key), byte for byte, keeping the line end the
// file has now, atomically and under SetPasswdField's lock. It does so
// only if the line now is line with nothing changed but key's value
// (restored false otherwise, and the file is left alone): an edit made
// since the switch is never undone.
func RestorePasswdLine(path, user, key, line string) (restored bool, err error) {
	unlock, err := lockFile(path + ".boxsync-lock")
	if err != nil {
		return false, err
	}
	defer unlock()
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	lines, at, err := findUserLine(path, data, user)
	if err != nil {
		return false, err
	}
	cur, end := splitLineEnd(string(lines[at]))
	if cur == line {
		return true, nil
	}
	e, _ := ParsePasswdLine(cur)
	value, ok := "", false
	for _, f := range e.Extra {
		if k, v, _ := strings.Cut(f, "="); k == key {
			value, ok = v, true
			break
		}
	}
	if !ok {
		return false, nil
	}
	if switched, _, _ := setExtraField(line, key, value); switched != cur {
		return false, nil
	}
	lines[at] = []byte(line + end)
	if err := replaceFile(path, bytes.Join(lines, nil)); err != nil {
		return false, err
	}
	return true, nil
}

// splitLineEnd splits a line into its body and its end (LF, CRLF or none).
func splitLineEnd(line string) (body, end string) {
	for _, suffix := range []string{"\r\n", "\n"} {
		if b, ok := strings.CutSuffix(line, suffix); ok {
			return b, suffix
		}
	}
	return line, ""
}

// setExtraField rewrites one passwd-file line with key=value among its
// extra fields: in place of the first key=, else appended; the line's end
// (LF, CRLF or none) is kept.
func setExtraField(line, key, value string) (string, string, bool) {
	body, end := splitLineEnd(line)
	parts := strings.SplitN(body, ":", 8)
	for len(parts) < 8 {
		parts = append(parts, "")
	}
	extra := parts[7]
	// Find key= as a whole space-separated token, keeping the spacing.
	prefix := key + "="
	pos := 0
	for pos <= len(extra) {
		for pos < len(extra) && extra[pos] == ' ' {
			pos++
		}
		if pos >= len(extra) {
			break
		}
		tokEnd := strings.IndexByte(extra[pos:], ' ')
		if tokEnd < 0 {
			tokEnd = len(extra)
		} else {
			tokEnd += pos
		}
		tok := extra[pos:tokEnd]
		if old, ok := strings.CutPrefix(tok, prefix); ok {
			parts[7] = extra[:pos] + prefix + value + extra[tokEnd:]
			return strings.Join(parts, ":") + end, old, true
		}
		if tok == key { // a bare KEY means KEY=""
			parts[7] = extra[:pos] + prefix + value + extra[tokEnd:]
			return strings.Join(parts, ":") + end, "", true
		}
		pos = tokEnd
	}
	switch {
	case strings.TrimSpace(extra) == "":
		parts[7] = prefix + value
	case strings.HasSuffix(extra, " "):
		parts[7] = extra + prefix + value
	default:
		parts[7] = extra + " " + prefix + value
	}
	return strings.Join(parts, ":") + end, "", false
}

// replaceFile writes data to path atomically, keeping path's mode and
// owner.
func replaceFile(path string, data []byte) (err error) {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".boxsync-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(st.Mode().Perm()); err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if err = tmp.Chown(int(sys.Uid), int(sys.Gid)); err != nil && !errors.Is(err, os.ErrPermission) {
			return err
		}
		err = nil
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lockFile takes an exclusive flock on path (created 0600 if missing).
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("flock(%s): %w", path, err)
	}
	return func() { f.Close() }, nil
}

// parseID reads a uid or gid field: "" = not set (-1), a number, or a
// name looked up with lookup.
func parseID(s string, lookup func(string) (string, error)) (int, error) {
	if s == "" {
		return -1, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("invalid id %q", s)
		}
		return n, nil
	}
	id, err := lookup(s)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(id)
}
