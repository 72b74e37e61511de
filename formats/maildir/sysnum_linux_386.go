package maildir

// The frozen syscall package lacks SYS_SYNCFS on 386 (linux
// arch/x86/entry/syscalls/syscall_32.tbl: 344 syncfs).
const sysSyncfs = 344
