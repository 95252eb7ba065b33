//go:build !gpu

package cuda

import "testing"

// TestCublasFile: a test binary built without the gpu tag maps no libcublas.
func TestCublasFile(t *testing.T) {
	if got := cublasFile(); got != "" {
		t.Errorf("cublasFile() = %q in a binary without cuBLAS", got)
	}
}
