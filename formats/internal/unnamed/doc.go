// Package unnamed makes files without a name on a directory's file
// system (open(2) with O_TMPFILE) and names them later (linkat(2)), so
// that a file appears under its final name complete and at once, as a
// rename from a temporary name would make it, without a temporary name
// to add, look up and remove, and without a temporary file left behind
// by a crash: an unnamed file that is never linked is freed when its
// descriptor is closed.
//
// The drivers keep each unnamed file open from Save to Commit. [Reserve]
// bounds how many all transactions of the process hold at once (a
// quarter of the descriptors it may open); saves beyond that, and systems
// without O_TMPFILE ([ErrUnsupported]: not Linux, Linux before 3.11,
// file systems without it), use a named temporary file instead.
package unnamed
