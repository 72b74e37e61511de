package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/doveconf"
)

// getentPath puts a getent(1) first on PATH that knows what NSS would
// serve beyond /etc/passwd and /etc/group (LDAP, sssd): the user ghost
// and the group ghostgrp, with our own uid and gid (so that the test
// needs no other user), and fails for the user broken as an unreachable
// directory would.
func getentPath(t *testing.T) (home string) {
	t.Helper()
	dir := t.TempDir()
	home = filepath.Join(dir, "home", "ghost")
	script := fmt.Sprintf(`#!/bin/sh
[ "$2" = "--" ] && set -- "$1" "$3"
case "$1 $2" in
"passwd ghost"|"passwd ") echo "ghost:*:%[1]d:%[2]d:Ghost:%[3]s:/bin/sh" ;;
"group ghostgrp"|"group ") echo "ghostgrp:*:%[2]d:" ;;
"passwd broken") echo "getent: ldap server unreachable" >&2; exit 1 ;;
*) exit 2 ;;
esac
`, os.Geteuid(), os.Getegid(), home)
	if err := os.WriteFile(filepath.Join(dir, "getent"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(filepath.ListSeparator)+os.Getenv("PATH"))
	return home
}

// A user NSS knows but /etc/passwd doesn't (LDAP, sssd) is found through
// getent: -u, a -u mask (the passwd userdb's iteration) and mail_gid by
// name, as a boxsync built without cgo must.
func TestGetentUsers(t *testing.T) {
	home := getentPath(t)
	src := "mem:" + home + "/mail"
	fill(t, src, map[string]int{"INBOX": 2, "Sent": 1})
	run := func(args ...string) cliResult {
		var stdout, stderr bytes.Buffer
		en := systemEnv()
		en.configPath = filepath.Join(t.TempDir(), "none.conf")
		args = append([]string{"boxsync", "-o", "mail_location=mem:%h/mail", "-o", "first_valid_uid=0", "-o", "first_valid_gid=0"}, args...)
		code := runEnv(context.Background(), en, args, strings.NewReader(""), &stdout, &stderr)
		return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}
	for _, sel := range [][]string{{"-u", "ghost"}, {"-u", "gh*st"}} {
		dst := memPath(t, "backup")
		args := append(append([]string{"-D", "backup"}, sel...), dst)
		run(args...).expect(t, args, 0, "boxsync(ghost): Info: backup mem:"+home+"/mail -> "+dst)
		if diff := formatstest.Diff(dump(t, src), dump(t, dst)); diff != "" {
			t.Errorf("%q: the backup differs from ghost's mail:\n%s", sel, diff)
		}
	}
	args := []string{"backup", "-u", "broken", memPath(t, "backup")}
	r := run(args...)
	r.expect(t, args, exitTempFail, "getent passwd broken: exit status 1: getent: ldap server unreachable")

	a := &app{env: systemEnv(), log: &logger{w: io.Discard}, creds: processCreds}
	cfg, err := doveconf.Parse("dovecot.conf", []byte("first_valid_uid = 0\nfirst_valid_gid = 0\nmail_uid = ghost\nmail_gid = ghostgrp\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	us, err := a.newUsers(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := us.credsFor(-1, -1); err != nil || c != (mailCreds{os.Geteuid(), os.Getegid()}) {
		t.Errorf("mail_uid=ghost mail_gid=ghostgrp: %v, %v", c, err)
	}
}
