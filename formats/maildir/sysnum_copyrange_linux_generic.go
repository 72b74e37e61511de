//go:build linux && (arm64 || riscv64 || loong64)

package maildir

// The frozen syscall package lacks SYS_COPY_FILE_RANGE (linux
// include/uapi/asm-generic/unistd.h: 285 copy_file_range).
const sysCopyFileRange = 285
