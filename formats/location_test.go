package formats

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseLocation(t *testing.T) {
	v := Vars{User: "jane@example.org", Home: "/home/jane"}
	cwd, _ := os.Getwd()
	tests := []struct {
		in   string
		want Location
		err  bool
	}{
		{in: "maildir:~/Maildir", want: Location{Driver: "maildir", Path: "/home/jane/Maildir"}},
		{in: "maildir:~/Maildir:LAYOUT=fs:UTF-8", want: Location{Driver: "maildir", Path: "/home/jane/Maildir", Layout: "fs", UTF8: true}},
		{in: "mbox:~/mail:INBOX=/var/mail/%n", want: Location{Driver: "mbox", Path: "/home/jane/mail", Inbox: "/var/mail/jane"}},
		{in: "mdbox:/srv/%d/%n:ALT=/alt/%u:INDEX=MEMORY", want: Location{Driver: "mdbox", Path: "/srv/example.org/jane", Alt: "/alt/jane@example.org", Index: "MEMORY"}},
		{in: "maildir:%h/M:CONTROL=~/control:VOLATILEDIR=/tmp/v", want: Location{Driver: "maildir", Path: "/home/jane/M", Control: "/home/jane/control", VolatileDir: "/tmp/v"}},
		{in: "maildir:/a::b", want: Location{Driver: "maildir", Path: "/a:b"}},
		{in: "dbox:/x", want: Location{Driver: "sdbox", Path: "/x"}},
		{in: "sdbox:/x:SUBSCRIPTIONS=subs", want: Location{Driver: "sdbox", Path: "/x", Other: map[string]string{"SUBSCRIPTIONS": "subs"}}},
		{in: "imapc:", want: Location{Driver: "imapc"}},
		{in: "maildir:rel/dir", want: Location{Driver: "maildir", Path: filepath.Join(cwd, "rel/dir")}},
		{in: "", err: true},
		{in: "~/Maildir", err: true},
		{in: "foo:/x", err: true},
		{in: "maildir:", err: true},
		{in: "maildir:/x:LAYOUT=flat", err: true},
		{in: "maildir:/x:NOSUCH=1", err: true},
		{in: "maildir:/x:UTF-8=yes", err: true},
		{in: "maildir:/x/%q", err: true},
		{in: "maildir:/x/%", err: true},
		{in: "maildir:/x:INBOX=", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLocation(tc.in, v)
			if tc.err {
				if err == nil || KindOf(err) != KindConfig {
					t.Fatalf("ParseLocation(%q) = %+v, %v; want a config error", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLocation(%q) = %v", tc.in, err)
			}
			if got.String() != tc.want.String() {
				t.Errorf("ParseLocation(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
	if _, err := ParseLocation("maildir:~/M", Vars{}); err == nil {
		t.Errorf("~ without a home expanded")
	}
}

func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"maildir:~/Maildir:LAYOUT=fs", "mbox:/m:INBOX=/var/mail/%u", "mdbox:/a::b:ALT=/c", "imapc:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := ParseLocation(s, Vars{User: "u", Home: "/h"})
		if err != nil {
			return
		}
		// What String prints parses back to the same location.
		again, err := ParseLocation(loc.String(), Vars{User: "u", Home: "/h"})
		if err != nil {
			t.Fatalf("ParseLocation(%q) = %v (from %q)", loc.String(), err, s)
		}
		if again.String() != loc.String() {
			t.Fatalf("round trip %q -> %q -> %q", s, loc.String(), again.String())
		}
	})
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"INBOX", "Entwürfe", "a/b c/d", "R&D", "日本語"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", "..", "a/../b", ".", "x\ty", "\xff"} {
		if err := ValidateName(bad); err == nil || KindOf(err) != KindParams {
			t.Errorf("ValidateName(%q) = %v, want a Params error", bad, err)
		}
	}
}
