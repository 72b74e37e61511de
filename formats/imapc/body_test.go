package imapc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/imapc/hdrhash"
)

func bigMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("Subject: big\r\nMessage-ID: <big@x>\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "line %08d %s\r\n", i, strings.Repeat("x", 60))
	}
	return b.Bytes()
}

func saveOne(t *testing.T, st *Store, box string, msg []byte) formats.UID {
	t.Helper()
	ctx := context.Background()
	mb, err := st.Open(ctx, box)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	uid, err := tx.Save(ctx, formats.Message{Size: int64(len(msg))}, bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return uid
}

// A connection that breaks in the middle of a body is resumed with a
// partial fetch; the callback sees every byte once.
func TestBodyResume(t *testing.T) {
	ctx := context.Background()
	_, st := newStore(t)
	msg := bigMessage(2 << 20)
	uid := saveOne(t, st, "INBOX", msg)
	mb, _ := st.Open(ctx, "INBOX")

	var cur *conn
	testHookBody = func(c *conn) { cur = c }
	defer func() { testHookBody = nil }()
	var got []byte
	err := mb.Body(ctx, uid, func(b formats.Body) error {
		buf := make([]byte, 300<<10)
		n, err := io.ReadFull(b, buf)
		if err != nil {
			return err
		}
		got = append(got, buf[:n]...)
		cur.raw.Conn.Close() // the network drops the connection
		rest, err := io.ReadAll(b)
		got = append(got, rest...)
		return err
	})
	if err != nil {
		t.Fatalf("Body with a dropped connection = %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("resumed body differs: %d bytes, want %d", len(got), len(msg))
	}
	// Without retries the failure reaches the callback as a KindTemp
	// error.
	st.s.RetryCount = 0
	err = mb.Body(ctx, uid, func(b formats.Body) error {
		io.ReadFull(b, make([]byte, 300<<10))
		cur.raw.Conn.Close()
		_, err := io.ReadAll(b)
		return err
	})
	if formats.KindOf(err) != formats.KindTemp {
		t.Errorf("Body without retries = %v, want a KindTemp error", err)
	}
	st.s.RetryCount = 1
	if b := readBody(t, mb, uid); len(b) != len(msg) {
		t.Errorf("Body afterwards: %d bytes", len(b))
	}
}

// Reading a large body allocates about nothing: it streams from the
// connection to the callback.
func TestBodyStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ctx := context.Background()
	_, st := newStore(t)
	msg := bigMessage(48 << 20)
	want := sha256.Sum256(msg)
	uid := saveOne(t, st, "INBOX", msg)
	mb, _ := st.Open(ctx, "INBOX")
	msg = nil
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h := sha256.New()
	err := mb.Body(ctx, uid, func(b formats.Body) error {
		_, err := io.Copy(h, b)
		return err
	})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("body differs")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("reading a 48 MiB body allocated %d bytes", alloc)
	}
}

// HdrHashes (from HEADER.FIELDS) equals hdrhash.V3 over the whole body.
func TestHdrHashes(t *testing.T) {
	ctx := context.Background()
	d, st := newStore(t)
	imapScript(t, d, sourceScript()+appendCmd("h1", "INBOX", "", "",
		"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <\xc3\xa4 ?? x>\r\nX: y\r\n\tz\r\nmessage-id: <two>\r\n\r\nb\r\n"))
	mb, _ := st.Open(ctx, "INBOX")
	hashes, err := mb.(*Mailbox).HdrHashes(ctx, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs := collect(t, mb, 1)
	if len(hashes) != len(msgs) {
		t.Fatalf("%d hashes for %d messages", len(hashes), len(msgs))
	}
	for _, m := range msgs {
		want, _ := hdrhash.V3(strings.NewReader(readBody(t, mb, m.UID)), hdrhash.DefaultHeaders)
		if hashes[m.UID] != want {
			t.Errorf("uid %d: HdrHashes = %s, V3(body) = %s", m.UID, hashes[m.UID], want)
		}
	}
	if hashes[msgs[1].UID] != hdrhash.Empty {
		t.Errorf("message without Date/Message-ID hashes to %s", hashes[msgs[1].UID])
	}
}
