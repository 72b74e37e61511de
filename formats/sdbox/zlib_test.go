package sdbox_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/sdbox"
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

// TestSavesCompressed: with the zlib plugin's settings we save compressed
// as Dovecot does, and Dovecot reads the original bytes.
func TestSavesCompressed(t *testing.T) { dt.SavesCompressed(t) }

func TestConfigureZlib(t *testing.T) {
	if _, err := (sdbox.Driver{}).Configure(map[string]string{"mail_plugins": "zlib", "zlib_save": "xz"}); !errors.Is(err, formats.ErrConfig) {
		t.Errorf("Configure(zlib_save=xz) = %v, want a config error", err)
	}
	if _, err := (sdbox.Driver{}).Configure(map[string]string{"mail_plugins": "zlib", "zlib_save": "gz", "zlib_save_level": "12"}); err == nil {
		t.Errorf("Configure(zlib_save_level=12) succeeded")
	}
}
