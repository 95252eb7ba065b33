//go:build gpu

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/device/devicetest"
)

// These tests need an NVIDIA GPU (scripts/gpu-check.sh runs them there).

var (
	gpuOnce    sync.Once
	gpuBackend *Backend
	gpuErr     error
)

// gpu returns the test process's backend on GPU 0.
func gpu(t *testing.T) *Backend {
	t.Helper()
	gpuOnce.Do(func() { gpuBackend, gpuErr = New(0) })
	if gpuErr != nil {
		t.Fatalf("cuda.New(0): %v", gpuErr)
	}
	return gpuBackend
}

// TestConformance runs the suite every backend passes, with the default
// float32 tolerances (all ≤ 1e-4).
func TestConformance(t *testing.T) {
	b := gpu(t)
	t.Logf("GPU: %s", b.Device())
	devicetest.Run(t, b, devicetest.DefaultTolerances())
}

// relErr is devicetest's error measure, max |got − want|/max(|want|, rms(want)),
// with equal values (the −∞ of masked logits included) counting as exact.
func relErr(got, want []float32) float64 {
	var ss float64
	for _, w := range want {
		if !math.IsInf(float64(w), 0) {
			ss += float64(w) * float64(w)
		}
	}
	rms := math.Sqrt(ss / float64(max(len(want), 1)))
	worst := 0.0
	for i, w := range want {
		g := float64(got[i])
		if g == float64(w) { // equal, including the −∞ of masked logits
			continue
		}
		if math.IsNaN(g) || math.IsInf(g, 0) || math.IsInf(float64(w), 0) {
			return math.Inf(1)
		}
		if d := math.Abs(g - float64(w)); d > 0 {
			worst = math.Max(worst, d/math.Max(math.Abs(float64(w)), rms))
		}
	}
	return worst
}

// twinCase runs one kernel on a backend at a realistic size and returns its
// outputs; inputs come from the seeded rng, identical for both backends.
type twinCase struct {
	name string
	tol  float64
	run  func(be device.Backend, rng *rand.Rand) [][]float32
}

func randomSlice(rng *rand.Rand, n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		for x[i] == 0 {
			x[i] = float32(lo + (hi-lo)*rng.Float64())
		}
	}
	return x
}

func up(be device.Backend, x []float32) device.Buffer {
	b := be.Alloc(device.Float32, len(x))
	be.Upload(b, x)
	return b
}

func upInt(be device.Backend, x []int32) device.Buffer {
	b := be.Alloc(device.Int32, len(x))
	be.UploadInt32(b, x)
	return b
}

func down(be device.Backend, b device.Buffer) []float32 {
	x := make([]float32, b.Len())
	be.Download(x, b)
	return x
}

func downInt(be device.Backend, b device.Buffer) []float32 {
	x := make([]int32, b.Len())
	be.DownloadInt32(x, b)
	f := make([]float32, len(x))
	for i, v := range x {
		f[i] = float32(v)
	}
	return f
}

// twinCases are ResNet/MoCo-sized shapes: larger than the conformance
// suite's, where float32 accumulation order matters.
var twinCases = []twinCase{
	{"Gemm 256×4096×128 (q·queueᵀ)", 1e-4, func(be device.Backend, rng *rand.Rand) [][]float32 {
		q, k, c := up(be, randomSlice(rng, 256*128, -1, 1)), up(be, randomSlice(rng, 4096*128, -1, 1)), be.Alloc(device.Float32, 256*4096)
		be.Gemm(false, true, 256, 4096, 128, 1, q, k, 0, c)
		return [][]float32{down(be, c)}
	}},
	{"Conv2D 3×3 64→64 32×32 N=8 (fwd, data, filter)", 1e-4, func(be device.Backend, rng *rand.Rand) [][]float32 {
		s := device.ConvShape{N: 8, C: 64, H: 32, W: 32, K: 64, R: 3, S: 3, Stride: 1, Pad: 1}
		x, w := up(be, randomSlice(rng, 8*64*32*32, -1, 1)), up(be, randomSlice(rng, 64*64*9, -0.1, 0.1))
		dy := up(be, randomSlice(rng, 8*64*32*32, -1, 1))
		y, dx, dw := be.Alloc(device.Float32, 8*64*32*32), be.Alloc(device.Float32, 8*64*32*32), be.Alloc(device.Float32, 64*64*9)
		be.Conv2DForward(s, x, w, y)
		be.Conv2DBackwardData(s, dy, w, dx)
		be.Conv2DBackwardFilter(s, x, dy, dw)
		return [][]float32{down(be, y), down(be, dx), down(be, dw)}
	}},
	{"Conv2D 7×7/2 stem 3→64 64×64 N=4", 1e-4, func(be device.Backend, rng *rand.Rand) [][]float32 {
		s := device.ConvShape{N: 4, C: 3, H: 64, W: 64, K: 64, R: 7, S: 7, Stride: 2, Pad: 3}
		x, w := up(be, randomSlice(rng, 4*3*64*64, -1, 1)), up(be, randomSlice(rng, 64*3*49, -0.1, 0.1))
		ny := 4 * 64 * s.OutH() * s.OutW()
		dy := up(be, randomSlice(rng, ny, -1, 1))
		y, dx, dw := be.Alloc(device.Float32, ny), be.Alloc(device.Float32, 4*3*64*64), be.Alloc(device.Float32, 64*3*49)
		be.Conv2DForward(s, x, w, y)
		be.Conv2DBackwardData(s, dy, w, dx)
		be.Conv2DBackwardFilter(s, x, dy, dw)
		return [][]float32{down(be, y), down(be, dx), down(be, dw)}
	}},
	// Pointwise with P = 256: the strided-batched GEMMs without im2col.
	{"Conv2D 1×1 64→256 16×16 N=4 (pointwise, batched)", 1e-4, convCheck(device.ConvShape{N: 4, C: 64, H: 16, W: 16, K: 256, R: 1, S: 1, Stride: 1})},
	// P = 64 < batchedMinP: the chunk GEMM and the reorder kernels.
	{"Conv2D 3×3/2 32→64 16×16 N=6 (reorder path)", 1e-4, convCheck(device.ConvShape{N: 6, C: 32, H: 16, W: 16, K: 64, R: 3, S: 3, Stride: 2, Pad: 1})},
	{"BatchNorm split-BN G=4 N=64 C=32 HW=64 (train, backward)", 1e-4, func(be device.Backend, rng *rand.Rand) [][]float32 {
		s := device.BNShape{N: 64, C: 32, HW: 64, Groups: 4}
		n := 64 * 32 * 64
		x, dy := up(be, randomSlice(rng, n, -1, 3)), up(be, randomSlice(rng, n, -1, 1))
		g, bt := up(be, randomSlice(rng, 32, 0.5, 1.5)), up(be, randomSlice(rng, 32, -0.5, 0.5))
		rm, rv := up(be, randomSlice(rng, 32, -0.1, 0.1)), up(be, randomSlice(rng, 32, 0.5, 1.5))
		y, mean, inv := be.Alloc(device.Float32, n), be.Alloc(device.Float32, 4*32), be.Alloc(device.Float32, 4*32)
		dx, dg, db := be.Alloc(device.Float32, n), be.Alloc(device.Float32, 32), be.Alloc(device.Float32, 32)
		be.BatchNormTrain(s, x, g, bt, y, mean, inv, rm, rv, 0.1, 1e-5)
		be.BatchNormBackward(s, x, dy, g, mean, inv, dx, dg, db)
		return [][]float32{down(be, y), down(be, mean), down(be, inv), down(be, rm), down(be, rv), down(be, dx), down(be, dg), down(be, db)}
	}},
	{"MaxPool 3×3/2 N=8 C=64 32×32 (fwd, bwd)", 1e-5, func(be device.Backend, rng *rand.Rand) [][]float32 {
		s := device.PoolShape{N: 8, C: 64, H: 32, W: 32, Size: 3, Stride: 2, Pad: 1}
		x := up(be, randomSlice(rng, 8*64*32*32, -1, 1))
		ny := 8 * 64 * s.OutH() * s.OutW()
		dy := up(be, randomSlice(rng, ny, -1, 1))
		y, dx := be.Alloc(device.Float32, ny), be.Alloc(device.Float32, 8*64*32*32)
		be.MaxPoolForward(s, x, y)
		be.MaxPoolBackward(s, x, dy, dx)
		return [][]float32{down(be, y), down(be, dx)}
	}},
	{"SoftmaxCE 256×(1+16384) τ=0.2 (fwd, bwd)", 1e-4, func(be device.Backend, rng *rand.Rand) [][]float32 {
		const rows, cols = 256, 16385
		logits := up(be, randomSlice(rng, rows*cols, -1, 1))
		lab := make([]int32, rows) // MoCo: the positive is column 0
		labels := upInt(be, lab)
		loss, prob, d := be.Alloc(device.Float32, rows), be.Alloc(device.Float32, rows*cols), be.Alloc(device.Float32, rows*cols)
		be.SoftmaxCrossEntropy(rows, cols, 0.2, logits, labels, loss, prob)
		be.SoftmaxCrossEntropyBackward(rows, cols, 0.2, 1.0/rows, prob, labels, d)
		return [][]float32{down(be, loss), down(be, prob), down(be, d)}
	}},
	{"L2Normalize 256×128 (fwd, bwd) + RowDot", 1e-4, func(be device.Backend, rng *rand.Rand) [][]float32 {
		x, dy := up(be, randomSlice(rng, 256*128, -1, 1)), up(be, randomSlice(rng, 256*128, -1, 1))
		y, dx, rd := be.Alloc(device.Float32, 256*128), be.Alloc(device.Float32, 256*128), be.Alloc(device.Float32, 256)
		be.L2Normalize(256, 128, x, y)
		be.L2NormalizeBackward(256, 128, x, y, dy, dx)
		be.RowDot(256, 128, y, dy, rd)
		return [][]float32{down(be, y), down(be, dx), down(be, rd)}
	}},
	{"TopN 32×65536 n=1024 (exact)", 0, func(be device.Backend, rng *rand.Rand) [][]float32 {
		x, idx := up(be, randomSlice(rng, 32*65536, -1, 1)), be.Alloc(device.Int32, 32*1024)
		be.TopN(32, 65536, 1024, x, idx)
		return [][]float32{downInt(be, idx)}
	}},
	{"TopN 256×16384 n=1024, a third masked −∞ (exact)", 0, func(be device.Backend, rng *rand.Rand) [][]float32 {
		x := randomSlice(rng, 256*16384, -1, 1)
		for i := range x {
			if rng.IntN(3) == 0 {
				x[i] = float32(math.Inf(-1))
			}
		}
		idx := be.Alloc(device.Int32, 256*1024)
		be.TopN(256, 16384, 1024, up(be, x), idx)
		return [][]float32{downInt(be, idx)}
	}},
	{"CopyCols, MaskEqual, ScaleRows 256×(1+16384+1280) (exact)", 0, func(be device.Backend, rng *rand.Rand) [][]float32 {
		const b, k, e = 256, 16384, 1280
		const w = 1 + k + e
		lpos, lneg, extra := up(be, randomSlice(rng, b, -1, 1)), up(be, randomSlice(rng, b*k, -1, 1)), up(be, randomSlice(rng, b*e, -1, 1))
		labels := func(n int) []float32 {
			l := make([]float32, n)
			for i := range l {
				l[i] = float32(rng.IntN(11) - 1)
			}
			return l
		}
		rowLab, colLab := up(be, labels(b)), up(be, labels(w))
		logits, block := be.Alloc(device.Float32, b*w), be.Alloc(device.Float32, b*k)
		be.CopyCols(b, 1, 0, w, 0, 1, lpos, logits)
		be.CopyCols(b, k, 0, w, 1, k, lneg, logits)
		be.CopyCols(b, e, 0, w, 1+k, e, extra, logits)
		be.MaskEqual(b, w, rowLab, colLab, logits, float32(math.Inf(-1)))
		be.CopyCols(b, w, 1, k, 0, k, logits, block)
		be.ScaleRows(1, b*k, up(be, []float32{-0.37}), block, block)
		// relErr counts ±Inf as a failure: mark the masked entries with 42,
		// outside the random values' range, on both backends.
		l, bl := down(be, logits), down(be, block)
		for _, x := range [][]float32{l, bl} {
			for i, v := range x {
				if math.IsInf(float64(v), -1) {
					x[i] = 42
				}
			}
		}
		return [][]float32{l, bl}
	}},
	mixTwin(device.MixShape{B: 64, D: 128, K: 4096, N: 256, S: 256, SPrime: 64}, false),
	mixTwin(device.MixShape{B: 64, D: 128, K: 4096, N: 256, S: 256, SPrime: 64}, true),
	mixTwin(device.MixShape{B: 256, D: 128, K: 16384, N: 1024, S: 1024, SPrime: 256}, false),
	mixTwin(device.MixShape{B: 256, D: 128, K: 16384, N: 1024, S: 1024, SPrime: 256}, true),
	{"SGDStep Nesterov + MomentumUpdate n=1M", 1e-5, func(be device.Backend, rng *rand.Rand) [][]float32 {
		const n = 1 << 20
		p, g, v := up(be, randomSlice(rng, n, -1, 1)), up(be, randomSlice(rng, n, -1, 1)), be.Alloc(device.Float32, n)
		k := up(be, randomSlice(rng, n, -1, 1))
		be.SGDStep(device.SGDParams{LR: 0.03, Momentum: 0.9, WeightDecay: 1e-4, Nesterov: true}, p, g, v)
		be.MomentumUpdate(0.999, p, k)
		return [][]float32{down(be, p), down(be, v), down(be, k)}
	}},
}

// mixInputs is one MoCHi step's inputs, built on the host so that both
// backends see the same top-N list. Computing sim = q·queueᵀ and its top N
// on each backend instead lets float32 rounding (≈1e-7) swap two nearly
// equal similarities: the ranks pairI/pairJ/negJ then name different queue
// rows, and the logits of the two backends differ by ~0.1 though both
// kernels are right (the first GPU run's "MixLogits 0.128" was exactly
// this; TopN itself agrees exactly on identical input).
type mixInputs struct {
	q, queue, sim, plan, dout []float32
	top                       []int32
}

// newMixInputs draws unit-norm q (B×D) and queue (K×D), sim = q·queueᵀ in
// float64, top = the N largest of each sim row (ties to the lower index) in
// index order, and a random plan packed as pkg/hardneg's MixDraw.Tensor:
// B×(3S+2S′), row [i…, j…, α…, j′…, β…].
func newMixInputs(s device.MixShape, rng *rand.Rand) mixInputs {
	unit := func(rows int) []float32 {
		x := randomSlice(rng, rows*s.D, -1, 1)
		for r := 0; r < rows; r++ {
			v := x[r*s.D : (r+1)*s.D]
			var ss float64
			for _, e := range v {
				ss += float64(e) * float64(e)
			}
			for i := range v {
				v[i] = float32(float64(v[i]) / math.Sqrt(ss))
			}
		}
		return x
	}
	in := mixInputs{q: unit(s.B), queue: unit(s.K), sim: make([]float32, s.B*s.K), top: make([]int32, 0, s.B*s.N)}
	order := make([]int32, s.K)
	for b := 0; b < s.B; b++ {
		qb, row := in.q[b*s.D:(b+1)*s.D], in.sim[b*s.K:(b+1)*s.K]
		for k := range row {
			var d float64
			for i, e := range in.queue[k*s.D : (k+1)*s.D] {
				d += float64(qb[i]) * float64(e)
			}
			row[k] = float32(d)
			order[k] = int32(k)
		}
		sort.SliceStable(order, func(i, j int) bool { return row[order[i]] > row[order[j]] })
		kept := append([]int32(nil), order[:s.N]...)
		sort.Slice(kept, func(i, j int) bool { return kept[i] < kept[j] })
		in.top = append(in.top, kept...)
	}
	in.plan = make([]float32, 0, s.B*s.DrawCols())
	ranks := func(n int) {
		for t := 0; t < n; t++ {
			in.plan = append(in.plan, float32(rng.IntN(s.N)))
		}
	}
	for b := 0; b < s.B; b++ { // row b: i…, j…, α…, j′…, β…
		ranks(2 * s.S)
		in.plan = append(in.plan, randomSlice(rng, s.S, 0, 1)...)
		ranks(s.SPrime)
		in.plan = append(in.plan, randomSlice(rng, s.SPrime, 0, 0.5)...)
	}
	in.dout = randomSlice(rng, s.B*(s.S+s.SPrime), -1, 1)
	return in
}

// mixTwin compares MixLogits (backward = false) or MixLogitsBackward with
// the path through q (backward = true) at shape s, on host-built inputs.
func mixTwin(s device.MixShape, backward bool) twinCase {
	name := fmt.Sprintf("MixLogits B=%d D=%d K=%d N=%d S=%d S′=%d (fwd)", s.B, s.D, s.K, s.N, s.S, s.SPrime)
	if backward {
		name = name[:len(name)-len("(fwd)")] + "(bwd)"
	}
	return twinCase{name, 1e-4, func(be device.Backend, rng *rand.Rand) [][]float32 {
		in := newMixInputs(s, rng)
		q, queue, top, plan := up(be, in.q), up(be, in.queue), upInt(be, in.top), up(be, in.plan)
		if backward {
			dq := be.Alloc(device.Float32, s.B*s.D)
			be.MixLogitsBackward(s, q, queue, top, plan, up(be, in.dout), true, dq)
			return [][]float32{down(be, dq)}
		}
		out := be.Alloc(device.Float32, s.B*(s.S+s.SPrime))
		be.MixLogits(s, q, queue, up(be, in.sim), top, plan, out)
		return [][]float32{down(be, out)}
	}}
}

// TestAgainstCPU compares every kernel family with the CPU backend on the
// same random inputs and prints the relative error table (go test -v).
func TestAgainstCPU(t *testing.T) {
	g := gpu(t)
	c := cpu.New(0)
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-62s %12s %10s\n", "kernel (GPU vs CPU, "+g.Device()+")", "max rel err", "tolerance")
	for _, tc := range twinCases {
		want := tc.run(c, rand.New(rand.NewPCG(1, 2)))
		got := tc.run(g, rand.New(rand.NewPCG(1, 2)))
		if err := g.Sync(); err != nil {
			t.Errorf("%s: Sync: %v", tc.name, err)
			continue
		}
		worst := 0.0
		for i := range want {
			worst = math.Max(worst, relErr(got[i], want[i]))
		}
		status := "ok"
		if !(worst <= tc.tol) {
			status = "FAIL"
			t.Errorf("%s: relative error %.3g > %.3g", tc.name, worst, tc.tol)
		}
		fmt.Fprintf(&table, "%-62s %12.3g %10.0e %s\n", tc.name, worst, tc.tol, status)
	}
	t.Log(table.String())
}

// TestTopNLarge checks TopN at MoCo's queue size K = 65536 with N = 1024
// and N = 8192, with many ties, against a host sort by (value desc, index
// asc) whose first N indices are then listed in index order.
func TestTopNLarge(t *testing.T) {
	b := gpu(t)
	const rows, cols = 8, 65536
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(rng.IntN(4096)) / 4096 // 16 copies of each value on average
	}
	xb := up(b, x)
	defer b.Free(xb)
	for _, n := range []int{1024, 8192} {
		idx := b.Alloc(device.Int32, rows*n)
		b.TopN(rows, cols, n, xb, idx)
		got := make([]int32, rows*n)
		b.DownloadInt32(got, idx)
		b.Free(idx)
		if err := b.Sync(); err != nil {
			t.Fatalf("TopN n=%d: %v", n, err)
		}
		for r := 0; r < rows; r++ {
			order := make([]int32, cols)
			for i := range order {
				order[i] = int32(i)
			}
			row := x[r*cols : (r+1)*cols]
			sort.SliceStable(order, func(i, j int) bool { return row[order[i]] > row[order[j]] })
			want := order[:n]
			sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
			for i := 0; i < n; i++ {
				if got[r*n+i] != want[i] {
					t.Fatalf("TopN n=%d row %d position %d: index %d, want %d", n, r, i, got[r*n+i], want[i])
				}
			}
		}
	}
}

// TestDevicePoolReuse: a second identical "step" allocates nothing new, and
// reused memory is zero-filled again.
func TestDevicePoolReuse(t *testing.T) {
	b := gpu(t)
	step := func() {
		var bufs []device.Buffer
		for _, n := range []int{1000, 1000, 123457, 7} {
			x := b.Alloc(device.Float32, n)
			if got := down(b, x); got[0] != 0 || got[n-1] != 0 {
				t.Errorf("Alloc(%d) reused memory without zeroing it", n)
			}
			b.Fill(x, 3)
			bufs = append(bufs, x)
		}
		for _, x := range bufs {
			b.Free(x)
		}
	}
	step()
	before := b.PoolStats()
	step()
	after := b.PoolStats()
	if after.Misses != before.Misses || after.Hits != before.Hits+4 {
		t.Errorf("second identical step: pool %+v → %+v, want 4 more hits and no new misses", before, after)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestStickyError: a bad call is reported once by the next Sync, launches
// nothing, and the backend keeps working.
func TestStickyError(t *testing.T) {
	b := gpu(t)
	x, y := b.Alloc(device.Float32, 10), b.Alloc(device.Float32, 5)
	defer b.Free(x)
	defer b.Free(y)
	b.Upload(y, []float32{1, 2, 3, 4, 5})
	b.ReLU(x, y) // y is too short for x
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "ReLU") {
		t.Errorf("Sync after a ReLU on a too-short output: %v, want an error naming ReLU", err)
	}
	if got := down(b, y); got[4] != 5 {
		t.Errorf("the rejected ReLU wrote into y: %v", got)
	}
	if err := b.Sync(); err != nil {
		t.Errorf("second Sync: %v, want nil (the error is reported once)", err)
	}
	freed := b.Alloc(device.Float32, 3)
	b.Free(freed)
	b.Fill(freed, 1)
	if err := b.Sync(); err == nil || !strings.Contains(err.Error(), "after Free") {
		t.Errorf("Fill after Free: Sync gave %v", err)
	}
	b.Fill(x, 2)
	if got := down(b, x); got[9] != 2 {
		t.Errorf("backend broken after an error: Fill gave %v", got)
	}
}

// TestConcurrentCallers: the backend serialises calls from many goroutines.
func TestConcurrentCallers(t *testing.T) {
	b := gpu(t)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			x := b.Alloc(device.Float32, 4096)
			defer b.Free(x)
			for i := 0; i < 50; i++ {
				b.Fill(x, float32(w))
				b.Scale(2, x)
				if got := down(b, x); got[4095] != float32(2*w) {
					errs <- fmt.Sprintf("goroutine %d: got %v, want %v", w, got[4095], 2*w)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkConv3x3 times a ResNet-18 CIFAR layer-1 convolution at batch 256.
func BenchmarkConv3x3(bm *testing.B) {
	b, err := New(0)
	if err != nil {
		bm.Skip(err)
	}
	defer b.Close()
	s := device.ConvShape{N: 256, C: 64, H: 32, W: 32, K: 64, R: 3, S: 3, Stride: 1, Pad: 1}
	x, w, y := b.Alloc(device.Float32, 256*64*1024), b.Alloc(device.Float32, 64*64*9), b.Alloc(device.Float32, 256*64*1024)
	b.Fill(x, 1)
	b.Fill(w, 0.01)
	if err := b.Sync(); err != nil {
		bm.Fatal(err)
	}
	bm.ResetTimer()
	for i := 0; i < bm.N; i++ {
		b.Conv2DForward(s, x, w, y)
	}
	if err := b.Sync(); err != nil {
		bm.Fatal(err)
	}
}

// convCheck runs the three passes of a convolution of shape s on random
// data and returns y, dx and dw.
func convCheck(s device.ConvShape) func(be device.Backend, rng *rand.Rand) [][]float32 {
	return func(be device.Backend, rng *rand.Rand) [][]float32 {
		nx, nw, ny := s.N*s.C*s.H*s.W, s.K*s.C*s.R*s.S, s.N*s.K*s.OutH()*s.OutW()
		x, w := up(be, randomSlice(rng, nx, -1, 1)), up(be, randomSlice(rng, nw, -0.1, 0.1))
		dy := up(be, randomSlice(rng, ny, -1, 1))
		y, dx, dw := be.Alloc(device.Float32, ny), be.Alloc(device.Float32, nx), be.Alloc(device.Float32, nw)
		be.Conv2DForward(s, x, w, y)
		be.Conv2DBackwardData(s, dy, w, dx)
		be.Conv2DBackwardFilter(s, x, dy, dw)
		return [][]float32{down(be, y), down(be, dx), down(be, dw)}
	}
}
