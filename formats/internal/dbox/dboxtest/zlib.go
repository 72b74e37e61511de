package dboxtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/dbox"
	"github.com/boxsync/boxsync/formats/internal/zlib"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// bigBody is a message that compresses well.
var bigBody = []byte("Subject: big\n\n" + strings.Repeat("compress me please\n", 4000))

// SavesCompressed saves with x.Driver configured for Dovecot's zlib
// plugin (zlib_save = zstd, then gz) and checks that every stored message
// is compressed with 'Z' metadata, that Dovecot with the plugin reads the
// original bytes with a clean log, and that we read them back equal.
func (x Interop) SavesCompressed(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		save   string
		level  string
		format zlib.Format
	}{{"zstd", "", zlib.Zstd}, {"gz", "9", zlib.Gzip}, {"zstd", "19", zlib.Zstd}} {
		t.Run(tc.save+tc.level, func(t *testing.T) {
			plugin := "plugin {\n  zlib_save = " + tc.save + "\n"
			settings := map[string]string{"mail_plugins": "quota zlib", "plugin/zlib_save": tc.save}
			if tc.level != "" {
				plugin += "  zlib_save_level = " + tc.level + "\n"
				settings["zlib_save_level"] = tc.level
			}
			drv, err := x.Driver.(formats.Configurable).Configure(settings)
			if err != nil {
				t.Fatal(err)
			}
			d := dovecottest.New(t, x.Format+":~/"+x.Format, "mail_plugins = zlib", plugin+"}")
			loc, err := formats.ParseLocation(d.Location(), formats.Vars{User: "dovecottest", Home: d.Home()})
			if err != nil {
				t.Fatal(err)
			}
			store := Interop{Format: x.Format, Driver: drv}.OpenStore(t, loc, formats.OpenOptions{Create: true})
			for i, name := range []string{"INBOX", "Other"} {
				if err := store.Create(ctx, name, formats.NewGUID(), uint32(1234567890+i)); err != nil {
					t.Fatal(err)
				}
				SaveAll(t, store, name, Messages(), 20)
			}
			mb, err := store.Open(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			tx, _ := mb.Begin(ctx)
			uid, err := tx.Save(ctx, formats.Message{Size: int64(len(bigBody))}, bytes.NewReader(bigBody))
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			mb.Close()

			if n := checkCompressed(t, d.Root(), tc.format); n != 2*len(Messages())+1 {
				t.Errorf("%d compressed messages on disk, want %d", n, 2*len(Messages())+1)
			}
			Compare(t, d, store)
			// Dovecot's own fetch gives the original text.
			out := d.MustDoveadm(t, "fetch", "text", "mailbox", "INBOX", "uid", strconv.FormatUint(uint64(uid), 10))
			if !strings.Contains(out, "compress me please\n") || strings.Count(out, "compress me please") != 4000 {
				t.Errorf("doveadm fetch text of the big message: %d bytes, want the original", len(out))
			}
			want := sha256.Sum256(bigBody)
			if got := hashBody(t, store, "INBOX", uid); got != hex.EncodeToString(want[:]) {
				t.Errorf("our body hash %s, want %s", got, hex.EncodeToString(want[:]))
			}
			d.CheckLogClean(t)
		})
	}
}

// checkCompressed checks every message in the dbox files under root and
// returns how many there are: stored as f, with a 'Z' plain size.
func checkCompressed(t *testing.T, root string, f zlib.Format) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		base := de.Name()
		if !strings.HasPrefix(base, "u.") && !strings.HasPrefix(base, "m.") {
			return nil
		}
		file, err := os.Open(path)
		if err != nil {
			return err
		}
		defer file.Close()
		fi, err := file.Stat()
		if err != nil {
			return err
		}
		r, err := dbox.NewReader(file, fi.Size(), path)
		if err != nil {
			return err
		}
		for off := r.FirstOffset(); off < r.Size(); {
			m, err := r.ReadMessage(off)
			if err != nil {
				return err
			}
			n++
			head := make([]byte, zlib.MagicLen)
			k, _ := r.Stored(m).ReadAt(head, 0)
			if got := zlib.Detect(head[:k]); got != f {
				t.Errorf("%s@%d: stored as %v, want %v", path, off, got, f)
			}
			if _, ok := m.Metadata.Get(dbox.MetaPhysicalSize); !ok {
				t.Errorf("%s@%d: no 'Z' metadata", path, off)
			}
			off = m.End
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// hashBody returns the SHA-256 of message uid's body as we read it.
func hashBody(t *testing.T, s formats.Store, name string, uid formats.UID) string {
	t.Helper()
	ctx := context.Background()
	mb, err := s.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	h := sha256.New()
	if err := mb.Body(ctx, uid, func(b formats.Body) error {
		_, err := io.Copy(h, b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
