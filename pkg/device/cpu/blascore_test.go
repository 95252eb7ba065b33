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

func TestWithoutAVX512(t *testing.T) {
	for _, c := range []struct {
		core   string
		avx512 bool
		want   bool
	}{
		{"Haswell", true, true},
		{"Zen", true, true},
		{"Sandybridge", true, true},
		{"SkylakeX", true, false},
		{"Cooperlake", true, false},
		{"SapphireRapids", true, false},
		{"Haswell", false, false},
		{"Zen", false, false},
	} {
		if got := withoutAVX512(c.core, c.avx512); got != c.want {
			t.Errorf("withoutAVX512(%q, %v) = %v, want %v", c.core, c.avx512, got, c.want)
		}
	}
}

// TestBLASHint checks the advice against the kernels OpenBLAS runs here.
func TestBLASHint(t *testing.T) {
	hint := BLASHint()
	t.Log(hint)
	_, forced := os.LookupEnv("OPENBLAS_CORETYPE")
	want := forced && hasAVX512() && !strings.Contains(BLAS(), "kernels SkylakeX") &&
		!strings.Contains(BLAS(), "kernels Cooperlake") && !strings.Contains(BLAS(), "kernels SapphireRapids")
	if (hint != "") != want {
		t.Errorf("BLASHint() = %q with %s", hint, BLAS())
	}
}
