package dboxlist

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

func TestResolve(t *testing.T) {
	root := t.TempDir()
	l, err := NewLayout("sdbox", formats.Location{Driver: "sdbox", Path: root, Index: "/idx"}, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, dir, index string }{
		{"inbox", "mailboxes/INBOX", "/idx/mailboxes/INBOX"},
		{"Entwürfe/Sub", "mailboxes/Entw&APw-rfe/Sub", "/idx/mailboxes/Entw&APw-rfe/Sub"},
		{"R&D", "mailboxes/R&-D", "/idx/mailboxes/R&-D"},
	} {
		b, err := l.Resolve("test", c.name)
		if err != nil {
			t.Fatal(err)
		}
		if b.Dir != filepath.Join(root, c.dir) || b.MailDir != filepath.Join(root, c.dir, MailDir) || b.IndexDir != c.index {
			t.Errorf("Resolve(%q) = %+v", c.name, b)
		}
	}
	if _, err := l.Resolve("test", "a/dbox-Mails"); formats.KindOf(err) != formats.KindNotPossible {
		t.Errorf("Resolve(dbox-Mails) = %v, want NotPossible", err)
	}
	al, err := NewLayout("sdbox", formats.Location{Driver: "sdbox", Path: root, Alt: "/alt/"}, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := al.Resolve("test", "a/b"); b.AltMailDir != "/alt/mailboxes/a/b/dbox-Mails" || len(b.MailDirs()) != 2 {
		t.Errorf("ALT Resolve = %+v", b)
	}
	for _, loc := range []formats.Location{
		{Driver: "sdbox", Path: root, Alt: "alt"},
		{Driver: "sdbox", Path: root, Layout: "maildir++"},
		{Driver: "sdbox", Path: root, Index: "MEMORY"},
		{Driver: "sdbox", Path: "relative"},
		{Driver: "mdbox", Path: root},
	} {
		if _, err := NewLayout("sdbox", loc, formats.OpenOptions{}); formats.KindOf(err) != formats.KindConfig {
			t.Errorf("NewLayout(%s) = %v, want KindConfig", loc, err)
		}
	}
}

func TestListCreateDelete(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	l, _ := NewLayout("sdbox", formats.Location{Driver: "sdbox", Path: root}, formats.OpenOptions{})
	for _, name := range []string{"INBOX", "Work/Sub", "日本語"} {
		b, _ := l.Resolve("create", name)
		if err := l.Create(b, func(dir string) error { return os.WriteFile(filepath.Join(dir, "dovecot.index.log"), nil, 0o600) }); err != nil {
			t.Fatal(err)
		}
		if err := l.Create(b, func(string) error { return nil }); formats.KindOf(err) != formats.KindExists {
			t.Errorf("second Create(%q) = %v, want Exists", name, err)
		}
	}
	os.Mkdir(filepath.Join(root, MailboxesDir, "&-invalid-&"), 0o700) // not modified UTF-7: skipped
	nodes, boxes, err := l.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(boxes) != 3 || len(nodes) != 4 || !nodes["Work"].NoSelect || nodes["Work/Sub"].NoSelect {
		t.Errorf("List() = %v, %d boxes", Sorted(nodes), len(boxes))
	}
	if stage, _ := filepath.Glob(filepath.Join(root, ".boxsync-create.*")); len(stage) != 0 {
		t.Errorf("staging directories left: %v", stage)
	}
	work, _ := l.Resolve("delete", "Work")
	if err := l.DeleteContainer(work); formats.KindOf(err) != formats.KindNotPossible {
		t.Errorf("DeleteContainer(Work) = %v, want NotPossible", err)
	}
	sub, _ := l.Resolve("delete", "Work/Sub")
	if err := l.Delete(sub); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteContainer(work); err != nil {
		t.Errorf("DeleteContainer(empty Work) = %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, TrashDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("trash left behind: %v", err)
	}
}

func TestLinkNoReplace(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("new"), 0o600)
	os.WriteFile(b, []byte("old"), 0o600)
	if err := LinkNoReplace(a, b); !errors.Is(err, fs.ErrExist) {
		t.Errorf("LinkNoReplace onto an existing file = %v, want ErrExist", err)
	}
	if data, _ := os.ReadFile(b); string(data) != "old" {
		t.Errorf("existing file replaced: %q", data)
	}
	c := filepath.Join(dir, "c")
	if err := LinkNoReplace(a, c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("source still there: %v", err)
	}
}

func TestOpenMail(t *testing.T) {
	dir := t.TempDir()
	p, a := filepath.Join(dir, "p"), filepath.Join(dir, "a")
	if _, path, err := OpenMail(p, a); !errors.Is(err, fs.ErrNotExist) || path != p {
		t.Errorf("OpenMail(none) = %q, %v", path, err)
	}
	os.WriteFile(a, []byte("alt"), 0o600)
	if _, _, err := OpenMail(p, ""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenMail without ALT = %v", err)
	}
	f, path, err := OpenMail(p, a)
	if err != nil || path != a {
		t.Fatalf("OpenMail(alt) = %q, %v", path, err)
	}
	f.Close()
	os.WriteFile(p, []byte("primary"), 0o600)
	f, path, err = OpenMail(p, a)
	if err != nil || path != p {
		t.Fatalf("OpenMail(both) = %q, %v", path, err)
	}
	f.Close()
}
