//go:build !purego

package cpu

// char *openblas_get_corename(void);
// char *openblas_get_config(void);
import "C"

import (
	"os"
	"strings"
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
