package maildir

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

// BenchmarkSaveCommit saves b.N messages in transactions of 1000 with
// mail_fsync=optimized (one syncfs per transaction).
func BenchmarkSaveCommit(b *testing.B) {
	ctx := context.Background()
	s, err := Driver{}.Open(ctx, formats.Location{Path: filepath.Join(b.TempDir(), "Maildir")}, formats.OpenOptions{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Create(ctx, "INBOX", formats.GUID{}, 0); err != nil {
		b.Fatal(err)
	}
	mb, _ := s.Open(ctx, "INBOX")
	body := "Subject: bench\n\n" + strings.Repeat("line of text\n", 200)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; {
		tx, err := mb.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 1000 && i < b.N; j, i = j+1, i+1 {
			m := formats.Message{Flags: formats.FlagSeen, Keywords: []string{"k"}, GUID: fmt.Sprintf("%032x", i), Size: int64(len(body))}
			if _, err := tx.Save(ctx, m, strings.NewReader(body)); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead lists and reads every message of a 5000-message mailbox.
func BenchmarkRead(b *testing.B) {
	ctx := context.Background()
	s, err := Driver{}.Open(ctx, formats.Location{Path: filepath.Join(b.TempDir(), "Maildir")}, formats.OpenOptions{Create: true, Fsync: formats.FsyncNever})
	if err != nil {
		b.Fatal(err)
	}
	s.Create(ctx, "INBOX", formats.GUID{}, 0)
	mb, _ := s.Open(ctx, "INBOX")
	tx, _ := mb.Begin(ctx)
	body := "Subject: bench\n\n" + strings.Repeat("line of text\n", 200)
	for i := 0; i < 5000; i++ {
		tx.Save(ctx, formats.Message{Size: int64(len(body))}, strings.NewReader(body))
	}
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s2, _ := Driver{}.Open(ctx, formats.Location{Path: s.(*Store).root}, formats.OpenOptions{ReadOnly: true})
		mb2, _ := s2.Open(ctx, "INBOX")
		n := 0
		for m, err := range mb2.Messages(ctx, 1) {
			if err != nil {
				b.Fatal(err)
			}
			if err := mb2.Body(ctx, m.UID, func(body formats.Body) error { _, err := io.Copy(io.Discard, body); return err }); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 5000 {
			b.Fatalf("%d messages", n)
		}
	}
}

// BenchmarkMessages lists the metadata of a 5000-message mailbox the
// engine just read (Status then Messages, as a sync does): one stat per
// message.
func BenchmarkMessages(b *testing.B) {
	ctx := context.Background()
	s, err := Driver{}.Open(ctx, formats.Location{Path: filepath.Join(b.TempDir(), "Maildir")}, formats.OpenOptions{Create: true, Fsync: formats.FsyncNever})
	if err != nil {
		b.Fatal(err)
	}
	s.Create(ctx, "INBOX", formats.GUID{}, 0)
	mb, _ := s.Open(ctx, "INBOX")
	tx, _ := mb.Begin(ctx)
	for i := 0; i < 5000; i++ {
		body := "Subject: " + sized(i%50) + "\n\nbody\n"
		if _, err := tx.Save(ctx, formats.Message{Size: int64(len(body))}, strings.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	box, err := s.Open(ctx, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	defer box.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		for _, err := range box.Messages(ctx, 1) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 5000 {
			b.Fatalf("%d messages", n)
		}
	}
}
