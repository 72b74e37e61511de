package mbox_test

import (
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/mbox"
)

func TestConformance(t *testing.T) {
	formatstest.Run(t, formatstest.Harness{
		Driver: mbox.Driver{},
		NewLocation: func(t *testing.T) formats.Location {
			dir := t.TempDir()
			return formats.Location{Driver: "mbox", Path: filepath.Join(dir, "mail"), Inbox: filepath.Join(dir, "mail", "inbox")}
		},
	})
}
