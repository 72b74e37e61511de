package dovecottest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
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
)

// The IMAP server's passwd-file accounts. The passwords are distinctive so
// tests can assert they never appear in an error or log line.
const (
	IMAPUser           = "u1"
	IMAPPassword       = "s3cret-PASSWORD-xyzzy"
	IMAPMasterUser     = "admin"
	IMAPMasterPassword = "m4ster-PASSWORD-plugh"
)

// IMAPServer is a real Dovecot listening for IMAP on 127.0.0.1, with a
// passwd-file user IMAPUser whose mail is the Dovecot's store (Root), and
// a master user. ServeIMAP starts it; it stops when the test ends.
type IMAPServer struct {
	*Dovecot
	Port       int
	PasswdPath string // the passwd-file userdb and passdb
}

// Addr is host:port to dial.
func (s *IMAPServer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// ServeIMAP starts `dovecot -c CONF -F` on a free loopback port (only
// loopback: no traffic leaves the machine) and stops it by its pid when
// the test ends. withTLS adds a self-signed certificate (STARTTLS on the
// same port). extraConf lines go into the configuration, e.g. an
// imap_capability without CONDSTORE.
func ServeIMAP(t testing.TB, withTLS bool, extraConf ...string) *IMAPServer {
	t.Helper()
	return ServeIMAPWith(t, withTLS, nil, extraConf...)
}

// ServeIMAPWith is ServeIMAP with the passwd-file's content from passwd
// (given the Dovecot and the default content), and the file in Dir.
func ServeIMAPWith(t testing.TB, withTLS bool, passwd func(d *Dovecot, def string) string, extraConf ...string) *IMAPServer {
	t.Helper()
	if _, err := exec.LookPath("dovecot"); err != nil {
		Require(t)
		if ciRequiresDovecot() {
			t.Fatal("CI has Dovecot, so interop tests never skip there: dovecot binary missing")
		}
		t.Skip("dovecot binary missing (install dovecot-core)")
	}
	// A port from FreePort can be handed to a test in another package
	// (go test runs packages at once) before this Dovecot binds it; then
	// this Dovecot exits and the other one answers on the port. The
	// greeting carries a token of this server, and a start that lost its
	// port is made again on another one.
	for attempt := 1; ; attempt++ {
		srv, err := startIMAP(t, withTLS, passwd, extraConf)
		if err == nil {
			return srv
		}
		if attempt == 5 {
			t.Fatal(err)
		}
		t.Logf("%v; starting again on another port", err)
	}
}

// startIMAP is one try of ServeIMAPWith: errLostPort when another server
// answered on the port this one was to listen on.
func startIMAP(t testing.TB, withTLS bool, passwd func(d *Dovecot, def string) string, extraConf []string) (*IMAPServer, error) {
	t.Helper()
	port := freePort(t)
	token := fmt.Sprintf("dovecottest-%x", randomBytes(8))
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	passwdPath := filepath.Join(dir, "passwd")
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
		"passdb {\n  driver = passwd-file\n  args = " + passwdPath + ".master\n  master = yes\n}",
		"passdb {\n  driver = passwd-file\n  args = " + passwdPath + "\n}",
		"userdb {\n  driver = passwd-file\n  args = " + passwdPath + "\n}",
		fmt.Sprintf("service imap-login {\n  chroot =\n  inet_listener imap {\n    port = %d\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}", port),
		// No penalty delays after the failed logins tests make.
		"service anvil {\n  chroot =\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}",
		"login_greeting = " + token,
	}
	if withTLS {
		cert, key := selfSigned(t, dir)
		conf = append(conf, "ssl = yes", "ssl_cert = <"+cert, "ssl_key = <"+key)
	}
	d := New(t, "", append(conf, extraConf...)...)
	content := fmt.Sprintf("%s:{PLAIN}%s::::%s\n", IMAPUser, IMAPPassword, d.Home())
	if passwd != nil {
		content = passwd(d, content)
	}
	if err := os.WriteFile(passwdPath, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if passwd != nil && d.uid >= 0 {
		// The passwd-file's directory belongs to the mail owner, so a
		// program running as that user can replace the file.
		for _, p := range []string{dir, passwdPath} {
			if err := os.Chown(p, d.uid, d.gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(passwdPath+".master", []byte(IMAPMasterUser+":{PLAIN}"+IMAPMasterPassword+"\n"), 0o644); err != nil {
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
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		greeting, err := readGreeting(port)
		switch {
		case err == nil && strings.Contains(greeting, token):
			return &IMAPServer{Dovecot: d, Port: port, PasswdPath: passwdPath}, nil
		case err == nil:
			// Another server: this one lost the port (and exits,
			// bind failed) or has not bound it yet.
			select {
			case <-exited:
				return nil, fmt.Errorf("%w %d: another server answers %q", errLostPort, port, greeting)
			case <-time.After(50 * time.Millisecond):
			}
		default:
			time.Sleep(50 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot did not listen on %d: %v\n%s", port, err, d.Log())
		}
	}
}

// errLostPort: another server took the port meant for a test's Dovecot.
var errLostPort = errors.New("dovecottest: lost the port")

// readGreeting dials 127.0.0.1:port and reads the server's first line.
func readGreeting(port int) (string, error) {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return line, nil
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// freePort is FreePort; a test makes it hand out a taken port.
var freePort = FreePort

// FreePort returns a loopback TCP port nothing listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
