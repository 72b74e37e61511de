package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/boxsync/boxsync/internal/dovecottest"
)

// cutProxy forwards loopback TCP connections to target and, once limit
// bytes have come back from the server, cuts every connection and stops
// accepting: the IMAP server vanishes mid-transfer.
type cutProxy struct {
	ln     net.Listener
	target string
	limit  int64
	got    atomic.Int64
	cut    atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func startCutProxy(t *testing.T, target string, limit int64) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, limit: limit}
	t.Cleanup(p.kill)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.cut.Load() {
				p.mu.Unlock()
				c.Close()
				s.Close()
				continue
			}
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() {
				buf := make([]byte, 16<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						if p.got.Add(int64(n)) > p.limit {
							p.kill()
							return
						}
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *cutProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// kill cuts every connection and closes the listener.
func (p *cutProxy) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut.Store(true)
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestMigrateFromIMAPDropped is issue 7's "a dropped connection
// mid-migration": the IMAP connection dies part-way through copying a few
// hundred messages, so the first run fails; the rerun, against the server
// directly, finishes the job with nothing lost or duplicated.
func TestMigrateFromIMAPDropped(t *testing.T) {
	srv := dovecottest.ServeIMAP(t, false)
	// A few hundred 1–40 KB messages over four mailboxes, imported in one
	// doveadm run (one `doveadm save` per message would be slow).
	seed := filepath.Join(t.TempDir(), "seed")
	fillSized(t, "maildir:"+seed, 400)
	srv.Chown(t, seed)
	srv.MustDoveadm(t, "import", "-s", "maildir:"+seed, "", "all")
	want := srv.Snapshot(t)
	total := 0
	for _, b := range want.Mailboxes {
		total += len(b.Messages)
	}
	if total != 400 {
		t.Fatalf("the server has %d messages, want 400", total)
	}

	te := newTestEnv(t)
	passFile := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(passFile, []byte(dovecottest.IMAPPassword+"\n"), 0o600)
	dst := dovecottest.New(t, "maildir:~/Maildir")
	args := func(port int) []string {
		return []string{"-o", "mail_location=imapc:", "-o", "imapc_host=127.0.0.1",
			"-o", fmt.Sprint("imapc_port=", port), "-o", "imapc_user=" + dovecottest.IMAPUser,
			"-o", "imapc_password_file=" + passFile, "backup", "maildir:" + dst.Root()}
	}

	// The connection drops after ~2 MB of the ~8 MB the server sends.
	p := startCutProxy(t, srv.Addr(), 2<<20)
	first := te.run(t, args(p.port())...)
	if !p.cut.Load() {
		t.Fatalf("the first run finished (exit %d) before the connection was cut: the test proves nothing", first.code)
	}
	if first.code == 0 {
		t.Fatalf("the first run lost its connection mid-way yet exited 0:\n%s", first.stderr)
	}
	partial := 0
	for _, b := range dst.Snapshot(t).Mailboxes {
		partial += len(b.Messages)
	}
	t.Logf("first run cut after %d bytes, exit %d, %d of %d messages migrated", p.got.Load(), first.code, partial, total)
	if partial == 0 || partial >= total {
		t.Fatalf("the cut run left %d of %d messages: not a mid-migration drop", partial, total)
	}

	te.run(t, args(srv.Port)...).expect(t, args(srv.Port), 0)
	got := dst.Snapshot(t)
	if d := dovecottest.Diff(srv.Snapshot(t), got, dovecottest.Saved, dovecottest.ModSeq, dovecottest.HighestModSeq); d != "" {
		t.Fatalf("after the drop and rerun Dovecot sees the migrated store differently (a=server b=migrated):\n%s", d)
	}
	dst.CheckLogClean(t)
	// A third run finds nothing to do.
	te.run(t, args(srv.Port)...).expect(t, args(srv.Port), 0)
	if d := dovecottest.Diff(srv.Snapshot(t), dst.Snapshot(t), dovecottest.Saved, dovecottest.ModSeq, dovecottest.HighestModSeq); d != "" {
		t.Fatalf("a further rerun changed the migrated store:\n%s", d)
	}
}
