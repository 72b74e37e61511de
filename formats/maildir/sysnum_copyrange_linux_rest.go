//go:build linux && !amd64 && !386 && !arm64 && !riscv64 && !loong64

package maildir

// copy_file_range(2) has another number on each of these architectures;
// copyRangeAt copies through pread(2) and write(2) (0: no system call).
const sysCopyFileRange = 0
