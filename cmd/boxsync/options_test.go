package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats/formatstest"
)

// -d: the destination is the user's mail_replica, the userdb field first,
// then plugin { mail_replica }.
func TestDefaultDestination(t *testing.T) {
	te := newTestEnv(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "mail")
	users := "joe:x::::" + filepath.Join(dir, "joe") + "::\n" +
		"bob:x::::" + filepath.Join(dir, "bob") + "::userdb_mail_replica=mem:" + root + "/special/%u\n" +
		"rem:x::::" + filepath.Join(dir, "rem") + "::userdb_mail_replica=tcp:replica.example.com\n"
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, replica string) string {
		conf := "mail_location = mem:" + root + "/%u\n" +
			"userdb {\n  driver = passwd-file\n  args = " + filepath.Join(dir, "users") + "\n}\n"
		if replica != "" {
			conf += "plugin {\n  mail_replica = " + replica + "\n}\n"
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	withPlugin := write("with.conf", "mem:"+root+"/replica/%u")
	without := write("without.conf", "")
	for _, u := range []string{"joe", "bob", "rem"} {
		fill(t, "mem:"+root+"/"+u, map[string]int{"INBOX": 2})
	}
	check := func(user, dst string) {
		t.Helper()
		if diff := formatstest.Diff(dump(t, "mem:"+root+"/"+user), dump(t, dst)); diff != "" {
			t.Errorf("%s's replica %s differs:\n%s", user, dst, diff)
		}
	}
	args := []string{"-c", withPlugin, "backup", "-u", "joe", "-d"}
	te.run(t, args...).expect(t, args, 0)
	check("joe", "mem:"+root+"/replica/joe")
	args = []string{"-c", withPlugin, "backup", "-u", "bob", "-d"}
	te.run(t, args...).expect(t, args, 0)
	check("bob", "mem:"+root+"/special/bob")
	// A location with -d is logged and ignored, as doveadm does.
	args = []string{"-c", withPlugin, "backup", "-u", "joe", "-d", "mem:" + root + "/ignored"}
	te.run(t, args...).expect(t, args, 0, "boxsync: Error: Don't give mail location with -d parameter")
	if dump(t, "mem:"+root+"/ignored") != "" {
		t.Errorf("the location given with -d was written")
	}
	args = []string{"-c", without, "backup", "-u", "joe", "-d"}
	te.run(t, args...).expect(t, args, 68, "boxsync(joe): Error: User has no mail_replica in userdb")
	args = []string{"-c", without, "backup", "-u", "rem", "-d"}
	te.run(t, args...).expect(t, args, 64, "mail_replica tcp:replica.example.com: a remote destination")
}

// -U is accepted: a local run has no remote replicator to notify.
func TestReplicatorNotify(t *testing.T) {
	te := newTestEnv(t)
	src, dst := memPath(t, "src"), memPath(t, "dst")
	fill(t, src, map[string]int{"INBOX": 1})
	args := []string{"-D", "backup", "-U", "--source", src, dst}
	te.run(t, args...).expect(t, args, 0, "Debug: -U: a local destination has no dsync-server to notify its replicator")
	if diff := formatstest.Diff(dump(t, src), dump(t, dst)); diff != "" {
		t.Errorf("backup with -U differs:\n%s", diff)
	}
}

// -T bounds an imapc source's silence: a server that never greets fails
// the run after -T seconds, not imapc_cmd_timeout's 5 minutes.
func TestIOTimeoutImapc(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the listener closes
		}
	}()
	te := newTestEnv(t)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	args := []string{"-o", "imapc_host=127.0.0.1", "-o", "imapc_port=" + port, "-o", "imapc_user=jane", "-o", "imapc_password=x",
		"-o", "imapc_connection_retry_count=0",
		"backup", "-T", "1", "--source", "imapc:", memPath(t, "dst")}
	start := time.Now()
	r := te.run(t, args...)
	if took := time.Since(start); took > 30*time.Second || took < time.Second {
		t.Fatalf("-T 1 run took %v", took)
	}
	if r.code != 75 || !strings.Contains(r.stderr, "Error") {
		t.Errorf("a silent server: exit %d\n%s", r.code, r.stderr)
	}
}
