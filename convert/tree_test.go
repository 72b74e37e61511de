package convert_test

// goneBoxes marks as expunged every body of a mailbox that one side
// deleted after the base sync: Sync deletes it on the other side too,
// with any mail it got meanwhile (dsync's TWOWAY delete).
func goneBoxes(exp map[string]map[string]bool, base map[string]map[string]int, states ...map[string]map[string]int) {
	for name := range base {
		deleted := false
		for _, st := range states {
			if _, ok := st[name]; !ok {
				deleted = true
			}
		}
		if !deleted {
			continue
		}
		if exp[name] == nil {
			exp[name] = map[string]bool{}
		}
		for _, st := range states {
			for h := range st[name] {
				exp[name][h] = true
			}
		}
	}
}
