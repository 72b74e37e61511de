package imapc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// SSL is imapc_ssl.
type SSL string

const (
	SSLNo       SSL = "no"
	SSLImaps    SSL = "imaps"
	SSLStartTLS SSL = "starttls"
)

// Settings configure the imapc driver. The fields named after Dovecot's
// settings (dovecot 2.3.19.1 imapc-settings.c) mean what they mean there;
// the others are boxsync's and say so.
type Settings struct {
	Host       string // imapc_host
	Port       int    // imapc_port; 0 = 143, or 993 with imapc_ssl=imaps
	User       string // imapc_user
	MasterUser string // imapc_master_user: AUTHENTICATE PLAIN with User as the authorization id
	// Password is imapc_password. It is never printed: Settings.String
	// and every error leave it out. PasswordFile and PasswordEnv
	// (boxsync's imapc_password_file, imapc_password_env) name where to
	// read it from instead, so it need not be on a command line.
	Password     string
	PasswordFile string
	PasswordEnv  string
	// SASLMechanisms is imapc_sasl_mechanisms: "plain", "login",
	// "xoauth2", "oauthbearer" (first one the server offers wins). Empty:
	// LOGIN, or AUTHENTICATE PLAIN with a master user.
	SASLMechanisms []string
	// OAuth2 token for XOAUTH2/OAUTHBEARER (boxsync's
	// imapc_oauth2_token_file and imapc_oauth2_token_command; Dovecot
	// takes the token from imapc_password, which works too). The command
	// runs with sh -c; its first output line is the token.
	TokenFile    string
	TokenCommand string

	SSL       SSL  // imapc_ssl: no, imaps, starttls
	SSLVerify bool // imapc_ssl_verify (default yes)
	// Features is imapc_features. Understood: "modseq" (a no-op: modseqs
	// are used whenever the server has CONDSTORE), "rfc822.size",
	// "guid-forced" (accepted, not implemented), "throttle:..." (parsed,
	// see Throttle*) and boxsync's "no-x-guid" (never ask a Dovecot
	// server for X-GUID) and "name-mailbox-guids" (mailbox GUIDs always
	// from the name, exactly as Dovecot's imapc, even where the server
	// has real ones). Unknown features are an error, as in Dovecot.
	Features    []string
	ListPrefix  string        // imapc_list_prefix
	MaxIdleTime time.Duration // imapc_max_idle_time: idle connections older than this are closed (default 29m)
	CmdTimeout  time.Duration // imapc_cmd_timeout (default 5m): no byte from the server for this long fails the command

	// Connections is how many connections one store may open (boxsync's
	// imapc_connections, default 4).
	Connections int
	// Throttles (boxsync's imapc_max_bytes_per_sec,
	// imapc_max_msgs_per_sec): limits on body bytes and messages read or
	// written per second over all connections of a store; 0 = none.
	MaxBytesPerSec int64
	MaxMsgsPerSec  float64
	// RetryCount is imapc_connection_retry_count (default 1): how often
	// an idempotent command is retried on a new connection after the old
	// one broke.
	RetryCount int

	// Dial, when set, replaces the TCP dialer (tests run `doveadm exec
	// imap` over a pipe). TLS is layered on top as imapc_ssl says.
	Dial func(ctx context.Context) (net.Conn, error)
	// Rawlog, when set, receives everything sent and received, with the
	// password and tokens masked (imapc_rawlog_dir's purpose). Writes from
	// several connections are serialized.
	Rawlog io.Writer
}

// Defaults returns Dovecot's defaults.
func Defaults() Settings {
	return Settings{
		SSL: SSLNo, SSLVerify: true, MaxIdleTime: 29 * time.Minute,
		CmdTimeout: 5 * time.Minute, Connections: 4, RetryCount: 1,
	}
}

// ParseSettings maps Dovecot setting names (and boxsync's additions, see
// Settings) to Settings, starting from Defaults. Unknown imapc_ keys are
// an error; other keys are ignored (they belong to other parts of the
// configuration). Errors are KindConfig and never contain a password.
func ParseSettings(kv map[string]string) (Settings, error) {
	s := Defaults()
	bad := func(key, format string, args ...any) (Settings, error) {
		return Settings{}, &formats.Error{Kind: formats.KindConfig, Op: "imapc: settings",
			Err: fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))}
	}
	for key, val := range kv {
		var err error
		switch key {
		case "imapc_host":
			s.Host = val
		case "imapc_port":
			if s.Port, err = strconv.Atoi(val); err != nil || s.Port < 0 || s.Port > 65535 {
				return bad(key, "%q is not a port", val)
			}
		case "imapc_user":
			s.User = val
		case "imapc_master_user":
			s.MasterUser = val
		case "imapc_password":
			s.Password = val
		case "imapc_password_file":
			s.PasswordFile = val
		case "imapc_password_env":
			s.PasswordEnv = val
		case "imapc_sasl_mechanisms":
			s.SASLMechanisms = strings.FieldsFunc(strings.ToLower(val), isListSep)
		case "imapc_oauth2_token_file":
			s.TokenFile = val
		case "imapc_oauth2_token_command":
			s.TokenCommand = val
		case "imapc_ssl":
			switch SSL(val) {
			case SSLNo, SSLImaps, SSLStartTLS:
				s.SSL = SSL(val)
			default:
				return bad(key, "%q: want no, imaps or starttls", val)
			}
		case "imapc_ssl_verify":
			if s.SSLVerify, err = parseBool(val); err != nil {
				return bad(key, "%s", err)
			}
		case "imapc_features":
			s.Features = strings.FieldsFunc(val, isListSep)
		case "imapc_list_prefix":
			s.ListPrefix = val
		case "imapc_max_idle_time":
			if s.MaxIdleTime, err = parseDuration(val); err != nil {
				return bad(key, "%s", err)
			}
		case "imapc_cmd_timeout":
			if s.CmdTimeout, err = parseDuration(val); err != nil {
				return bad(key, "%s", err)
			}
		case "imapc_connection_retry_count":
			if s.RetryCount, err = strconv.Atoi(val); err != nil || s.RetryCount < 0 {
				return bad(key, "%q is not a count", val)
			}
		case "imapc_connections":
			if s.Connections, err = strconv.Atoi(val); err != nil || s.Connections < 1 {
				return bad(key, "%q: want a number >= 1", val)
			}
		case "imapc_max_bytes_per_sec":
			if s.MaxBytesPerSec, err = strconv.ParseInt(val, 10, 64); err != nil || s.MaxBytesPerSec < 0 {
				return bad(key, "%q: want a number of bytes", val)
			}
		case "imapc_max_msgs_per_sec":
			if s.MaxMsgsPerSec, err = strconv.ParseFloat(val, 64); err != nil || s.MaxMsgsPerSec < 0 {
				return bad(key, "%q: want a number", val)
			}
		case "imapc_rawlog_dir", "imapc_max_line_length", "imapc_connection_retry_interval":
			// Accepted for compatibility; not used.
		default:
			if strings.HasPrefix(key, "imapc_") {
				return bad(key, "unknown setting")
			}
		}
	}
	if err := s.check(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

func isListSep(r rune) bool { return r == ' ' || r == ',' }

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "y", "1", "true":
		return true, nil
	case "no", "n", "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q: want yes or no", s)
}

// parseDuration accepts Dovecot's time values ("30 secs", "5 mins", "29m")
// and Go's.
func parseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	num, unit, _ := strings.Cut(strings.TrimSpace(s), " ")
	if unit == "" {
		i := strings.IndexFunc(num, func(r rune) bool { return r < '0' || r > '9' })
		if i > 0 {
			num, unit = num[:i], num[i:]
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time", s)
	}
	switch strings.ToLower(strings.TrimSpace(unit)) {
	case "", "s", "sec", "secs", "second", "seconds":
		return time.Duration(n) * time.Second, nil
	case "ms", "msec", "msecs":
		return time.Duration(n) * time.Millisecond, nil
	case "m", "min", "mins", "minute", "minutes":
		return time.Duration(n) * time.Minute, nil
	case "h", "hour", "hours":
		return time.Duration(n) * time.Hour, nil
	case "d", "day", "days":
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return 0, fmt.Errorf("%q: unknown time unit", s)
}

var knownFeatures = map[string]bool{
	"rfc822.size": true, "guid-forced": true, "fetch-headers": true, "gmail-migration": true,
	"search": true, "zimbra-workarounds": true, "no-examine": true, "proxyauth": true,
	"fetch-msn-workarounds": true, "fetch-fix-broken-mails": true, "modseq": true,
	"delay-login": true, "fetch-bodystructure": true, "send-id": true,
	"fetch-empty-is-expunged": true, "no-msn-updates": true, "acl": true,
	// boxsync's own
	"no-x-guid": true, "name-mailbox-guids": true,
}

func (s *Settings) check() error {
	bad := func(format string, args ...any) error {
		return &formats.Error{Kind: formats.KindConfig, Op: "imapc: settings", Err: fmt.Errorf(format, args...)}
	}
	if s.Host == "" && s.Dial == nil {
		return bad("imapc_host is not set")
	}
	for _, f := range s.Features {
		name, _, _ := strings.Cut(strings.ToLower(f), ":")
		if !knownFeatures[name] && name != "throttle" {
			return bad("imapc_features: unknown feature %q", f)
		}
	}
	for _, m := range s.SASLMechanisms {
		switch m {
		case "plain", "login", "xoauth2", "oauthbearer":
		default:
			return bad("imapc_sasl_mechanisms: unsupported mechanism %q", m)
		}
	}
	if s.SSL == "" {
		s.SSL = SSLNo
	}
	return nil
}

func (s *Settings) feature(name string) bool {
	for _, f := range s.Features {
		if strings.EqualFold(f, name) {
			return true
		}
	}
	return false
}

func (s *Settings) port() int {
	if s.Port != 0 {
		return s.Port
	}
	if s.SSL == SSLImaps {
		return 993
	}
	return 143
}

// addr is host:port, for messages and dialing.
func (s *Settings) addr() string {
	if s.Dial != nil && s.Host == "" {
		return "(custom dialer)"
	}
	return net.JoinHostPort(s.Host, strconv.Itoa(s.port()))
}

// String describes s without any secret.
func (s Settings) String() string {
	return fmt.Sprintf("imapc{host=%s user=%q master_user=%q ssl=%s}", s.addr(), s.User, s.MasterUser, s.SSL)
}

// secret resolves the password: imapc_password, else the file, else the
// environment variable.
func (s *Settings) secret() (string, error) {
	switch {
	case s.Password != "":
		return s.Password, nil
	case s.PasswordFile != "":
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return "", &formats.Error{Kind: formats.KindConfig, Op: "imapc: imapc_password_file", Err: err}
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case s.PasswordEnv != "":
		v, ok := os.LookupEnv(s.PasswordEnv)
		if !ok {
			return "", formats.Errorf(formats.KindConfig, "imapc: imapc_password_env: $%s is not set", s.PasswordEnv)
		}
		return v, nil
	}
	return "", nil
}

// token resolves an OAuth2 token: the file, the command, else the password.
func (s *Settings) token(ctx context.Context) (string, error) {
	switch {
	case s.TokenFile != "":
		b, err := os.ReadFile(s.TokenFile)
		if err != nil {
			return "", &formats.Error{Kind: formats.KindConfig, Op: "imapc: imapc_oauth2_token_file", Err: err}
		}
		return strings.TrimSpace(string(b)), nil
	case s.TokenCommand != "":
		cmd := exec.CommandContext(ctx, "sh", "-c", s.TokenCommand)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			// The command's stderr may hold anything; report only its
			// exit status.
			return "", &formats.Error{Kind: formats.KindPerm, Op: "imapc: imapc_oauth2_token_command", Err: err}
		}
		line, _, _ := strings.Cut(string(out), "\n")
		return strings.TrimSpace(line), nil
	}
	return s.secret()
}
