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
	rowBlock         = 256     // block-per-row kernels (softmax)
	// bnBlock is the block of the per-channel batch-norm kernels: a channel
	// holds N·HW elements (262 144 in ResNet-18's first stage at batch 256)
	// and there are as few as 64 channels, so each block must keep many
	// loads in flight.
	bnBlock   = 1024
	sumBlock  = 1024 // sum_f32 runs one block
	topNBlock = 1024 // TOPN_THREADS in topn.cu
	// sharedLimit is the dynamic shared memory a block may use without
	// opting in (cuFuncSetAttribute), on every GPU since compute 3.0.
	sharedLimit = 48 << 10
	mixMaxWarps = 8
	// convWorkspaceFloats bounds the im2col and GEMM-output workspace of
	// one convolution chunk (1 GiB, well inside a data-centre GPU's memory):
	// ResNet-18's 64-channel 32×32 layers at batch 256 run as one chunk.
	convWorkspaceFloats = 256 << 20
	// maxIndex bounds every buffer a conv kernel indexes (a chunk of x,
	// col, the GEMM output): the kernels use 32-bit index math.
	maxIndex = 1<<31 - 1
	// batchedMinP is the output-plane size P = OH·OW from which the forward
	// and backward-data GEMMs run per image as one strided-batched GEMM
	// that reads and writes the N×K×P layout directly, instead of one GEMM
	// over the chunk plus a reorder: each image's GEMM is then at least
	// 256 columns wide, enough for cuBLAS's tiles.
	batchedMinP = 256
	// splitKMaxSlices and splitKMinInner bound the split of the backward-
	// filter GEMM's inner dimension (split-K).
	splitKMaxSlices = 32
	splitKMinInner  = 1024
	// gemmTile is the output tile side assumed of cuBLAS's SGEMM kernels
	// when counting how many thread blocks a GEMM occupies.
	gemmTile = 128
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
// within budget floats and every buffer a kernel indexes (col, the GEMM
// output, the chunk of x) within maxIndex elements, at least one.
func convChunk(s device.ConvShape, budget int) int {
	p := s.OutH() * s.OutW()
	perImage := (s.C*s.R*s.S + s.K) * p
	largest := max(s.C*s.R*s.S*p, s.K*p, s.C*s.H*s.W)
	return max(1, min(s.N, budget/max(perImage, 1), maxIndex/max(largest, 1)))
}

// pointwise reports a 1×1, stride-1, unpadded convolution: its im2col
// matrix is each image's C×P plane itself.
func pointwise(s device.ConvShape) bool {
	return s.R == 1 && s.S == 1 && s.Stride == 1 && s.Pad == 0
}

// splitK is the number of slices of the backward-filter GEMM dw (k × crs)
// = Σ over inner columns: when its output covers few gemmTile² tiles (the
// early layers: 64 × 576 is 5 tiles on a GPU of sms multiprocessors), the
// inner dimension is cut into slices computed side by side by one batched
// GEMM and summed, so that about two thread blocks run per multiprocessor.
// Each slice keeps at least splitKMinInner columns.
func splitK(k, crs, inner, sms int) int {
	tiles := ceilDiv(k, gemmTile) * ceilDiv(crs, gemmTile)
	want := ceilDiv(2*sms, tiles)
	return max(1, min(want, splitKMaxSlices, inner/splitKMinInner))
}

// validConv reports a convolution shape the kernels cannot run.
func validConv(s device.ConvShape) error {
	if s.N < 1 || s.C < 1 || s.H < 1 || s.W < 1 || s.K < 1 || s.R < 1 || s.S < 1 || s.Stride < 1 || s.Pad < 0 {
		return fmt.Errorf("invalid convolution shape %+v: sizes and stride must be ≥ 1, padding ≥ 0", s)
	}
	if s.XBlock != 0 || s.YBlock != 0 {
		return fmt.Errorf("convolution shape %+v: %s", s, noBlocks)
	}
	if s.OutH() < 1 || s.OutW() < 1 {
		return fmt.Errorf("convolution shape %+v has an empty output", s)
	}
	p := s.OutH() * s.OutW()
	if s.C*s.H*s.W > maxIndex || s.C*s.R*s.S*p > maxIndex || s.K*p > maxIndex {
		return fmt.Errorf("convolution shape %+v: one image's input, im2col matrix or output exceeds %d elements, the kernels' 32-bit index range", s, maxIndex)
	}
	return nil
}

// noBlocks says why a shape with a channel block fails: this backend has
// no device.Blocked, so a plan compiled for it never passes one.
const noBlocks = "channel-blocked activations are the CPU backend's layout (device.Blocked); the CUDA kernels take NCHW only: compile the plan on this backend"

// validPool reports a pooling shape the kernels cannot run.
func validPool(s device.PoolShape) error {
	if s.N < 1 || s.C < 1 || s.H < 1 || s.W < 1 || s.Size < 1 || s.Stride < 1 || s.Pad < 0 {
		return fmt.Errorf("invalid pooling shape %+v: sizes and stride must be ≥ 1, padding ≥ 0", s)
	}
	if s.Block != 0 {
		return fmt.Errorf("pooling shape %+v: %s", s, noBlocks)
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
	if s.Block != 0 {
		return fmt.Errorf("batch-norm shape %+v: %s", s, noBlocks)
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
