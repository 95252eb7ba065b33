package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWrite replaces a file, checks its content and mode and that no
// temporary file is left, and checks that a failed write keeps the old file.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.bin")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "new" {
		t.Fatalf("content %q (%v), want \"new\"", b, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v (%v), want 0644", st.Mode().Perm(), err)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*")); len(names) != 0 {
		t.Fatalf("temporary files left: %v", names)
	}

	// A folder in path's place: the rename fails and the folder stays.
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(sub, []byte("new")); err == nil {
		t.Fatal("writing over a non-empty folder succeeded")
	}
	if st, err := os.Stat(sub); err != nil || !st.IsDir() {
		t.Fatalf("the folder is gone: %v", err)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "sub.tmp-*")); len(names) != 0 {
		t.Fatalf("temporary files left after a failure: %v", names)
	}
}
