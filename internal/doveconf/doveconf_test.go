package doveconf

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFiles creates files (relative names) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGet(t *testing.T) {
	env := map[string]string{"MAILROOT": "/srv/mail"}
	tests := []struct {
		name  string
		files map[string]string // dovecot.conf is the main file
		key   string
		want  string
		ok    bool
	}{
		{name: "plain", files: map[string]string{"dovecot.conf": "mail_location = maildir:~/Maildir\n"},
			key: "mail_location", want: "maildir:~/Maildir", ok: true},
		{name: "no spaces", files: map[string]string{"dovecot.conf": "mail_location=mdbox:~/mdbox"},
			key: "mail_location", want: "mdbox:~/mdbox", ok: true},
		{name: "missing", files: map[string]string{"dovecot.conf": "a = b\n"},
			key: "mail_location", ok: false},
		{name: "last wins", files: map[string]string{"dovecot.conf": "a = 1\na = 2\n"},
			key: "a", want: "2", ok: true},
		{name: "comments", files: map[string]string{"dovecot.conf": "# a = 0\n  # indented\na = 1 # trailing\nb = x#y\n"},
			key: "a", want: "1", ok: true},
		{name: "hash ends the value", files: map[string]string{"dovecot.conf": "b = x#y\n"},
			key: "b", want: "x", ok: true},
		{name: "hash in quotes", files: map[string]string{"dovecot.conf": `b = "x # y"` + "\n"},
			key: "b", want: "x # y", ok: true},
		{name: "double quotes and escapes", files: map[string]string{"dovecot.conf": `b = "a \"q\" \\ \t."`},
			key: "b", want: "a \"q\" \\ \t.", ok: true},
		{name: "single quotes", files: map[string]string{"dovecot.conf": `b = ' spaced '`},
			key: "b", want: " spaced ", ok: true},
		{name: "empty value", files: map[string]string{"dovecot.conf": "b =\n"},
			key: "b", want: "", ok: true},
		{name: "trailing whitespace and CRLF", files: map[string]string{"dovecot.conf": "b = v \t\r\n"},
			key: "b", want: "v", ok: true},
		{name: "continuation", files: map[string]string{"dovecot.conf": "b = one \\\n  # comment\n   two \\\n three\n"},
			key: "b", want: "one two three", ok: true},
		{name: "var", files: map[string]string{"dovecot.conf": "mail_plugins = quota\nmail_plugins = $mail_plugins zlib\n"},
			key: "mail_plugins", want: "quota zlib", ok: true},
		{name: "var unset is empty", files: map[string]string{"dovecot.conf": "mail_plugins = $mail_plugins zlib\n"},
			key: "mail_plugins", want: " zlib", ok: true},
		{name: "var in section sees parent", files: map[string]string{"dovecot.conf": "mail_plugins = quota\nprotocol imap {\n  mail_plugins = $mail_plugins imap_quota\n}\n"},
			key: "protocol/imap/mail_plugins", want: "quota imap_quota", ok: true},
		{name: "var not in single quotes", files: map[string]string{"dovecot.conf": "a = x\nb = '$a'\n"},
			key: "b", want: "$a", ok: true},
		{name: "var only whole words", files: map[string]string{"dovecot.conf": "a = x\nb = pre$a\n"},
			key: "b", want: "pre$a", ok: true},
		{name: "env var only as a word", files: map[string]string{"dovecot.conf": "mail_location = maildir:$ENV:MAILROOT\n"},
			key: "mail_location", want: "maildir:$ENV:MAILROOT", ok: true},
		{name: "env var word", files: map[string]string{"dovecot.conf": "mail_home = $ENV:MAILROOT\n"},
			key: "mail_home", want: "/srv/mail", ok: true},
		{name: "file value", files: map[string]string{"dovecot.conf": "mail_location = <loc.txt\n", "loc.txt": "sdbox:~/dbox\n"},
			key: "mail_location", want: "sdbox:~/dbox", ok: true},
		{name: "section", files: map[string]string{"dovecot.conf": "namespace inbox {\n  separator = /\n  inbox = yes\n}\n"},
			key: "namespace/inbox/separator", want: "/", ok: true},
		{name: "nameless section", files: map[string]string{"dovecot.conf": "plugin {\n  quota = maildir:User quota\n}\n"},
			key: "plugin/quota", want: "maildir:User quota", ok: true},
		{name: "nested sections", files: map[string]string{"dovecot.conf": "service imap-login {\n  inet_listener imap {\n    port = 143\n  }\n}\n"},
			key: "service/imap-login/inet_listener/imap/port", want: "143", ok: true},
		{name: "quoted section name", files: map[string]string{"dovecot.conf": "namespace \"my box\" {\n  prefix = x/\n}\n"},
			key: "namespace/my box/prefix", want: "x/", ok: true},
		{name: "sections merge", files: map[string]string{"dovecot.conf": "plugin {\n a = 1\n}\nplugin {\n a = 2\n}\n"},
			key: "plugin/a", want: "2", ok: true},
		{name: "section setting is not top-level", files: map[string]string{"dovecot.conf": "plugin {\n  a = 1\n}\n"},
			key: "a", ok: false},
		{name: "include", files: map[string]string{"dovecot.conf": "!include conf.d/10-mail.conf\n", "conf.d/10-mail.conf": "mail_location = mbox:~/mail\n"},
			key: "mail_location", want: "mbox:~/mail", ok: true},
		{name: "include glob in order", files: map[string]string{
			"dovecot.conf":     "a = 0\n!include conf.d/*.conf\n",
			"conf.d/10-a.conf": "a = 1\n", "conf.d/20-b.conf": "a = 2\n"},
			key: "a", want: "2", ok: true},
		{name: "include relative to including file", files: map[string]string{
			"dovecot.conf": "!include conf.d/x.conf\n", "conf.d/x.conf": "!include y.conf\n", "conf.d/y.conf": "a = deep\n"},
			key: "a", want: "deep", ok: true},
		{name: "include inside section", files: map[string]string{
			"dovecot.conf": "namespace inbox {\n  !include ns.conf\n}\n", "ns.conf": "separator = .\n"},
			key: "namespace/inbox/separator", want: ".", ok: true},
		{name: "include_try missing", files: map[string]string{"dovecot.conf": "a = 1\n!include_try local.conf\n!include_try nothing/*.conf\n"},
			key: "a", want: "1", ok: true},
		{name: "include quoted", files: map[string]string{"dovecot.conf": "!include \"x.conf\"\n", "x.conf": "a = q\n"},
			key: "a", want: "q", ok: true},
		{name: "later include overrides", files: map[string]string{"dovecot.conf": "!include x.conf\na = main\n", "x.conf": "a = inc\n"},
			key: "a", want: "main", ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			cfg, err := ParseFile(filepath.Join(dir, "dovecot.conf"), &Options{Getenv: func(k string) string { return env[k] }})
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			got, ok := cfg.Get(tc.key)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Get(%q) = %q, %v, want %q, %v", tc.key, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		file  string // the file the error must name
		line  int
		want  string
	}{
		{name: "no equals", files: map[string]string{"dovecot.conf": "a = 1\nnonsense\n"},
			file: "dovecot.conf", line: 2, want: "Expecting '='"},
		{name: "unexpected close", files: map[string]string{"dovecot.conf": "a = 1\n}\n"},
			file: "dovecot.conf", line: 2, want: "Unexpected '}'"},
		{name: "missing close", files: map[string]string{"dovecot.conf": "a = 1\nnamespace inbox {\n  b = 2\n"},
			file: "dovecot.conf", line: 2, want: "Missing '}'"},
		{name: "error in include names the include", files: map[string]string{"dovecot.conf": "\n!include x.conf\n", "x.conf": "ok = 1\n\nbad line\n"},
			file: "x.conf", line: 3, want: "Expecting '='"},
		{name: "include missing", files: map[string]string{"dovecot.conf": "a = 1\n!include nope.conf\n"},
			file: "dovecot.conf", line: 2, want: "no such file"},
		{name: "include glob no match", files: map[string]string{"dovecot.conf": "!include conf.d/*.conf\n"},
			file: "dovecot.conf", line: 1, want: "No matches"},
		{name: "recursive include", files: map[string]string{"dovecot.conf": "!include a.conf\n", "a.conf": "!include dovecot.conf\n"},
			file: "a.conf", line: 1, want: "recursive"},
		{name: "section closed by include", files: map[string]string{"dovecot.conf": "plugin {\n!include x.conf\n", "x.conf": "}\n"},
			file: "x.conf", line: 1, want: "Unexpected '}'"},
		{name: "section left open by include", files: map[string]string{"dovecot.conf": "!include x.conf\n}\n", "x.conf": "plugin {\n"},
			file: "x.conf", line: 1, want: "Missing '}'"},
		{name: "unquoted section name with space", files: map[string]string{"dovecot.conf": "namespace a b {\n}\n"},
			file: "dovecot.conf", line: 1, want: "Expecting '{'"},
		{name: "no key", files: map[string]string{"dovecot.conf": "= x\n"},
			file: "dovecot.conf", line: 1, want: "setting name"},
		{name: "continued to EOF", files: map[string]string{"dovecot.conf": "a = 1 \\\n"},
			file: "dovecot.conf", line: 1, want: "continued"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			_, err := ParseFile(filepath.Join(dir, "dovecot.conf"), nil)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseFile = %v, want an *Error", err)
			}
			if e.File != filepath.Join(dir, tc.file) || e.Line != tc.line || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseFile error = %q (file %s, line %d), want %q at %s:%d", err, e.File, e.Line, tc.want, tc.file, tc.line)
			}
			if want := filepath.Join(dir, tc.file) + ":"; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
		})
	}
}

func TestFileValueUnreadable(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"dovecot.conf": "\n\nssl_key = <private/key.pem\nmail_location = maildir:~/Maildir\n"})
	cfg, err := ParseFile(filepath.Join(dir, "dovecot.conf"), nil)
	if err != nil {
		t.Fatalf("ParseFile = %v, want the unreadable value deferred", err)
	}
	if v, _ := cfg.Get("mail_location"); v != "maildir:~/Maildir" {
		t.Errorf("Get(mail_location) = %q", v)
	}
	st, ok := cfg.Lookup("ssl_key")
	var e *Error
	if !ok || st.Value != "" || !errors.As(st.Err, &e) || e.Line != 3 || !errors.Is(st.Err, fs.ErrNotExist) ||
		!strings.Contains(st.Err.Error(), "ssl_key") {
		t.Errorf("Lookup(ssl_key) = %+v, %v, want an empty value and an error at line 3 naming ssl_key", st, ok)
	}
}

func TestParseFileMissing(t *testing.T) {
	_, err := ParseFile(filepath.Join(t.TempDir(), "none.conf"), nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ParseFile(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestOverride(t *testing.T) {
	cfg, err := Parse("/etc/dovecot/dovecot.conf", []byte(`
mail_location = maildir:~/Maildir
plugin {
  quota = count
}
protocol doveadm {
  mail_location = mdbox:~/mdbox
}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got string, ok bool, want string) {
		t.Helper()
		if !ok || got != want {
			t.Errorf("%s = %q, %v, want %q", what, got, ok, want)
		}
	}
	v, ok := cfg.Get("mail_location")
	check("Get(mail_location)", v, ok, "maildir:~/Maildir")
	v, ok = cfg.GetProtocol("doveadm", "mail_location")
	check("GetProtocol(doveadm, mail_location)", v, ok, "mdbox:~/mdbox")
	v, ok = cfg.GetProtocol("imap", "mail_location")
	check("GetProtocol(imap, mail_location)", v, ok, "maildir:~/Maildir")

	if err := cfg.Override("mail_location", "sdbox:/x"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Override("plugin/quota", "maildir"); err != nil {
		t.Fatal(err)
	}
	v, ok = cfg.Get("mail_location")
	check("Get(mail_location) after -o", v, ok, "sdbox:/x")
	v, ok = cfg.GetProtocol("doveadm", "mail_location")
	check("GetProtocol(doveadm, mail_location) after -o", v, ok, "sdbox:/x")
	v, ok = cfg.Get("plugin/quota")
	check("Get(plugin/quota) after -o", v, ok, "maildir")
	if err := cfg.Override("", "x"); err == nil {
		t.Error("Override(\"\") = nil, want an error")
	}
}

func TestSections(t *testing.T) {
	cfg, err := Parse("x.conf", []byte("namespace inbox {\n inbox = yes\n}\nnamespace shared {\n type = shared\n}\nplugin {\n}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range cfg.Root.SectionsOf("namespace") {
		names = append(names, s.Name)
	}
	if want := []string{"inbox", "shared"}; !reflect.DeepEqual(names, want) {
		t.Errorf("SectionsOf(namespace) = %q, want %q", names, want)
	}
	if s := cfg.Root.Section("namespace", "shared"); s == nil || s.Line != 4 {
		t.Errorf("Section(namespace, shared) = %+v, want the one at line 4", s)
	}
	if s := cfg.Root.Section("namespace", "nope"); s != nil {
		t.Errorf("Section(namespace, nope) = %+v, want nil", s)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"dovecot.conf": "!include a.conf\nx = <v.txt\n", "a.conf": "", "v.txt": "1",
	})
	cfg, err := ParseFile(filepath.Join(dir, "dovecot.conf"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "dovecot.conf"), filepath.Join(dir, "a.conf"), filepath.Join(dir, "v.txt")}
	if !reflect.DeepEqual(cfg.Files, want) {
		t.Errorf("Files = %q, want %q", cfg.Files, want)
	}
}

// strip drops positions so trees can be compared after a round trip.
func strip(s *Section) *Section {
	out := &Section{Type: s.Type, Name: s.Name}
	for _, st := range s.Settings {
		out.Settings = append(out.Settings, Setting{Key: st.Key, Value: st.Value})
	}
	for _, c := range s.Sections {
		out.Sections = append(out.Sections, strip(c))
	}
	return out
}

func TestStringRoundTrip(t *testing.T) {
	src := "a = 1\nb = \"x 'y' \\\"z\\\" # no\"\nc = $a two\nnamespace \"in box\" {\n  separator = /\n  sub x {\n    k = ''\n  }\n}\n"
	cfg, err := Parse("x.conf", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("y.conf", []byte(cfg.String()), nil)
	if err != nil {
		t.Fatalf("Parse(String()) = %v\n%s", err, cfg.String())
	}
	if got, want := strip(again.Root), strip(cfg.Root); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip changed the tree:\n%s\nvs\n%s", again.String(), cfg.String())
	}
}

func noFS() *Options {
	return &Options{
		ReadFile: func(string) ([]byte, error) { return nil, fs.ErrNotExist },
		Glob:     func(string) ([]string, error) { return nil, nil },
		Getenv:   func(string) string { return "" },
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"mail_location = maildir:~/Maildir\n",
		"namespace inbox {\n  separator = /\n  inbox = yes\n}\n",
		"a = 1 \\\n 2\n# c\nb = \"q # \\\" \" # x\n",
		"mail_plugins = $mail_plugins zlib\nx = '$y'\n",
		"!include_try conf.d/*.conf\nplugin {\n}\n",
		"}\n", "a {\n", "= x\n", "k = <f\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("/fuzz/dovecot.conf", data, noFS())
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File == "" {
				t.Fatalf("Parse error %v is not an *Error naming a file", err)
			}
			return
		}
		out := cfg.String()
		again, err := Parse("/fuzz/again.conf", []byte(out), noFS())
		if err != nil {
			t.Fatalf("Parse(String()) = %v\ninput %q\noutput %q", err, data, out)
		}
		if got, want := strip(again.Root), strip(cfg.Root); !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip changed the tree\ninput %q\noutput %q\nagain %q", data, out, again.String())
		}
	})
}

// Unnamed userdb and passdb blocks are a list, tried in order; other
// repeated blocks (plugin { } twice) merge.
func TestAuthDatabaseLists(t *testing.T) {
	cfg, err := Parse("x.conf", []byte("userdb {\n driver = passwd-file\n}\nplugin {\n a = 1\n}\nuserdb {\n driver = static\n}\nplugin {\n b = 2\n}\npassdb {\n driver = pam\n}\npassdb {\n driver = passwd-file\n}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var drivers []string
	for _, typ := range []string{"userdb", "passdb"} {
		for _, s := range cfg.Root.SectionsOf(typ) {
			d, _ := s.Get("driver")
			drivers = append(drivers, typ+":"+d)
		}
	}
	if want := []string{"userdb:passwd-file", "userdb:static", "passdb:pam", "passdb:passwd-file"}; !reflect.DeepEqual(drivers, want) {
		t.Errorf("drivers = %q, want %q", drivers, want)
	}
	if n := len(cfg.Root.SectionsOf("plugin")); n != 1 {
		t.Errorf("%d plugin sections, want 1 (merged)", n)
	}
	if v, _ := cfg.Get("plugin/a"); v != "1" {
		t.Errorf("plugin/a = %q", v)
	}
}
