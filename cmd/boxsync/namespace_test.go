package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/doveconf"
)

func TestInboxNamespace(t *testing.T) {
	tests := []struct {
		name, conf string
		overrides  []string
		in, want   []string
	}{
		{"none", "", nil, []string{"Work/Projects", "INBOX", `\Sent`}, []string{"Work/Projects", "INBOX", `\Sent`}},
		{"default separator kept", "namespace inbox {\n inbox = yes\n}\n", nil,
			[]string{"Work/Projects"}, []string{"Work/Projects"}},
		{"dot separator", "namespace inbox {\n separator = .\n inbox = yes\n}\n", nil,
			[]string{"Work.Projects", "Trash.*", "INBOX"}, []string{"Work/Projects", "Trash/*", "INBOX"}},
		{"courier prefix", "namespace {\n separator = .\n prefix = INBOX.\n inbox = yes\n}\n", nil,
			[]string{"INBOX.Work.Projects", "INBOX", "INBOX.Sent*", "Other.Box"}, []string{"Work/Projects", "INBOX", "Sent*", "Other/Box"}},
		{"not the inbox namespace", "namespace shared {\n separator = .\n prefix = shared.\n}\nnamespace inbox {\n inbox = yes\n}\n", nil,
			[]string{"Work/Projects"}, []string{"Work/Projects"}},
		{"-o override", "namespace inbox {\n separator = /\n inbox = yes\n}\n", []string{"namespace/inbox/separator=."},
			[]string{"Work.Projects"}, []string{"Work/Projects"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dovecot.conf")
			if err := os.WriteFile(path, []byte(tc.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := doveconf.ParseFile(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range tc.overrides {
				k, v, _ := strings.Cut(kv, "=")
				cfg.Override(k, v)
			}
			ns := inboxNamespaceOf(cfg)
			if got := ns.storageNames(tc.in); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("storageNames(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// -m and -x take names as the configured inbox namespace spells them.
func TestNamespaceNames(t *testing.T) {
	te := newTestEnv(t)
	root := filepath.Join(t.TempDir(), "mail")
	src := "mem:" + root + "/jane"
	fill(t, src, map[string]int{"INBOX": 1, "Work": 1, "Work/Projects": 2, "Trash": 1, "Trash/Old": 1})
	conf := filepath.Join(t.TempDir(), "dovecot.conf")
	if err := os.WriteFile(conf, []byte("mail_location = mem:"+root+"/%u\nnamespace {\n separator = .\n prefix = INBOX.\n inbox = yes\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := memPath(t, "one")
	args := []string{"-c", conf, "backup", "-m", "INBOX.Work.Projects", dst}
	te.run(t, args...).expect(t, args, 0)
	if d := dump(t, dst); !strings.Contains(d, `mailbox "Work/Projects"`) || strings.Count(d, "mailbox ") != 1 {
		t.Errorf("-m INBOX.Work.Projects backed up:\n%s", d)
	}
	dst = memPath(t, "excl")
	args = []string{"-c", conf, "backup", "-x", "INBOX.Trash*", dst}
	te.run(t, args...).expect(t, args, 0)
	if d := dump(t, dst); strings.Contains(dumpNames(d), "Trash") || !strings.Contains(d, `mailbox "Work/Projects"`) {
		t.Errorf("-x INBOX.Trash* backed up:\n%s", d)
	}
}

func TestSelectNamespaces(t *testing.T) {
	const conf = `namespace inbox {
  inbox = yes
  prefix = INBOX.
  separator = .
}
namespace archive {
  prefix = Archive/
  separator = /
  location = mem:/archive
}
namespace lists {
  prefix = Lists.
  separator = .
  location = mem:/lists
  list = no
}
namespace shared {
  type = shared
  prefix = shared/%u/
  separator = /
  location = mem:/shared/%u
}
`
	cfg, err := doveconf.Parse("dovecot.conf", []byte(conf), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		prefixes     []string
		wantPrefix   string
		wantLocation string
		wantCode     int    // exit code of the error; 0 = none
		wantErr      string // part of the message
	}{
		{[]string{"INBOX."}, "INBOX.", "", 0, ""},
		{[]string{"INBOX"}, "INBOX.", "", 0, ""},
		{[]string{"INBOX.", "INBOX"}, "INBOX.", "", 0, ""},
		{[]string{"Archive/"}, "Archive/", "mem:/archive", 0, ""},
		{[]string{"Archive"}, "Archive/", "mem:/archive", 0, ""},
		{[]string{"foo"}, "", "", exitUsage, "Namespace not found: 'foo'"},
		{[]string{""}, "", "", exitUsage, `Namespace not found: '' (configured prefixes: "INBOX.", "Archive/", "Lists.", "shared/%u/")`},
		{[]string{"INBOX.Work"}, "", "", exitUsage, "Namespace not found: 'INBOX.Work'"},
		{[]string{"Archive/", "nope"}, "", "", exitUsage, "Namespace not found: 'nope'"},
		{[]string{"INBOX.", "Archive/"}, "", "", exitTempFail, `Synced namespaces have conflicting separators ('.' for prefix="INBOX.", '/' for prefix="Archive/")`},
		{[]string{"Lists.", "INBOX."}, "", "", exitUsage, `namespaces prefix="Lists." and prefix="INBOX." have different mail locations (mem:/lists, mail_location)`},
		{[]string{"shared/%u/"}, "", "", exitUsage, "a shared namespace"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.prefixes, ","), func(t *testing.T) {
			ns, err := selectNamespaces(cfg, tc.prefixes)
			if tc.wantCode != 0 {
				if err == nil || exitCode(err) != tc.wantCode || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("selectNamespaces(%q) = %+v, %v (exit %d); want exit %d, %q", tc.prefixes, ns, err, exitCode(err), tc.wantCode, tc.wantErr)
				}
				return
			}
			if err != nil || ns.prefix != tc.wantPrefix || ns.location != tc.wantLocation {
				t.Errorf("selectNamespaces(%q) = %+v, %v; want prefix %q, location %q", tc.prefixes, ns, err, tc.wantPrefix, tc.wantLocation)
			}
		})
	}
	// Without namespaces Dovecot has one inbox namespace with prefix "".
	if ns, err := selectNamespaces(nil, []string{""}); err != nil || !ns.inbox || ns.location != "" {
		t.Errorf(`selectNamespaces(no config, "") = %+v, %v; want the implicit inbox namespace`, ns, err)
	}
}

// nsTestConf writes a configuration with the user's mail (mem) in the
// inbox namespace and an Archive/ namespace with its own location, and
// fills both.
func nsTestConf(t *testing.T, extra string) (conf, user, archive string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "mail")
	user, archive = "mem:"+root+"/jane", "mem:"+root+"/archive"
	fill(t, user, map[string]int{"INBOX": 2, "Work": 1})
	fill(t, archive, map[string]int{"2020": 2, "2021/Q1": 1})
	conf = filepath.Join(t.TempDir(), "dovecot.conf")
	text := "mail_location = mem:" + root + "/%u\nnamespace inbox {\n inbox = yes\n separator = /\n}\n" +
		"namespace archive {\n prefix = Archive/\n separator = /\n location = " + archive + "\n}\n" + extra
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf, user, archive
}

// TestNamespaceCLI: -n selects the namespace whose mail is synced, a
// namespace with its own location is synced from there, and what -n
// cannot mean is refused with doveadm's exit codes.
func TestNamespaceCLI(t *testing.T) {
	conf, user, archive := nsTestConf(t, "namespace lists {\n prefix = Lists.\n separator = .\n location = mem:/lists\n list = no\n}\n")
	te := newTestEnv(t)

	dst := memPath(t, "archive-copy")
	args := []string{"-c", conf, "backup", "-n", "Archive/", dst}
	te.run(t, args...).expect(t, args, 0)
	if diff := formatstest.Diff(dump(t, archive), dump(t, dst)); diff != "" {
		t.Errorf("backup -n Archive/: not a copy of the archive:\n%s", diff)
	}
	dst = memPath(t, "inbox-copy")
	args = []string{"-c", conf, "backup", "-n", "", dst}
	te.run(t, args...).expect(t, args, 0)
	if diff := formatstest.Diff(dump(t, user), dump(t, dst)); diff != "" {
		t.Errorf(`backup -n "": not a copy of mail_location:`+"\n%s", diff)
	}
	dst = memPath(t, "one")
	args = []string{"-c", conf, "backup", "-n", "Archive/", "-m", "Archive/2021/Q1", dst}
	te.run(t, args...).expect(t, args, 0)
	if d := dump(t, dst); !strings.Contains(d, `mailbox "2021/Q1"`) || strings.Count(d, "mailbox ") != 1 {
		t.Errorf("-n Archive/ -m Archive/2021/Q1 backed up:\n%s", d)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-n", "Archiv/"}, exitUsage, `Namespace not found: 'Archiv/' (configured prefixes: "", "Archive/", "Lists.")`},
		{[]string{"-n", "", "-n", "Lists."}, exitTempFail, `Synced namespaces have conflicting separators ('/' for prefix="", '.' for prefix="Lists.")`},
		{[]string{"-n", "", "-n", "Archive/"}, exitUsage, "have different mail locations"},
		{[]string{"-n", "Archive/", "-m", "Work"}, exitUsage, `-m Work: not a mailbox of the namespace prefix="Archive/"`},
		{[]string{"-N"}, exitTempFail, "-N parameter requires syncing with remote host"},
		{[]string{"-n", "Archive/", "-x", "*Spam"}, exitUsage, "-x *Spam: with -n Archive/, write masks with the namespace's prefix (Archive/…)"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			dst := memPath(t, "dst")
			args := append(append([]string{"-c", conf, "backup"}, tc.args...), dst)
			te.run(t, args...).expect(t, args, tc.code, tc.want)
			if d := dump(t, dst); d != "" {
				t.Errorf("a refused run wrote the destination:\n%s", d)
			}
		})
	}
	// -x masks are spelled with the prefix; another namespace's names
	// match nothing.
	dst = memPath(t, "excl")
	args = []string{"-c", conf, "backup", "-n", "Archive/", "-x", "Archive/2021*", "-x", "2020", dst}
	te.run(t, args...).expect(t, args, 0)
	if d := dump(t, dst); !strings.Contains(d, `mailbox "2020"`) || strings.Contains(dumpNames(d), "2021") {
		t.Errorf("-n Archive/ -x Archive/2021* -x 2020 backed up:\n%s", d)
	}

	// The archive's own location as the destination.
	args = []string{"-c", conf, "backup", "-n", "Archive/", archive}
	te.run(t, args...).expect(t, args, exitTempFail, "Both source and destination mail_location points to same directory")
}
