// Package mboxname holds the mailbox-name helpers shared by the
// file-based drivers (maildir, sdbox, mdbox).
package mboxname

import (
	"strings"
	"sync"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/mutf7"
)

// DecodeLevels joins storage levels (mUTF-7 unless utf8) into a contract
// name, or "" when a level is empty or not valid mUTF-7. The caller checks
// that the name maps back to the same levels.
func DecodeLevels(levels []string, utf8 bool) string {
	out := make([]string, len(levels))
	for i, l := range levels {
		if l == "" {
			return ""
		}
		if utf8 {
			out[i] = l
			continue
		}
		d, err := mutf7.Decode(l)
		if err != nil {
			return ""
		}
		out[i] = d
	}
	return strings.Join(out, string(formats.Separator))
}

// UIDValidity picks UIDVALIDITYs for new mailboxes: the current time, made
// unique within the store (mailbox_uidvalidity_next_fallback; the optional
// dovecot-uidvalidity allocator file, spec §8.4, is not kept). The zero
// value is ready to use.
type UIDValidity struct {
	mu   sync.Mutex
	last uint32
}

// Next returns a new UIDVALIDITY.
func (u *UIDValidity) Next() uint32 {
	u.mu.Lock()
	defer u.mu.Unlock()
	v := uint32(time.Now().Unix())
	if v <= u.last {
		v = u.last + 1
	}
	if v == 0 {
		v = 1
	}
	u.last = v
	return v
}
