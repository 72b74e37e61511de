package imapc

import (
	"context"
	"testing"
	"time"
)

func TestParseSettings(t *testing.T) {
	s, err := ParseSettings(map[string]string{
		"imapc_host": "imap.example.com", "imapc_port": "993", "imapc_ssl": "imaps",
		"imapc_user": "u", "imapc_master_user": "m", "imapc_password_file": "/pw",
		"imapc_sasl_mechanisms": "xoauth2, plain", "imapc_features": "modseq,throttle:1:2:3 no-x-guid",
		"imapc_list_prefix": "Mail", "imapc_max_idle_time": "10 mins", "imapc_cmd_timeout": "30s",
		"imapc_connections": "8", "imapc_max_bytes_per_sec": "1000000", "imapc_max_msgs_per_sec": "2.5",
		"imapc_oauth2_token_command": "get-token", "imapc_ssl_verify": "no", "imapc_connection_retry_count": "3",
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Host != "imap.example.com" || s.port() != 993 || s.SSL != SSLImaps || s.SSLVerify || s.MasterUser != "m" ||
		s.PasswordFile != "/pw" || len(s.SASLMechanisms) != 2 || !s.feature("no-x-guid") || s.ListPrefix != "Mail" ||
		s.MaxIdleTime != 10*time.Minute || s.CmdTimeout != 30*time.Second || s.Connections != 8 ||
		s.MaxBytesPerSec != 1e6 || s.MaxMsgsPerSec != 2.5 || s.TokenCommand != "get-token" || s.RetryCount != 3 {
		t.Errorf("ParseSettings = %+v", s)
	}
	d := Defaults()
	if d.port() != 143 || !d.SSLVerify || d.Connections != 4 || d.MaxIdleTime != 29*time.Minute {
		t.Errorf("Defaults() = %+v", d)
	}
	for _, bad := range []map[string]string{
		{"imapc_host": "h", "imapc_port": "x"},
		{"imapc_host": "h", "imapc_connections": "0"},
		{"imapc_host": "h", "imapc_max_idle_time": "soon"},
		{"imapc_host": "h", "imapc_sasl_mechanisms": "cram-md5"},
		{"imapc_host": "h", "imapc_ssl_verify": "perhaps"},
	} {
		if _, err := ParseSettings(bad); err == nil {
			t.Errorf("ParseSettings(%v) succeeded", bad)
		}
	}
}

func TestThrottle(t *testing.T) {
	ctx := context.Background()
	th := newThrottle(100_000, 50)
	start := time.Now()
	for i := 0; i < 6; i++ {
		if err := th.wait(ctx, 0, 1); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("6 messages at 50/s took %v", d)
	}
	start = time.Now()
	for i := 0; i < 3; i++ {
		th.wait(ctx, 10_000, 0) // 0.1 s each at 100 kB/s, paid by the next caller
	}
	if d := time.Since(start); d < 180*time.Millisecond {
		t.Errorf("30 kB at 100 kB/s took %v", d)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	th.wait(ctx, 1_000_000, 0)
	if err := th.wait(cctx, 1, 0); err == nil {
		t.Errorf("wait with a canceled context succeeded")
	}
	var none *throttle
	if err := none.wait(ctx, 1<<40, 1<<20); err != nil {
		t.Errorf("nil throttle: %v", err)
	}
}
