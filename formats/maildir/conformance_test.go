package maildir_test

import (
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/maildir"
)

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		loc  func(dir string) formats.Location
	}{
		{"maildir++", func(dir string) formats.Location {
			return formats.Location{Driver: "maildir", Path: filepath.Join(dir, "Maildir")}
		}},
		{"fs", func(dir string) formats.Location {
			return formats.Location{Driver: "maildir", Path: filepath.Join(dir, "Maildir"), Layout: "fs"}
		}},
		{"utf8", func(dir string) formats.Location {
			return formats.Location{Driver: "maildir", Path: filepath.Join(dir, "Maildir"), UTF8: true}
		}},
		{"control+inbox", func(dir string) formats.Location {
			return formats.Location{Driver: "maildir", Path: filepath.Join(dir, "Maildir"), Layout: "fs",
				Control: filepath.Join(dir, "control"), Inbox: filepath.Join(dir, "inbox")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			formatstest.Run(t, formatstest.Harness{
				Driver:      maildir.Driver{},
				NewLocation: func(t *testing.T) formats.Location { return tc.loc(t.TempDir()) },
			})
		})
	}
}

// TestConformanceZlib runs the suite with Dovecot's zlib plugin saving
// compressed mail (mail_plugins = zlib, zlib_save = zstd or gz).
func TestConformanceZlib(t *testing.T) {
	for _, save := range []string{"zstd", "gz"} {
		t.Run(save, func(t *testing.T) {
			drv, err := maildir.Driver{}.Configure(map[string]string{
				"mail_plugins": "zlib", "plugin/zlib_save": save, "plugin/zlib_save_level": "6"})
			if err != nil {
				t.Fatal(err)
			}
			formatstest.Run(t, formatstest.Harness{
				Driver: drv,
				NewLocation: func(t *testing.T) formats.Location {
					return formats.Location{Driver: "maildir", Path: filepath.Join(t.TempDir(), "Maildir")}
				},
			})
		})
	}
}
