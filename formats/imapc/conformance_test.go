package imapc

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// knownGaps are the conformance tests imapc cannot pass because IMAP
// cannot do what they check, and the formats.Caps field the suite would
// need to skip them. TestConformance fails if one of them starts passing
// (then remove it here) or if any other test fails.
var knownGaps = map[string]string{
	// Create cannot choose a mailbox GUID or UIDVALIDITY over IMAP.
	"Tree": "needs Caps.SaveMailboxGUIDs / Caps.SaveUIDValidity",
	// saveSample saves the "empty" body, which Dovecot refuses ("NO
	// Can't save a zero byte message"), and checks POP3 UIDL/order (Ext),
	// "lf" bytes (IMAP sends CRLF) and a NUL (Dovecot sends 0x80).
	"SaveKeepsEverything": "needs Caps.EmptyMessages / Caps.Ext / Caps.ExactBytes",
	"SetFlags":            "saveSample: see SaveKeepsEverything",
	"Expunge":             "saveSample: see SaveKeepsEverything",
	"MessagesFrom":        "saveSample: see SaveKeepsEverything",
	"DeleteMailbox":       "saveSample: see SaveKeepsEverything",
	"ReadOnly":            "saveSample: see SaveKeepsEverything",
	// No IMAP command raises UIDNEXT.
	"SetUIDNext": "needs Caps.SetUIDNext",
	// Dovecot sends bodies in CRLF form whatever was appended.
	"ManyMessages": "needs Caps.ExactBytes (IMAP gives CRLF)",
	// Dovecot refuses SUBSCRIBE of a mailbox that does not exist.
	"Subscriptions": "needs Caps.SubscribeMissing",
}

const childEnv = "BOXSYNC_IMAPC_CONFORMANCE_CHILD"

// TestConformance runs formatstest.Run against imapc (Dovecot Maildir
// behind exec imap) in a child process and holds the result against
// knownGaps, so the known failures do not fail the build but any change
// is noticed.
func TestConformance(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		runSuite(t)
		return
	}
	dovecottest.Require(t)
	if testing.Short() {
		t.Skip("short")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestConformance$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, _ := cmd.CombinedOutput()
	results := map[string]string{}
	re := regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): TestConformance/(\S+)`)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			results[m[2]] = m[1]
		}
	}
	if len(results) == 0 {
		t.Fatalf("the suite ran no test:\n%s", out)
	}
	var names []string
	for n := range results {
		names = append(names, n)
	}
	sort.Strings(names)
	passed := 0
	for _, n := range names {
		gap, known := knownGaps[n]
		switch r := results[n]; {
		case r == "FAIL" && !known:
			t.Errorf("conformance test %s fails", n)
		case r == "PASS" && known:
			t.Errorf("conformance test %s passes now: remove it from knownGaps (%s)", n, gap)
		case r == "PASS":
			passed++
		default:
			t.Logf("%s: %s (%s)", n, r, gap)
		}
	}
	t.Logf("%d conformance tests passed, %d known gaps", passed, len(knownGaps))
	if t.Failed() {
		t.Logf("suite output:\n%s", out)
	}
}

func runSuite(t *testing.T) {
	var cur *dovecottest.Dovecot
	s := Defaults()
	s.Dial = func(ctx context.Context) (net.Conn, error) { return execDialer(t, cur)(ctx) }
	formatstest.Run(t, formatstest.Harness{
		Driver: Driver{Settings: s},
		NewLocation: func(t *testing.T) formats.Location {
			cur = dovecottest.New(t, "", "mail_save_crlf = yes")
			return formats.Location{Driver: "imapc", Path: cur.Dir()}
		},
	})
}
