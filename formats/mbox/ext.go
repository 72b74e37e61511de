package mbox

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/boxsync/boxsync/formats/internal/subsfile"
)

// The mbox format has no place for per-message metadata it does not
// know (Message.Ext: POP3 UIDL and order). Dovecot keeps POP3 UIDLs of
// an mbox in its index cache, which it may drop at any time. boxsync
// keeps them in a small file of its own in the mailbox's index
// directory, which Dovecot ignores:
//
//	boxsync-ext            "V1 <uidvalidity>\n", then per message and key:
//	<uid> TAB <key as 2 hex digits> TAB <value, tab-escaped> LF
//
// A file for another UIDVALIDITY is ignored; entries for UIDs the mbox no
// longer has are ignored and dropped on the next write. Without an index
// directory (INDEX=MEMORY) Ext is not kept.
const extName = "boxsync-ext"

type extMap map[uint32]map[byte]string

func readExt(indexDir string, uidValidity uint32) (extMap, error) {
	if indexDir == "" {
		return nil, nil
	}
	data, err := os.ReadFile(filepath.Join(indexDir, extName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	first, rest, _ := bytes.Cut(data, []byte("\n"))
	if string(first) != fmt.Sprintf("V1 %d", uidValidity) {
		return nil, nil // another mailbox's, or an unknown version
	}
	out := extMap{}
	for _, line := range bytes.Split(rest, []byte("\n")) {
		f := bytes.SplitN(line, []byte("\t"), 3)
		if len(f) != 3 {
			continue
		}
		uid, err := strconv.ParseUint(string(f[0]), 10, 32)
		k, herr := hex.DecodeString(string(f[1]))
		if err != nil || herr != nil || len(k) != 1 {
			continue
		}
		m := out[uint32(uid)]
		if m == nil {
			m = map[byte]string{}
			out[uint32(uid)] = m
		}
		m[k[0]] = subsfile.Unescape(string(f[2]))
	}
	return out, nil
}

func writeExt(indexDir string, uidValidity uint32, ext extMap, sync bool) error {
	if indexDir == "" {
		return nil
	}
	path := filepath.Join(indexDir, extName)
	if len(ext) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	uids := make([]uint32, 0, len(ext))
	for uid := range ext {
		uids = append(uids, uid)
	}
	sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
	var b bytes.Buffer
	fmt.Fprintf(&b, "V1 %d\n", uidValidity)
	for _, uid := range uids {
		keys := make([]int, 0, len(ext[uid]))
		for k := range ext[uid] {
			keys = append(keys, int(k))
		}
		sort.Ints(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%d\t%02x\t%s\n", uid, k, subsfile.Escape(ext[uid][byte(k)]))
		}
	}
	if err := os.MkdirAll(indexDir, 0o700); err != nil {
		return err
	}
	return writeFileAtomic(path, b.Bytes(), 0o600, sync)
}
