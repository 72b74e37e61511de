package userdb

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/boxsync/boxsync/internal/doveconf"
)

func TestParsePasswdLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
		want PasswdEntry
	}{
		{"", false, PasswdEntry{}},
		{"# comment:x:1:1::/h::", false, PasswdEntry{}},
		{":nouser:1:1", false, PasswdEntry{}},
		{"alice:{PLAIN}pw", true, PasswdEntry{User: "alice", Password: "{PLAIN}pw"}},
		{"bob:x:1000:100::/home/bob::", true, PasswdEntry{User: "bob", Password: "x", UID: "1000", GID: "100", Home: "/home/bob", userdbOnly: true}},
		{"c:x:1:2:gecos:/h:/bin/sh:userdb_mail=maildir:~/Maildir  allow_nets=1.2.3.4/32 nopassword\r\n", true,
			PasswdEntry{User: "c", Password: "x", UID: "1", GID: "2", Home: "/h", userdbOnly: true,
				Extra: []string{"userdb_mail=maildir:~/Maildir", "allow_nets=1.2.3.4/32", "nopassword"}}},
	} {
		got, ok := ParsePasswdLine(tc.line)
		if ok != tc.ok || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ParsePasswdLine(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSetExtraField(t *testing.T) {
	const k = "userdb_mail"
	for _, tc := range []struct{ in, out, old string }{
		{"a:x:1:1::/h::\n", "a:x:1:1::/h::userdb_mail=NEW\n", ""},
		{"a:x\n", "a:x::::::userdb_mail=NEW\n", ""},
		{"a:x:1:1::/h::quota_rule=*:storage=1G\r\n", "a:x:1:1::/h::quota_rule=*:storage=1G userdb_mail=NEW\r\n", ""},
		{"a:x:1:1::/h::x=1  userdb_mail=maildir:~/Maildir  y=2", "a:x:1:1::/h::x=1  userdb_mail=NEW  y=2", "maildir:~/Maildir"},
		{"a:x:1:1::/h::userdb_mail_x=1 userdb_mail=o\n", "a:x:1:1::/h::userdb_mail_x=1 userdb_mail=NEW\n", "o"},
		{"a:x:1:1::/h::userdb_mail\n", "a:x:1:1::/h::userdb_mail=NEW\n", ""},
		{"a:x:1:1::/h::y=2 \n", "a:x:1:1::/h::y=2 userdb_mail=NEW\n", ""},
	} {
		out, old, _ := setExtraField(tc.in, k, "NEW")
		if out != tc.out || old != tc.old {
			t.Errorf("setExtraField(%q) = %q, %q; want %q, %q", tc.in, out, old, tc.out, tc.old)
		}
		e, _ := ParsePasswdLine(out)
		if got := e.UserdbFields()["mail"]; got != "NEW" {
			t.Errorf("%q parses back with mail=%q", out, got)
		}
	}
}

// The switch of one user keeps every other byte of the file: comments,
// other users, unusual fields, a missing final newline, CRLF lines.
func TestSetPasswdFieldKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	before := "# Dovecot users\n\n" +
		"alice:{SHA512-CRYPT}$6$x$y:5000:5000::/var/vmail/alice::userdb_mail=maildir:~/Maildir userdb_quota_rule=*:storage=1G\n" +
		"  # indented comment\n" +
		"bob:{PLAIN}p:w:5000:5000:Bob, Room 1:/var/vmail/bob:/bin/false:allow_nets=127.0.0.1\r\n" +
		"carol:{PLAIN}c\n" +
		"dave:x:5000:5000::/var/vmail/dave::userdb_mail=maildir:~/Maildir"
	if err := os.WriteFile(path, []byte(before), 0o640); err != nil {
		t.Fatal(err)
	}
	old, had, err := SetPasswdField(path, "alice", "userdb_mail", "mdbox:~/mdbox")
	if err != nil || !had || old != "maildir:~/Maildir" {
		t.Fatalf("SetPasswdField = %q, %v, %v", old, had, err)
	}
	if _, _, err := SetPasswdField(path, "dave", "userdb_mail", "mdbox:~/mdbox"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := strings.Replace(before, "alice::userdb_mail=maildir:~/Maildir", "alice::userdb_mail=mdbox:~/mdbox", 1)
	want = strings.Replace(want, "dave::userdb_mail=maildir:~/Maildir", "dave::userdb_mail=mdbox:~/mdbox", 1)
	if string(got) != want {
		t.Fatalf("file after switch:\n%q\nwant\n%q", got, want)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
	if _, _, err := SetPasswdField(path, "nobody-here", "userdb_mail", "x:y"); err == nil {
		t.Error("unknown user: no error")
	}
	if _, _, err := SetPasswdField(path, "bob", "userdb_mail", "has space"); err == nil {
		t.Error("value with a space: no error")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".users.boxsync-*"))
	if len(leftovers) > 0 {
		t.Errorf("temp files left: %v", leftovers)
	}
}

func TestSetPasswdFieldRefusesDuplicates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	os.WriteFile(path, []byte("a:x:1:1::/h::\nb:x:1:1::/h::\na:y:1:1::/h2::\n"), 0o600)
	_, _, err := SetPasswdField(path, "a", "userdb_mail", "m:x")
	if err == nil || !strings.Contains(err.Error(), "lines 1 and 3") {
		t.Fatalf("err = %v, want one naming lines 1 and 3", err)
	}
}

// Workers switching different users at once all land.
func TestSetPasswdFieldConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	var b strings.Builder
	const n = 40
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "u%d:x:1000:1000::/home/u%d::userdb_mail=maildir:~/Maildir\n", i, i)
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := SetPasswdField(path, fmt.Sprintf("u%d", i), "userdb_mail", fmt.Sprintf("mdbox:/m/%d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	entries, err := ReadPasswdFile(path)
	if err != nil || len(entries) != n {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	for i, e := range entries {
		if got := e.UserdbFields()["mail"]; got != fmt.Sprintf("mdbox:/m/%d", i) {
			t.Errorf("%s: mail=%q", e.User, got)
		}
	}
}

func fakeSystem(passwdPath string) System {
	users := map[string]*user.User{
		"vmail": {Username: "vmail", Uid: "5000", Gid: "5000", HomeDir: "/var/vmail"},
		"sysu":  {Username: "sysu", Uid: "1001", Gid: "1001", HomeDir: "/home/sysu"},
	}
	return System{
		LookupUser: func(name string) (*user.User, error) {
			if u, ok := users[name]; ok {
				return u, nil
			}
			return nil, user.UnknownUserError(name)
		},
		LookupGroup: func(name string) (*user.Group, error) {
			if name == "vmail" {
				return &user.Group{Name: "vmail", Gid: "5000"}, nil
			}
			return nil, user.UnknownGroupError(name)
		},
		PasswdPath: passwdPath,
	}
}

func TestConfigUserdbs(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	os.WriteFile(users, []byte("# virtual users\n"+
		"alice@example.com:{PLAIN}x:vmail:vmail::/var/vmail/%d/%n::userdb_mail=mdbox:%h/mdbox userdb_quota_rule=*:storage=1G\n"+
		"bob@example.com:{PLAIN}x:5000:5000::::\n"+
		"passonly:{PLAIN}x\n"+
		"root:x:0:0::/root::\n"), 0o644)
	passwd := filepath.Join(dir, "passwd")
	os.WriteFile(passwd, []byte("root:x:0:0::/root:/bin/sh\nsysu:x:1001:1001::/home/sysu:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"), 0o644)
	conf := fmt.Sprintf(`
mail_location = maildir:~/Maildir
last_valid_uid = 60000
userdb {
  driver = passwd-file
  args = username_format=%%u %s
  default_fields = home=/srv/%%d/%%n
  override_fields = uid=vmail
}
userdb {
  driver = passwd
}
userdb {
  driver = static
  args = uid=vmail gid=vmail home=/var/vmail/%%d/%%n mail=sdbox:%%h/sdbox allow_all_users=yes
}
`, users)
	cfg, err := doveconf.Parse("dovecot.conf", []byte(conf), nil)
	if err != nil {
		t.Fatal(err)
	}
	// NSS's other sources: sysu again (listed once), and ldapu.
	fakeGetent(t, map[string]string{"passwd": "sysu:x:1001:1001::/home/sysu:/bin/sh\nldapu:*:2000:2000::/home/ldapu:/bin/sh\n"})
	db, err := New(cfg, fakeSystem(passwd))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want string // uid gid home mail source-prefix
	}{
		{"alice@example.com", "5000 5000 /var/vmail/%d/%n mdbox:/mdbox passwd-file"}, // %h is "" in extra fields, as in Dovecot
		{"passonly", "5000 5000 /var/vmail//passonly sdbox:/var/vmail//passonly/sdbox static"},
		{"bob@example.com", "5000 5000 /srv/example.com/bob  passwd-file"},
		{"sysu", "1001 1001 /home/sysu  passwd"},
		{"else@example.org", "5000 5000 /var/vmail/example.org/else sdbox:/var/vmail/example.org/else/sdbox static"},
	} {
		u, err := db.Lookup(tc.name)
		if tc.want == "unknown" {
			if !errors.Is(err, ErrUnknownUser) {
				t.Errorf("%s: %v, want unknown", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got := fmt.Sprintf("%d %d %s %s %s", u.UID, u.GID, u.Home, u.Mail, strings.Fields(u.Source)[0])
		if got != tc.want {
			t.Errorf("%s: got %q, want %q (%+v)", tc.name, got, tc.want, u)
		}
	}
	// root is listed (Dovecot iterates it; its lookup then fails), nobody
	// is above last_valid_uid, ldapu comes from getent.
	// passwd-file home is taken as written: Dovecot doesn't expand the
	// home column, only extra fields (checked against doveadm user in
	// TestDoveadmUserAgrees).
	names, err := db.Users()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, " "); got != "alice@example.com bob@example.com passonly root sysu ldapu" {
		t.Errorf("Users() = %q", got)
	}
	if p, _ := db.PasswdFile("alice@example.com"); p != users {
		t.Errorf("PasswdFile = %q", p)
	}
	if p, _ := db.PasswdFile("sysu"); p != "" {
		t.Errorf("PasswdFile(sysu) = %q, want none", p)
	}
}

func TestUnknownUser(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	os.WriteFile(users, []byte("a:x:1000:1000::/h::\nz:x:0:0::/root::\n"), 0o644)
	cfg, _ := doveconf.Parse("c", []byte("userdb {\n driver = passwd-file\n args = "+users+"\n}\n"), nil)
	db, err := New(cfg, fakeSystem(""))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nope", "z"} { // uid 0 = unknown (userdb-passwd-file.c)
		_, err = db.Lookup(name)
		if !errors.Is(err, ErrUnknownUser) {
			t.Errorf("Lookup(%s) = %v, want ErrUnknownUser", name, err)
		}
	}
}

func TestUnsupportedDriver(t *testing.T) {
	cfg, _ := doveconf.Parse("c", []byte("userdb {\n driver = sql\n args = /etc/dovecot/sql.conf\n}\n"), nil)
	_, err := New(cfg, System{})
	if err == nil || !strings.Contains(err.Error(), "sql is not supported") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzSetExtraField(f *testing.F) {
	f.Add("a:x:1:1::/h::userdb_mail=maildir:~/Maildir y=2\n", "mdbox:~/m")
	f.Add("a", "v")
	f.Add("a:b:c:d:e:f:g:h:i:j k=l userdb_mail\r\n", "")
	f.Fuzz(func(t *testing.T, line, value string) {
		if strings.ContainsAny(value, " \t\r\n") || strings.ContainsAny(line[:max(0, len(line)-2)], "\r\n") {
			return
		}
		before, ok := ParsePasswdLine(line)
		if !ok {
			return
		}
		out, _, _ := setExtraField(line, "userdb_mail", value)
		after, ok := ParsePasswdLine(out)
		if !ok {
			t.Fatalf("%q -> %q no longer parses", line, out)
		}
		if got := after.UserdbFields()["mail"]; got != value && !(value == "" && got == "") {
			t.Fatalf("%q -> %q: mail=%q, want %q", line, out, got, value)
		}
		if after.User != before.User || after.Password != before.Password || after.UID != before.UID ||
			after.GID != before.GID || after.Home != before.Home {
			t.Fatalf("%q -> %q changed a fixed field", line, out)
		}
		// Every other extra field survives in order.
		var keep, got []string
		for _, e := range before.Extra {
			if !strings.HasPrefix(e, "userdb_mail=") && e != "userdb_mail" {
				keep = append(keep, e)
			}
		}
		for _, e := range after.Extra {
			if !strings.HasPrefix(e, "userdb_mail=") && e != "userdb_mail" {
				got = append(got, e)
			}
		}
		if fmt.Sprint(keep) != fmt.Sprint(got) {
			t.Fatalf("%q -> %q: other fields %v became %v", line, out, keep, got)
		}
	})
}

// TestRestorePasswdLine: a line switched by SetPasswdField goes back byte
// for byte, whether the field was there or added (with the colons it
// took); a line edited otherwise since is left alone.
func TestRestorePasswdLine(t *testing.T) {
	cases := []struct {
		name, line string
		edit       func(string) string // after the switch; nil = none
		restored   bool
	}{
		{"field replaced", "alice:{PLAIN}a:5000:5000::/h::userdb_quota_rule=*:storage=1G userdb_mail=maildir:~/Mail%u  x=y", nil, true},
		{"field added", "bob:{PLAIN}b:5000:5000::/h::", nil, true},
		{"field and colons added", "carol:{PLAIN}c:5000:5000::/h", nil, true},
		{"bare password line", "dan:{PLAIN}d", nil, true},
		{"edited since", "erin:{PLAIN}e:5000:5000::/h::userdb_mail=maildir:~/Maildir", func(l string) string {
			return strings.Replace(l, "{PLAIN}e", "{PLAIN}new-password", 1)
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "users")
			user, _, _ := strings.Cut(tc.line, ":")
			before := "# head\r\nother:x:1:1::/o::userdb_mail=a:b\r\n" + tc.line + "\r\nlast:x:1:1::/l::"
			os.WriteFile(path, []byte(before), 0o600)
			line, err := PasswdLine(path, user)
			if err != nil || line != tc.line {
				t.Fatalf("PasswdLine = %q, %v", line, err)
			}
			if _, _, err := SetPasswdField(path, user, "userdb_mail", "mdbox:~/mdbox"); err != nil {
				t.Fatal(err)
			}
			switched, _ := os.ReadFile(path)
			if string(switched) == before {
				t.Fatal("nothing switched")
			}
			if tc.edit != nil {
				cur, _ := PasswdLine(path, user)
				os.WriteFile(path, []byte(strings.Replace(string(switched), cur, tc.edit(cur), 1)), 0o600)
			}
			edited, _ := os.ReadFile(path)
			restored, err := RestorePasswdLine(path, user, "userdb_mail", line)
			if err != nil || restored != tc.restored {
				t.Fatalf("RestorePasswdLine = %v, %v; want %v", restored, err, tc.restored)
			}
			got, _ := os.ReadFile(path)
			want := before
			if !tc.restored {
				want = string(edited)
			}
			if string(got) != want {
				t.Fatalf("file:\n%q\nwant\n%q", got, want)
			}
			// Again: nothing to do, and said so.
			if again, err := RestorePasswdLine(path, user, "userdb_mail", line); err != nil || again != tc.restored {
				t.Fatalf("second RestorePasswdLine = %v, %v", again, err)
			}
		})
	}
}
