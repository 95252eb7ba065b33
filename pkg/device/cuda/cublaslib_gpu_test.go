//go:build gpu

package cuda

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCublasFile: the GPU test binary needs libcublas.so, so the dynamic
// loader mapped one at start; the log names it (.so.12 or .so.13).
func TestCublasFile(t *testing.T) {
	got := cublasFile()
	if !strings.HasPrefix(filepath.Base(got), "libcublas.so") {
		t.Fatalf("cublasFile() = %q, want the loaded libcublas.so…", got)
	}
	t.Logf("libcublas loaded from %s", got)
}
