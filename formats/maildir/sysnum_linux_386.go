package maildir

// The frozen syscall package lacks SYS_SYNCFS on 386 (linux
// arch/x86/entry/syscalls/syscall_32.tbl: 344 syncfs).
const sysSyncfs = 344

// ... nor SYS_COPY_FILE_RANGE (syscall_32.tbl: 377 copy_file_range).
const sysCopyFileRange = 377
