package index

import (
	"errors"
	"io/fs"
	"slices"
	"strings"

	"github.com/boxsync/boxsync/formats"

	"github.com/boxsync/boxsync/index/log"
)

// ErrHistoryLost is returned by Changes and ScanLog when the transaction
// log no longer reaches back to the requested modseq (it was rotated away,
// or the index was reset since). The caller falls back to a full sync.
var ErrHistoryLost = errors.New("index: modseq no longer in the transaction log")

// LogEntry is one log record met by ScanLog.
type LogEntry struct {
	Pos    log.Pos
	ModSeq uint64 // the log's modseq counter after the record
	Record log.Record
}

// ChangeType says what happened to a message.
type ChangeType uint8

const (
	ChangeFlags   ChangeType = iota + 1 // flags, keywords or modseq changed
	ChangeAppend                        // appended (and possibly changed since)
	ChangeExpunge                       // expunged; other changes dropped
)

func (t ChangeType) String() string {
	switch t {
	case ChangeFlags:
		return "flags"
	case ChangeAppend:
		return "append"
	case ChangeExpunge:
		return "expunge"
	}
	return "change(?)"
}

// Change is what the log says happened to one message since a modseq,
// merged over all its records the way dsync's transaction log scan merges
// them (dsync-transaction-log-scan.c).
type Change struct {
	UID  uint32
	Type ChangeType
	// GUID is the expunged message's GUID when an EXPUNGE_GUID record
	// carried one.
	GUID [16]byte
	// Requested: the log has the expunge request of a client's
	// transaction (an EXPUNGE_GUID record without the EXTERNAL flag,
	// mail_expunge), not only the record of a sync that dropped the
	// message (Dovecot's, for a mail file found gone).
	Requested bool
	// Flags are the flags an appended message was saved with.
	Flags uint8
	// AddFlags and RemoveFlags are the net flag changes.
	AddFlags, RemoveFlags uint8
	// KeywordsReset: all keywords were removed first (KEYWORD_RESET).
	KeywordsReset bool
	// Keywords are the keyword changes, "+name" or "-name", the last one
	// per name.
	Keywords []string
	// ModSeq is the highest modseq among the records (a MODSEQ_UPDATE's
	// value, or the log's counter after a record).
	ModSeq uint64
	// Own is true when every record behind the change carried the SYNC
	// flag: boxsync (or dsync) wrote it to sync with another store.
	Own bool
}

// ChangesOptions tune Changes.
type ChangesOptions struct {
	// IncludeOwn includes records with the SYNC flag. By default they are
	// skipped, except that expunges still report their GUIDs, as dsync
	// does to avoid echoing its own changes back.
	IncludeOwn bool
	// MaxUID ignores changes of UIDs above it (0: no limit), like dsync's
	// highest_wanted_uid.
	MaxUID uint32
}

// logFiles reads the log files available now: .log and, when it
// continues into it, .log.2.
func (ix *Index) logFiles() (*logSet, error) {
	head, err := log.ReadFile(ix.logPath())
	if errors.Is(err, fs.ErrNotExist) {
		return &logSet{}, nil
	}
	if err != nil {
		return nil, err
	}
	ls := &logSet{files: []*log.File{head}}
	l2, err := readLog2(ix.logPath()+".2", head)
	if err != nil {
		return nil, err
	}
	if l2 != nil {
		ls.files = []*log.File{l2, head}
	}
	return ls, nil
}

// modseqStart finds where the changes after modseq begin
// (mail_index_modseq_get_next_log_offset): in the newest file whose
// initial_modseq <= modseq, after the record that brought the counter to
// modseq. Modseq 0 means the beginning of the index.
func (ls *logSet) modseqStart(modseq uint64) (log.Pos, bool) {
	if len(ls.files) == 0 {
		return log.Pos{}, false
	}
	first := 0
	// an index reset: nothing before the newest reset file counts
	for i, f := range ls.files {
		if f.Hdr.PrevFileSeq == 0 {
			first = i
		}
	}
	if modseq == 0 {
		f := ls.files[first]
		if f.Hdr.PrevFileSeq != 0 {
			return log.Pos{}, false
		}
		return log.Pos{FileSeq: f.Hdr.FileSeq, Offset: uint32(f.Hdr.HdrSize)}, true
	}
	k := -1
	for i := first; i < len(ls.files); i++ {
		if ls.files[i].Hdr.InitialModSeq <= modseq {
			k = i
		}
	}
	if k < 0 {
		return log.Pos{}, false
	}
	f := ls.files[k]
	off, m := uint32(f.Hdr.HdrSize), f.Hdr.InitialModSeq
	for off < f.End && m < modseq {
		size := log.DecodeSize(f.Data[off:])
		m = log.NextModSeq(log.Raw{Word: le.Uint32(f.Data[off+4:]), Payload: f.Data[off+8 : off+size]}, m, f.Hdr.Version())
		off += size
	}
	return log.Pos{FileSeq: f.Hdr.FileSeq, Offset: off}, true
}

// ScanLog calls fn for every log record after modseq, up to the end of
// the log as of the last View or Commit. Records written by boxsync or
// dsync have log.FlagsOf(e.Record)&log.Sync set. It returns
// ErrHistoryLost when the logs no longer reach back to modseq.
func (ix *Index) ScanLog(modseq uint64, fn func(LogEntry) error) error {
	ix.mu.Lock()
	err := ix.refresh()
	end := ix.st.logPos
	ix.mu.Unlock()
	if err != nil {
		return err
	}
	ls, err := ix.logFiles()
	if err != nil {
		return err
	}
	from, ok := ls.modseqStart(modseq)
	if !ok {
		return ErrHistoryLost
	}
	if !from.Before(end) {
		return nil
	}
	introSize := -1
	_, err = ls.walk(from, end, nil, func(e *entry) error {
		rec, err := log.Decode(e.raw, introSize)
		if err != nil {
			return &log.CorruptError{File: e.file.Path, Offset: int64(e.pos.Offset), Reason: err.Error()}
		}
		if in, ok := rec.(*log.ExtIntro); ok {
			introSize = int(in.RecordSize)
		}
		return fn(LogEntry{Pos: e.pos, ModSeq: e.modseq, Record: rec})
	})
	return err
}

// Changes lists, per UID and sorted by UID, what the log records after
// modseq: appends, expunges (with GUIDs) and flag, keyword and modseq
// changes (spec dsync.md §2.7). It returns ErrHistoryLost when modseq is
// no longer in the logs.
func (ix *Index) Changes(modseq uint64, opt *ChangesOptions) ([]Change, error) {
	var o ChangesOptions
	if opt != nil {
		o = *opt
	}
	ix.mu.Lock()
	if err := ix.refresh(); err != nil {
		ix.mu.Unlock()
		return nil, err
	}
	st := ix.st
	ix.mu.Unlock()
	limit := st.get(offNextUID) - 1 // no UID above this exists
	if o.MaxUID != 0 {
		limit = min(limit, o.MaxUID)
	}
	changes := map[uint32]*Change{}
	get := func(uid uint32, t ChangeType, own bool, m uint64) *Change {
		if uid == 0 || uid > limit {
			return nil
		}
		c := changes[uid]
		switch {
		case c == nil:
			c = &Change{UID: uid, Type: t, Own: own}
			changes[uid] = c
		case t == ChangeExpunge:
			// an expunge overrides flag changes
			*c = Change{UID: uid, Type: t, GUID: c.GUID, Requested: c.Requested, Own: own, ModSeq: c.ModSeq}
		case c.Type == ChangeExpunge:
			return nil // already expunged: doesn't matter
		default:
			c.Own = c.Own && own
		}
		c.ModSeq = max(c.ModSeq, m)
		return c
	}
	eachUID := func(rs []log.UIDRange, fn func(uid uint32)) {
		for _, x := range rs {
			for u := x.UID1; u <= min(x.UID2, limit) && u != 0; u++ {
				fn(u)
				if u == ^uint32(0) {
					break
				}
			}
		}
	}
	err := ix.ScanLog(modseq, func(e LogEntry) error {
		flags := log.FlagsOf(e.Record)
		own := flags&log.Sync != 0
		if own && !o.IncludeOwn && e.Record.Type() != log.TypeExpungeGUID {
			return nil
		}
		ext := flags&log.External != 0
		switch r := e.Record.(type) {
		case *log.Append:
			for _, a := range r.Recs {
				if c := get(a.UID, ChangeAppend, own, e.ModSeq); c != nil {
					c.Type, c.Flags = ChangeAppend, a.Flags
				}
			}
		case *log.Expunge:
			if ext {
				eachUID(r.Ranges, func(u uint32) { get(u, ChangeExpunge, own, e.ModSeq) })
			}
		case *log.ExpungeGUID:
			for _, x := range r.Entries {
				if !ext {
					if _, exists := st.find(x.UID); exists {
						continue // a request not carried out yet
					}
				}
				c := get(x.UID, ChangeExpunge, own, e.ModSeq)
				if c == nil {
					// expunged by an earlier record: still note
					// what this one adds
					if c = changes[x.UID]; c == nil || c.Type != ChangeExpunge {
						continue
					}
				}
				if c.GUID == ([16]byte{}) {
					c.GUID = x.GUID
				}
				c.Requested = c.Requested || !ext
			}
		case *log.FlagUpdate:
			for _, x := range r.Changes {
				eachUID([]log.UIDRange{{UID1: x.UID1, UID2: x.UID2}}, func(u uint32) {
					if c := get(u, ChangeFlags, own, e.ModSeq); c != nil {
						c.AddFlags = c.AddFlags&^x.Remove | x.Add
						c.RemoveFlags = c.RemoveFlags&^x.Add | x.Remove
					}
				})
			}
		case *log.KeywordReset:
			eachUID(r.Ranges, func(u uint32) {
				if c := get(u, ChangeFlags, own, e.ModSeq); c != nil {
					c.KeywordsReset, c.Keywords = true, nil
				}
			})
		case *log.KeywordUpdate:
			s := "+" + r.Name
			if r.Remove {
				s = "-" + r.Name
			}
			eachUID(r.Ranges, func(u uint32) {
				if c := get(u, ChangeFlags, own, e.ModSeq); c != nil {
					c.Keywords = slices.DeleteFunc(c.Keywords, func(k string) bool { return strings.EqualFold(k[1:], r.Name) })
					c.Keywords = append(c.Keywords, s)
				}
			})
		case *log.ModSeqUpdate:
			for _, x := range r.Entries {
				if x.UID != 0 {
					get(x.UID, ChangeFlags, own, x.ModSeq)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Change, 0, len(changes))
	for _, uid := range sortedKeys(changes) {
		out = append(out, *changes[uid])
	}
	return out, nil
}

// FlagChanges is Changes(since) as formats.ChangeHistory reports it: the
// flag and keyword changes of messages that still exist, without the
// SYNC-flagged writes of boxsync and dsync unless own is set. A lost
// modseq is formats.ErrHistoryLost.
func (ix *Index) FlagChanges(since formats.ModSeq, own bool) (map[formats.UID]formats.FlagChange, error) {
	changes, err := ix.Changes(uint64(since), &ChangesOptions{IncludeOwn: own})
	if errors.Is(err, ErrHistoryLost) {
		return nil, formats.Wrap(formats.ErrHistoryLost, formats.KindTemp, "index: changes", "", 0, ix.logPath())
	}
	if err != nil {
		return nil, err
	}
	out := make(map[formats.UID]formats.FlagChange, len(changes))
	for _, c := range changes {
		if c.Type == ChangeExpunge || (c.Own && !own) {
			continue
		}
		fc := formats.FlagChange{
			Add:           formats.Flags(c.AddFlags) & formats.SystemFlags,
			Remove:        formats.Flags(c.RemoveFlags) & formats.SystemFlags,
			KeywordsReset: c.KeywordsReset,
			ModSeq:        formats.ModSeq(c.ModSeq),
		}
		for _, k := range c.Keywords {
			if k[0] == '+' {
				fc.AddKeywords = append(fc.AddKeywords, k[1:])
			} else {
				fc.RemoveKeywords = append(fc.RemoveKeywords, k[1:])
			}
		}
		if fc.Add == 0 && fc.Remove == 0 && !fc.KeywordsReset && len(fc.AddKeywords)+len(fc.RemoveKeywords) == 0 {
			continue
		}
		out[formats.UID(c.UID)] = fc
	}
	return out, nil
}
