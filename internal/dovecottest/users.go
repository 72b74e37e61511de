package dovecottest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// UsersServer is a real Dovecot serving IMAP on loopback for several
// users of a passwd-file userdb, each with its own home and its own
// userdb_mail= field: the setting of a per-user mail location rollout.
// Mail can be delivered with [UsersServer.Deliver] (doveadm save -u, which
// asks the running auth service, so it follows the userdb and its cache)
// and [UsersServer.DeliverLDA] (dovecot-lda -d, likewise);
// `doveadm auth cache flush` and `doveadm kick` work against it (see
// [UsersServer.DoveadmCommand]).
type UsersServer struct {
	*IMAPServer
	// Passwd is the passwd-file; its directory is writable by the mail
	// owner, so a program running as that owner can replace the file.
	Passwd string
	Users  []string
}

// UserPassword is every UsersServer user's password.
const UserPassword = "pw-" + IMAPPassword

// ServeUsers starts Dovecot with users, each with home DIR/users/NAME and
// userdb_mail=location (e.g. "maildir:~/Maildir"). The auth cache is on,
// so a changed passwd-file line is only seen after a flush, as in
// production. The sockets doveadm needs (auth-master for the cache flush,
// anvil for kick) are open to the mail owner, so a conversion may run as
// that user (see MailOwner).
func ServeUsers(t testing.TB, users []string, location string, extraConf ...string) *UsersServer {
	t.Helper()
	conf := []string{
		"protocols = imap",
		"auth_cache_size = 1M",
		"auth_cache_ttl = 1 hour",
		"service auth {\n  unix_listener auth-master {\n    mode = 0666\n  }\n  unix_listener auth-userdb {\n    mode = 0666\n  }\n}",
		"service anvil {\n  chroot =\n  unix_listener anvil {\n    mode = 0666\n  }\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}",
		"service doveadm {\n  unix_listener doveadm-server {\n    mode = 0666\n  }\n}",
	}
	s := ServeIMAPWith(t, false, func(d *Dovecot, _ string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "# dovecottest users (%d)\n", len(users))
		for _, u := range users {
			home := filepath.Join(d.Dir(), "users", u)
			if err := os.MkdirAll(home, 0o755); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s:{PLAIN}%s::::%s::userdb_mail=%s\n", u, UserPassword, home, location)
		}
		return b.String()
	}, append(conf, extraConf...)...)
	return &UsersServer{IMAPServer: s, Passwd: s.PasswdPath, Users: users}
}

// UserHome is a user's home directory.
func (s *UsersServer) UserHome(user string) string { return filepath.Join(s.Dir(), "users", user) }

// Deliver saves msg into user's mailbox through the running Dovecot's
// userdb (`doveadm save -u USER -m MAILBOX`).
func (s *UsersServer) Deliver(user, mailbox string, msg []byte) error {
	_, err := s.run(strings.NewReader(string(msg)), []string{"save", "-u", user, "-m", mailbox})
	return err
}

// DeliverLDA delivers msg to user's INBOX with Dovecot's delivery agent
// (dovecot-lda -d USER), as an MTA does where Dovecot's lmtp service is not
// installed (Debian's dovecot-lmtpd is a package of its own; dovecot-lda
// comes with dovecot-core): it asks the running auth service for the
// userdb (through its cache), drops to the user's uid and saves through
// mail_deliver, as LMTP would.
func (s *UsersServer) DeliverLDA(user string, msg []byte) error {
	lda, err := ldaPath()
	if err != nil {
		return err
	}
	fmt.Fprintf(s.log, "%sdovecot-lda -d %s\n", logHeader, user)
	cmd := exec.Command(lda, "-c", s.Config(), "-d", user)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Dir = s.Dir()
	cmd.Stdin = bytes.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = io.MultiWriter(&stderr, s.log)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dovecottest: dovecot-lda -d %s: %w\n%s", user, err, stderr.Bytes())
	}
	return nil
}

// ldaPath finds dovecot-lda: on PATH, else in Dovecot's libexec
// directories (Debian: /usr/lib/dovecot).
func ldaPath() (string, error) {
	if p, err := exec.LookPath("dovecot-lda"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/lib/dovecot/dovecot-lda", "/usr/libexec/dovecot/dovecot-lda", "/usr/local/libexec/dovecot/dovecot-lda"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("dovecottest: dovecot-lda not found (it comes with dovecot-core)")
}

// DoveadmCommand is the shell command line for doveadm with this
// configuration, for hooks ("doveadm -c CONF").
func (s *UsersServer) DoveadmCommand() string { return "doveadm -c '" + s.Config() + "'" }
