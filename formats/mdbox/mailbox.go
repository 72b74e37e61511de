package mdbox

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"sync"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxlist"
	"github.com/boxsync/boxsync/formats/internal/dbox/dboxtx"
	"github.com/boxsync/boxsync/index"
)

// mailbox is one open mdbox mailbox: its index names each message's map
// UID, the map names the file and offset.
type mailbox struct {
	s  *Store
	b  *dboxlist.Box
	ix *index.Index

	mu       sync.Mutex // guards tx, cachedV, cachedMV and lastFile
	tx       *tx
	cachedV  *index.View // the last views read, for Body
	cachedMV *index.View
	// lastFile is the m.* file the last Body read, kept open for the
	// next one (consecutive messages mostly share a file); a Body takes
	// it out while it reads, so concurrent Bodies never share one.
	lastFile   *openFile
	lastFileID uint32
}

var _ formats.Mailbox = (*mailbox)(nil)

func (m *mailbox) Name() string { return m.b.Name }

// Close closes the file Body kept open.
func (m *mailbox) Close() error {
	m.mu.Lock()
	of := m.lastFile
	m.lastFile = nil
	m.mu.Unlock()
	if of != nil {
		return of.f.Close()
	}
	return nil
}

// takeFile returns m.<id> opened, the one the last Body kept if it is
// that file, else a new one; putFile keeps it for the next Body.
func (m *mailbox) takeFile(id uint32) (*openFile, error) {
	m.mu.Lock()
	of := m.lastFile
	if of != nil && m.lastFileID == id {
		m.lastFile = nil
		m.mu.Unlock()
		return of, nil
	}
	m.mu.Unlock()
	c := &fileCache{s: m.s}
	return c.get(id)
}

func (m *mailbox) putFile(id uint32, of *openFile) {
	m.mu.Lock()
	old := m.lastFile
	m.lastFile, m.lastFileID = of, id
	m.mu.Unlock()
	if old != nil {
		old.f.Close()
	}
}

const forceResync = "run `boxsync force-resync` or `doveadm force-resync`"

// views returns the mailbox index and the map as they are now, checking
// what mdbox checks (mdbox_read_header, mdbox_mail_lookup): an mdbox-hdr
// with a GUID, a UIDVALIDITY, and a map UIDVALIDITY equal to the map's
// ("map uidvalidity mismatch" makes Dovecot rebuild the storage). The map
// view is nil when there is no map and the mailbox is empty.
func (m *mailbox) views(op string) (*index.View, *index.View, error) {
	v, mv, err := m.freshViews(op)
	if err == nil {
		m.mu.Lock()
		m.cachedV, m.cachedMV = v, mv
		m.mu.Unlock()
	}
	return v, mv, err
}

// lastViews returns the last views read, or new ones. Reading an index
// copies its whole state, so Body does not do it for every message. Old
// views are safe to read with: file ids are never reused and a purge
// copies messages to new files before it removes the old ones; Body
// reads the indexes again when the old views lead nowhere.
func (m *mailbox) lastViews(op string) (*index.View, *index.View, error) {
	m.mu.Lock()
	v, mv := m.cachedV, m.cachedMV
	m.mu.Unlock()
	if v != nil {
		return v, mv, nil
	}
	return m.views(op)
}

func (m *mailbox) freshViews(op string) (*index.View, *index.View, error) {
	v, err := m.ix.View()
	if err != nil {
		return nil, nil, wrap(err, op, m.b.Name, 0, m.b.IndexDir)
	}
	return m.withMap(op, v)
}

// withMap checks the mailbox index v and returns it with the map (see
// views).
func (m *mailbox) withMap(op string, v *index.View) (*index.View, *index.View, error) {
	h, ok := v.MdboxHdr()
	switch {
	case !ok || h.MailboxGUID == [16]byte{}:
		return nil, nil, fail(formats.KindTemp, op, m.b.Name, 0, m.b.IndexDir,
			errors.New("mdbox: index has no mdbox-hdr mailbox GUID; Dovecot would rebuild it: "+forceResync))
	case v.UIDValidity() == 0:
		return nil, nil, fail(formats.KindTemp, op, m.b.Name, 0, m.b.IndexDir,
			errors.New("mdbox: Broken index: missing UIDVALIDITY; "+forceResync))
	}
	mv, err := m.s.mapView(op)
	if err != nil {
		if v.Count() == 0 && formats.KindOf(err) == formats.KindNotPossible {
			return v, nil, nil
		}
		return nil, nil, wrap(err, op, m.b.Name, 0, "")
	}
	if v.Count() > 0 && h.MapUIDValidity != mv.UIDValidity() {
		return nil, nil, fail(formats.KindTemp, op, m.b.Name, 0, m.b.IndexDir,
			fmt.Errorf("mdbox: map uidvalidity mismatch (%d vs %d); %s", h.MapUIDValidity, mv.UIDValidity(), forceResync))
	}
	return v, mv, nil
}

func (m *mailbox) Status(ctx context.Context) (formats.Status, error) {
	v, _, err := m.views("status")
	if err != nil {
		return formats.Status{}, err
	}
	h, _ := v.MdboxHdr()
	return dboxtx.Status(v, h.MailboxGUID, Driver{}.Caps()), nil
}

// pop3 says which POP3 metadata Dovecot would honour for uid, as
// mdbox-hdr says (mdbox_mail_get_special).
func pop3(v *index.View, uid uint32) (uidl, order bool) {
	h, _ := v.MdboxHdr()
	return dboxtx.POP3(v, h.Flags, uid)
}

// located is a message found through the map.
type located struct {
	mapUID, fileID uint32
	rec            index.MapRec
}

// locate finds message i's map record.
func locate(v, mv *index.View, i int) (located, error) {
	uid := v.Message(i).UID
	r, ok := v.MdboxRec(i)
	if !ok || r.MapUID == 0 {
		return located{}, fmt.Errorf("mdbox: map uid lost for uid %d; %s", uid, forceResync)
	}
	if mv == nil {
		return located{}, fmt.Errorf("mdbox: no map index for map uid %d; %s", r.MapUID, forceResync)
	}
	j, _, ok := mv.Lookup(r.MapUID)
	if !ok {
		return located{mapUID: r.MapUID}, errMapUIDGone
	}
	rec, ok := mv.MapRec(j)
	if !ok || rec.FileID == 0 {
		return located{}, fmt.Errorf("mdbox map corrupted: file_id=0 for map_uid=%d; %s", r.MapUID, forceResync)
	}
	return located{mapUID: r.MapUID, fileID: rec.FileID, rec: rec}, nil
}

var errMapUIDGone = errors.New("map uid not in the map")

// fileCache keeps the m.* files a listing reads open, a few at a time.
type fileCache struct {
	s     *Store
	files map[uint32]*openFile
	order []uint32
	last  uint32 // the file read last: the only one with a filled window
}

type openFile struct {
	f   *os.File
	r   *dbox.Reader
	win *dbox.WindowReader
}

const maxOpenFiles = 8

// readWindow is how much of an m.* file one read fetches (see
// dbox.WindowReader).
const readWindow = 32 << 10

func (c *fileCache) get(id uint32) (*openFile, error) {
	if id != c.last {
		// A mailbox's messages come from one file after another:
		// only the file being read keeps its window (8 open files'
		// idle windows were 0.5 MB of a large mdbox->Maildir
		// backup's peak heap, issue 4).
		if of := c.files[c.last]; of != nil {
			of.win.Release()
		}
		c.last = id
	}
	if of := c.files[id]; of != nil {
		return of, nil
	}
	f, path, err := dboxlist.OpenMail(c.s.mailFile(id), c.s.altMailFile(id))
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	// messages are read in file order: through a window, a run of them
	// costs one pread instead of several each
	win := dbox.NewWindowReader(f, fi.Size(), readWindow)
	r, err := dbox.NewReader(win, fi.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	if c.files == nil {
		c.files = map[uint32]*openFile{}
	}
	if len(c.order) >= maxOpenFiles {
		old := c.order[0]
		c.order = c.order[1:]
		c.files[old].f.Close()
		c.files[old].win.Release()
		delete(c.files, old)
	}
	of := &openFile{f: f, r: r, win: win}
	c.files[id] = of
	c.order = append(c.order, id)
	return of, nil
}

func (c *fileCache) close() {
	for _, of := range c.files {
		of.f.Close()
		of.win.Release()
	}
	c.files, c.order = nil, nil
}

// read locates message i and reads its header and metadata.
func (c *fileCache) read(v, mv *index.View, i int) (*openFile, *dbox.Message, error) {
	loc, err := locate(v, mv, i)
	if err != nil {
		return nil, nil, err
	}
	of, err := c.get(loc.fileID)
	if err != nil {
		return nil, nil, err
	}
	msg, err := of.r.ReadMessage(int64(loc.rec.Offset))
	if err != nil {
		return nil, nil, err
	}
	return of, msg, nil
}

// Messages yields the messages with UID >= from as the index has them now,
// each with the metadata of its copy in storage/m.*. A message that cannot
// be read is still yielded from the index alone (GUID from the guid
// extension, sizes -1), so that the rest can be read; Body then fails
// for it with the reason. The metadata is read for every message, not
// only for mail a merge copies: the guid extension holds the GUID's own
// 128 bits only when it is 32 hex digits, else a hash of it
// (mail_generate_guid_128_hash), as for mail converted from a Maildir,
// so only the metadata gives the GUID the other side compares.
func (m *mailbox) Messages(ctx context.Context, from formats.UID) iter.Seq2[formats.Message, error] {
	return func(yield func(formats.Message, error) bool) {
		v, mv, err := m.views("list")
		if err != nil {
			yield(formats.Message{}, err)
			return
		}
		c := &fileCache{s: m.s}
		defer c.close()
		dboxtx.List(ctx, v, from, yield, func(i int, base formats.Message) formats.Message {
			if r, ok := v.MdboxRec(i); ok && r.SaveDate != 0 {
				base.Saved = time.Unix(int64(r.SaveDate), 0)
			}
			if g, ok := v.GUID(i); ok && g != [16]byte{} {
				base.GUID = hex.EncodeToString(g[:])
			}
			msg := base
			if _, dm, err := c.read(v, mv, i); err == nil {
				uidl, order := pop3(v, uint32(base.UID))
				if err := dbox.FillMessage(&msg, dm, uidl, order); err != nil {
					msg = base
				}
			}
			return msg
		})
	}
}

// Body streams the bytes of message uid from its m.* file. A file that a
// purge removed meanwhile is looked up again in the refreshed map, as
// mdbox_mail_open does.
func (m *mailbox) Body(ctx context.Context, uid formats.UID, fn func(formats.Body) error) error {
	var prevFile uint32
	for attempt := 0; ; attempt++ {
		get := m.views
		if attempt == 0 {
			get = m.lastViews
		}
		v, mv, err := get("read")
		if err != nil {
			return err
		}
		i, _, ok := v.Lookup(uint32(uid))
		if !ok {
			if attempt == 0 {
				continue
			}
			return fail(formats.KindExpunged, "read", m.b.Name, uid, "", errors.New("no such message"))
		}
		loc, err := locate(v, mv, i)
		if err != nil && attempt < 2 {
			continue // perhaps an old view: read the indexes again
		}
		if err == errMapUIDGone {
			return fail(formats.KindTemp, "read", m.b.Name, uid, m.s.mapDir,
				fmt.Errorf("mdbox map corrupted: Unexpectedly lost %s uid=%d map_uid=%d; %s", m.b.Name, uid, loc.mapUID, forceResync))
		}
		if err != nil {
			return fail(formats.KindTemp, "read", m.b.Name, uid, m.b.IndexDir, err)
		}
		of, err := m.takeFile(loc.fileID)
		if errors.Is(err, fs.ErrNotExist) && attempt < 3 && (attempt <= 1 || loc.fileID != prevFile) {
			prevFile = loc.fileID
			continue // expunged or purged meanwhile: the refreshed map knows
		}
		if errors.Is(err, fs.ErrNotExist) {
			return fail(formats.KindTemp, "read", m.b.Name, uid, m.s.mailFile(loc.fileID),
				fmt.Errorf("mdbox map corrupted: Unexpectedly lost %s uid=%d map_uid=%d (file m.%d is missing); %s",
					m.b.Name, uid, loc.mapUID, loc.fileID, forceResync))
		}
		if err != nil {
			return wrap(err, "read", m.b.Name, uid, m.s.mailFile(loc.fileID))
		}
		dm, err := of.r.ReadMessage(int64(loc.rec.Offset))
		if err != nil {
			of.f.Close() // perhaps opened before an append: not kept
			if attempt == 0 {
				continue
			}
			return wrap(err, "read", m.b.Name, uid, m.s.mailFile(loc.fileID))
		}
		defer m.putFile(loc.fileID, of)
		for _, k := range []byte{dbox.MetaReceivedTime, dbox.MetaVirtualSize} {
			if _, _, err := dm.Metadata.Hex(k); err != nil {
				return fail(formats.KindTemp, "read", m.b.Name, uid, "",
					&dbox.CorruptError{File: of.f.Name(), Offset: dm.BodyOffset + dm.Header.Size, Reason: err.Error()})
			}
		}
		rc, size, err := of.r.Body(dm)
		if err != nil {
			return wrap(err, "read", m.b.Name, uid, of.f.Name())
		}
		defer rc.Close()
		if of.r.PlainAt(dm) {
			// the destination may copy the range in the kernel
			return fn(dboxtx.FileBody(ctx, rc, size, of.f, dm.BodyOffset))
		}
		return fn(dboxtx.Body(ctx, rc, size))
	}
}

// Begin starts a transaction.
func (m *mailbox) Begin(ctx context.Context) (formats.Tx, error) {
	if err := m.s.l.Writable("begin", m.b.Name); err != nil {
		return nil, err
	}
	v, _, err := m.views("begin")
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tx != nil {
		return nil, fail(formats.KindInUse, "begin", m.b.Name, 0, "", errors.New("a transaction is already open on this mailbox handle"))
	}
	t := newTx(m, v.NextUID())
	m.tx = t
	return t, nil
}

var _ formats.ExpungeLogger = (*mailbox)(nil)

// ExpungedGUIDs lists the expunges dovecot.index.log still records (see
// formats.ExpungeLogger).
func (m *mailbox) ExpungedGUIDs(ctx context.Context) (map[formats.UID][16]byte, error) {
	out, err := dboxtx.ExpungedGUIDs(m.ix)
	if err != nil || out == nil {
		return nil, wrap(err, "expunge log", m.b.Name, 0, m.b.IndexDir)
	}
	return out, nil
}
