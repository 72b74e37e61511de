package formats

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Location is a parsed Dovecot mail_location:
// FORMAT:PATH[:KEY=VALUE|:FLAG]... (dovecot-storage.md §9; Dovecot's
// mailbox_list_settings_parse). Paths are absolute after Expand.
type Location struct {
	Driver string // maildir, mbox, sdbox, mdbox, imapc
	Path   string // the root; for imapc the optional local index dir

	Inbox       string // INBOX=: mbox file / maildir of the INBOX
	Index       string // INDEX=: index files ("MEMORY" = none)
	Control     string // CONTROL=: uidlist, keywords, subscriptions
	Alt         string // ALT=: dbox alternate storage
	VolatileDir string // VOLATILEDIR=: lock files
	Layout      string // LAYOUT=: "" (the format's default), "fs", "maildir++", "index"
	UTF8        bool   // UTF-8: names on disk in UTF-8, not modified UTF-7

	// Other holds the remaining recognised keys (SUBSCRIPTIONS,
	// DIRNAME, ...) by upper-case name, for drivers that support them.
	Other map[string]string
}

// Drivers that a location may name, in Dovecot's spelling.
var locationDrivers = map[string]bool{
	"maildir": true, "mbox": true, "sdbox": true, "dbox": true, "mdbox": true,
	"imapc": true, "mem": true,
}

// Keys Dovecot 2.3 accepts in mail_location (mailbox-list.c). The ones
// boxsync does not implement are parsed and left for drivers to refuse.
var locationKeys = map[string]bool{
	"INBOX": true, "INDEX": true, "CONTROL": true, "ALT": true,
	"VOLATILEDIR": true, "LAYOUT": true, "UTF-8": true,
	"SUBSCRIPTIONS": true, "DIRNAME": true, "FULLDIRNAME": true,
	"MAILBOXDIR": true, "INDEXPVT": true, "INDEXCACHE": true,
	"LISTINDEX": true, "ITERINDEX": true, "NO-NOSELECT": true,
	"BROKENCHAR": true, "NO-NOSELECT-DIRS": true, "NOLOCALCONTROL": true,
	"COMPRESS": true, // boxsync's own: compressed mbox archives
}

// Vars are the values %-variables and ~ expand to in a location.
type Vars struct {
	User string // %u, %{user}; %n and %d are its local part and domain
	Home string // %h, %{home}, ~
	// EmptyHome makes %h expand to "" when Home is empty, as Dovecot's
	// auth does in userdb fields, instead of failing.
	EmptyHome bool
}

// ParseLocation parses a mail_location string and expands ~ and
// %-variables with v. Errors are KindConfig (doveadm exits 78).
func ParseLocation(s string, v Vars) (Location, error) {
	var loc Location
	fail := func(format string, args ...any) (Location, error) {
		return Location{}, &Error{Kind: KindConfig, Op: "location",
			Err: fmt.Errorf("%q: %s", s, fmt.Sprintf(format, args...))}
	}
	if s == "" {
		return fail("empty mail location")
	}
	parts := splitLocation(s)
	driver := strings.ToLower(parts[0])
	if !locationDrivers[driver] {
		if strings.ContainsAny(parts[0], "/~") {
			return fail("no format given: write it as FORMAT:PATH, e.g. maildir:%s", s)
		}
		return fail("unknown mail storage format %q (want maildir, mbox, sdbox, mdbox or imapc)", parts[0])
	}
	if driver == "dbox" { // Dovecot's old name for sdbox
		driver = "sdbox"
	}
	loc.Driver = driver
	if len(parts) > 1 {
		loc.Path = parts[1]
	}
	for _, kv := range parts[min(2, len(parts)):] {
		if kv == "" {
			continue
		}
		key, val, hasVal := strings.Cut(kv, "=")
		ukey := strings.ToUpper(key)
		if !locationKeys[ukey] {
			return fail("unknown setting %q", key)
		}
		switch ukey {
		case "INBOX":
			loc.Inbox = val
		case "INDEX":
			loc.Index = val
		case "CONTROL":
			loc.Control = val
		case "ALT":
			loc.Alt = val
		case "VOLATILEDIR":
			loc.VolatileDir = val
		case "LAYOUT":
			switch strings.ToLower(val) {
			case "fs", "maildir++", "index":
				loc.Layout = strings.ToLower(val)
			default:
				return fail("unknown LAYOUT %q (want fs, maildir++ or index)", val)
			}
		case "UTF-8":
			if hasVal {
				return fail("UTF-8 takes no value")
			}
			loc.UTF8 = true
		default:
			if loc.Other == nil {
				loc.Other = map[string]string{}
			}
			loc.Other[ukey] = val
		}
		if hasVal && val == "" && ukey != "INDEX" && ukey != "UTF-8" {
			return fail("%s= needs a value", ukey)
		}
	}
	if loc.Path == "" && driver != "imapc" {
		return fail("no path given")
	}
	var err error
	expand := func(p *string, what string) {
		if err != nil || *p == "" || (what == "INDEX" && *p == "MEMORY") {
			return
		}
		var e error
		*p, e = expandPath(*p, v)
		if e != nil {
			err = fmt.Errorf("%s: %w", what, e)
		}
	}
	expand(&loc.Path, "path")
	expand(&loc.Inbox, "INBOX")
	expand(&loc.Index, "INDEX")
	expand(&loc.Control, "CONTROL")
	expand(&loc.Alt, "ALT")
	expand(&loc.VolatileDir, "VOLATILEDIR")
	if err != nil {
		return fail("%s", err)
	}
	return loc, nil
}

// splitLocation splits on ':' where "::" stands for a literal ':'
// (Dovecot's mail_location escaping).
func splitLocation(s string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			if i+1 < len(s) && s[i+1] == ':' {
				cur.WriteByte(':')
				i++
				continue
			}
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(s[i])
	}
	return append(parts, cur.String())
}

// ExpandVars expands Dovecot's %-variables of a user in s: %u %{user},
// %n %{username} (the local part), %d %{domain}, %h %{home} and %%, as
// Dovecot's var_expand does for mail_location and userdb fields.
func ExpandVars(p string, v Vars) (string, error) {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			b.WriteByte(p[i])
			continue
		}
		if i+1 >= len(p) {
			return "", fmt.Errorf("%q ends in a lone %%", p)
		}
		i++
		name := string(p[i])
		if p[i] == '{' {
			end := strings.IndexByte(p[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("%q: unterminated %%{", p)
			}
			name = p[i+1 : i+end]
			i += end
		}
		local, domain, _ := strings.Cut(v.User, "@")
		switch name {
		case "%":
			b.WriteByte('%')
		case "u", "user":
			b.WriteString(v.User)
		case "n", "username":
			b.WriteString(local)
		case "d", "domain":
			b.WriteString(domain)
		case "h", "home":
			if v.Home == "" && !v.EmptyHome {
				return "", fmt.Errorf("%q uses %%h but the user has no home", p)
			}
			b.WriteString(v.Home)
		default:
			return "", fmt.Errorf("%q: unknown variable %%%s", p, name)
		}
	}
	return b.String(), nil
}

// expandPath expands %-variables and a leading ~, then makes the path
// absolute and clean.
func expandPath(p string, v Vars) (string, error) {
	out, err := ExpandVars(p, v)
	if err != nil {
		return "", err
	}
	if out == "~" || strings.HasPrefix(out, "~/") {
		if v.Home == "" {
			return "", fmt.Errorf("%q uses ~ but the user has no home", p)
		}
		out = v.Home + out[1:]
	}
	// Like doveadm, a relative path is taken from the current directory.
	abs, err := filepath.Abs(out)
	if err != nil {
		return "", fmt.Errorf("%q: %w", p, err)
	}
	return abs, nil
}

// String formats loc back as a mail_location.
func (loc Location) String() string {
	// Expanded values may hold ':' and '%', which must be escaped to
	// parse back to the same location.
	esc := func(s string) string {
		return strings.ReplaceAll(strings.ReplaceAll(s, "%", "%%"), ":", "::")
	}
	var b strings.Builder
	b.WriteString(loc.Driver + ":" + esc(loc.Path))
	kv := func(k, v string) {
		if v != "" {
			b.WriteString(":" + k + "=" + esc(v))
		}
	}
	kv("INBOX", loc.Inbox)
	kv("INDEX", loc.Index)
	kv("CONTROL", loc.Control)
	kv("ALT", loc.Alt)
	kv("VOLATILEDIR", loc.VolatileDir)
	kv("LAYOUT", loc.Layout)
	if loc.UTF8 {
		b.WriteString(":UTF-8")
	}
	keys := make([]string, 0, len(loc.Other))
	for k := range loc.Other {
		keys = append(keys, k)
	}
	sortStrings(keys)
	for _, k := range keys {
		b.WriteString(":" + k + "=" + esc(loc.Other[k]))
	}
	return b.String()
}
