package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The Makefile's build line builds what Command builds.
func TestMakefile(t *testing.T) {
	data, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for l := range strings.Lines(string(data)) {
		if strings.HasPrefix(l, "\t") && strings.Contains(l, "$(GO) build ") && strings.Contains(l, "-o $(BIN)") {
			line = l
		}
	}
	if line == "" {
		t.Fatal("no `$(GO) build ... -o $(BIN)` line in the Makefile")
	}
	for _, want := range append([]string{"-tags " + Tags}, Env...) {
		if !strings.Contains(line, want) {
			t.Errorf("Makefile build line %q lacks %q", strings.TrimSpace(line), want)
		}
	}
}

// Command builds a static binary; a cgo build of the same program is not
// static, so Static tells them apart.
func TestStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds two binaries")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n\ngo 1.26\n"), 0o644)
	// os/user makes a cgo build link libc (getpwnam through NSS).
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"os/user\"\n\nfunc main() { user.Lookup(\"root\") }\n"), 0o644)
	static := filepath.Join(dir, "static")
	if out, err := Command(context.Background(), dir, static, ".").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	dynamic := filepath.Join(dir, "dynamic")
	cmd := Command(context.Background(), dir, dynamic, ".")
	cmd.Env = append(cmd.Env, "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("no cgo build here: %v\n%s", err, out)
	}
	for path, want := range map[string]bool{static: true, dynamic: false} {
		if got, err := Static(path); err != nil || got != want {
			t.Errorf("Static(%s) = %v, %v; want %v", filepath.Base(path), got, err, want)
		}
	}
	if _, err := Static(filepath.Join(dir, "main.go")); err == nil {
		t.Error("Static(main.go): no error")
	}
}
