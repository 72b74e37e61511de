package mdbox_test

import (
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/mdbox"
)

func TestConformance(t *testing.T) {
	compressed := func(save string) formats.Driver {
		d, err := mdbox.Driver{}.Configure(map[string]string{"mail_plugins": "zlib", "plugin/zlib_save": save})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		name   string
		loc    func(dir string) formats.Location
		driver formats.Driver
	}{
		{"default", func(dir string) formats.Location {
			return formats.Location{Driver: "mdbox", Path: filepath.Join(dir, "mdbox")}
		}, nil},
		{"index+control+utf8", func(dir string) formats.Location {
			return formats.Location{Driver: "mdbox", Path: filepath.Join(dir, "mdbox"), UTF8: true,
				Index: filepath.Join(dir, "idx"), Control: filepath.Join(dir, "ctl")}
		}, nil},
		{"zlib_save=zstd", func(dir string) formats.Location {
			return formats.Location{Driver: "mdbox", Path: filepath.Join(dir, "mdbox")}
		}, compressed("zstd")},
		{"zlib_save=gz+index", func(dir string) formats.Location {
			return formats.Location{Driver: "mdbox", Path: filepath.Join(dir, "mdbox"), Index: filepath.Join(dir, "idx")}
		}, compressed("gz")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var driver formats.Driver = mdbox.Driver{}
			if tc.driver != nil {
				driver = tc.driver
			}
			formatstest.Run(t, formatstest.Harness{
				Driver:      driver,
				NewLocation: func(t *testing.T) formats.Location { return tc.loc(t.TempDir()) },
			})
		})
	}
}
