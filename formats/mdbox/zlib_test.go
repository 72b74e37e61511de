package mdbox_test

import (
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestCompressed reads mail that Dovecot's zlib plugin saved compressed
// into m.* files (the stored bytes gzip, 'Z' metadata the plain size).
func TestCompressed(t *testing.T) {
	d := dovecottest.New(t, "mdbox:~/mdbox", "mail_plugins = zlib", "plugin {\n  zlib_save = gz\n}")
	d.Save(t, "INBOX", []byte("Subject: compressed\n\n"+string(make([]byte, 5000))+"end\n"))
	d.Save(t, "INBOX", []byte("Subject: small\n\nx\n"))
	loc, _ := formats.ParseLocation(d.Location(), formats.Vars{User: "dovecottest", Home: d.Home()})
	compare(t, d, openStore(t, loc, formats.OpenOptions{ReadOnly: true}))
}

// TestSavesCompressed: with the zlib plugin's settings we save compressed
// as Dovecot does, and Dovecot reads the original bytes.
func TestSavesCompressed(t *testing.T) { dt.SavesCompressed(t) }
