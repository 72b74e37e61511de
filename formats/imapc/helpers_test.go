package imapc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
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
	testPassword       = "s3cret-PASSWORD-xyzzy"
	testMasterPassword = "m4ster-PASSWORD-plugh"
)

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts `dovecot -c CONF -F` on a free loopback port and
// stops it (by its pid) when the test ends. tls adds a self-signed
// certificate (STARTTLS on the same port).
func startServer(t testing.TB, withTLS bool, extraConf ...string) *server {
	t.Helper()
	if _, err := exec.LookPath("dovecot"); err != nil {
		dovecottest.Require(t)
		if os.Getenv("CI") != "" {
			t.Fatal("CI has Dovecot, so interop tests never skip there: dovecot binary missing")
		}
		t.Skip("dovecot binary missing (install dovecot-core)")
	}
	port := freePort(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	passwd := filepath.Join(dir, "passwd")
	internal, group := "nobody", "nogroup"
	if os.Geteuid() != 0 {
		u, _ := user.Current()
		internal = u.Username
		if g, err := user.LookupGroupId(u.Gid); err == nil {
			group = g.Name
		}
	}
	conf := []string{
		"mail_save_crlf = yes",
		"protocols = imap",
		"listen = 127.0.0.1",
		"disable_plaintext_auth = no",
		"auth_mechanisms = plain login xoauth2 oauthbearer",
		"auth_failure_delay = 0",
		"default_internal_user = " + internal,
		"default_login_user = " + internal,
		"default_internal_group = " + group,
		"passdb {\n  driver = passwd-file\n  args = " + passwd + ".master\n  master = yes\n}",
		"passdb {\n  driver = passwd-file\n  args = " + passwd + "\n}",
		"userdb {\n  driver = passwd-file\n  args = " + passwd + "\n}",
		fmt.Sprintf("service imap-login {\n  chroot =\n  inet_listener imap {\n    port = %d\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}", port),
		// No penalty delays after the failed logins the tests make.
		"service anvil {\n  chroot =\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}",
	}
	if withTLS {
		cert, key := selfSigned(t, dir)
		conf = append(conf, "ssl = yes", "ssl_cert = <"+cert, "ssl_key = <"+key)
	}
	d := dovecottest.New(t, "", append(conf, extraConf...)...)
	if err := os.WriteFile(passwd, []byte(fmt.Sprintf("u1:{PLAIN}%s::::%s\n", testPassword, d.Home())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(passwd+".master", []byte("admin:{PLAIN}"+testMasterPassword+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Hand the store to mail_uid (a doveadm run does that).
	d.MustDoveadm(t, "mailbox", "list")
	cmd := exec.Command("dovecot", "-c", d.Config(), "-F")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot did not listen on %d: %v\n%s", port, err, d.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &server{d: d, port: port, user: "u1", pass: testPassword}
}

func (s *server) settings() Settings {
	st := Defaults()
	st.Host, st.Port, st.User, st.Password = "127.0.0.1", s.port, s.user, s.pass
	return st
}

func selfSigned(t testing.TB, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "boxsync test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certPath, keyPath
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
