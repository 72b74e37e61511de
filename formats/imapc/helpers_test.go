package imapc

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// execDialer runs `doveadm -c CONF exec imap` per connection: a
// pre-authenticated IMAP session as the configured user, over a pipe.
func execDialer(t testing.TB, d *dovecottest.Dovecot) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		cmd := d.Cmd(t, "exec", "imap")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			io.Copy(stdin, server)
			stdin.Close()
		}()
		go func() {
			io.Copy(server, stdout)
			server.Close()
			close(done)
		}()
		t.Cleanup(func() {
			client.Close()
			server.Close()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			cmd.Wait()
		})
		return client, nil
	}
}

// execSettings is Settings for an exec-imap Dovecot.
func execSettings(t testing.TB, d *dovecottest.Dovecot) Settings {
	s := Defaults()
	s.Dial = execDialer(t, d)
	return s
}

// newStore is a Dovecot Maildir (server side, mail_save_crlf so bodies are
// stored as IMAP sends them) and an imapc store on it over exec imap.
func newStore(t testing.TB, extraConf ...string) (*dovecottest.Dovecot, *Store) {
	t.Helper()
	d := dovecottest.New(t, "", append([]string{"mail_save_crlf = yes"}, extraConf...)...)
	st := openStore(t, execSettings(t, d), formats.OpenOptions{})
	return d, st
}

func openStore(t testing.TB, s Settings, opt formats.OpenOptions) *Store {
	t.Helper()
	fs, err := Driver{Settings: s}.Open(context.Background(), formats.Location{Driver: "imapc"}, opt)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	t.Cleanup(func() { fs.Close() })
	return fs.(*Store)
}

// imapScript runs raw IMAP commands through `doveadm exec imap`, so tests
// can set up a store without our own code (APPEND with dates and flags).
func imapScript(t testing.TB, d *dovecottest.Dovecot, script string) string {
	t.Helper()
	cmd := d.Cmd(t, "exec", "imap")
	cmd.Stdin = strings.NewReader(script + "zz LOGOUT\r\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("exec imap: %v\n%s", err, out)
	}
	if strings.Contains(string(out), " NO ") || strings.Contains(string(out), " BAD ") {
		t.Fatalf("exec imap script failed:\n%s", out)
	}
	return string(out)
}

// appendCmd renders an APPEND with a LITERAL+ literal.
func appendCmd(tag, box, flags, date, msg string) string {
	if date != "" {
		date = " \"" + date + "\""
	}
	return fmt.Sprintf("%s APPEND \"%s\" (%s)%s {%d+}\r\n%s\r\n", tag, box, flags, date, len(msg), msg)
}

// server is a Dovecot listening on 127.0.0.1 with a passwd-file user.
type server struct {
	d    *dovecottest.Dovecot
	port int
	user string
	pass string
}

const (
	testPassword       = dovecottest.IMAPPassword
	testMasterPassword = dovecottest.IMAPMasterPassword
)

// startServer starts a listening Dovecot (dovecottest.ServeIMAP).
func startServer(t testing.TB, withTLS bool, extraConf ...string) *server {
	t.Helper()
	s := dovecottest.ServeIMAP(t, withTLS, extraConf...)
	return &server{d: s.Dovecot, port: s.Port, user: dovecottest.IMAPUser, pass: dovecottest.IMAPPassword}
}

func (s *server) settings() Settings {
	st := Defaults()
	st.Host, st.Port, st.User, st.Password = "127.0.0.1", s.port, s.user, s.pass
	return st
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
