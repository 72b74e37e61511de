package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// countingProxy forwards loopback connections to addr and counts the
// bytes the server sends.
type countingProxy struct {
	ln   net.Listener
	down atomic.Int64
	wg   sync.WaitGroup
}

func newCountingProxy(t *testing.T, addr string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(s, c); s.(*net.TCPConn).CloseWrite() }()
			go func() {
				defer p.wg.Done()
				io.Copy(countingWriter{c, &p.down}, s)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

// countingWriter counts what it writes as it goes, so every byte the
// client could read is counted when its run ends.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (p *countingProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// TestAllMailFromIMAP: backing up from a real Dovecot over IMAP after
// mail moved between folders there, -a virtual/All makes boxsync take
// the moved messages from the destination's own copies instead of
// fetching them again: fewer bytes come from the server, and the
// destination ends up the same as without -a.
func TestAllMailFromIMAP(t *testing.T) {
	srv := dovecottest.ServeIMAP(t, false)
	srv.MustDoveadm(t, "mailbox", "create", "-s", "Archive")
	filler := strings.Repeat("0123456789abcdef ", 512) // 8.5 kB a message
	for i := range 12 {
		box := "INBOX"
		if i%2 == 1 {
			box = "Archive"
		}
		srv.Save(t, box, fmt.Appendf(nil, "Subject: m%d\r\nMessage-ID: <%d@x>\r\n\r\n%s\r\n", i, i, filler))
	}
	proxy := newCountingProxy(t, srv.Addr())
	virtual := filepath.Join(t.TempDir(), "virtual")
	os.MkdirAll(filepath.Join(virtual, "All"), 0o755)
	os.WriteFile(filepath.Join(virtual, "All", "dovecot-virtual"), []byte("*\n  all\n"), 0o644)
	passFile := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(passFile, []byte(dovecottest.IMAPPassword+"\n"), 0o600)
	conf := filepath.Join(t.TempDir(), "dovecot.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("mail_location = imapc:\nimapc_host = 127.0.0.1\nimapc_port = %d\nimapc_user = %s\nimapc_password_file = %s\n"+
		"namespace inbox {\n inbox = yes\n separator = /\n}\nnamespace virtual {\n prefix = virtual/\n separator = /\n location = virtual:%s\n}\n",
		proxy.port(), dovecottest.IMAPUser, passFile, virtual)), 0o644)

	te := newTestEnv(t)
	backup := func(dst string, extra ...string) int64 {
		t.Helper()
		before := proxy.down.Load()
		args := append(append([]string{"-c", conf, "-v", "backup"}, extra...), dst)
		te.run(t, args...).expect(t, args, 0)
		return proxy.down.Load() - before
	}
	plain, withA := "maildir:"+filepath.Join(t.TempDir(), "plain"), "maildir:"+filepath.Join(t.TempDir(), "with-a")
	backup(plain)
	backup(withA)

	// Move mail both ways: whichever folder is synced first, the mail
	// moved into it still has its old copy on the destination.
	srv.MustDoveadm(t, "move", "Archive", "mailbox", "INBOX", "uid", "1:4")
	srv.MustDoveadm(t, "move", "INBOX", "mailbox", "Archive", "uid", "1:4")

	bytesPlain := backup(plain)
	bytesA := backup(withA, "-a", "virtual/All")
	t.Logf("bytes from the server: %d without -a, %d with -a", bytesPlain, bytesA)
	if bytesA >= bytesPlain-4*int64(len(filler)) {
		t.Errorf("with -a the server sent %d bytes, without %d: want at least 4 messages (%d bytes) fewer", bytesA, bytesPlain, 4*len(filler))
	}
	if diff := formatstest.Diff(dump(t, plain), dump(t, withA)); diff != "" {
		t.Errorf("backups with and without -a differ:\n%s", diff)
	}
}

// TestAllMailInterop: doveadm and boxsync back up the same Maildir with
// -a virtual/All (Dovecot's virtual plugin, rules `*` and `all`), after
// mail moved between folders; both destinations come out the same.
func TestAllMailInterop(t *testing.T) {
	d := dovecottest.New(t, "maildir:~/Maildir", "mail_plugins = virtual\nnamespace virtual {\n  prefix = virtual/\n  location = virtual:~/virtual\n  list = no\n  hidden = yes\n}\n")
	if err := os.MkdirAll(filepath.Join(d.Home(), "virtual", "All"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Home(), "virtual", "All", "dovecot-virtual"), []byte("*\n  all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.MustDoveadm(t, "mailbox", "create", "Archive")
	for i := range 6 {
		box := "INBOX"
		if i%2 == 1 {
			box = "Archive"
		}
		d.Save(t, box, fmt.Appendf(nil, "Subject: m%d\nMessage-ID: <%d@x>\n\nbody %d\n", i, i, i))
	}
	te := newTestEnv(t)
	te.vars["HOME"] = d.Home()
	dove, box := "maildir:"+filepath.Join(d.Home(), "dove"), "maildir:"+filepath.Join(d.Home(), "box")
	run := func() cliResult {
		t.Helper()
		d.MustDoveadm(t, "backup", "-a", "virtual/All", dove)
		args := []string{"-c", d.Config(), "-v", "backup", "-a", "virtual/All", box}
		r := te.run(t, args...)
		r.expect(t, args, 0)
		if diff := formatstest.Diff(dump(t, dove), dump(t, box)); diff != "" {
			t.Errorf("doveadm's and boxsync's backups with -a differ:\n%s", diff)
		}
		return r
	}
	run()
	d.MustDoveadm(t, "move", "Archive", "mailbox", "INBOX", "uid", "1")
	d.MustDoveadm(t, "move", "INBOX", "mailbox", "Archive", "uid", "1")
	r := run()
	if !strings.Contains(r.stderr, "-a virtual/All: 1 saved messages read from a copy") {
		t.Errorf("want one of the two moved messages from the destination's copy:\n%s", r.stderr)
	}
	d.CheckLogClean(t)
}
