package sdbox

import "github.com/boxsync/boxsync/formats/internal/dbox"

// GUID128 is dbox.GUID128 for the external tests.
var GUID128 = dbox.GUID128

// SaveThroughTemp makes the store's saves write .temp.* files, as where
// unnamed files (O_TMPFILE) are not available.
func SaveThroughTemp(s *Store) { s.noUnnamed.Store(true) }
