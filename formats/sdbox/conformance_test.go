package sdbox_test

import "testing"

// TestConformance: see dboxtest.Interop.Conformance.
func TestConformance(t *testing.T) { dt.Conformance(t) }
