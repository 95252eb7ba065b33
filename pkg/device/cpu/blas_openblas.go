//go:build !purego

package cpu

// The netlib package declares no linker flags; this directive links OpenBLAS
// into every binary that imports package cpu, so `go build` needs no
// CGO_LDFLAGS.

// #cgo LDFLAGS: -lopenblas
// #include <cblas.h>
import "C"

import "gonum.org/v1/netlib/blas/netlib"

// blas32 is OpenBLAS through gonum's cgo binding.
var blas32 netlib.Implementation

// setBLASThreads sets the number of threads OpenBLAS uses for one call.
func setBLASThreads(n int) { C.openblas_set_num_threads(C.int(n)) }
