package dovecottest

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// TestServeIMAPLostPort: when another server answers on the port handed
// to a new Dovecot (a test in another package got the same free port),
// ServeIMAP notices by the greeting's token and starts on another port,
// instead of letting the test talk to the other server.
func TestServeIMAPLostPort(t *testing.T) {
	Require(t)
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "* OK [CAPABILITY IMAP4rev1] someone else's server\r\n")
			c.Close()
		}
	}()
	taken := other.Addr().(*net.TCPAddr).Port
	calls := 0
	freePort = func(t testing.TB) int {
		calls++
		if calls == 1 {
			return taken
		}
		return FreePort(t)
	}
	defer func() { freePort = FreePort }()

	srv := ServeIMAP(t, false)
	if srv.Port == taken || calls < 2 {
		t.Fatalf("ServeIMAP listens on %d after %d ports; the taken one was %d", srv.Port, calls, taken)
	}
	greeting, err := readGreeting(srv.Port)
	if err != nil || !strings.Contains(greeting, "dovecottest-") {
		t.Fatalf("greeting on %d: %q, %v", srv.Port, greeting, err)
	}
}
