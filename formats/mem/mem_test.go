package mem_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/formats/mem"
)

var n atomic.Int64

func TestConformance(t *testing.T) {
	formatstest.Run(t, formatstest.Harness{
		Driver: mem.Driver{},
		NewLocation: func(t *testing.T) formats.Location {
			return formats.Location{Driver: "mem", Path: fmt.Sprintf("/conformance/%d", n.Add(1))}
		},
	})
}
