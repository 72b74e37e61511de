package maildir

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// TestSaveLinksMaildirFile: a copy between Maildirs on one file system
// is a hard link to the source's file (Dovecot's maildir_copy_hardlink)
// only where the link is the copy a Save must make: the source is a
// whole plain file with our owner and file mode, nothing is to be
// compressed, and its mtime is the INTERNALDATE to keep (the link shares
// the inode). Otherwise the bytes are copied. Either way the copy reads
// back with the source's bytes, sizes (,W= counted when the source's name
// lacks it) and date, and the source's file is left as it was.
func TestSaveLinksMaildirFile(t *testing.T) {
	ctx := context.Background()
	const text = "Subject: linked\r\nX: lf only\n\nbody\nline\r\n"
	mtime := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	gz := func() string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		io.WriteString(w, text)
		w.Close()
		return b.String()
	}()
	cases := []struct {
		name     string
		data     string                                          // the source file's bytes
		mode     os.FileMode                                     // the source file's mode
		settings map[string]string                               // the destination driver's zlib settings
		edit     func(m *formats.Message)                        // what the engine passes to Save
		link     bool                                            // want a hard link
		check    func(t *testing.T, dst string, src os.FileInfo) // the destination file
	}{
		{name: "plain file", data: text, mode: 0o600, link: true},
		{name: "another file mode", data: text, mode: 0o644},
		{name: "destination compresses", data: text, mode: 0o600,
			settings: map[string]string{"mail_plugins": "zlib", "plugin/zlib_save": "gz"},
			check: func(t *testing.T, dst string, _ os.FileInfo) {
				data, err := os.ReadFile(dst)
				if err != nil || !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
					t.Errorf("destination file is not gzip (%v): %q", err, data)
				}
			}},
		{name: "compressed source", data: gz, mode: 0o600},
		{name: "another received date", data: text, mode: 0o600,
			edit: func(m *formats.Message) { m.Received = mtime.Add(time.Hour) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			srcRoot, dstRoot := filepath.Join(root, "src"), filepath.Join(root, "dst")
			name := "1700000000.M1P1.mda,S=" + strconv.Itoa(len(text))
			srcPath := filepath.Join(srcRoot, "cur", name+":2,S")
			writeFiles(t, srcRoot, map[string]string{"cur/" + name + ":2,S": c.data})
			if err := os.Chmod(srcPath, c.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(srcPath, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			src := openBox(t, openStore(t, formats.Location{Path: srcRoot}, formats.OpenOptions{}), "INBOX")
			msgs := list(t, src)
			if len(msgs) != 1 {
				t.Fatalf("source lists %d messages, want 1", len(msgs))
			}
			msg := msgs[0]
			if c.edit != nil {
				c.edit(&msg)
			}
			want := msg.Received

			drv := Driver{}
			if c.settings != nil {
				d, err := Driver{}.Configure(c.settings)
				if err != nil {
					t.Fatal(err)
				}
				drv = d.(Driver)
			}
			ds, err := drv.Open(ctx, formats.Location{Driver: "maildir", Path: dstRoot}, formats.OpenOptions{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			if err := ds.Create(ctx, "INBOX", formats.GUID{}, 0); err != nil {
				t.Fatal(err)
			}
			dst := openBox(t, ds.(*Store), "INBOX")
			tx, err := dst.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			err = src.Body(ctx, msg.UID, func(b formats.Body) error {
				msg.Size = b.Size()
				_, err := tx.Save(ctx, msg, b)
				return err
			})
			if err != nil {
				t.Fatalf("Save = %v", err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatalf("Commit = %v", err)
			}

			files := dirNames(t, filepath.Join(dstRoot, "cur"))
			if len(files) != 1 {
				t.Fatalf("destination cur/ holds %v", files)
			}
			dstPath := filepath.Join(dstRoot, "cur", files[0])
			sfi, err := os.Stat(srcPath)
			if err != nil {
				t.Fatal(err)
			}
			dfi, err := os.Stat(dstPath)
			if err != nil {
				t.Fatal(err)
			}
			if got := os.SameFile(sfi, dfi); got != c.link {
				t.Errorf("destination is a hard link to the source: %v, want %v", got, c.link)
			}
			if !sfi.ModTime().Equal(mtime) || sfi.Mode().Perm() != c.mode {
				t.Errorf("source file now has mtime %v mode %v, want %v %v", sfi.ModTime(), sfi.Mode().Perm(), mtime, c.mode)
			}
			vsize := len(text) + 3 // three LFs without CR
			if !strings.HasSuffix(files[0], ",S="+strconv.Itoa(len(text))+",W="+strconv.Itoa(vsize)+":2,S") {
				t.Errorf("destination file %q, want ,S=%d,W=%d:2,S", files[0], len(text), vsize)
			}
			got := list(t, dst)
			if len(got) != 1 || !got[0].Received.Equal(want) || got[0].Flags != formats.FlagSeen {
				t.Fatalf("destination lists %+v, want one \\Seen message received %v", got, want)
			}
			err = dst.Body(ctx, got[0].UID, func(b formats.Body) error {
				data, err := io.ReadAll(b)
				if err == nil && string(data) != text {
					t.Errorf("destination body %q, want %q", data, text)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if c.check != nil {
				c.check(t, dstPath, sfi)
			}
		})
	}
}
