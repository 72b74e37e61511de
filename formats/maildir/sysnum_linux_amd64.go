package maildir

// The frozen syscall package lacks SYS_SYNCFS on amd64 (linux
// arch/x86/entry/syscalls/syscall_64.tbl: 306 syncfs).
const sysSyncfs = 306
