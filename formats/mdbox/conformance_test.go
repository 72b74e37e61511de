package mdbox_test

import (
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/mdbox"
)

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		loc  func(dir string) formats.Location
	}{
		{"default", func(dir string) formats.Location {
			return formats.Location{Driver: "mdbox", Path: filepath.Join(dir, "mdbox")}
		}},
		{"index+control+utf8", func(dir string) formats.Location {
			return formats.Location{Driver: "mdbox", Path: filepath.Join(dir, "mdbox"), UTF8: true,
				Index: filepath.Join(dir, "idx"), Control: filepath.Join(dir, "ctl")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			formatstest.Run(t, formatstest.Harness{
				Driver:      mdbox.Driver{},
				NewLocation: func(t *testing.T) formats.Location { return tc.loc(t.TempDir()) },
			})
		})
	}
}
