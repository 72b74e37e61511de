package maildir

import (
	"path/filepath"
	"slices"
	"testing"

	gomaildir "github.com/emersion/go-maildir"

	"github.com/boxsync/boxsync/formats"
)

// TestGoMaildirIsLossy shows why this package parses Maildir names itself
// and uses go-maildir v0.6.0 only for Dir.Init (cur/ new/ tmp/ in Create).
func TestGoMaildirIsLossy(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"cur/1600000000.M1P1.h,S=3,W=4:2,Sab": "abc", // \Seen + keywords 0 and 1
		"cur/1600000000.M2P1.h":               "x",   // no ":2,": Dovecot reads it as unflagged
		"cur/1600000000.M3P1.h:2,S,xyz":       "y",   // a second flag set Dovecot keeps
		"new/1600000000.M4P1.h":               "new", // unread new mail
		"tmp/.keep":                           "",
	})
	d := gomaildir.Dir(dir)
	var keys []string
	flags := map[string][]gomaildir.Flag{}
	err := d.Walk(func(m *gomaildir.Message) error {
		keys = append(keys, m.Key())
		flags[m.Key()] = m.Flags()
		return nil
	})
	slices.Sort(keys)

	// 1. A name without ":2," is an error, not a message.
	if err == nil {
		t.Errorf("go-maildir accepted a name without info; update this test")
	}
	// 2. Walk reads cur/ only: the message in new/ is missing.
	if want := []string{"1600000000.M1P1.h,S=3,W=4", "1600000000.M3P1.h"}; !slices.Equal(keys, want) {
		t.Errorf("go-maildir keys = %q, want %q", keys, want)
	}
	// 3. The key keeps ",S=3,W=4" (Dovecot's base name, fine as a GUID)
	// but nothing reads them as sizes, and keyword letters are opaque
	// flags with no dovecot-keywords mapping.
	if got := string(flags["1600000000.M1P1.h,S=3,W=4"]); got != "Sab" {
		t.Errorf("go-maildir flags = %q", got)
	}
	// 4. Setting flags rewrites the info wholesale: the second flag set
	// is lost.
	msg, err := d.MessageByKey("1600000000.M3P1.h")
	if err != nil {
		t.Fatal(err)
	}
	if err := msg.SetFlags([]gomaildir.Flag{gomaildir.FlagFlagged}); err != nil {
		t.Fatal(err)
	}
	if got := filepath.Base(msg.Filename()); got != "1600000000.M3P1.h:2,F" {
		t.Errorf("go-maildir SetFlags gave %q", got)
	}
	// Ours: sizes parsed, keyword letters mapped, the name without info
	// and the second flag set kept.
	name := "1600000000.M3P1.h:2,S,xyz"
	if got := setFlags(name, formats.FlagFlagged, 0); got != "1600000000.M3P1.h:2,F,xyz" {
		t.Errorf("setFlags(%q) = %q", name, got)
	}
	if n, ok := extraSize("1600000000.M1P1.h,S=3,W=4", 'W'); !ok || n != 4 {
		t.Errorf("extraSize(W) = %d, %v", n, ok)
	}
	if f, kws := parseFlags("1600000000.M2P1.h"); f != 0 || kws != 0 {
		t.Errorf("parseFlags(no info) = %s, %b", f, kws)
	}
}
