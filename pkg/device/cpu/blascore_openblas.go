//go:build !purego

package cpu

// char *openblas_get_corename(void);
// char *openblas_get_config(void);
import "C"

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/cpu"
)

// BLAS describes the BLAS library behind Gemm and the convolutions: its
// version, build and the kernel set in use. OpenBLAS picks the kernels from
// the CPU unless OPENBLAS_CORETYPE names a set; since a forced older set
// (Haswell's AVX2 on an AVX-512 CPU) costs up to 2.7× in SGEMM, the variable
// is named when it is set.
func BLAS() string {
	s := strings.TrimSpace(C.GoString(C.openblas_get_config())) + ", kernels " + C.GoString(C.openblas_get_corename())
	if v, ok := os.LookupEnv("OPENBLAS_CORETYPE"); ok {
		s += " (chosen by OPENBLAS_CORETYPE=" + v + ")"
	}
	return s
}

// BLASHint returns advice when OPENBLAS_CORETYPE holds OpenBLAS to kernels
// without AVX-512 on a CPU that has it, else "". Some environments set the
// variable for reproducibility across machines; on a 2-core Zen 5 it made
// the ResNet-18 training step 1.39× slower (docs/BENCH.md).
func BLASHint() string {
	forced, ok := os.LookupEnv("OPENBLAS_CORETYPE")
	core := C.GoString(C.openblas_get_corename())
	if !ok || !withoutAVX512(core, hasAVX512()) {
		return ""
	}
	return fmt.Sprintf("OPENBLAS_CORETYPE=%s holds OpenBLAS to its %s kernels, without AVX-512, on this AVX-512 CPU: unset it to let OpenBLAS choose (about 1.4× faster CPU training)", forced, core)
}

// hasAVX512 reports the AVX-512 subsets OpenBLAS's AVX-512 kernels use,
// enabled by the operating system.
func hasAVX512() bool {
	return cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL
}

// withoutAVX512 reports an OpenBLAS kernel set that leaves the AVX-512 of a
// CPU that has it unused.
func withoutAVX512(core string, avx512 bool) bool {
	switch strings.ToLower(core) {
	case "skylakex", "cooperlake", "sapphirerapids":
		return false
	}
	return avx512
}
