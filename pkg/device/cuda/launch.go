package cuda

import (
	"fmt"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// launchConfig is a kernel's grid and block (x, and y for sum_rows) and its
// dynamic shared memory in bytes.
type launchConfig struct {
	gridX, blockX, blockY, shared int
}

// Block sizes the kernels are written for (see kernels/*.cu).
const (
	elementwiseBlock = 256     // one thread per element, grid-stride
	maxGrid          = 1 << 16 // grid-stride loops cover larger n
	warpsPerBlock    = 8       // warp-per-row kernels: 256 threads
	rowBlock         = 256     // block-per-row kernels (softmax, BN)
	sumBlock         = 1024    // sum_f32 runs one block
	topNBlock        = 1024    // TOPN_THREADS in topn.cu
	// sharedLimit is the dynamic shared memory a block may use without
	// opting in (cuFuncSetAttribute), on every GPU since compute 3.0.
	sharedLimit = 48 << 10
	// topNSharedKeys bounds the sort keys topn_f32 keeps in shared memory
	// (8 bytes each, beside ~1.2 KiB of static shared memory).
	topNSharedKeys = 4096
	mixMaxWarps    = 8
	// convWorkspaceFloats bounds the im2col and GEMM-output workspace of
	// one convolution chunk (256 MiB).
	convWorkspaceFloats = 64 << 20
)

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// elementwise launches one thread per element of n (grid-stride beyond
// maxGrid blocks); n = 0 gives an empty grid, which launch skips.
func elementwise(n int) launchConfig {
	return launchConfig{gridX: min(ceilDiv(n, elementwiseBlock), maxGrid), blockX: elementwiseBlock, blockY: 1}
}

// warpRows launches one warp per row, warpsPerBlock rows per block.
func warpRows(rows int) launchConfig {
	return launchConfig{gridX: ceilDiv(rows, warpsPerBlock), blockX: 32 * warpsPerBlock, blockY: 1}
}

// blockRows launches one block of threads per row.
func blockRows(rows, threads int) launchConfig {
	return launchConfig{gridX: rows, blockX: threads, blockY: 1}
}

// sumRowsLaunch is sum_rows_f32's 32×8 block per 32 columns.
func sumRowsLaunch(cols int) launchConfig {
	return launchConfig{gridX: ceilDiv(cols, 32), blockX: 32, blockY: 8}
}

// nextPow2 is the smallest power of two ≥ n (n ≥ 1).
func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}

// topNPlan is the launch of topn_f32 for rows × cols keeping n: the sort
// keys (npow2 of them per row) live in shared memory when they fit, else in
// a global scratch of rows × npow2 keys (global = true).
func topNPlan(rows, n int) (lc launchConfig, npow2 int, global bool) {
	npow2 = nextPow2(n)
	lc = blockRows(rows, topNBlock)
	if npow2 <= topNSharedKeys {
		lc.shared = 8 * npow2
		return lc, npow2, false
	}
	return lc, npow2, true
}

// mixBackwardLaunch is mix_logits_backward_f32's launch: a block per query
// with as many warps (≤ mixMaxWarps) as have room for a D-float
// accumulator each in shared memory.
func mixBackwardLaunch(b, d int) (launchConfig, error) {
	warps := min(mixMaxWarps, sharedLimit/(4*max(d, 1)))
	if warps < 1 {
		return launchConfig{}, fmt.Errorf("feature dimension D = %d exceeds the %d the MixLogitsBackward kernel supports", d, sharedLimit/4)
	}
	return launchConfig{gridX: b, blockX: 32 * warps, blockY: 1, shared: 4 * d * warps}, nil
}

// convChunk is how many images one im2col + GEMM pass takes: as many as
// keep the workspace (col, C·R·S × nb·P, plus the GEMM output, K × nb·P)
// within budget floats, at least one.
func convChunk(s device.ConvShape, budget int) int {
	p := s.OutH() * s.OutW()
	perImage := (s.C*s.R*s.S + s.K) * p
	return max(1, min(s.N, budget/max(perImage, 1)))
}

// validConv reports a convolution shape the kernels cannot run.
func validConv(s device.ConvShape) error {
	if s.N < 1 || s.C < 1 || s.H < 1 || s.W < 1 || s.K < 1 || s.R < 1 || s.S < 1 || s.Stride < 1 || s.Pad < 0 {
		return fmt.Errorf("invalid convolution shape %+v: sizes and stride must be ≥ 1, padding ≥ 0", s)
	}
	if s.OutH() < 1 || s.OutW() < 1 {
		return fmt.Errorf("convolution shape %+v has an empty output", s)
	}
	return nil
}

// validPool reports a pooling shape the kernels cannot run.
func validPool(s device.PoolShape) error {
	if s.N < 1 || s.C < 1 || s.H < 1 || s.W < 1 || s.Size < 1 || s.Stride < 1 || s.Pad < 0 {
		return fmt.Errorf("invalid pooling shape %+v: sizes and stride must be ≥ 1, padding ≥ 0", s)
	}
	if s.OutH() < 1 || s.OutW() < 1 {
		return fmt.Errorf("pooling shape %+v has an empty output", s)
	}
	return nil
}

// validBN reports a batch-norm shape the kernels cannot run.
func validBN(s device.BNShape) error {
	if s.N < 1 || s.C < 1 || s.HW < 1 || s.Groups < 1 || s.N%s.Groups != 0 {
		return fmt.Errorf("invalid batch-norm shape %+v: sizes ≥ 1 and N a multiple of Groups", s)
	}
	return nil
}

// validMix reports a MoCHi shape the kernels cannot run.
func validMix(s device.MixShape) error {
	if s.B < 0 || s.D < 1 || s.K < 1 || s.N < 1 || s.N > s.K || s.S < 0 || s.SPrime < 0 {
		return fmt.Errorf("invalid mixing shape %+v: need D, K ≥ 1, 1 ≤ N ≤ K, S, S′ ≥ 0", s)
	}
	return nil
}
