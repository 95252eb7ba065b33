//go:build !purego

package cpu

import (
	"os"
	"strings"
	"testing"
)

// TestBLAS checks that BLAS names the kernel set OpenBLAS runs: the one
// OPENBLAS_CORETYPE forces when it is set to a known set.
func TestBLAS(t *testing.T) {
	desc := BLAS()
	t.Log(desc)
	if !strings.HasPrefix(desc, "OpenBLAS") || !strings.Contains(desc, ", kernels ") {
		t.Fatalf("BLAS() = %q, want OpenBLAS's configuration and kernels", desc)
	}
	want, ok := os.LookupEnv("OPENBLAS_CORETYPE")
	if !ok {
		return
	}
	if !strings.Contains(desc, "OPENBLAS_CORETYPE="+want) {
		t.Errorf("BLAS() = %q does not name OPENBLAS_CORETYPE=%s", desc, want)
	}
	if want != "" && !strings.Contains(strings.ToLower(desc), "kernels "+strings.ToLower(want)) {
		t.Errorf("OPENBLAS_CORETYPE=%s but BLAS() = %q", want, desc)
	}
}
