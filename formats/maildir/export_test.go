package maildir

// SaveThroughTmp makes s save every body through tmp/, as it does where
// unnamed files (O_TMPFILE) are not available.
func SaveThroughTmp(s *Store) { s.noUnnamed.Store(true) }
