package sdbox_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestCompressed reads mail that Dovecot's zlib plugin saved compressed
// (the stored bytes gzip, 'Z' metadata the plain size).
func TestCompressed(t *testing.T) {
	d := dovecottest.New(t, "sdbox:~/sdbox", "mail_plugins = zlib", "plugin {\n  zlib_save = gz\n}")
	d.Save(t, "INBOX", []byte("Subject: compressed\n\n"+string(make([]byte, 5000))+"end\n"))
	d.Save(t, "INBOX", []byte("Subject: small\n\nx\n"))
	data, err := os.ReadFile(filepath.Join(d.Root(), "mailboxes", "INBOX", "dbox-Mails", "u.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !containsZ(data) {
		t.Fatalf("Dovecot did not compress: %q", data[:80])
	}
	loc, _ := formats.ParseLocation(d.Location(), formats.Vars{User: "dovecottest", Home: d.Home()})
	compare(t, d, openStore(t, loc, formats.OpenOptions{ReadOnly: true}))
}

func containsZ(data []byte) bool {
	for i := 0; i+2 < len(data); i++ {
		if data[i] == '\n' && data[i+1] == 'Z' {
			return true
		}
	}
	return false
}
