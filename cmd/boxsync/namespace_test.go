package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	if d := dump(t, dst); strings.Contains(d, "Trash") || !strings.Contains(d, `mailbox "Work/Projects"`) {
		t.Errorf("-x INBOX.Trash* backed up:\n%s", d)
	}
}
