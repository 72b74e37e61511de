// Package all is the explicit registry of boxsync's storage drivers (no
// init() registration: what is linked in is listed here).
package all

import (
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/imapc"
	"github.com/boxsync/boxsync/formats/maildir"
	"github.com/boxsync/boxsync/formats/mbox"
	"github.com/boxsync/boxsync/formats/mdbox"
	"github.com/boxsync/boxsync/formats/mem"
	"github.com/boxsync/boxsync/formats/sdbox"
)

// Drivers returns every driver, by name.
func Drivers() []formats.Driver {
	return []formats.Driver{
		imapc.Driver{},
		maildir.Driver{},
		mbox.Driver{},
		mdbox.Driver{},
		sdbox.Driver{},
		mem.Driver{},
	}
}

// Lookup returns the driver for a location's format name.
func Lookup(name string) (formats.Driver, bool) {
	for _, d := range Drivers() {
		if d.Name() == name {
			return d, true
		}
	}
	return nil, false
}
