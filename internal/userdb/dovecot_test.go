package userdb

import (
	"errors"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/internal/doveconf"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestDoveadmUserAgrees looks users up in a passwd-file with both the real
// Dovecot's auth service (doveadm user) and New(config).Lookup, and wants
// the same uid, gid, home, mail and extra fields, and the same user list
// (doveadm user '*').
func TestDoveadmUserAgrees(t *testing.T) {
	srv := dovecottest.ServeIMAP(t, false)
	home := srv.Home()
	users := "# test users\n" +
		"u1:{PLAIN}x::::" + home + "::\n" +
		"alice@example.com:{PLAIN}x:5000:5000::/var/vmail/example.com/alice::userdb_mail=mdbox:~/mdbox userdb_quota_rule=*:storage=1G\n" +
		"bob:{PLAIN}x:5001:5001:Bob:/home/bob:/bin/false:userdb_mail=maildir:%h/Maildir:LAYOUT=fs allow_nets=127.0.0.1\n" +
		"carol:{PLAIN}x:5002:5002::/home/%u::userdb_mail=sdbox:/srv/%d/%n/%u\n" +
		"passonly:{PLAIN}x\n" +
		"zero:{PLAIN}x:0:0::/root::\n"
	cfg, err := doveconf.ParseFile(srv.Config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	userdbs := cfg.Root.SectionsOf("userdb")
	if len(userdbs) != 1 {
		t.Fatalf("%d userdbs in the test server's config, want 1", len(userdbs))
	}
	passwdPath, _ := userdbs[0].Get("args")
	if err := os.WriteFile(passwdPath, []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	globalMail, _ := cfg.Get("mail_location")
	db, err := New(cfg, System{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"u1", "alice@example.com", "bob", "carol"} {
		out, err := srv.Doveadm("user", name)
		if err != nil {
			t.Fatalf("doveadm user %s: %v\n%s\nLOG:\n%s", name, err, out, srv.Log())
		}
		want := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			k, v, _ := strings.Cut(line, "\t")
			k = strings.TrimSpace(k)
			if k == "field" || k == "" {
				continue
			}
			want[k] = strings.TrimSpace(v)
		}
		u, err := db.Lookup(name)
		if err != nil {
			t.Errorf("%s: %v (doveadm: %v)", name, err, want)
			continue
		}
		got := map[string]string{}
		for k, v := range u.Fields {
			got[k] = v
		}
		// doveadm user adds the mail_uid/mail_gid defaults and the
		// user name; those are the caller's to apply.
		for _, k := range []string{"uid", "gid"} {
			if _, ok := got[k]; !ok {
				delete(want, k)
			}
		}
		delete(want, "user")
		// doveadm shows the effective mail location.
		if _, ok := got["mail"]; !ok && want["mail"] == globalMail {
			delete(want, "mail")
		}
		if !equalMaps(got, want) {
			t.Errorf("%s:\n boxsync %v\n doveadm %v", name, got, want)
		}
	}
	// A passdb-only line and a uid-0 line are unknown users to both.
	for _, name := range []string{"passonly", "zero", "nobody-at-all"} {
		if out, err := srv.Doveadm("user", name); err == nil {
			t.Errorf("doveadm knows %s: %s", name, out)
		}
		if _, err := db.Lookup(name); !errors.Is(err, ErrUnknownUser) {
			t.Errorf("boxsync: Lookup(%s) = %v, want ErrUnknownUser like doveadm", name, err)
		}
	}

	out, err := srv.Doveadm("user", "*")
	if err != nil {
		t.Fatalf("doveadm user '*': %v\n%s", err, out)
	}
	want := strings.Fields(out)
	got, err := db.Users()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("users: boxsync %q, doveadm %q", got, want)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
