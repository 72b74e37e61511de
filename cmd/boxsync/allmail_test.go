package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
)

func TestAllMailRules(t *testing.T) {
	tests := []struct {
		name, rules string
		why         string // "" = the all-mail rule set
	}{
		{"usual", "*\n  all\n", ""},
		{"tab, comment, case", "# all mail\n*\n\tALL\n", ""},
		{"two rules", "*\n  all\n\n*\n  all\n", ""},
		{"exclusion", "*\n-Trash\n  all\n", `mailbox pattern "-Trash"`},
		{"one folder", "INBOX\n  all\n", `mailbox pattern "INBOX"`},
		{"search", "*\n  unseen\n", `search "unseen"`},
		{"no search", "*\n", "no search"},
		{"empty", "", "no mailboxes defined"},
		{"CRLF", "*\r\n  all\r\n", ""}, // i_stream_next_line drops the CR too
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := allMailRules([]byte(tc.rules)); got != tc.why {
				t.Errorf("allMailRules(%q) = %q, want %q", tc.rules, got, tc.why)
			}
		})
	}
}

func FuzzAllMailRules(f *testing.F) {
	for _, s := range []string{"*\n  all\n", "*\n-Trash\n  all\n", "# c\n*\n\tall\n\n*\n  all", "INBOX\n  unseen\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if allMailRules(data) == "" && !strings.Contains(string(data), "*") {
			t.Errorf("accepted rules without a * pattern: %q", data)
		}
	})
}

// TestAllMailCLI: -a of a virtual all-mail mailbox copies mail the
// destination already has from there; rules boxsync can't read, and
// mailboxes of namespaces the run does not sync, are refused; a missing
// -a mailbox is logged and the run goes on, as in doveadm.
func TestAllMailCLI(t *testing.T) {
	ctx := context.Background()
	virtual := filepath.Join(t.TempDir(), "virtual")
	for box, rules := range map[string]string{"All": "*\n  all\n", "NotTrash": "*\n-Trash\n  all\n"} {
		if err := os.MkdirAll(filepath.Join(virtual, box), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(virtual, box, "dovecot-virtual"), []byte(rules), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf, user, _ := nsTestConf(t, "namespace virtual {\n prefix = virtual/\n separator = /\n location = virtual:"+virtual+"\n}\n")
	te := newTestEnv(t)
	dst := memPath(t, "dst")
	args := []string{"-c", conf, "backup", dst}
	te.run(t, args...).expect(t, args, 0)

	// Move Work's message to INBOX, as IMAP MOVE would. (INBOX is synced
	// first, while the destination's copy in Work still exists.)
	d, l := driverFor(t, user)
	st, err := d.Open(ctx, l, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	to, _ := st.Open(ctx, "INBOX")
	from, _ := st.Open(ctx, "Work")
	var moved formats.Message
	for m := range from.Messages(ctx, 1) {
		moved = m
		break
	}
	toSt, _ := to.Status(ctx)
	tx, _ := to.Begin(ctx)
	err = from.Body(ctx, moved.UID, func(b formats.Body) error {
		m := moved
		m.UID = toSt.UIDNext
		_, err := tx.Save(ctx, m, b)
		return err
	})
	if err != nil || tx.Commit(ctx) != nil {
		t.Fatal(err)
	}
	tx, _ = from.Begin(ctx)
	tx.Expunge(moved.UID)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	from.Close()
	to.Close()
	st.Close()

	args = []string{"-c", conf, "-v", "backup", "-a", "virtual/All", dst}
	te.run(t, args...).expect(t, args, 0, "-a virtual/All: 1 saved messages read from a copy")
	if diff := formatstest.Diff(dump(t, user), dump(t, dst)); diff != "" {
		t.Errorf("backup -a virtual/All: not a copy:\n%s", diff)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-a", "virtual/NotTrash"}, exitUsage, `-a virtual/NotTrash with the rules in ` + filepath.Join(virtual, "NotTrash", "dovecot-virtual") + ` (mailbox pattern "-Trash"; boxsync reads only the usual`},
		{[]string{"-a", "virtual/Nope"}, exitOK, `Couldn't sync \All mailbox 'virtual/Nope': Mailbox doesn't exist`},
		{[]string{"-a", "Archive/2020"}, exitUsage, `-a Archive/2020 (a mailbox of namespace prefix="Archive/", which this run does not sync) is not implemented yet`},
		{[]string{"-a", ""}, exitUsage, "-a: empty mailbox name"},
		{[]string{"-a", "Work"}, exitOK, ""},
		{[]string{"-n", "Archive/", "-a", "Archive/2020"}, exitOK, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			dst := memPath(t, "dst")
			args := append(append([]string{"-c", conf, "backup"}, tc.args...), dst)
			var want []string
			if tc.want != "" {
				want = append(want, tc.want)
			}
			te.run(t, args...).expect(t, args, tc.code, want...)
		})
	}
}
