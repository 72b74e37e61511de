package imapc

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/mutf7"
)

// Driver is the imapc driver: a remote IMAP server as a mail store. Its
// Settings say where the server is; the location's path (Dovecot's local
// index directory for imapc) is not used.
type Driver struct {
	Settings Settings
}

var _ formats.Driver = Driver{}

// Name is "imapc".
func (Driver) Name() string { return "imapc" }

// Caps is the upper bound: message GUIDs exist only where the server
// offers them (Dovecot's X-GUID, Gmail's X-GM-MSGID), modseqs only with
// CONDSTORE; Status().Caps says what one mailbox has. IMAP lets a client
// choose neither UIDs nor GUIDs nor save dates.
func (Driver) Caps() formats.Caps {
	return formats.Caps{GUIDs: true, ModSeqs: true, Keywords: true}
}

// Open connects (one connection, to fail early on a wrong password or
// host) and learns the server's hierarchy separator.
func (d Driver) Open(ctx context.Context, loc formats.Location, opt formats.OpenOptions) (formats.Store, error) {
	s := d.Settings
	if err := s.check(); err != nil {
		return nil, err
	}
	if s.Rawlog != nil {
		s.Rawlog = &lockedWriter{w: s.Rawlog}
	}
	st := &Store{s: &s, pool: newPool(&s), readOnly: opt.ReadOnly}
	if s.MaxBytesPerSec > 0 || s.MaxMsgsPerSec > 0 {
		st.throttle = newThrottle(s.MaxBytesPerSec, s.MaxMsgsPerSec)
	}
	err := st.pool.do(ctx, "", false, true, func(c *conn) error {
		st.caps, st.dovecot = c.caps, c.dovecot
		_, err := c.run(ctx, `LIST "" ""`, func(r *response) error {
			if r.kind == "LIST" && len(r.values) >= 2 {
				if sep, ok := r.values[1].(string); ok && len(sep) == 1 {
					st.sep = sep[0]
				}
			}
			return nil
		})
		return err
	})
	if err != nil {
		st.pool.close()
		return nil, formats.Wrap(err, formats.KindTemp, "imapc: open", "", 0, "")
	}
	return st, nil
}

// Store is one remote account.
type Store struct {
	s        *Settings // immutable
	pool     *pool     // immutable
	readOnly bool      // immutable
	throttle *throttle // immutable; nil = unlimited
	// Learnt by Open from the first connection; immutable afterwards.
	caps    map[string]bool
	dovecot bool // ID said "Dovecot": X-GUID works
	sep     byte // the server's hierarchy separator; 0 = flat
}

var _ formats.Store = (*Store)(nil)

func (st *Store) has(c string) bool { return st.caps[c] }

// guidItem is the STATUS item that gives real mailbox GUIDs, or "".
func (st *Store) guidItem() string {
	switch {
	case st.s.feature("name-mailbox-guids"):
		return ""
	case st.dovecot && !st.s.feature("no-x-guid"):
		return "X-GUID"
	case st.has("OBJECTID"):
		return "MAILBOXID"
	}
	return ""
}

// msgGUIDItem is the FETCH item that gives message GUIDs, or "".
func (st *Store) msgGUIDItem() string {
	switch {
	case st.dovecot && !st.s.feature("no-x-guid"):
		return "X-GUID"
	case st.has("X-GM-EXT-1"):
		return "X-GM-MSGID" // as Dovecot's imapc
	}
	return ""
}

func (st *Store) modseqs() bool { return st.has("CONDSTORE") || st.has("QRESYNC") }

func (st *Store) writable(op, name string) error {
	if st.readOnly {
		return &formats.Error{Kind: formats.KindPerm, Op: "imapc: " + op, Mailbox: name, Err: errors.New("store is read-only")}
	}
	return nil
}

// toRemote maps a contract name to the server's: modified UTF-7, the
// server's separator, imapc_list_prefix in front (not for INBOX). A level
// holding "~2f" or "~7e" gets '/' or '~' back (see fromRemote).
func (st *Store) toRemote(name string) (string, error) {
	if err := formats.ValidateName(name); err != nil {
		return "", err
	}
	if formats.IsInbox(name) {
		return "INBOX", nil
	}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		p = unescapeVname(p)
		if st.sep != 0 && st.sep != '/' && strings.IndexByte(p, st.sep) >= 0 {
			return "", &formats.Error{Kind: formats.KindParams, Mailbox: name,
				Err: fmt.Errorf("invalid mailbox name: the server's hierarchy separator %q cannot be part of a name", st.sep)}
		}
		parts[i] = mutf7.Encode(p)
	}
	if st.sep == 0 && len(parts) > 1 {
		return "", &formats.Error{Kind: formats.KindNotPossible, Mailbox: name, Err: errors.New("the server has no mailbox hierarchy")}
	}
	remote := strings.Join(parts, string(st.sep))
	if st.s.ListPrefix != "" {
		remote = st.s.ListPrefix + string(st.sep) + remote
	}
	if !quotable(remote) {
		return "", &formats.Error{Kind: formats.KindParams, Mailbox: name, Err: errors.New("invalid mailbox name")}
	}
	return remote, nil
}

// fromRemote maps a server name back; ok is false for names outside
// imapc_list_prefix. Like Dovecot's imapc (vname_escape_char '~'), a '/'
// inside a level of a server whose separator is not '/' becomes "~2f", and
// '~' itself "~7e".
func (st *Store) fromRemote(remote string) (string, bool) {
	if strings.EqualFold(remote, "INBOX") {
		return "INBOX", true
	}
	if p := st.s.ListPrefix; p != "" {
		if !strings.HasPrefix(remote, p+string(st.sep)) {
			return "", false
		}
		remote = remote[len(p)+1:]
	}
	var parts []string
	if st.sep == 0 {
		parts = []string{remote}
	} else {
		parts = strings.Split(remote, string(st.sep))
	}
	for i, p := range parts {
		if u, err := mutf7.Decode(p); err == nil {
			p = u
		}
		parts[i] = escapeVname(p)
	}
	name := strings.Join(parts, "/")
	if formats.ValidateName(name) != nil {
		return "", false
	}
	return name, true
}

func escapeVname(p string) string {
	if !strings.ContainsAny(p, "~/") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '~' || p[i] == '/' {
			fmt.Fprintf(&b, "~%02x", p[i])
		} else {
			b.WriteByte(p[i])
		}
	}
	return b.String()
}

func unescapeVname(p string) string {
	if !strings.Contains(p, "~") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && i+2 < len(p) {
			if v, err := hex.DecodeString(p[i+1 : i+3]); err == nil {
				b.WriteByte(v[0])
				i += 2
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// NameGUID is the mailbox GUID Dovecot's imapc gives a mailbox (dovecot
// 2.3.19.1 imapc-storage.c imapc_mailbox_get_metadata):
// mail_generate_guid_128_hash of the storage name, i.e. the name itself if
// it is 32 hex digits, else the last 16 bytes of its SHA-1. The storage
// name is the remote name (modified UTF-7, the server's separator,
// imapc_list_prefix included) with '%' escapes (storage_name_escape_char).
func NameGUID(remote string, sep byte) formats.GUID {
	var parts []string
	if sep == 0 || strings.EqualFold(remote, "INBOX") {
		parts = []string{remote}
	} else {
		parts = strings.Split(remote, string(sep))
	}
	for i, p := range parts {
		parts[i] = storageEscape(p)
	}
	return hashGUID(strings.Join(parts, string(sep)))
}

// storageEscape is mailbox_list_escape_name_params for one level (dovecot
// 2.3.19.1 mailbox-list.c) with escape char '%'.
func storageEscape(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case i == 0 && c == '~',
			c == '%', c == '/',
			i == 0 && c == '.' && (p == "." || p == ".."):
			fmt.Fprintf(&b, "%%%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// hashGUID is mail_generate_guid_128_hash (dovecot 2.3.19.1 mail.c).
func hashGUID(s string) formats.GUID {
	if g, err := formats.ParseGUID(s); err == nil && strings.ToLower(s) == s {
		return g
	}
	sum := sha1.Sum([]byte(s))
	var g formats.GUID
	copy(g[:], sum[len(sum)-16:])
	return g
}

// guidFromStatus reads a mailbox GUID from STATUS values (X-GUID or
// MAILBOXID); ok is false when they have none.
func guidFromStatus(list []any) (formats.GUID, bool) {
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		switch strings.ToUpper(k) {
		case "X-GUID":
			v, _ := list[i+1].(string)
			if g, err := formats.ParseGUID(strings.ToLower(v)); err == nil {
				return g, true
			}
		case "MAILBOXID":
			if l, ok := list[i+1].([]any); ok && len(l) == 1 {
				if v, ok := l[0].(string); ok && v != "" {
					return hashGUID(v), true
				}
			}
		}
	}
	return formats.GUID{}, false
}

type listed struct {
	remote     string
	noSelect   bool
	subscribed bool
	listed     bool // in LIST (not only LSUB)
	guid       formats.GUID
	hasGUID    bool
}

// Mailboxes lists the tree with LIST and LSUB, pipelined; with LIST-STATUS
// the mailbox GUIDs come in the same round trip.
func (st *Store) Mailboxes(ctx context.Context) ([]formats.MailboxInfo, error) {
	boxes := map[string]*listed{}
	item := st.guidItem()
	err := st.pool.do(ctx, "", false, true, func(c *conn) error {
		clear(boxes)
		listCmd := `LIST "" "*"`
		if item != "" && c.has("LIST-STATUS") {
			listCmd += " RETURN (STATUS (" + item + "))"
		}
		tags := []string{c.send(listCmd), c.send(`LSUB "" "*"`)}
		byRemote := map[string]*listed{}
		err := c.wait(ctx, tags, func(r *response) error {
			switch r.kind {
			case "LIST", "LSUB":
				if len(r.values) < 3 {
					return &ProtocolError{What: r.kind + " response too short"}
				}
				remote, ok := r.values[2].(string)
				if !ok {
					return &ProtocolError{What: r.kind + " without a mailbox name"}
				}
				name, ok := st.fromRemote(remote)
				if !ok {
					return nil
				}
				b := boxes[name]
				if b == nil {
					b = &listed{remote: remote}
					boxes[name] = b
				}
				flags, _ := r.values[0].([]any)
				noSelect := false
				for _, f := range flags {
					s, _ := f.(string)
					switch strings.ToLower(s) {
					case `\noselect`, `\nonexistent`:
						noSelect = true
					case `\subscribed`:
						b.subscribed = true
					}
				}
				// LSUB "*" returns exactly the subscriptions (with
				// \Noselect only for parents, RFC 3501 §6.3.9).
				if r.kind == "LSUB" {
					if !noSelect {
						b.subscribed = true
					}
				} else {
					b.listed, b.noSelect = true, noSelect
					byRemote[remote] = b
				}
			case "STATUS":
				if len(r.values) >= 2 {
					remote, _ := r.values[0].(string)
					l, _ := r.values[1].([]any)
					if b := byRemote[remote]; b != nil {
						b.guid, b.hasGUID = guidFromStatus(l)
					}
				}
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, formats.Wrap(err, formats.KindTemp, "imapc: list", "", 0, "")
	}
	if err := st.fillGUIDs(ctx, boxes, item); err != nil {
		return nil, err
	}
	var out []formats.MailboxInfo
	for name, b := range boxes {
		info := formats.MailboxInfo{Name: name, Subscribed: b.subscribed, NoSelect: b.noSelect || !b.listed}
		if !info.NoSelect {
			if b.hasGUID {
				info.GUID = b.guid
			} else {
				info.GUID = NameGUID(b.remote, st.sep)
			}
		}
		out = append(out, info)
	}
	// Every parent of a listed name is a node of the tree.
	have := map[string]bool{}
	for _, b := range out {
		have[b.Name] = true
	}
	for _, b := range out {
		for p := formats.Parent(b.Name); p != "" && !have[p]; p = formats.Parent(p) {
			have[p] = true
			out = append(out, formats.MailboxInfo{Name: p, NoSelect: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// fillGUIDs asks for the GUIDs LIST-STATUS did not give, in one pipelined
// batch of STATUS commands.
func (st *Store) fillGUIDs(ctx context.Context, boxes map[string]*listed, item string) error {
	if item == "" {
		return nil
	}
	var need []*listed
	for _, b := range boxes {
		if b.listed && !b.noSelect && !b.hasGUID {
			need = append(need, b)
		}
	}
	if len(need) == 0 {
		return nil
	}
	byRemote := map[string]*listed{}
	err := st.pool.do(ctx, "", false, true, func(c *conn) error {
		var tags []string
		for _, b := range need {
			byRemote[b.remote] = b
			tags = append(tags, c.send("STATUS "+quote(b.remote)+" ("+item+")"))
		}
		return c.wait(ctx, tags, func(r *response) error {
			if r.kind == "STATUS" && len(r.values) >= 2 {
				name, _ := r.values[0].(string)
				l, _ := r.values[1].([]any)
				if b := byRemote[name]; b != nil {
					b.guid, b.hasGUID = guidFromStatus(l)
				}
			}
			return nil
		})
	})
	var ce *CommandError
	if errors.As(err, &ce) {
		return nil // a box vanished meanwhile: its GUID falls back to the name hash
	}
	return formats.Wrap(err, formats.KindTemp, "imapc: mailbox GUIDs", "", 0, "")
}

// Open checks that the mailbox exists and pins its UIDVALIDITY: if the
// server changes it later, every call fails (UIDs would mean other mail).
func (st *Store) Open(ctx context.Context, name string) (formats.Mailbox, error) {
	remote, err := st.toRemote(name)
	if err != nil {
		return nil, err
	}
	mb := &Mailbox{st: st, name: name, remote: remote}
	stat, err := mb.status(ctx)
	var ce *CommandError
	if errors.As(err, &ce) && ce.Code == "" {
		// Dovecot answers STATUS of a missing mailbox with a plain NO
		// ("Mailbox doesn't exist"); LIST tells what it was.
		// Dovecot's text is MAIL_ERRSTR_NO_MAILBOX-like ("Mailbox doesn't
		// exist: NAME") even where its Maildir++ LIST still shows a
		// deleted parent.
		exists, lerr := st.selectable(ctx, remote)
		if lerr == nil && !exists || strings.HasPrefix(ce.Text, "Mailbox doesn't exist") {
			return nil, &formats.Error{Kind: formats.KindNotFound, Op: "imapc: open", Mailbox: name, Err: err}
		}
	}
	if err != nil {
		return nil, err
	}
	mb.uidValidity = stat.UIDValidity
	return mb, nil
}

// Create creates a mailbox. IMAP cannot set a GUID or UIDVALIDITY: the
// server picks them, and guid and uidValidity are ignored.
func (st *Store) Create(ctx context.Context, name string, guid formats.GUID, uidValidity uint32) error {
	remote, err := st.toRemote(name)
	if err != nil {
		return err
	}
	if err := st.writable("create", name); err != nil {
		return err
	}
	err = st.pool.do(ctx, "", false, false, func(c *conn) error {
		_, err := c.run(ctx, "CREATE "+quote(remote), nil)
		return err
	})
	return st.wrapCmd(err, "imapc: create", name)
}

// Delete deletes a mailbox (DELETE). A name that is only a container with
// children is NotPossible; one that does not exist at all NotFound.
func (st *Store) Delete(ctx context.Context, name string) error {
	remote, err := st.toRemote(name)
	if err != nil {
		return err
	}
	if err := st.writable("delete", name); err != nil {
		return err
	}
	err = st.pool.do(ctx, "", false, false, func(c *conn) error {
		if c.selected == remote {
			// Dovecot refuses to delete the selected mailbox.
			if c.has("UNSELECT") {
				if _, err := c.run(ctx, "UNSELECT", nil); err != nil {
					return err
				}
				c.selected = ""
			}
		}
		_, err := c.run(ctx, "DELETE "+quote(remote), nil)
		return err
	})
	if err == nil {
		st.pool.forget(remote)
		return nil
	}
	var ce *CommandError
	if errors.As(err, &ce) && (ce.kind() == formats.KindNotFound || ce.kind() == formats.KindNotPossible) {
		children, lerr := st.hasChildren(ctx, remote)
		if lerr == nil && children {
			return &formats.Error{Kind: formats.KindNotPossible, Op: "imapc: delete", Mailbox: name,
				Err: fmt.Errorf("container has children: %w", err)}
		}
	}
	return st.wrapCmd(err, "imapc: delete", name)
}

// selectable tells whether LIST shows remote as a selectable mailbox.
func (st *Store) selectable(ctx context.Context, remote string) (bool, error) {
	found := false
	err := st.pool.do(ctx, "", false, true, func(c *conn) error {
		_, err := c.run(ctx, `LIST "" `+quote(remote), func(r *response) error {
			if r.kind != "LIST" || len(r.values) < 3 {
				return nil
			}
			flags, _ := r.values[0].([]any)
			for _, f := range flags {
				if s, _ := f.(string); strings.EqualFold(s, `\Noselect`) || strings.EqualFold(s, `\NonExistent`) {
					return nil
				}
			}
			found = true
			return nil
		})
		return err
	})
	return found, err
}

func (st *Store) hasChildren(ctx context.Context, remote string) (bool, error) {
	if st.sep == 0 {
		return false, nil
	}
	found := false
	err := st.pool.do(ctx, "", false, true, func(c *conn) error {
		_, err := c.run(ctx, `LIST "" `+quote(remote+string(st.sep)+"*"), func(r *response) error {
			if r.kind == "LIST" {
				found = true
			}
			return nil
		})
		return err
	})
	return found, err
}

// SetSubscribed runs SUBSCRIBE or UNSUBSCRIBE.
func (st *Store) SetSubscribed(ctx context.Context, name string, subscribed bool) error {
	remote, err := st.toRemote(name)
	if err != nil {
		return err
	}
	if err := st.writable("subscribe", name); err != nil {
		return err
	}
	cmd := "SUBSCRIBE "
	if !subscribed {
		cmd = "UNSUBSCRIBE "
	}
	err = st.pool.do(ctx, "", false, true, func(c *conn) error {
		_, err := c.run(ctx, cmd+quote(remote), nil)
		return err
	})
	return st.wrapCmd(err, "imapc: "+strings.ToLower(strings.TrimSpace(cmd)), name)
}

// Close logs out of every connection.
func (st *Store) Close() error {
	st.pool.close()
	return nil
}

// wrapCmd gives a failed command its Kind (Dovecot's response-code map).
func (st *Store) wrapCmd(err error, op, name string) error {
	if err == nil {
		return nil
	}
	var ce *CommandError
	if errors.As(err, &ce) {
		return &formats.Error{Kind: ce.kind(), Op: op, Mailbox: name, Err: err}
	}
	return formats.Wrap(err, formats.KindTemp, op, name, 0, "")
}

// forget drops the selection of a deleted mailbox from idle connections.
func (p *pool) forget(remote string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		if c.selected == remote {
			c.selected = ""
		}
	}
}
