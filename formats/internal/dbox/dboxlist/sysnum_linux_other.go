//go:build linux && !amd64 && !386

package dboxlist

import "syscall"

const sysSyncfs = syscall.SYS_SYNCFS
