//go:build purego

package cpu

import "gonum.org/v1/gonum/blas/gonum"

// blas32 is gonum's pure-Go BLAS (build tag purego).
var blas32 gonum.Implementation

// setBLASThreads does nothing: gonum's BLAS has no thread setting.
func setBLASThreads(int) {}

// BLAS describes the BLAS library behind Gemm and the convolutions.
func BLAS() string { return "gonum's pure-Go BLAS (build tag purego)" }
