package mbox

import "github.com/boxsync/boxsync/formats"

// DecompressionRestarts tells how often Body started decompressing a
// compressed mailbox over (tests).
func DecompressionRestarts(mb formats.Mailbox) int {
	m := mb.(*mailbox)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.body == nil {
		return 0
	}
	if z, ok := m.body.src.(*zSource); ok {
		return z.restarts
	}
	return 0
}
