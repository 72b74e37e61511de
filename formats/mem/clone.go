package mem

import (
	"errors"

	"github.com/boxsync/boxsync/formats"
)

// Clone copies the store at path from to path to (replacing any store
// there), so that a dry run can work on the copy: every mailbox with its
// GUID, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and messages (metadata and
// bytes), the containers and the subscriptions.
func Clone(from, to string) error {
	storesMu.Lock()
	defer storesMu.Unlock()
	s := stores[from]
	if s == nil {
		delete(stores, to)
		return &formats.Error{Kind: formats.KindNotFound, Op: "mem: clone", Path: from, Err: errors.New("no such store")}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &store{boxes: map[string]*mailbox{}, dirs: map[string]bool{}, subs: map[string]bool{}}
	for name, b := range s.boxes {
		nb := *b
		nb.msgs = make([]*message, len(b.msgs))
		for i, m := range b.msgs {
			nb.msgs[i] = &message{meta: copyMeta(m.meta), body: append([]byte(nil), m.body...)}
		}
		c.boxes[name] = &nb
	}
	for k, v := range s.dirs {
		c.dirs[k] = v
	}
	for k, v := range s.subs {
		c.subs[k] = v
	}
	stores[to] = c
	return nil
}

// Forget drops the store at path (a dry run's copy).
func Forget(path string) {
	storesMu.Lock()
	delete(stores, path)
	storesMu.Unlock()
}
