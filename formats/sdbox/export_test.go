package sdbox

import "github.com/boxsync/boxsync/formats/internal/dbox"

// GUID128 is dbox.GUID128 for the external tests.
var GUID128 = dbox.GUID128
