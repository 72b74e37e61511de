package dovecottest

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// RecentUIDs is the UIDs `doveadm fetch flags` reports \Recent in mailbox,
// ascending. doveadm claims no \Recent itself: it reports what the next
// IMAP SELECT would see. opts go before the command, e.g. "-o",
// "mail_location=...". U is the caller's UID type (formats.UID).
func RecentUIDs[U ~uint32](t testing.TB, d *Dovecot, mailbox string, opts ...string) []U {
	t.Helper()
	out := d.MustDoveadm(t, append(slices.Clone(opts), "-f", "tab", "fetch", "uid flags", "mailbox", mailbox, "all")...)
	var uids []U
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if i == 0 || line == "" {
			continue // the header line
		}
		uid, flags, _ := strings.Cut(line, "\t") // no tab: no flags (the last line, trimmed)
		if !slices.Contains(strings.Fields(flags), `\Recent`) {
			continue
		}
		n, err := strconv.ParseUint(uid, 10, 32)
		if err != nil {
			t.Fatalf("doveadm fetch line %q: %v", line, err)
		}
		uids = append(uids, U(n))
	}
	return uids
}

// IMAPSelect has an IMAP session (`doveadm exec imap` over pipes) SELECT
// mailbox and log out, claiming the mailbox's \Recent as any client's
// SELECT does. A non-empty location is given to the imap process itself:
// doveadm's own -o settings do not reach a process it execs.
func (d *Dovecot) IMAPSelect(t testing.TB, mailbox, location string) {
	t.Helper()
	args := []string{"exec", "imap"}
	if location != "" {
		args = append(args, "-o", "mail_location="+location)
	}
	c := d.Cmd(t, args...)
	c.Stdin = strings.NewReader("a select " + mailbox + "\r\nb logout\r\n")
	out, err := c.Output()
	if err != nil || !strings.Contains(string(out), "a OK") {
		t.Fatalf("imap select %s: %v\n%s", mailbox, err, out)
	}
}
