package doveconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxIncludeDepth bounds !include nesting (a cycle is reported earlier).
const maxIncludeDepth = 20

// Setting is one `key = value` line.
type Setting struct {
	Key, Value string
	File       string // where it was set; "" for overrides
	Line       int
	// Err is set, and Value empty, when a `key = <file` value could not
	// be read. Such errors don't fail the parse: Dovecot's config
	// process reads root-only files (ssl_key = </etc/…/key.pem) that a
	// user running boxsync can't, and which boxsync never needs.
	Err error
}

// Section is the root of a file or a `type [name] { … }` block.
type Section struct {
	Type, Name string // both "" for the root
	File       string
	Line       int
	Settings   []Setting  // in file order; a later one replaces an earlier one
	Sections   []*Section // in order of first appearance
	parent     *Section
}

// Config is a parsed configuration with its -o overrides.
type Config struct {
	Root *Section
	// Files lists every file read, the main one first, then includes
	// and <file values in the order they were read.
	Files     []string
	overrides []Setting
}

// Error is a configuration error at a file and line (Line 0 = the file as
// a whole).
type Error struct {
	File string
	Line int
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Options give the parser its view of the world; nil fields (and a nil
// *Options) mean the operating system's.
type Options struct {
	ReadFile func(name string) ([]byte, error)
	Glob     func(pattern string) ([]string, error)
	Getenv   func(key string) string
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.ReadFile == nil {
		r.ReadFile = os.ReadFile
	}
	if r.Glob == nil {
		r.Glob = filepath.Glob
	}
	if r.Getenv == nil {
		r.Getenv = os.Getenv
	}
	return r
}

// ParseFile reads and parses the configuration file at path.
func ParseFile(path string, opt *Options) (*Config, error) {
	o := opt.withDefaults()
	data, err := o.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Path == path {
			err = pe.Err // the path is in the Error already
		}
		return nil, &Error{File: path, Err: err}
	}
	return parse(path, data, o)
}

// Parse parses data as the configuration file name (relative includes
// are resolved against name's directory).
func Parse(name string, data []byte, opt *Options) (*Config, error) {
	return parse(name, data, opt.withDefaults())
}

func parse(name string, data []byte, o Options) (*Config, error) {
	p := &parser{opt: o, cfg: &Config{Root: &Section{File: name}}}
	p.cfg.Files = append(p.cfg.Files, name)
	if err := p.file(name, data, p.cfg.Root, nil); err != nil {
		return nil, err
	}
	return p.cfg, nil
}

type parser struct {
	opt Options
	cfg *Config
}

// file parses one file's lines into cur. stack holds the files being
// included, outermost first, for cycle detection.
func (p *parser) file(name string, data []byte, cur *Section, stack []string) error {
	stack = append(stack, name)
	base := cur
	var (
		full     strings.Builder // a line continued with '\'
		fullLine int             // where the continued line began
	)
	lines := strings.Split(string(data), "\n")
	for i, raw := range lines {
		lineNo := i + 1
		fail := func(format string, args ...any) error {
			at := lineNo
			if full.Len() > 0 {
				at = fullLine
			}
			return &Error{File: name, Line: at, Err: fmt.Errorf(format, args...)}
		}
		line := strings.TrimSuffix(raw, "\r")
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' {
			continue // even inside a continued line, as Dovecot does
		}
		line = stripComment(line)
		line = strings.TrimRight(line, " \t")
		if strings.HasSuffix(line, `\`) {
			if full.Len() == 0 {
				fullLine = lineNo
			}
			part := strings.TrimRight(line[:len(line)-1], " \t")
			if part != "" {
				full.WriteString(part)
				full.WriteByte(' ')
			} else if full.Len() == 0 {
				full.WriteByte(' ') // keep the continuation pending
			}
			continue
		}
		if full.Len() > 0 {
			full.WriteString(line)
			line = strings.TrimSpace(full.String())
			full.Reset()
			lineNo = fullLine
			if line == "" {
				continue
			}
		}

		key, rest := splitKey(line)
		if strings.ContainsAny(key, `"'`) {
			return fail("Invalid character in name %s", key)
		}
		switch {
		case key == "!include" || key == "!include_try":
			if err := p.include(name, lineNo, unquote(rest), key == "!include_try", cur, stack); err != nil {
				return err
			}
		case key == "}" && rest == "":
			if cur == base {
				return fail("Unexpected '}'")
			}
			cur = cur.parent
		case strings.HasPrefix(rest, "="):
			if key == "" {
				return fail("Expecting a setting name before '='")
			}
			v, err := p.value(name, cur, strings.TrimLeft(rest[1:], " \t"))
			if err != nil {
				err = fail("%s: %w", key, err)
			}
			cur.Settings = append(cur.Settings, Setting{Key: key, Value: v, File: name, Line: lineNo, Err: err})
		case strings.HasSuffix(rest, "{"):
			secName := strings.TrimRight(rest[:len(rest)-1], " \t")
			if isQuoted(secName) {
				secName = unescape(secName[1 : len(secName)-1])
			} else if strings.ContainsAny(secName, " \t") {
				return fail("Expecting '{'")
			}
			if key == "" || key == "}" {
				return fail("Expecting a section name before '{'")
			}
			cur = cur.child(key, secName, name, lineNo)
		default:
			if rest == "" && strings.HasSuffix(key, "{") && len(key) > 1 {
				// "plugin{": Dovecot wants the space, and so do we.
				return fail("Expecting ' {' after the section name")
			}
			return fail("Expecting '='")
		}
	}
	if full.Len() > 0 {
		return &Error{File: name, Line: fullLine, Err: errors.New("file ends inside a continued line")}
	}
	if cur != base {
		return &Error{File: name, Line: cur.Line, Err: fmt.Errorf("Missing '}' for section %s", cur.label())}
	}
	return nil
}

// child returns cur's section of that type and name, creating it. An
// unnamed passdb or userdb block is always a new one: they form ordered
// lists, tried one after the other (Dovecot 2.3 auth settings).
func (s *Section) child(typ, name, file string, line int) *Section {
	for _, c := range s.Sections {
		if c.Type == typ && c.Name == name && !(name == "" && (typ == "passdb" || typ == "userdb")) {
			return c
		}
	}
	c := &Section{Type: typ, Name: name, File: file, Line: line, parent: s}
	s.Sections = append(s.Sections, c)
	return c
}

func (s *Section) label() string {
	if s.Name == "" {
		return s.Type
	}
	return s.Type + " " + s.Name
}

// stripComment cuts line at the first '#' outside quotes.
func stripComment(line string) string {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0 && c == '\\':
			i++
		case c == '"' || c == '\'':
			if quote == 0 {
				quote = c
			} else if quote == c {
				quote = 0
			}
		case c == '#' && quote == 0:
			return line[:i]
		}
	}
	return line
}

// splitKey splits "key = value" / "type name {" into the key and the rest,
// trimmed.
func splitKey(line string) (key, rest string) {
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return line, ""
	}
	return line[:i], strings.TrimLeft(line[i:], " \t")
}

func isQuoted(s string) bool {
	return len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0]
}

// unquote removes one pair of surrounding quotes and undoes escapes in
// them (Dovecot's str_unescape).
func unquote(s string) string {
	if isQuoted(s) {
		return unescape(s[1 : len(s)-1])
	}
	return s
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// value interprets the text after '=': <file, quotes, $variables.
func (p *parser) value(file string, cur *Section, v string) (string, error) {
	if strings.HasPrefix(v, "<") {
		path := p.relative(file, unquote(strings.TrimLeft(v[1:], " \t")))
		data, err := p.opt.ReadFile(path)
		if err != nil {
			return "", err
		}
		p.cfg.Files = append(p.cfg.Files, path)
		return strings.TrimRight(string(data), "\r\n"), nil
	}
	single := strings.HasPrefix(v, "'")
	v = unquote(v)
	if single || !strings.Contains(v, "$") {
		return v, nil
	}
	// Dovecot expands space-separated words that begin with '$'.
	words := strings.Split(v, " ")
	for i, w := range words {
		if len(w) < 2 || w[0] != '$' {
			continue
		}
		if env, ok := strings.CutPrefix(w[1:], "ENV:"); ok {
			words[i] = p.opt.Getenv(env)
			continue
		}
		words[i] = ""
		for s := cur; s != nil; s = s.parent {
			if val, ok := s.Get(w[1:]); ok {
				words[i] = val
				break
			}
		}
	}
	// Not trimmed: Dovecot gives "$protocols imap" with protocols unset
	// as " imap" (doveconf -n shows protocols = " imap").
	return strings.Join(words, " "), nil
}

func (p *parser) relative(file, path string) string {
	if filepath.IsAbs(path) || file == "" {
		return path
	}
	return filepath.Join(filepath.Dir(file), path)
}

func (p *parser) include(file string, line int, pattern string, try bool, cur *Section, stack []string) error {
	fail := func(err error) error { return &Error{File: file, Line: line, Err: err} }
	if pattern == "" {
		return fail(errors.New("!include needs a file name"))
	}
	if len(stack) >= maxIncludeDepth {
		return fail(fmt.Errorf("!include nested more than %d deep", maxIncludeDepth))
	}
	path := p.relative(file, pattern)
	paths := []string{path}
	if strings.ContainsAny(pattern, "*?[") {
		var err error
		if paths, err = p.opt.Glob(path); err != nil {
			return fail(fmt.Errorf("!include %s: %w", pattern, err))
		}
		if len(paths) == 0 {
			if try {
				return nil
			}
			return fail(fmt.Errorf("!include %s: No matches", pattern))
		}
	}
	for _, path := range paths {
		for _, open := range stack {
			if open == path {
				return fail(fmt.Errorf("recursive !include of %s", path))
			}
		}
		data, err := p.opt.ReadFile(path)
		if err != nil {
			if try && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fail(err)
		}
		p.cfg.Files = append(p.cfg.Files, path)
		if err := p.file(path, data, cur, stack); err != nil {
			return err
		}
	}
	return nil
}

// Get returns the value of the last setting key in s. A key with '/' is a
// section path, resolved as doveadm's -o does: "plugin/quota" is quota in
// the unnamed plugin section, "namespace/inbox/separator" is separator in
// the namespace named inbox.
func (s *Section) Get(key string) (string, bool) {
	st, ok := s.Lookup(key)
	return st.Value, ok
}

// Lookup is Get returning the whole Setting: where it was set, and the
// error of an unreadable `<file` value.
func (s *Section) Lookup(key string) (Setting, bool) {
	for i := len(s.Settings) - 1; i >= 0; i-- {
		if s.Settings[i].Key == key {
			return s.Settings[i], true
		}
	}
	typ, rest, ok := strings.Cut(key, "/")
	if !ok {
		return Setting{}, false
	}
	if name, sub, ok := strings.Cut(rest, "/"); ok {
		if c := s.Section(typ, name); c != nil {
			if st, ok := c.Lookup(sub); ok {
				return st, true
			}
		}
	}
	if c := s.Section(typ, ""); c != nil {
		return c.Lookup(rest)
	}
	return Setting{}, false
}

// Section returns the child section of that type and name, or nil.
func (s *Section) Section(typ, name string) *Section {
	for _, c := range s.Sections {
		if c.Type == typ && c.Name == name {
			return c
		}
	}
	return nil
}

// SectionsOf returns the child sections of a type ("namespace"), in order.
func (s *Section) SectionsOf(typ string) []*Section {
	var out []*Section
	for _, c := range s.Sections {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

// Override sets key (which may be a section path) to value above
// everything in the files, as doveadm -o does.
func (c *Config) Override(key, value string) error {
	if key == "" || strings.ContainsAny(key, " \t\n") {
		return fmt.Errorf("invalid setting name %q", key)
	}
	c.overrides = append(c.overrides, Setting{Key: key, Value: value})
	return nil
}

// Overridden tells whether key was set with Override.
func (c *Config) Overridden(key string) bool {
	_, ok := c.override(key)
	return ok
}

func (c *Config) override(key string) (Setting, bool) {
	for i := len(c.overrides) - 1; i >= 0; i-- {
		if c.overrides[i].Key == key {
			return c.overrides[i], true
		}
	}
	return Setting{}, false
}

// Get returns the effective value of key: the last override, else the
// last value in the files.
func (c *Config) Get(key string) (string, bool) {
	st, ok := c.Lookup(key)
	return st.Value, ok
}

// Lookup is Get returning the whole Setting (File is "" for an override).
func (c *Config) Lookup(key string) (Setting, bool) {
	if st, ok := c.override(key); ok {
		return st, true
	}
	if c.Root == nil {
		return Setting{}, false
	}
	return c.Root.Lookup(key)
}

// GetProtocol is Get as a service sees it: a value inside
// `protocol NAME { }` wins over the top-level one (doveadm reads its
// settings with protocol doveadm); overrides still win over both.
func (c *Config) GetProtocol(protocol, key string) (string, bool) {
	st, ok := c.LookupProtocol(protocol, key)
	return st.Value, ok
}

// LookupProtocol is GetProtocol returning the whole Setting.
func (c *Config) LookupProtocol(protocol, key string) (Setting, bool) {
	if st, ok := c.override(key); ok || c.Root == nil {
		return st, ok
	}
	if sec := c.Root.Section("protocol", protocol); sec != nil {
		if st, ok := sec.Lookup(key); ok {
			return st, true
		}
	}
	return c.Root.Lookup(key)
}

// String formats the configuration tree (without overrides) in a
// canonical form that parses back to the same tree: every value in
// single quotes, so nothing is expanded or read from files again.
func (c *Config) String() string {
	var b strings.Builder
	writeSection(&b, c.Root, "")
	return b.String()
}

func writeSection(b *strings.Builder, s *Section, indent string) {
	for _, st := range s.Settings {
		fmt.Fprintf(b, "%s%s = %s\n", indent, st.Key, quote(st.Value))
	}
	for _, c := range s.Sections {
		if c.Name == "" {
			fmt.Fprintf(b, "%s%s {\n", indent, c.Type)
		} else {
			fmt.Fprintf(b, "%s%s %s {\n", indent, c.Type, quote(c.Name))
		}
		writeSection(b, c, indent+"  ")
		fmt.Fprintf(b, "%s}\n", indent)
	}
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return "'" + r.Replace(s) + "'"
}
