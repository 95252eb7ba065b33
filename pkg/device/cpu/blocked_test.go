//go:build !purego

package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// toBlocked reorders x, N×C×HW in NCHW, into channel blocks of b
// (device.Blocked's layout); fromBlocked is its inverse.
func toBlocked(x []float32, n, c, hw, b int) []float32 {
	y := make([]float32, len(x))
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			for p := 0; p < hw; p++ {
				y[((i*(c/b)+ch/b)*hw+p)*b+ch%b] = x[(i*c+ch)*hw+p]
			}
		}
	}
	return y
}

func fromBlocked(y []float32, n, c, hw, b int) []float32 {
	x := make([]float32, len(y))
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			for p := 0; p < hw; p++ {
				x[(i*c+ch)*hw+p] = y[((i*(c/b)+ch/b)*hw+p)*b+ch%b]
			}
		}
	}
	return x
}

func randomFloats(rng *rand.Rand, n int, offset float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(offset + 2*rng.Float64() - 1)
	}
	return x
}

// within reports the first element where got and want differ by more than
// tol·max(1, |want|), or −1.
func within(got, want []float32, tol float64) int {
	for i := range want {
		if math.Abs(float64(got[i])-float64(want[i])) > tol*max(1, math.Abs(float64(want[i]))) {
			return i
		}
	}
	return -1
}

// TestBlockedBatchNormMatchesPlain runs every batch-norm kernel (alone,
// with the fused ReLU, with the fused residual sum and ReLU) on
// channel-blocked activations and on the same
// values in NCHW. The blocked kernels add each channel's float32 values in
// float64 in another order than the plain ones; with at most a few hundred
// values a channel the float64 sums differ by ~1e-14 relatively, so their
// float32 roundings (mean, invStd, the coefficients) differ by at most one
// ulp, and the outputs by a few float32 ulps: 1e-6 relative to
// max(1, |value|) holds with a wide margin and catches any wrong element,
// channel or formula.
func TestBlockedBatchNormMatchesPlain(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 1))
	const tol = 1e-6
	for _, s := range []device.BNShape{
		{N: 4, C: 16, HW: 9, Groups: 1},
		{N: 6, C: 32, HW: 5, Groups: 2},
		{N: 3, C: 16, HW: 1, Groups: 1},
	} {
		for _, block := range []int{8, 16} {
			if s.C%block != 0 {
				continue
			}
			for _, fused := range []string{"", "ReLU", "AddReLU"} {
				bs := s
				bs.Block = block
				n, c, gc := s.N*s.C*s.HW, s.C, s.Groups*s.C
				x, dy, r := randomFloats(rng, n, 3), randomFloats(rng, n, 0), randomFloats(rng, n, 0)
				gamma, beta := randomFloats(rng, c, 1), randomFloats(rng, c, 0)
				runMean, runVar := randomFloats(rng, c, 0), randomFloats(rng, c, 2)
				type result struct{ y, mean, inv, rm, rv, yInfer, dx, dr, dg, db []float32 }
				run := func(s device.BNShape, x, dy, r []float32) result {
					be := newFine(3)
					res := result{y: make([]float32, n), mean: make([]float32, gc), inv: make([]float32, gc),
						rm: append([]float32(nil), runMean...), rv: append([]float32(nil), runVar...),
						yInfer: make([]float32, n), dx: make([]float32, n), dr: make([]float32, n), dg: make([]float32, c), db: make([]float32, c)}
					X, G, B, Y, DY := Wrap(x), Wrap(gamma), Wrap(beta), Wrap(res.y), Wrap(dy)
					M, I, RM, RV, DX, DG, DB := Wrap(res.mean), Wrap(res.inv), Wrap(res.rm), Wrap(res.rv), Wrap(res.dx), Wrap(res.dg), Wrap(res.db)
					switch fused {
					case "":
						be.BatchNormTrain(s, X, G, B, Y, M, I, RM, RV, 0.1, 1e-5)
						be.BatchNormInfer(s, X, G, B, Wrap(runMean), Wrap(runVar), Wrap(res.yInfer), 1e-5)
						be.BatchNormBackward(s, X, DY, G, M, I, DX, DG, DB)
					case "ReLU":
						be.BatchNormReLUTrain(s, X, G, B, Y, M, I, RM, RV, 0.1, 1e-5)
						be.BatchNormReLUInfer(s, X, G, B, Wrap(runMean), Wrap(runVar), Wrap(res.yInfer), 1e-5)
						be.BatchNormReLUBackward(s, X, Y, DY, G, M, I, DX, DG, DB)
					default:
						be.BatchNormAddReLUTrain(s, X, G, B, Wrap(r), Y, M, I, RM, RV, 0.1, 1e-5)
						be.BatchNormAddReLUInfer(s, X, G, B, Wrap(r), Wrap(runMean), Wrap(runVar), Wrap(res.yInfer), 1e-5)
						be.BatchNormAddReLUBackward(s, X, Y, DY, G, M, I, DX, Wrap(res.dr), DG, DB)
					}
					if err := be.Sync(); err != nil {
						t.Fatal(err)
					}
					return res
				}
				want := run(s, x, dy, r)
				blk := func(v []float32) []float32 { return toBlocked(v, s.N, s.C, s.HW, block) }
				unblk := func(v []float32) []float32 { return fromBlocked(v, s.N, s.C, s.HW, block) }
				got := run(bs, blk(x), blk(dy), blk(r))
				for _, v := range []struct {
					name      string
					got, want []float32
				}{
					{"y", unblk(got.y), want.y},
					{"mean", got.mean, want.mean},
					{"invStd", got.inv, want.inv},
					{"runMean", got.rm, want.rm},
					{"runVar", got.rv, want.rv},
					{"inference y", unblk(got.yInfer), want.yInfer},
					{"dx", unblk(got.dx), want.dx},
					{"dr", unblk(got.dr), want.dr},
					{"dgamma", got.dg, want.dg},
					{"dbeta", got.db, want.db},
				} {
					if i := within(v.got, v.want, tol); i >= 0 {
						t.Errorf("BatchNorm%s %+v: blocked %s[%d] = %v, plain %v", fused, bs, v.name, i, v.got[i], v.want[i])
					}
				}
			}
		}
	}
}

// TestBlockedMaxPoolMatchesPlain: the pooling on channel-blocked
// activations compares the same values in the same order as in NCHW, so
// both directions agree bit for bit.
func TestBlockedMaxPoolMatchesPlain(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 1))
	s := device.PoolShape{N: 3, C: 16, H: 7, W: 6, Size: 3, Stride: 2, Pad: 1}
	in, out := s.N*s.C*s.H*s.W, s.N*s.C*s.OutH()*s.OutW()
	x, dy := randomFloats(rng, in, 0), randomFloats(rng, out, 0)
	for i := range x { // ties: the first maximum of a window takes the gradient
		x[i] = float32(math.Round(float64(x[i]) * 2))
	}
	want, wantDx := make([]float32, out), make([]float32, in)
	be := newFine(3)
	be.MaxPoolForward(s, Wrap(x), Wrap(want))
	be.MaxPoolBackward(s, Wrap(x), Wrap(dy), Wrap(wantDx))
	for _, block := range []int{8, 16} {
		bs := s
		bs.Block = block
		y, dx := make([]float32, out), make([]float32, in)
		bx := toBlocked(x, s.N, s.C, s.H*s.W, block)
		be.MaxPoolForward(bs, Wrap(bx), Wrap(y))
		be.MaxPoolBackward(bs, Wrap(bx), Wrap(toBlocked(dy, s.N, s.C, s.OutH()*s.OutW(), block)), Wrap(dx))
		if err := be.Sync(); err != nil {
			t.Fatal(err)
		}
		if i := within(fromBlocked(y, s.N, s.C, s.OutH()*s.OutW(), block), want, 0); i >= 0 {
			t.Errorf("block %d: y[%d] differs", block, i)
		}
		if i := within(fromBlocked(dx, s.N, s.C, s.H*s.W, block), wantDx, 0); i >= 0 {
			t.Errorf("block %d: dx[%d] differs", block, i)
		}
	}
}

// TestBlockedConvMatchesPlain runs oneDNN's kernels (modes direct and
// winograd: direct, or oneDNN's Winograd on a CPU that has it) with the
// activations in the blocks ConvBlocks names and in NCHW: the same kernel
// on the same values (only the reorders differ), so the three passes agree
// bit for bit. It also checks where ConvBlocks says NCHW: mode blas and
// the shapes mochi's Winograd runs in mode auto, where a blocked shape is
// an error.
func TestBlockedConvMatchesPlain(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 1))
	be := newFine(2)
	for _, mode := range []ConvMode{ConvDirect, ConvWinograd} {
		if err := be.SetConvMode(mode); err != nil {
			t.Fatal(err)
		}
		checkBlockedConvs(t, be, rng)
	}
	// oneDNN reorders no blocked activation: the primitives' user layouts
	// are their own.
	for k, p := range be.dnnl.convs.prims {
		x, y := 0, 2 // mochi_conv's operands: forward (x, w, y)
		switch k.op {
		case convBackwardData: // (dy, w, dx)
			x, y = 2, 0
		case convBackwardFilter: // (x, dy, dw)
			x, y = 0, 1
		}
		if p.conv != nil && (k.s.XBlock != 0 && p.conv.reorder[x] != nil || k.s.YBlock != 0 && p.conv.reorder[y] != nil) {
			t.Errorf("%s %+v: oneDNN reorders a blocked activation", opName(k.op), k.s)
		}
	}

	wino := device.ConvShape{N: 2, C: 64, H: 8, W: 8, K: 64, R: 3, S: 3, Stride: 1, Pad: 1}
	for _, m := range []ConvMode{ConvAuto, ConvBLAS} {
		if err := be.SetConvMode(m); err != nil {
			t.Fatal(err)
		}
		if x, y := be.ConvBlocks(wino); x != 0 || y != 0 {
			t.Errorf("mode %s: ConvBlocks(%+v) = %d, %d; mochi's Winograd and im2col take NCHW", m, wino, x, y)
		}
		bs := wino
		bs.XBlock, bs.YBlock = 8, 8
		buf := func(n int) device.Buffer { return be.Alloc(device.Float32, n) }
		be.Conv2DForward(bs, buf(2*64*64), buf(64*64*9), buf(2*64*64))
		if err := be.Sync(); err == nil || !strings.Contains(err.Error(), "channel blocks") {
			t.Errorf("mode %s: a blocked shape for NCHW kernels gave error %v, want one naming the channel blocks", m, err)
		}
	}
}

// checkBlockedConvs is TestBlockedConvMatchesPlain's comparison in be's
// mode.
func checkBlockedConvs(t *testing.T, be *Backend, rng *rand.Rand) {
	t.Helper()
	for _, s := range []device.ConvShape{
		{N: 3, C: 16, H: 9, W: 8, K: 16, R: 3, S: 3, Stride: 1, Pad: 1},
		{N: 3, C: 3, H: 9, W: 8, K: 16, R: 3, S: 3, Stride: 1, Pad: 1}, // the RGB stem: x stays NCHW
		{N: 2, C: 16, H: 8, W: 8, K: 32, R: 1, S: 1, Stride: 2, Pad: 0},
	} {
		xb, yb := be.ConvBlocks(s)
		if yb == 0 || (s.C%8 == 0) != (xb != 0) {
			t.Errorf("mode %s %+v: ConvBlocks = %d, %d; oneDNN's kernels block the channels that are a multiple of 8", be.ConvMode(), s, xb, yb)
			continue
		}
		bs := s
		bs.XBlock, bs.YBlock = xb, yb
		nx, nw, ny := s.N*s.C*s.H*s.W, s.K*s.C*s.R*s.S, s.N*s.K*s.OutH()*s.OutW()
		x, w, dy := randomFloats(rng, nx, 0), randomFloats(rng, nw, 0), randomFloats(rng, ny, 0)
		block := func(v []float32, c, hw, b int) []float32 {
			if b == 0 {
				return v
			}
			return toBlocked(v, s.N, c, hw, b)
		}
		unblock := func(v []float32, c, hw, b int) []float32 {
			if b == 0 {
				return v
			}
			return fromBlocked(v, s.N, c, hw, b)
		}
		hw, ohw := s.H*s.W, s.OutH()*s.OutW()
		var got, want [3][]float32
		for k, sh := range []device.ConvShape{s, bs} {
			r := [3][]float32{make([]float32, ny), make([]float32, nx), make([]float32, nw)}
			bx, bdy := block(x, s.C, hw, sh.XBlock), block(dy, s.K, ohw, sh.YBlock)
			be.Conv2DForward(sh, Wrap(bx), Wrap(w), Wrap(r[0]))
			be.Conv2DBackwardData(sh, Wrap(bdy), Wrap(w), Wrap(r[1]))
			be.Conv2DBackwardFilter(sh, Wrap(bx), Wrap(bdy), Wrap(r[2]))
			if err := be.Sync(); err != nil {
				t.Fatal(err)
			}
			r[0], r[1] = unblock(r[0], s.K, ohw, sh.YBlock), unblock(r[1], s.C, hw, sh.XBlock)
			if k == 0 {
				want = r
			} else {
				got = r
			}
		}
		for i, name := range []string{"y", "dx", "dw"} {
			if j := within(got[i], want[i], 0); j >= 0 {
				t.Errorf("mode %s %+v: blocked %s[%d] = %v, plain %v", be.ConvMode(), bs, name, j, got[i][j], want[i][j])
			}
		}
	}
}

// BenchmarkBatchNormBlocked: the fused batch norm + ReLU, forward and
// backward, at the ResNet-18's 16- and 32-channel stages of base width 16
// on two threads, in NCHW (block 0) and in oneDNN's nChw8c (block 8): the
// blocked kernels must not cost more than the reorders they spare.
func BenchmarkBatchNormBlocked(b *testing.B) {
	for _, s := range []device.BNShape{{N: benchBatch, C: 16, HW: 32 * 32, Groups: 1}, {N: benchBatch, C: 32, HW: 16 * 16, Groups: 1}} {
		n := s.N * s.C * s.HW
		be := New(2)
		x, y, dy, dx := benchRandom(n), benchRandom(n), benchRandom(n), benchRandom(n)
		gamma, beta, rm, rv := benchRandom(s.C), benchRandom(s.C), benchRandom(s.C), benchRandom(s.C)
		mean, inv, dg, db := benchRandom(s.C), benchRandom(s.C), benchRandom(s.C), benchRandom(s.C)
		for _, block := range []int{0, 8} {
			s.Block = block
			b.Run(fmt.Sprintf("TrainReLU/C=%d/block=%d", s.C, block), func(b *testing.B) {
				b.SetBytes(int64(8 * n))
				for b.Loop() {
					be.BatchNormReLUTrain(s, x, gamma, beta, y, mean, inv, rm, rv, 0.1, 1e-5)
				}
			})
			b.Run(fmt.Sprintf("BackwardReLU/C=%d/block=%d", s.C, block), func(b *testing.B) {
				b.SetBytes(int64(16 * n))
				for b.Loop() {
					be.BatchNormReLUBackward(s, x, y, dy, gamma, mean, inv, dx, dg, db)
				}
			})
		}
	}
}
