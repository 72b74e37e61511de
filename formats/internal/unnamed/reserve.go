package unnamed

import "sync/atomic"

// held counts the unnamed files reserved by every transaction of the
// process, open until their Commit or Rollback.
var held atomic.Int64

// Reserve reserves one unnamed file and tells whether that is within the
// limit; the caller then opens it and calls Release once it is closed (or
// could not be opened). When Reserve returns false nothing is reserved.
func Reserve() bool {
	if held.Add(1) <= limit() {
		return true
	}
	held.Add(-1)
	return false
}

// Release gives back what Reserve reserved.
func Release() { held.Add(-1) }

// Held is how many unnamed files are reserved now (for tests and
// diagnostics).
func Held() int64 { return held.Load() }

// Limit is how many unnamed files the process may hold at once; 0 where
// there are none.
func Limit() int64 { return limit() }
