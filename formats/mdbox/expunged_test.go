package mdbox_test

import "testing"

// TestExpungedSinceDovecot: see dboxtest.Interop.ExpungedSinceDovecot.
func TestExpungedSinceDovecot(t *testing.T) { dt.ExpungedSinceDovecot(t) }
