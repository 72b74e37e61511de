// Package mem is boxsync's in-memory reference driver: the executable
// definition of the formats contract. The conformance suite in
// formats/formatstest runs against it first; every on-disk driver must
// behave the same.
//
// # Overview
//
// Stores live in a process-wide table keyed by the location path, so
// "mem:/a" opened twice is the same store (tests reopen stores to check
// persistence). Each message keeps its bytes in memory: the driver is for
// tests and dry runs, not for mail.
//
// # On-disk format
//
// None.
//
// # Dovecot compatibility
//
// mem keeps everything a dbox store keeps (GUIDs, UIDs, modseqs, save
// dates), so it is the most capable peer a real driver can be compared with.
// Message.Recent is kept as Save was given it (Caps.SaveRecent), per
// message: saving mail without it claims nothing else, so it need not be
// a suffix of the UIDs. Each mailbox keeps a first_recent_uid (1 when
// created, Status.FirstRecentUID) that only formats.FirstRecentRaiser
// moves; raising it takes Recent from every message below it, as
// Dovecot's index does.
package mem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/mailboxlog"
)

var (
	_ formats.FirstRecentRaiser = (*tx)(nil)
	_ formats.DirCreator        = (*storeHandle)(nil)
	_ formats.Renamer           = (*storeHandle)(nil)
	_ formats.MailboxLogger     = (*storeHandle)(nil)
)

// Driver is the in-memory driver. Its zero value is ready to use.
type Driver struct{}

var _ formats.Driver = Driver{}

func (Driver) Name() string { return "mem" }

func (Driver) Caps() formats.Caps {
	return formats.LocalCaps(formats.Caps{GUIDs: true, SaveGUIDs: true, SaveUIDs: true, ModSeqs: true, Keywords: true, SaveDate: true, SaveRecent: true})
}

var (
	storesMu sync.Mutex
	stores   = map[string]*store{} // guarded by storesMu
)

// Reset forgets every store (tests).
func Reset() {
	storesMu.Lock()
	stores = map[string]*store{}
	storesMu.Unlock()
}

func (d Driver) Open(ctx context.Context, loc formats.Location, opt formats.OpenOptions) (formats.Store, error) {
	storesMu.Lock()
	defer storesMu.Unlock()
	s := stores[loc.Path]
	if s == nil {
		if !opt.Create {
			return nil, &formats.Error{Kind: formats.KindNotFound, Op: "mem: open", Path: loc.Path, Err: errors.New("no such store")}
		}
		s = &store{boxes: map[string]*mailbox{}, subs: map[string]bool{}}
		stores[loc.Path] = s
	}
	return &storeHandle{s: s, readOnly: opt.ReadOnly}, nil
}

type store struct {
	mu    sync.Mutex
	boxes map[string]*mailbox        // by name; guarded by mu
	dirs  map[string]bool            // explicit containers; guarded by mu
	subs  map[string]bool            // guarded by mu
	log   []formats.MailboxLogRecord // guarded by mu
}

type mailbox struct {
	guid          formats.GUID
	uidValidity   uint32
	uidNext       formats.UID
	highestModSeq formats.ModSeq
	firstRecent   formats.UID // first_recent_uid: no message below it is Recent
	msgs          []*message  // ascending UID
}

type message struct {
	meta formats.Message
	body []byte
}

type storeHandle struct {
	s        *store
	readOnly bool
}

func (h *storeHandle) check(op, name string) error {
	if h.readOnly {
		return &formats.Error{Kind: formats.KindPerm, Op: "mem: " + op, Mailbox: name, Err: errors.New("store is read-only")}
	}
	return nil
}

func (h *storeHandle) Mailboxes(ctx context.Context) ([]formats.MailboxInfo, error) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	nodes := map[string]*formats.MailboxInfo{}
	node := func(name string) *formats.MailboxInfo {
		n := nodes[name]
		if n == nil {
			n = &formats.MailboxInfo{Name: name, NoSelect: true}
			nodes[name] = n
		}
		return n
	}
	for name, b := range h.s.boxes {
		n := node(name)
		n.NoSelect = false
		n.GUID = b.guid
		for p := formats.Parent(name); p != ""; p = formats.Parent(p) {
			node(p)
		}
	}
	for name := range h.s.dirs {
		node(name)
	}
	for name := range h.s.subs {
		node(name).Subscribed = true
	}
	out := make([]formats.MailboxInfo, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (h *storeHandle) Open(ctx context.Context, name string) (formats.Mailbox, error) {
	if err := formats.ValidateName(name); err != nil {
		return nil, err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if _, ok := h.s.boxes[name]; !ok {
		return nil, &formats.Error{Kind: formats.KindNotFound, Op: "mem: open", Mailbox: name, Err: errors.New("no such mailbox")}
	}
	return &mailboxHandle{h: h, name: name}, nil
}

func (h *storeHandle) Create(ctx context.Context, name string, guid formats.GUID, uidValidity uint32) error {
	if err := formats.ValidateName(name); err != nil {
		return err
	}
	if err := h.check("create", name); err != nil {
		return err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if _, ok := h.s.boxes[name]; ok {
		return &formats.Error{Kind: formats.KindExists, Op: "mem: create", Mailbox: name, Err: errors.New("mailbox exists")}
	}
	if guid.IsZero() {
		guid = formats.NewGUID()
	}
	if uidValidity == 0 {
		uidValidity = uint32(time.Now().Unix())
	}
	h.s.boxes[name] = &mailbox{guid: guid, uidValidity: uidValidity, uidNext: 1, highestModSeq: 1, firstRecent: 1}
	for p := formats.Parent(name); p != ""; p = formats.Parent(p) {
		if h.s.dirs == nil {
			h.s.dirs = map[string]bool{}
		}
		h.s.dirs[p] = true
	}
	return nil
}

func (h *storeHandle) Delete(ctx context.Context, name string) error {
	if err := h.check("delete", name); err != nil {
		return err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	hasChildren := false
	for other := range h.s.boxes {
		if strings.HasPrefix(other, name+"/") {
			hasChildren = true
		}
	}
	for other := range h.s.dirs {
		if strings.HasPrefix(other, name+"/") {
			hasChildren = true
		}
	}
	if _, ok := h.s.boxes[name]; !ok {
		if !h.s.dirs[name] && !hasChildren {
			return &formats.Error{Kind: formats.KindNotFound, Op: "mem: delete", Mailbox: name, Err: errors.New("no such mailbox")}
		}
		if hasChildren {
			return &formats.Error{Kind: formats.KindNotPossible, Op: "mem: delete", Mailbox: name, Err: errors.New("mailbox has children, can't delete it")}
		}
		delete(h.s.dirs, name)
		h.s.logName(formats.ChangeDeleteDir, name)
		return nil
	}
	h.s.log = append(h.s.log, formats.MailboxLogRecord{Change: formats.ChangeDeleteMailbox, GUID: h.s.boxes[name].guid, Time: mailboxlog.Now()})
	delete(h.s.boxes, name)
	// Like a directory-backed store: the node stays as a container only
	// while it has children.
	delete(h.s.dirs, name)
	for other := range h.s.boxes {
		if len(other) > len(name) && other[:len(name)+1] == name+"/" {
			if h.s.dirs == nil {
				h.s.dirs = map[string]bool{}
			}
			h.s.dirs[name] = true
			break
		}
	}
	if !h.s.dirs[name] {
		h.s.logName(formats.ChangeDeleteDir, name)
	}
	return nil
}

// logName records a change of a name, as the on-disk drivers log it in
// dovecot.mailbox.log.
func (s *store) logName(c formats.MailboxChange, name string) {
	s.log = append(s.log, formats.MailboxLogRecord{Change: c, GUID: formats.MailboxNameHash(name), Time: mailboxlog.Now()})
}

// MailboxLog returns the store's mailbox changes log.
func (h *storeHandle) MailboxLog(ctx context.Context) ([]formats.MailboxLogRecord, error) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return slices.Clone(h.s.log), nil
}

// Rename moves a mailbox or container and everything below it.
func (h *storeHandle) Rename(ctx context.Context, from, to string) error {
	for _, n := range []string{from, to} {
		if err := formats.ValidateName(n); err != nil {
			return err
		}
	}
	if err := h.check("rename", from); err != nil {
		return err
	}
	fail := func(k formats.Kind, name, why string) error {
		return &formats.Error{Kind: k, Op: "mem: rename", Mailbox: name, Err: errors.New(why)}
	}
	if formats.IsInbox(from) || formats.IsInbox(to) {
		return fail(formats.KindNotPossible, from, "renaming INBOX is not supported")
	}
	if to == from || strings.HasPrefix(to, from+"/") {
		return fail(formats.KindNotPossible, from, "can't rename a mailbox under itself")
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	under := func(n, root string) bool { return n == root || strings.HasPrefix(n, root+"/") }
	found := false
	for n := range h.s.boxes {
		if under(n, to) {
			return fail(formats.KindExists, to, "target mailbox exists")
		}
		found = found || under(n, from)
	}
	for n := range h.s.dirs {
		if under(n, to) {
			return fail(formats.KindExists, to, "target mailbox exists")
		}
		found = found || under(n, from)
	}
	if !found {
		return fail(formats.KindNotFound, from, "no such mailbox")
	}
	boxes := map[string]*mailbox{}
	for n, b := range h.s.boxes {
		if under(n, from) {
			n = to + n[len(from):]
		}
		boxes[n] = b
	}
	dirs := map[string]bool{}
	for n := range h.s.dirs {
		if under(n, from) {
			n = to + n[len(from):]
		}
		dirs[n] = true
	}
	for p := formats.Parent(to); p != ""; p = formats.Parent(p) {
		dirs[p] = true
	}
	// a container the rename emptied goes, as its directory would
	for p := formats.Parent(from); p != ""; p = formats.Parent(p) {
		busy := false
		for n := range boxes {
			busy = busy || strings.HasPrefix(n, p+"/")
		}
		for n := range dirs {
			busy = busy || strings.HasPrefix(n, p+"/")
		}
		if busy {
			break
		}
		delete(dirs, p)
	}
	h.s.boxes, h.s.dirs = boxes, dirs
	h.s.logName(formats.ChangeRename, to)
	return nil
}

func (h *storeHandle) SetSubscribed(ctx context.Context, name string, subscribed bool) error {
	if err := h.check("subscribe", name); err != nil {
		return err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if subscribed {
		h.s.subs[name] = true
		h.s.logName(formats.ChangeSubscribe, name)
	} else {
		delete(h.s.subs, name)
		h.s.logName(formats.ChangeUnsubscribe, name)
	}
	return nil
}

func (h *storeHandle) Close() error { return nil }

// Check verifies the invariants every store must keep.
func (h *storeHandle) Check(ctx context.Context) error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	var errs []error
	for name, b := range h.s.boxes {
		guids := map[string]bool{}
		var last formats.UID
		for _, m := range b.msgs {
			if m.meta.UID <= last || m.meta.UID >= b.uidNext {
				errs = append(errs, fmt.Errorf("mem: mailbox %q: uid %d out of order or >= uidnext %d", name, m.meta.UID, b.uidNext))
			}
			last = m.meta.UID
			if guids[m.meta.GUID] {
				errs = append(errs, fmt.Errorf("mem: mailbox %q: duplicate GUID %s", name, m.meta.GUID))
			}
			guids[m.meta.GUID] = true
			if m.meta.ModSeq > b.highestModSeq {
				errs = append(errs, fmt.Errorf("mem: mailbox %q uid %d: modseq %d > highest %d", name, m.meta.UID, m.meta.ModSeq, b.highestModSeq))
			}
			if m.meta.Recent && m.meta.UID < b.firstRecent {
				errs = append(errs, fmt.Errorf("mem: mailbox %q uid %d: Recent below first_recent_uid %d", name, m.meta.UID, b.firstRecent))
			}
		}
	}
	return errors.Join(errs...)
}

type mailboxHandle struct {
	h    *storeHandle
	name string
	tx   *tx
}

func (m *mailboxHandle) box() (*mailbox, error) {
	b := m.h.s.boxes[m.name]
	if b == nil {
		return nil, &formats.Error{Kind: formats.KindNotFound, Op: "mem", Mailbox: m.name, Err: errors.New("mailbox was deleted")}
	}
	return b, nil
}

func (m *mailboxHandle) Name() string { return m.name }

func (m *mailboxHandle) Status(ctx context.Context) (formats.Status, error) {
	m.h.s.mu.Lock()
	defer m.h.s.mu.Unlock()
	b, err := m.box()
	if err != nil {
		return formats.Status{}, err
	}
	return formats.Status{GUID: b.guid, UIDValidity: b.uidValidity, UIDNext: b.uidNext,
		HighestModSeq: b.highestModSeq, Messages: len(b.msgs), FirstRecentUID: b.firstRecent, Caps: Driver{}.Caps()}, nil
}

func (m *mailboxHandle) Messages(ctx context.Context, from formats.UID) iter.Seq2[formats.Message, error] {
	return func(yield func(formats.Message, error) bool) {
		m.h.s.mu.Lock()
		b, err := m.box()
		var snap []formats.Message
		if err == nil {
			for _, msg := range b.msgs {
				if msg.meta.UID >= from {
					snap = append(snap, copyMeta(msg.meta))
				}
			}
		}
		m.h.s.mu.Unlock()
		if err != nil {
			yield(formats.Message{}, err)
			return
		}
		for _, msg := range snap {
			if err := ctx.Err(); err != nil {
				yield(formats.Message{}, err)
				return
			}
			if !yield(msg, nil) {
				return
			}
		}
	}
}

func copyMeta(m formats.Message) formats.Message {
	m.Keywords = append([]string(nil), m.Keywords...)
	if m.Ext != nil {
		ext := make(map[byte]string, len(m.Ext))
		for k, v := range m.Ext {
			ext[k] = v
		}
		m.Ext = ext
	}
	return m
}

type body struct {
	*bytes.Reader
	size int64
}

func (b body) Size() int64 { return b.size }

func (m *mailboxHandle) Body(ctx context.Context, uid formats.UID, fn func(formats.Body) error) error {
	m.h.s.mu.Lock()
	b, err := m.box()
	var data []byte
	if err == nil {
		if msg := find(b, uid); msg != nil {
			data = msg.body
		} else {
			err = &formats.Error{Kind: formats.KindExpunged, Op: "mem: body", Mailbox: m.name, UID: uid, Err: errors.New("no such message")}
		}
	}
	m.h.s.mu.Unlock()
	if err != nil {
		return err
	}
	return fn(body{bytes.NewReader(data), int64(len(data))})
}

func find(b *mailbox, uid formats.UID) *message {
	i := sort.Search(len(b.msgs), func(i int) bool { return b.msgs[i].meta.UID >= uid })
	if i < len(b.msgs) && b.msgs[i].meta.UID == uid {
		return b.msgs[i]
	}
	return nil
}

func (m *mailboxHandle) Begin(ctx context.Context) (formats.Tx, error) {
	if err := m.h.check("begin", m.name); err != nil {
		return nil, err
	}
	if m.tx != nil && !m.tx.done {
		return nil, &formats.Error{Kind: formats.KindInUse, Op: "mem: begin", Mailbox: m.name, Err: errors.New("a transaction is already open")}
	}
	m.h.s.mu.Lock()
	b, err := m.box()
	var next formats.UID
	if err == nil {
		next = b.uidNext
	}
	m.h.s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	m.tx = &tx{m: m, nextUID: next, flags: map[formats.UID]flagSet{}, expunge: map[formats.UID]bool{}}
	return m.tx, nil
}

func (m *mailboxHandle) Close() error { return nil }

type flagSet struct {
	flags formats.Flags
	kws   []string
}

type tx struct {
	m       *mailboxHandle
	done    bool
	saves   []*message
	nextUID formats.UID // next UID to assign in this tx
	flags   map[formats.UID]flagSet
	expunge map[formats.UID]bool
	raiseTo formats.UID
	hms     formats.ModSeq
	recent  formats.UID // RaiseFirstRecentUID's value
}

// RaiseHighestModSeq implements formats.ModSeqRaiser.
func (t *tx) RaiseHighestModSeq(m formats.ModSeq) error {
	t.hms = max(t.hms, m)
	return nil
}

// RaiseFirstRecentUID implements formats.FirstRecentRaiser.
func (t *tx) RaiseFirstRecentUID(uid formats.UID) error {
	if t.done {
		return t.fail("first recent uid", 0, formats.KindParams, "transaction is finished")
	}
	t.recent = max(t.recent, uid)
	return nil
}

func (t *tx) fail(op string, uid formats.UID, k formats.Kind, format string, args ...any) error {
	return &formats.Error{Kind: k, Op: "mem: " + op, Mailbox: t.m.name, UID: uid, Err: fmt.Errorf(format, args...)}
}

func (t *tx) Save(ctx context.Context, meta formats.Message, r io.Reader) (formats.UID, error) {
	if t.done {
		return 0, t.fail("save", meta.UID, formats.KindParams, "transaction is finished")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return 0, formats.Wrap(err, formats.KindTemp, "mem: save", t.m.name, meta.UID, "")
	}
	if meta.Size > 0 && int64(len(data)) != meta.Size {
		return 0, t.fail("save", meta.UID, formats.KindInvalidData, "body has %d bytes, expected %d", len(data), meta.Size)
	}
	uid := meta.UID
	if uid == 0 || uid < t.nextUID {
		uid = t.nextUID
	}
	t.nextUID = uid + 1
	meta = copyMeta(meta)
	meta.UID = uid
	meta.Flags &= formats.SystemFlags
	meta.Keywords = formats.NormalizeKeywords(meta.Keywords)
	meta.Size = int64(len(data))
	meta.VSize = formats.VSize(data)
	if meta.GUID == "" {
		g := formats.NewGUID()
		meta.GUID = g.String()
	}
	if meta.Saved.IsZero() {
		meta.Saved = time.Now().Truncate(time.Second)
	}
	t.saves = append(t.saves, &message{meta: meta, body: data})
	return uid, nil
}

func (t *tx) SetFlags(uid formats.UID, flags formats.Flags, keywords []string) error {
	if t.done {
		return t.fail("flags", uid, formats.KindParams, "transaction is finished")
	}
	t.flags[uid] = flagSet{flags & formats.SystemFlags, formats.NormalizeKeywords(append([]string(nil), keywords...))}
	return nil
}

func (t *tx) Expunge(uid formats.UID) error {
	if t.done {
		return t.fail("expunge", uid, formats.KindParams, "transaction is finished")
	}
	t.expunge[uid] = true
	return nil
}

func (t *tx) SetUIDNext(next formats.UID) error {
	if next > t.raiseTo {
		t.raiseTo = next
	}
	return nil
}

func (t *tx) Commit(ctx context.Context) error {
	if t.done {
		return nil
	}
	t.done = true
	s := t.m.h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := t.m.box()
	if err != nil {
		return err
	}
	// Saves whose UID another writer took meanwhile get fresh UIDs, as
	// a real store's commit would assign.
	modseq := b.highestModSeq + 1
	changed := false
	for uid, fs := range t.flags {
		if msg := find(b, uid); msg != nil && !t.expunge[uid] {
			msg.meta.Flags, msg.meta.Keywords, msg.meta.ModSeq = fs.flags, fs.kws, modseq
			changed = true
		}
	}
	if len(t.expunge) > 0 {
		kept := b.msgs[:0]
		for _, msg := range b.msgs {
			if !t.expunge[msg.meta.UID] {
				kept = append(kept, msg)
			}
		}
		if len(kept) != len(b.msgs) {
			changed = true
		}
		clear(b.msgs[len(kept):])
		b.msgs = kept
	}
	for _, msg := range t.saves {
		if msg.meta.UID < b.uidNext {
			msg.meta.UID = b.uidNext
		}
		b.uidNext = msg.meta.UID + 1
		if msg.meta.ModSeq < modseq {
			msg.meta.ModSeq = modseq
		}
		if msg.meta.ModSeq > modseq {
			modseq = msg.meta.ModSeq
		}
		b.msgs = append(b.msgs, msg)
		changed = true
	}
	if t.raiseTo > b.uidNext {
		b.uidNext = t.raiseTo
	}
	if changed && modseq > b.highestModSeq {
		b.highestModSeq = modseq
	}
	if t.hms > b.highestModSeq {
		b.highestModSeq = t.hms
	}
	// After the saves, as dsync's mailbox_update follows its commit;
	// never past UIDNEXT.
	if r := min(t.recent, b.uidNext); r > b.firstRecent {
		b.firstRecent = r
		for _, msg := range b.msgs {
			if msg.meta.UID >= r {
				break
			}
			msg.meta.Recent = false
		}
	}
	return nil
}

func (t *tx) Rollback() error {
	t.done = true
	t.saves = nil
	return nil
}

// CreateDir makes an empty container (and its parents).
func (h *storeHandle) CreateDir(ctx context.Context, name string) error {
	if err := formats.ValidateName(name); err != nil {
		return err
	}
	if err := h.check("create", name); err != nil {
		return err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if _, ok := h.s.boxes[name]; ok || h.s.dirs[name] {
		return &formats.Error{Kind: formats.KindExists, Op: "mem: create directory", Mailbox: name, Err: errors.New("mailbox exists")}
	}
	if h.s.dirs == nil {
		h.s.dirs = map[string]bool{}
	}
	for p := name; p != ""; p = formats.Parent(p) {
		h.s.dirs[p] = true
	}
	return nil
}
