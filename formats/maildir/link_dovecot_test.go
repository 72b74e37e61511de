package maildir_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// TestDovecotReadsLinkedCopies: mail copied from another Maildir on the
// same file system is hard-linked (tx.saveLink), with ,W= counted from the
// source; Dovecot reads the copies with their sizes, dates, flags,
// keywords and bytes as we do (its fetch fails on a wrong ,S=; the ,W=
// value itself is checked by TestSaveLinksMaildirFile, since Dovecot
// takes it from the name as we do).
func TestDovecotReadsLinkedCopies(t *testing.T) {
	ctx := context.Background()
	d, loc := interop(t, "")
	srcLoc := formats.Location{Driver: "maildir", Path: filepath.Join(d.Home(), "Source")}
	src := openStore(t, srcLoc, formats.OpenOptions{Create: true})
	if err := src.Create(ctx, "INBOX", formats.GUID{}, 0); err != nil {
		t.Fatal(err)
	}
	sb, err := src.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	tx, err := sb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bodies := []string{
		"Subject: lf\n\nbare LFs\ncount twice\n",
		"Subject: crlf\r\n\r\nCRLF only\r\n",
		"Subject: mixed\r\nX: y\n\nmixed\r\nlines\n",
	}
	for i, b := range bodies {
		m := formats.Message{Size: int64(len(b)), Flags: formats.FlagSeen, Keywords: []string{"$Label1"}, Received: time.Unix(1600000000+int64(i)*3600, 0)}
		if _, err := tx.Save(ctx, m, strings.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	dst := openStore(t, loc, formats.OpenOptions{Create: true})
	if err := dst.Create(ctx, "INBOX", formats.GUID{}, 0); err != nil {
		t.Fatal(err)
	}
	db, err := dst.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dtx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for m, err := range sb.Messages(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		err = sb.Body(ctx, m.UID, func(b formats.Body) error {
			_, err := dtx.Save(ctx, m, b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := dtx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	cur := filepath.Join(d.Root(), "cur")
	ents, err := os.ReadDir(cur)
	if err != nil {
		t.Fatal(err)
	}
	links := 0
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 2 {
			links++
		}
	}
	if links != len(bodies) {
		t.Fatalf("%d of %d copies are hard links to the source's files", links, len(bodies))
	}
	compare(t, d, dst)
}
