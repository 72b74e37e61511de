package maildir

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

// asUnprivileged runs fn with file permissions checked as nobody, so that
// root sees a read-only directory as read-only too.
func asUnprivileged(t *testing.T, fn func()) {
	if os.Getuid() != 0 {
		fn()
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// setfsuid(2) is per thread: only this goroutine's file access
	// changes.
	prev, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, 65534, 0, 0)
	defer syscall.RawSyscall(syscall.SYS_SETFSUID, prev, 0, 0)
	if now, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, ^uintptr(0), 0, 0); now != 65534 {
		t.Fatalf("setfsuid did not take (fsuid %d)", now)
	}
	fn()
}

// TestUnwritableMailbox: a mailbox in a directory we cannot write is read
// with UIDs, UIDVALIDITY and GUID assigned in memory, stable for the life
// of the store, and nothing is written.
func TestUnwritableMailbox(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"cur/1.M1P1.a:2,S": "a", "new/2.M1P1.a": "b", "tmp/.keep": ""})
	dirs := []string{root, filepath.Join(root, "cur"), filepath.Join(root, "new"), filepath.Join(root, "tmp")}
	for _, d := range dirs {
		os.Chmod(d, 0o555)
	}
	os.Chmod(filepath.Dir(root), 0o755) // t.TempDir's parent is 0700
	t.Cleanup(func() {
		for _, d := range dirs {
			os.Chmod(d, 0o755)
		}
	})
	before := snapshot(t, root)
	asUnprivileged(t, func() {
		s := openStore(t, formats.Location{Path: root}, formats.OpenOptions{ReadOnly: true})
		boxes, err := s.Mailboxes(context.Background())
		if err != nil || len(boxes) != 1 || boxes[0].GUID.IsZero() {
			t.Fatalf("Mailboxes = %v, %v", boxes, err)
		}
		mb := openBox(t, s, "INBOX")
		st, err := mb.Status(context.Background())
		if err != nil || st.GUID != boxes[0].GUID || st.UIDNext != 3 || st.Messages != 2 {
			t.Errorf("Status = %+v, %v (listed GUID %s)", st, err, boxes[0].GUID)
		}
		if msgs := list(t, mb); len(msgs) != 2 || msgs[0].UID != 1 || msgs[1].UID != 2 {
			t.Errorf("messages = %+v", msgs)
		}
	})
	if after := snapshot(t, root); after != before {
		t.Errorf("wrote to a read-only mailbox:\n%s", after)
	}
}
