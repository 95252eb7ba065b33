// Package devicetest is the conformance suite every device.Backend must pass,
// in the style of gonum's blas/testblas: a backend's test is one line,
//
//	func TestConformance(t *testing.T) { devicetest.Run(t, cpu.New(2), devicetest.DefaultTolerances()) }
//
// # Overview
//
// Run checks every kernel of device.Backend against plain float64 reference
// implementations written here (naive loops, independent of any backend) on
// seeded random data and several shapes per kernel: odd sizes, stride 2,
// padding, batch 1, split-BN groups 1/2/4, TopN with ties and N = cols,
// kernels on views with offsets. It also checks the buffer contract: Alloc
// zero-fills, Upload/Download round-trip, View reads and writes the right
// elements, Sync reports no error after a good run.
//
// # Invariants
//
// Every output buffer is poisoned with NaN before the kernel runs, so an
// element a kernel fails to write shows as NaN and fails the comparison.
// Elements of a buffer outside the range a kernel may write are checked to be
// unchanged. The gradient references are verified against central finite
// differences of the forward references in float64 (this package's own
// tests), so a backend that matches them has correct gradients.
//
// Errors are measured per element as |got − want| / max(|want|, rms(want)):
// a relative error for elements of typical size, and an error relative to
// the buffer's typical magnitude where cancellation makes an element near
// zero. Tolerances says the bound for each family of kernels and why.
package devicetest
