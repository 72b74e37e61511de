//go:build !linux

package dboxlist

// No syncfs(2): SyncFS returns errors.ErrUnsupported and callers fsync
// each file.
const sysSyncfs = 0
