// Package vec holds AVX2 loops for the CPU backend's elementwise and
// batch-norm kernels (pkg/device/cpu), in Go assembly, which a cgo
// package cannot hold itself.
//
// Each function runs its kernel on the longest prefix of the input that
// its loop takes — a multiple of 8 elements (4 for the sums) — and
// returns the length of that prefix; the caller's scalar Go loop does the
// rest, and all of it where AVX2 is missing (or off, or the build is not
// amd64, or has the purego tag), when every function returns 0. A loop
// gives bit for bit what the caller's scalar loop gives over the same
// elements: the same float32 operations in the same order, no FMA (Go
// does not fuse on amd64), and the sums keep the scalar loop's four
// float64 partial sums as the four lanes of one accumulator.
//
//	ReLU(x, y)                   y = max(x, 0), as Go's max
//	ReLUBackward(x, y, z)        z = y where x's bits as an int32 are ≥ 1, else +0
//	Add(x, y, z)                 z = x + y
//	Affine(x, y, a, b)           y = a·x + b
//	BNBackward(x, dy, dx, k, c2, mu, inv, c3)
//	                             dx = k·((dy − c2) − ((x − mu)·inv)·c3)
//	SumLanes(x, &s)              s[i%4] += x[i], in the order of i
//	SqDevLanes(x, mu, &s)        s[i%4] += (x[i] − mu)², in float64
//	SumsDyXhat(x, dy, mu, inv, &s)
//	                             s[i%2] += dy[i], s[2+i%2] += dy[i]·x̂[i],
//	                             x̂[i] = (x[i] − mu)·inv in float32
//
// len(x) sets the length; the other slices must be at least as long.
package vec
