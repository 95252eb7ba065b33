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
// the CPU unless OPENBLAS_CORETYPE names a set, so the variable is named when
// it is set. Either way the results are right to float32 rounding.
func BLAS() string {
	s := strings.TrimSpace(C.GoString(C.openblas_get_config())) + ", kernels " + C.GoString(C.openblas_get_corename())
	if v, ok := os.LookupEnv("OPENBLAS_CORETYPE"); ok {
		s += " (chosen by OPENBLAS_CORETYPE=" + v + ")"
	}
	return s
}
