package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
)

// deliver saves n new messages into an existing mailbox of loc.
func deliver(t *testing.T, loc, box, tag string, n int) {
	t.Helper()
	ctx := context.Background()
	d, l := driverFor(t, loc)
	st, err := d.Open(ctx, l, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mb, err := st.Open(ctx, box)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	tx, err := mb.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for i := range n {
		body := fmt.Sprintf("From: b@example.com\nSubject: %s %d\n\nbody %s %d\n", tag, i, tag, i)
		m := formats.Message{Received: time.Unix(1700001000+int64(i), 0), Size: int64(len(body))}
		if _, err := tx.Save(ctx, m, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSyncMaildir runs sync and sync -1 on a Maildir pair that was backed
// up and then used on both sides: exit 0, all mail on the destination
// (both sides for sync), and a second run is a no-op.
func TestSyncMaildir(t *testing.T) {
	for _, cmd := range [][]string{{"sync"}, {"sync", "-1"}} {
		t.Run(strings.Join(cmd, " "), func(t *testing.T) {
			te := newTestEnv(t)
			src := "maildir:" + filepath.Join(te.home, "Maildir")
			dst := "maildir:" + filepath.Join(te.home, "replica")
			fill(t, src, map[string]int{"INBOX": 3, "Sent": 2, "Archive": 0, "Archive/2023": 2})
			backup := []string{"-o", "mail_location=maildir:~/Maildir", "backup", "maildir:~/replica"}
			te.run(t, backup...).expect(t, backup, 0)
			deliver(t, src, "INBOX", "old server", 2)
			deliver(t, dst, "INBOX", "new server", 1)
			deliver(t, dst, "Sent", "new server", 1)
			srcBefore := dump(t, src)

			args := append([]string{"-v", "-o", "mail_location=maildir:~/Maildir"}, cmd...)
			args = append(args, "maildir:~/replica")
			r := te.run(t, args...)
			if len(cmd) == 1 {
				// 2 to the destination, 2 to the source; the UID
				// conflict at 4 moves both sides' copies.
				r.expect(t, args, 0, "Info: sync ")
				if diff := formatstest.Diff(dump(t, src), dump(t, dst)); diff != "" {
					t.Fatalf("sides differ after sync:\n%s", diff)
				}
			} else {
				r.expect(t, args, 0, "Info: sync -1 ")
				if diff := formatstest.Diff(srcBefore, dump(t, src)); diff != "" {
					t.Fatalf("sync -1 changed the source:\n%s", diff)
				}
			}
			d := dump(t, dst)
			if n := strings.Count(d, "  uid="); n != 7+2+2 {
				t.Errorf("destination has %d messages, want 11:\n%s", n, d)
			}
			te.run(t, args...).expect(t, args, 0, "0 saved", "0 expunged", "0 flag changes")
			if diff := formatstest.Diff(d, dump(t, dst)); diff != "" {
				t.Fatalf("second run changed the destination:\n%s", diff)
			}
		})
	}
}
