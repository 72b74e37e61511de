package imapc

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

func openErr(t *testing.T, s Settings) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := Driver{Settings: s}.Open(ctx, formats.Location{Driver: "imapc"}, formats.OpenOptions{})
	if err == nil {
		st.Close()
	}
	return err
}

func wantKind(t *testing.T, what string, err error, k formats.Kind, secret string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %s", what, k)
	}
	if got := formats.KindOf(err); got != k {
		t.Errorf("%s = %v (kind %s), want kind %s", what, err, got, k)
	}
	if secret != "" && strings.Contains(err.Error(), secret) {
		t.Errorf("%s: error text contains the password: %v", what, err)
	}
	t.Logf("%s: %v", what, err)
}

func TestLogin(t *testing.T) {
	srv := startServer(t, true)
	ctx := context.Background()

	t.Run("LoginCommand", func(t *testing.T) {
		st := openStore(t, srv.settings(), formats.OpenOptions{})
		if _, err := st.Mailboxes(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("AuthenticatePlain", func(t *testing.T) {
		s := srv.settings()
		s.SASLMechanisms = []string{"plain"}
		openStore(t, s, formats.OpenOptions{})
	})
	t.Run("PasswordFile", func(t *testing.T) {
		s := srv.settings()
		s.Password, s.PasswordFile = "", filepath.Join(t.TempDir(), "pw")
		os.WriteFile(s.PasswordFile, []byte(testPassword+"\n"), 0o600)
		openStore(t, s, formats.OpenOptions{})
	})
	t.Run("PasswordEnv", func(t *testing.T) {
		s := srv.settings()
		s.Password, s.PasswordEnv = "", "BOXSYNC_TEST_IMAPC_PW"
		t.Setenv("BOXSYNC_TEST_IMAPC_PW", testPassword)
		openStore(t, s, formats.OpenOptions{})
	})
	t.Run("ParseSettings", func(t *testing.T) {
		s, err := ParseSettings(map[string]string{
			"imapc_host": "127.0.0.1", "imapc_port": strconv.Itoa(srv.port),
			"imapc_user": "u1", "imapc_password_env": "BOXSYNC_TEST_IMAPC_PW", "imapc_ssl": "starttls",
			"imapc_ssl_verify": "no", "imapc_features": "modseq rfc822.size", "imapc_connections": "2",
			"mail_location": "imapc:", // not ours: ignored
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("BOXSYNC_TEST_IMAPC_PW", testPassword)
		openStore(t, s, formats.OpenOptions{})
	})
	t.Run("MasterUser", func(t *testing.T) {
		s := srv.settings()
		s.MasterUser, s.Password = "admin", testMasterPassword
		st := openStore(t, s, formats.OpenOptions{})
		if _, err := st.Open(ctx, "INBOX"); err != nil {
			t.Fatal(err)
		}
		s.Password = "wrong"
		wantKind(t, "Open(master user, wrong password)", openErr(t, s), formats.KindPerm, testMasterPassword)
	})
	// Dovecot 2.3's XOAUTH2/OAUTHBEARER mechanisms check the token with
	// the passdb (auth_request_verify_plain), so the password works as a
	// token here.
	t.Run("XOAUTH2TokenFile", func(t *testing.T) {
		s := srv.settings()
		s.Password, s.SASLMechanisms = "", []string{"xoauth2"}
		s.TokenFile = filepath.Join(t.TempDir(), "token")
		os.WriteFile(s.TokenFile, []byte(testPassword+"\n"), 0o600)
		openStore(t, s, formats.OpenOptions{})
	})
	t.Run("OAUTHBEARERTokenCommand", func(t *testing.T) {
		s := srv.settings()
		s.Password, s.SASLMechanisms = "", []string{"oauthbearer"}
		s.TokenCommand = "echo " + testPassword
		openStore(t, s, formats.OpenOptions{})
	})
	t.Run("WrongToken", func(t *testing.T) {
		for _, mech := range []string{"xoauth2", "oauthbearer"} {
			s := srv.settings()
			s.Password, s.SASLMechanisms = "", []string{mech}
			s.TokenCommand = "echo bad-" + testPassword
			wantKind(t, "Open("+mech+", wrong token)", openErr(t, s), formats.KindPerm, "bad-"+testPassword)
		}
		s := srv.settings()
		s.SASLMechanisms, s.TokenCommand = []string{"xoauth2"}, "exit 3"
		wantKind(t, "Open(token command fails)", openErr(t, s), formats.KindPerm, testPassword)
	})
	t.Run("WrongPassword", func(t *testing.T) {
		var raw bytes.Buffer
		s := srv.settings()
		s.Password = "wrong-" + testPassword
		s.Rawlog = &raw
		err := openErr(t, s)
		// Dovecot's imapc makes an auth failure MAIL_ERROR_PERM
		// (imapc-storage.c imapc_storage_client_handle_auth_failure);
		// doveadm itself exits 75 because it fails at user init.
		wantKind(t, "Open(wrong password)", err, formats.KindPerm, s.Password)
		if !strings.Contains(err.Error(), "AUTHENTICATIONFAILED") || !strings.Contains(err.Error(), `"u1"`) {
			t.Errorf("error does not say what failed: %v", err)
		}
		if strings.Contains(raw.String(), "wrong-") || !strings.Contains(raw.String(), "masked") {
			t.Errorf("rawlog leaks the password or masks nothing:\n%s", raw.String())
		}
		s.SASLMechanisms = []string{"plain"}
		wantKind(t, "Open(wrong password, PLAIN)", openErr(t, s), formats.KindPerm, s.Password)
	})
	t.Run("ClosedPort", func(t *testing.T) {
		s := srv.settings()
		s.Port = dovecottest.FreePort(t)
		wantKind(t, "Open(closed port)", openErr(t, s), formats.KindTemp, testPassword)
	})
	t.Run("UnknownHost", func(t *testing.T) {
		s := srv.settings()
		s.Host = "no-such-host.invalid"
		wantKind(t, "Open(unknown host)", openErr(t, s), formats.KindUnavailable, testPassword)
	})
	t.Run("StartTLS", func(t *testing.T) {
		s := srv.settings()
		s.SSL, s.SSLVerify = SSLStartTLS, false
		st := openStore(t, s, formats.OpenOptions{})
		if _, err := st.Mailboxes(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("TLSVerifyFails", func(t *testing.T) {
		s := srv.settings()
		s.SSL, s.SSLVerify = SSLStartTLS, true
		err := openErr(t, s)
		wantKind(t, "Open(self-signed, verify)", err, formats.KindConfig, testPassword)
		if !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "imapc_ssl_verify") {
			t.Errorf("TLS error is not clear: %v", err)
		}
	})
	t.Run("ImapsOnPlainPort", func(t *testing.T) {
		s := srv.settings()
		s.SSL = SSLImaps
		wantKind(t, "Open(imaps to a plain port)", openErr(t, s), formats.KindTemp, testPassword)
	})
}

func TestStartTLSNotOffered(t *testing.T) {
	srv := startServer(t, false)
	s := srv.settings()
	s.SSL = SSLStartTLS
	err := openErr(t, s)
	wantKind(t, "Open(starttls, server without TLS)", err, formats.KindConfig, testPassword)
	if !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("error does not name STARTTLS: %v", err)
	}
}

func TestSettingsString(t *testing.T) {
	s := Defaults()
	s.Host, s.User, s.Password = "h", "u", testPassword
	if strings.Contains(s.String(), testPassword) {
		t.Errorf("Settings.String() shows the password: %s", s)
	}
	for _, kv := range []map[string]string{
		{"imapc_host": "h", "imapc_ssl": "maybe", "imapc_password": testPassword},
		{"imapc_host": "h", "imapc_features": "bogus", "imapc_password": testPassword},
		{"imapc_host": "h", "imapc_bogus": "1", "imapc_password": testPassword},
		{"imapc_password": testPassword},
	} {
		_, err := ParseSettings(kv)
		wantKind(t, "ParseSettings", err, formats.KindConfig, testPassword)
	}
}
