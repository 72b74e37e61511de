//go:build linux && !amd64 && !386

package maildir

import "syscall"

const sysSyncfs = syscall.SYS_SYNCFS
