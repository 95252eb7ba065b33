package cuda

import (
	"strings"
	"testing"
)

func TestCublasFileIn(t *testing.T) {
	maps := `55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 123 /work/.gpu/mochi-gpu
7f1a00000000-7f1a10000000 r--p 00000000 08:01 456 /opt/venv/nvidia/cublas/lib/libcublasLt.so.12
7f1a20000000-7f1a20100000 r--p 00000000 08:01 789 /opt/venv/nvidia/cublas/lib/libcublas.so.12
7f1a30000000-7f1a30021000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
`
	if got, want := cublasFileIn(maps), "/opt/venv/nvidia/cublas/lib/libcublas.so.12"; got != want {
		t.Errorf("cublasFileIn = %q, want %q", got, want)
	}
	unversioned := "7f1a20000000-7f1a20100000 r-xp 00000000 08:01 789 /usr/local/cuda/lib64/libcublas.so\n"
	if got := cublasFileIn(unversioned); got != "/usr/local/cuda/lib64/libcublas.so" {
		t.Errorf("cublasFileIn(unversioned) = %q", got)
	}
	if got := cublasFileIn("7f1a00000000-7f1a10000000 r--p 00000000 08:01 456 /x/libcublasLt.so.13\n"); got != "" {
		t.Errorf("cublasFileIn without libcublas = %q, want \"\"", got)
	}
}

func TestCublasHint(t *testing.T) {
	if h := cublasHint("/x/libcublas.so.13"); !strings.Contains(h, "/x/libcublas.so.13") {
		t.Errorf("cublasHint does not name the file: %q", h)
	}
	if h := cublasHint(""); !strings.Contains(h, "not found in /proc/self/maps") {
		t.Errorf("cublasHint(\"\") = %q", h)
	}
}
