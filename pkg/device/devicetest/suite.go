package devicetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mochi-ssl/mochi/internal/numconv"
	"github.com/mochi-ssl/mochi/pkg/device"
)

// Tolerances bounds the error measure (see the package comment) of each
// family of kernels. Kernels that only move, select or compare values (Copy,
// Fill, ReLU and its backward, MaxPoolForward, TopN, Upload/Download) must
// match exactly and have no entry.
type Tolerances struct {
	// Elementwise bounds kernels that round a few float32 operations per
	// element (Scale, Axpy, Add, AddRowVector, BatchNormInfer, the pooling
	// backwards, SoftmaxCrossEntropyBackward, SGDStep over three steps,
	// MomentumUpdate).
	Elementwise float64
	// Reduction bounds kernels that sum a row or a vector in float32 (Sum,
	// SumRows, RowDot, GlobalAvgPool, L2Normalize and its backward,
	// SoftmaxCrossEntropy with its exp and log).
	Reduction float64
	// Gemm bounds Gemm and the three convolution kernels: dot products of
	// up to a few hundred terms here, whose float32 rounding grows with the
	// length and whose summation order differs between backends.
	Gemm float64
	// BatchNorm bounds the three batch-norm kernels and the running
	// statistics: reductions, a square root, and in the backward the
	// cancellation M·dy − Σdy − x̂·Σdy·x̂.
	BatchNorm float64
	// Mix bounds MixLogits and MixLogitsBackward: the closed form reads the
	// similarities from a float32 sim and divides by a norm built from three
	// dot products, against the reference's explicit D-dimensional vectors.
	Mix float64
}

// DefaultTolerances are the bounds for a float32 backend. Every entry is at
// most 1e-4, the float32 relative error the GPU backend targets; the
// elementwise kernels round only a handful of operations (float32 ulp is
// 1.2e-7), so 1e-5 leaves room for fused multiply-adds and approximate
// reciprocal square roots while still catching a wrong formula.
func DefaultTolerances() Tolerances {
	return Tolerances{Elementwise: 1e-5, Reduction: 1e-4, Gemm: 1e-4, BatchNorm: 1e-4, Mix: 1e-4}
}

// Run runs the whole conformance suite on be as subtests of t.
func Run(t *testing.T, be device.Backend, tol Tolerances) {
	for _, c := range []struct {
		name string
		f    func(h *harness, tol Tolerances)
	}{
		{"Buffers", testBuffers},
		{"Views", testViews},
		{"Copy", testCopy},
		{"Fill", testFill},
		{"Scale", testScale},
		{"Axpy", testAxpy},
		{"Add", testAdd},
		{"Sum", testSum},
		{"Gemm", testGemm},
		{"AddRowVector", testAddRowVector},
		{"SumRows", testSumRows},
		{"RowDot", testRowDot},
		{"Conv2D", testConv2D},
		{"BatchNorm", testBatchNorm},
		{"BatchNormReLU", testBatchNormReLU},
		{"ReLU", testReLU},
		{"MaxPool", testMaxPool},
		{"GlobalAvgPool", testGlobalAvgPool},
		{"L2Normalize", testL2Normalize},
		{"SoftmaxCrossEntropy", testSoftmaxCE},
		{"TopN", testTopN},
		{"MixLogits", testMixLogits},
		{"ScaleRows", testScaleRows},
		{"CopyCols", testCopyCols},
		{"MaskEqual", testMaskEqual},
		{"SGDStep", testSGD},
		{"MomentumUpdate", testMomentumUpdate},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &harness{t: t, be: be, rng: rand.New(rand.NewPCG(uint64(len(c.name)), 0x6d6f6368))}
			defer h.freeAll()
			c.f(h, tol)
			if err := be.Sync(); err != nil {
				t.Errorf("Sync after a good run: %v", err)
			}
		})
	}
}

// harness allocates the buffers of one subtest and compares results.
type harness struct {
	t    *testing.T
	be   device.Backend
	rng  *rand.Rand
	bufs []device.Buffer
}

func (h *harness) freeAll() {
	for _, b := range h.bufs {
		h.be.Free(b)
	}
}

func (h *harness) alloc(dt device.DType, n int) device.Buffer {
	b := h.be.Alloc(dt, n)
	h.bufs = append(h.bufs, b)
	return b
}

// random returns n float32 values uniform in [lo, hi), never exactly zero.
func (h *harness) random(n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		for x[i] == 0 {
			x[i] = float32(lo + (hi-lo)*h.rng.Float64())
		}
	}
	return x
}

// upload allocates a buffer holding x.
func (h *harness) upload(x []float32) device.Buffer {
	b := h.alloc(device.Float32, len(x))
	h.be.Upload(b, x)
	return b
}

// uploadInt32 allocates an Int32 buffer holding x.
func (h *harness) uploadInt32(x []int32) device.Buffer {
	b := h.alloc(device.Int32, len(x))
	h.be.UploadInt32(b, x)
	return b
}

// poisoned allocates an output buffer of n elements filled with NaN.
func (h *harness) poisoned(n int) device.Buffer {
	return h.upload(nanSlice(n))
}

// poisonedInt32 allocates an Int32 output buffer filled with −1.
func (h *harness) poisonedInt32(n int) device.Buffer {
	x := make([]int32, n)
	for i := range x {
		x[i] = -1
	}
	return h.uploadInt32(x)
}

func (h *harness) download(b device.Buffer) []float32 {
	x := make([]float32, b.Len())
	h.be.Download(x, b)
	return x
}

func (h *harness) downloadInt32(b device.Buffer) []int32 {
	x := make([]int32, b.Len())
	h.be.DownloadInt32(x, b)
	return x
}

// check compares a buffer with the reference under tol and reports the
// worst element.
func (h *harness) check(what string, b device.Buffer, want []float64, tol float64) {
	h.t.Helper()
	got := h.download(b)
	if len(got) < len(want) {
		h.t.Fatalf("%s: buffer has %d elements, want %d", what, len(got), len(want))
	}
	if e, i := relErr(got[:len(want)], want); !(e <= tol) {
		h.t.Errorf("%s: error %.3g > %.3g at element %d of %d: got %v, want %v", what, e, tol, i, len(want), got[i], want[i])
	}
}

// checkExact requires bitwise-equal float32 values.
func (h *harness) checkExact(what string, got []float32, want []float32) {
	h.t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			h.t.Errorf("%s: element %d of %d is %v, want exactly %v", what, i, len(want), got[i], want[i])
			return
		}
	}
}

// relErr returns max_i |got_i − want_i| / max(|want_i|, rms(want)) and the
// worst index; a NaN in got gives +Inf.
func relErr(got []float32, want []float64) (float64, int) {
	var ss float64
	for _, w := range want {
		ss += w * w
	}
	rms := math.Sqrt(ss / float64(max(len(want), 1)))
	worst, at := 0.0, 0
	for i, w := range want {
		g := float64(got[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			return math.Inf(1), i
		}
		d := math.Abs(g - w)
		if d == 0 {
			continue
		}
		e := d / math.Max(math.Abs(w), rms)
		if e > worst {
			worst, at = e, i
		}
	}
	return worst, at
}

func nanSlice(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	return x
}

var (
	f64 = numconv.Slice[float64, float32]
	f32 = numconv.Slice[float32, float64]
)

// testBuffers: Alloc zero-fills (also memory reused after Free), reports its
// length and type, and Upload/Download round-trip exactly.
func testBuffers(h *harness, _ Tolerances) {
	for _, n := range []int{1, 7, 4099} {
		for _, dt := range []device.DType{device.Float32, device.Int32} {
			b := h.be.Alloc(dt, n)
			if b.Len() != n || b.DType() != dt {
				h.t.Errorf("Alloc(%v, %d) has Len %d, DType %v", dt, n, b.Len(), b.DType())
			}
			if dt == device.Float32 {
				h.be.Upload(b, h.random(n, -1, 1))
			} else {
				h.be.UploadInt32(b, make([]int32, n))
			}
			h.be.Free(b)
			b = h.alloc(dt, n)
			if dt == device.Float32 {
				for i, v := range h.download(b) {
					if v != 0 || math.Signbit(float64(v)) {
						h.t.Fatalf("Alloc(Float32, %d): element %d is %v, want +0", n, i, v)
					}
				}
			} else {
				for i, v := range h.downloadInt32(b) {
					if v != 0 {
						h.t.Fatalf("Alloc(Int32, %d): element %d is %v, want 0", n, i, v)
					}
				}
			}
		}
		x := h.random(n, -3, 3)
		b := h.alloc(device.Float32, n+3)
		h.be.Upload(b, x)
		got := make([]float32, n)
		h.be.Download(got, b)
		h.checkExact(fmt.Sprintf("Upload/Download n=%d", n), got, x)
		if tail := h.download(b)[n:]; tail[0] != 0 || tail[1] != 0 || tail[2] != 0 {
			h.t.Errorf("Upload of %d elements wrote past them: %v", n, tail)
		}
		xi := make([]int32, n)
		for i := range xi {
			xi[i] = int32(h.rng.IntN(1<<31)) - 1<<30
		}
		bi := h.uploadInt32(xi)
		for i, v := range h.downloadInt32(bi) {
			if v != xi[i] {
				h.t.Fatalf("UploadInt32/DownloadInt32 n=%d: element %d is %d, want %d", n, i, v, xi[i])
			}
		}
	}
}

// testViews: a view of a view reads and writes exactly its elements of the
// parent, and kernels on views leave the rest of the parent alone.
func testViews(h *harness, tol Tolerances) {
	base := h.random(40, -1, 1)
	b := h.upload(base)
	v := h.be.View(b, 5, 30)
	w := h.be.View(v, 3, 10) // parent elements [8, 18)
	if v.Len() != 30 || w.Len() != 10 || w.DType() != device.Float32 {
		h.t.Fatalf("View lengths %d, %d (type %v), want 30, 10 (float32)", v.Len(), w.Len(), w.DType())
	}
	h.checkExact("Download of a view", h.download(w), base[8:18])
	src := h.random(4, 5, 6)
	h.be.Upload(h.be.View(w, 2, 4), src) // parent [10, 14)
	want := append([]float32(nil), base...)
	copy(want[10:14], src)
	h.checkExact("Upload into a view", h.download(b), want)
	h.be.Scale(2, w)
	for i := 8; i < 18; i++ {
		want[i] *= 2
	}
	h.check("Scale on a view", b, f64(want), tol.Elementwise)
	h.checkExact("Scale on a view leaves the rest", h.download(b)[:8], want[:8])
	h.checkExact("Scale on a view leaves the rest", h.download(b)[18:], want[18:])

	xi := []int32{1, 2, 3, 4, 5, 6, 7}
	bi := h.uploadInt32(xi)
	vi := h.be.View(bi, 2, 3)
	if vi.DType() != device.Int32 {
		h.t.Errorf("View of an Int32 buffer has type %v", vi.DType())
	}
	h.be.UploadInt32(vi, []int32{-1, -2})
	got := h.downloadInt32(bi)
	if fmt.Sprint(got) != fmt.Sprint([]int32{1, 2, -1, -2, 5, 6, 7}) {
		h.t.Errorf("UploadInt32 into a view: parent is %v", got)
	}
}

func testCopy(h *harness, _ Tolerances) {
	for _, n := range []int{1, 13, 10007} {
		x := h.random(n, -2, 2)
		dst := h.poisoned(n + 2)
		h.be.Copy(dst, h.upload(x))
		got := h.download(dst)
		h.checkExact(fmt.Sprintf("Copy n=%d", n), got[:n], x)
		if !math.IsNaN(float64(got[n])) || !math.IsNaN(float64(got[n+1])) {
			h.t.Errorf("Copy n=%d wrote past src.Len(): %v", n, got[n:])
		}
	}
}

func testFill(h *harness, _ Tolerances) {
	for _, n := range []int{1, 17, 10007} {
		b := h.poisoned(n + 4)
		h.be.Fill(h.be.View(b, 2, n), -0.75)
		got := h.download(b)
		want := nanSlice(n + 4)
		for i := 2; i < n+2; i++ {
			want[i] = -0.75
		}
		for i := range want {
			if got[i] != want[i] && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
				h.t.Fatalf("Fill n=%d on a view at 2: element %d is %v, want %v", n, i, got[i], want[i])
			}
		}
	}
}

func testScale(h *harness, tol Tolerances) {
	for _, n := range []int{1, 19, 10007} {
		x := h.random(n, -2, 2)
		b := h.upload(x)
		h.be.Scale(-1.7, b)
		want := f64(x)
		for i := range want {
			want[i] *= float64(float32(-1.7))
		}
		h.check(fmt.Sprintf("Scale n=%d", n), b, want, tol.Elementwise)
	}
}

func testAxpy(h *harness, tol Tolerances) {
	for _, n := range []int{1, 23, 10007} {
		x, y := h.random(n, -2, 2), h.random(n+3, -2, 2)
		yb := h.upload(y)
		h.be.Axpy(0.3, h.upload(x), yb)
		want := f64(y)
		for i := range x {
			want[i] += float64(float32(0.3)) * float64(x[i])
		}
		h.check(fmt.Sprintf("Axpy n=%d (y longer than x)", n), yb, want, tol.Elementwise)
	}
}

func testAdd(h *harness, tol Tolerances) {
	for _, n := range []int{1, 29, 10007} {
		a, b := h.random(n, -2, 2), h.random(n, -2, 2)
		want := f64(a)
		for i := range want {
			want[i] += float64(b[i])
		}
		out := h.poisoned(n)
		h.be.Add(h.upload(a), h.upload(b), out)
		h.check(fmt.Sprintf("Add n=%d", n), out, want, tol.Elementwise)
		ab := h.upload(a)
		h.be.Add(ab, h.upload(b), ab)
		h.check(fmt.Sprintf("Add n=%d with out aliasing a", n), ab, want, tol.Elementwise)
	}
}

func testSum(h *harness, tol Tolerances) {
	for _, n := range []int{1, 31, 10007} {
		x := h.random(n, -1, 2)
		var s float64
		for _, v := range x {
			s += float64(v)
		}
		out := h.poisoned(3)
		h.be.Sum(h.upload(x), h.be.View(out, 1, 1))
		got := h.download(out)
		h.check(fmt.Sprintf("Sum n=%d", n), h.be.View(out, 1, 1), []float64{s}, tol.Reduction)
		if !math.IsNaN(float64(got[0])) || !math.IsNaN(float64(got[2])) {
			h.t.Errorf("Sum into a 1-element view wrote outside it: %v", got)
		}
	}
}

func testGemm(h *harness, tol Tolerances) {
	for _, sz := range [][3]int{{1, 1, 1}, {5, 7, 3}, {1, 9, 4}, {17, 13, 31}, {64, 3, 128}, {33, 65, 17}} {
		m, n, k := sz[0], sz[1], sz[2]
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			for _, ab := range [][2]float32{{1, 0}, {-1.5, 0}, {0.5, 1}, {1, -0.25}} {
				alpha, beta := ab[0], ab[1]
				name := fmt.Sprintf("Gemm m=%d n=%d k=%d tA=%v tB=%v α=%v β=%v", m, n, k, tr[0], tr[1], alpha, beta)
				a, b := h.random(m*k, -1, 1), h.random(k*n, -1, 1)
				// a and b sit at offsets in larger buffers, c in a view.
				ab, bb := h.upload(append(h.random(3, -1, 1), a...)), h.upload(append(h.random(5, -1, 1), b...))
				var c []float32
				cb := h.poisoned(m*n + 2)
				want := make([]float64, m*n)
				if beta != 0 {
					c = h.random(m*n, -1, 1)
					h.be.Upload(h.be.View(cb, 1, m*n), c)
					want = f64(c)
				}
				refGemm(tr[0], tr[1], m, n, k, float64(alpha), f64(a), f64(b), float64(beta), want)
				cv := h.be.View(cb, 1, m*n)
				h.be.Gemm(tr[0], tr[1], m, n, k, alpha, h.be.View(ab, 3, m*k), h.be.View(bb, 5, k*n), beta, cv)
				h.check(name, cv, want, tol.Gemm)
				if got := h.download(cb); !math.IsNaN(float64(got[0])) || !math.IsNaN(float64(got[m*n+1])) {
					h.t.Errorf("%s wrote outside c", name)
				}
			}
		}
	}
}

func testAddRowVector(h *harness, tol Tolerances) {
	for _, sz := range [][2]int{{1, 1}, {5, 7}, {64, 129}} {
		rows, cols := sz[0], sz[1]
		y, v := h.random(rows*cols, -1, 1), h.random(cols, -1, 1)
		want := f64(y)
		for i := range want {
			want[i] += float64(v[i%cols])
		}
		yb := h.upload(y)
		h.be.AddRowVector(rows, cols, h.upload(v), yb)
		h.check(fmt.Sprintf("AddRowVector %d×%d", rows, cols), yb, want, tol.Elementwise)
	}
}

func testSumRows(h *harness, tol Tolerances) {
	for _, sz := range [][2]int{{1, 1}, {5, 7}, {257, 33}, {3, 1000}} {
		rows, cols := sz[0], sz[1]
		x := h.random(rows*cols, -1, 1)
		want := make([]float64, cols)
		for i, v := range x {
			want[i%cols] += float64(v)
		}
		out := h.poisoned(cols)
		h.be.SumRows(rows, cols, h.upload(x), out)
		h.check(fmt.Sprintf("SumRows %d×%d", rows, cols), out, want, tol.Reduction)
	}
}

func testRowDot(h *harness, tol Tolerances) {
	for _, sz := range [][2]int{{1, 1}, {5, 7}, {64, 128}, {3, 1001}} {
		rows, cols := sz[0], sz[1]
		a, b := h.random(rows*cols, -1, 1), h.random(rows*cols, -1, 1)
		want := make([]float64, rows)
		for i := range a {
			want[i/cols] += float64(a[i]) * float64(b[i])
		}
		out := h.poisoned(rows)
		h.be.RowDot(rows, cols, h.upload(a), h.upload(b), out)
		h.check(fmt.Sprintf("RowDot %d×%d", rows, cols), out, want, tol.Reduction)
	}
}

// convShapes cover 3×3 with padding, stride 2, 1×1 (direct GEMM paths),
// 1×1 stride 2 (ResNet downsampling), the 7×7/2 stem, a non-square filter
// without padding, batch 1 and enough channels to cross blocking sizes.
var convShapes = []device.ConvShape{
	{N: 2, C: 3, H: 7, W: 5, K: 4, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: 1, C: 5, H: 9, W: 8, K: 6, R: 3, S: 3, Stride: 2, Pad: 1},
	{N: 3, C: 4, H: 6, W: 6, K: 5, R: 1, S: 1, Stride: 1, Pad: 0},
	{N: 2, C: 3, H: 8, W: 7, K: 4, R: 1, S: 1, Stride: 2, Pad: 0},
	{N: 2, C: 3, H: 11, W: 11, K: 8, R: 7, S: 7, Stride: 2, Pad: 3},
	{N: 1, C: 2, H: 5, W: 6, K: 3, R: 3, S: 2, Stride: 1, Pad: 0},
	{N: 2, C: 16, H: 8, W: 8, K: 32, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: 3, C: 8, H: 4, W: 4, K: 8, R: 3, S: 3, Stride: 1, Pad: 1},
}

func testConv2D(h *harness, tol Tolerances) {
	for _, s := range convShapes {
		name := fmt.Sprintf("%+v", s)
		x := h.random(s.N*s.C*s.H*s.W, -1, 1)
		w := h.random(s.K*s.C*s.R*s.S, -1, 1)
		ny := s.N * s.K * s.OutH() * s.OutW()
		dy := h.random(ny, -1, 1)
		xb, wb, dyb := h.upload(x), h.upload(w), h.upload(dy)

		y := h.poisoned(ny)
		h.be.Conv2DForward(s, xb, wb, y)
		h.check("Conv2DForward "+name, y, refConvForward(s, f64(x), f64(w)), tol.Gemm)

		wantDx, wantDw := refConvBackward(s, f64(x), f64(w), f64(dy))
		dx := h.poisoned(len(x))
		h.be.Conv2DBackwardData(s, dyb, wb, dx)
		h.check("Conv2DBackwardData "+name, dx, wantDx, tol.Gemm)
		dw := h.poisoned(len(w))
		h.be.Conv2DBackwardFilter(s, xb, dyb, dw)
		h.check("Conv2DBackwardFilter "+name, dw, wantDw, tol.Gemm)

		// Repeat on the same backend to catch workspace state left behind.
		h.be.Upload(dx, nanSlice(len(x)))
		h.be.Conv2DBackwardData(s, dyb, wb, dx)
		h.check("Conv2DBackwardData (second call) "+name, dx, wantDx, tol.Gemm)
	}
}

// bnShapes cover ordinary BN, split-BN with 2 and 4 groups, the fully
// connected case HW = 1, batch 1 and a group of a single sample.
var bnShapes = []device.BNShape{
	{N: 4, C: 3, HW: 5, Groups: 1},
	{N: 8, C: 2, HW: 9, Groups: 2},
	{N: 8, C: 5, HW: 1, Groups: 4},
	{N: 1, C: 3, HW: 7, Groups: 1},
	{N: 12, C: 3, HW: 16, Groups: 4},
	{N: 4, C: 6, HW: 3, Groups: 4},
}

func testBatchNorm(h *harness, tol Tolerances) {
	const momentum, eps = 0.1, 1e-5
	for _, s := range bnShapes {
		name := fmt.Sprintf("%+v", s)
		n := s.N * s.C * s.HW
		x := h.random(n, -1, 3)
		gamma, beta := h.random(s.C, 0.5, 1.5), h.random(s.C, -0.5, 0.5)
		rm, rv := h.random(s.C, -0.2, 0.2), h.random(s.C, 0.5, 1.5)
		dy := h.random(n, -1, 1)
		xb, gb, bb, dyb := h.upload(x), h.upload(gamma), h.upload(beta), h.upload(dy)
		rmb, rvb := h.upload(rm), h.upload(rv)

		wantY, wantMean, wantInv, wantRM, wantRV := refBNTrain(s, f64(x), f64(gamma), f64(beta), f64(rm), f64(rv), momentum, float64(float32(eps)))
		y, mean, inv := h.poisoned(n), h.poisoned(s.Groups*s.C), h.poisoned(s.Groups*s.C)
		h.be.BatchNormTrain(s, xb, gb, bb, y, mean, inv, rmb, rvb, momentum, eps)
		h.check("BatchNormTrain y "+name, y, wantY, tol.BatchNorm)
		h.check("BatchNormTrain mean "+name, mean, wantMean, tol.BatchNorm)
		h.check("BatchNormTrain invStd "+name, inv, wantInv, tol.BatchNorm)
		h.check("BatchNormTrain runMean "+name, rmb, wantRM, tol.BatchNorm)
		h.check("BatchNormTrain runVar "+name, rvb, wantRV, tol.BatchNorm)

		// The backward reads the forward's mean and invStd as the backend
		// wrote them; the reference uses its own (equal within tolerance).
		wantDx, wantDg, wantDb := refBNBackward(s, f64(x), f64(dy), f64(gamma), wantMean, wantInv)
		dx, dg, db := h.poisoned(n), h.poisoned(s.C), h.poisoned(s.C)
		h.be.BatchNormBackward(s, xb, dyb, gb, mean, inv, dx, dg, db)
		h.check("BatchNormBackward dx "+name, dx, wantDx, tol.BatchNorm)
		h.check("BatchNormBackward dgamma "+name, dg, wantDg, tol.BatchNorm)
		h.check("BatchNormBackward dbeta "+name, db, wantDb, tol.BatchNorm)

		yi := h.poisoned(n)
		h.be.BatchNormInfer(s, xb, gb, bb, rmb, rvb, yi, eps)
		h.check("BatchNormInfer "+name, yi, refBNInfer(s, f64(x), f64(gamma), f64(beta), wantRM, wantRV, float64(float32(eps))), tol.Elementwise+tol.BatchNorm)
	}
}

// testBatchNormReLU: a backend with the device.BatchNormReLU ability gives
// bit for bit what its BatchNorm and ReLU kernels give in turn, and one
// with device.BatchNormAddReLU what BatchNorm, Add (a residual r) and ReLU
// give (backward: ReLUBackward into dr, then BatchNormBackward), over
// bnShapes (split-BN included) and a plane of 20 elements, longer than a
// vector of 8 with a tail. A backend without the abilities has nothing to
// check.
func testBatchNormReLU(h *harness, _ Tolerances) {
	plain, _ := h.be.(device.BatchNormReLU)
	residual, _ := h.be.(device.BatchNormAddReLU)
	if plain == nil && residual == nil {
		return
	}
	const momentum, eps = 0.1, 1e-5
	for _, s := range append(bnShapes, device.BNShape{N: 4, C: 3, HW: 20, Groups: 2}) {
		name := fmt.Sprintf("%+v", s)
		n := s.N * s.C * s.HW
		x, r, dy := h.random(n, -1, 3), h.random(n, -2, 1), h.random(n, -1, 1)
		gamma, beta := h.random(s.C, 0.5, 1.5), h.random(s.C, -0.5, 0.5)
		rm, rv := h.random(s.C, -0.2, 0.2), h.random(s.C, 0.5, 1.5)
		xb, rb, gb, bb, dyb := h.upload(x), h.upload(r), h.upload(gamma), h.upload(beta), h.upload(dy)
		// run gives y, mean, invStd, runMean, runVar, dx, dr, dgamma,
		// dbeta and the evaluation y that f writes.
		run := func(f func(y, mean, inv, rmb, rvb, dx, dr, dg, db, yi device.Buffer)) [][]float32 {
			y, mean, inv, yi := h.poisoned(n), h.poisoned(s.Groups*s.C), h.poisoned(s.Groups*s.C), h.poisoned(n)
			dx, dr, dg, db := h.poisoned(n), h.poisoned(n), h.poisoned(s.C), h.poisoned(s.C)
			rmb, rvb := h.upload(rm), h.upload(rv)
			f(y, mean, inv, rmb, rvb, dx, dr, dg, db, yi)
			var out [][]float32
			for _, b := range []device.Buffer{y, mean, inv, rmb, rvb, dx, dr, dg, db, yi} {
				out = append(out, h.download(b))
			}
			return out
		}
		// inTurn runs the separate kernels, adding r before the ReLU with add.
		inTurn := func(add bool) [][]float32 {
			return run(func(y, mean, inv, rmb, rvb, dx, dr, dg, db, yi device.Buffer) {
				h.be.BatchNormTrain(s, xb, gb, bb, y, mean, inv, rmb, rvb, momentum, eps)
				if add {
					h.be.Add(y, rb, y)
				}
				h.be.ReLU(y, y)
				h.be.ReLUBackward(y, dyb, dr)
				h.be.BatchNormBackward(s, xb, dr, gb, mean, inv, dx, dg, db)
				h.be.BatchNormInfer(s, xb, gb, bb, rmb, rvb, yi, eps)
				if add {
					h.be.Add(yi, rb, yi)
				}
				h.be.ReLU(yi, yi)
			})
		}
		compare := func(kernel string, got, want [][]float32, dr bool) {
			for i, what := range []string{"y", "mean", "invStd", "runMean", "runVar", "dx", "dr", "dgamma", "dbeta", "evaluation y"} {
				if what != "dr" || dr {
					h.checkExact(kernel+" "+what+" "+name, got[i], want[i])
				}
			}
		}
		if plain != nil {
			compare("BatchNormReLU", run(func(y, mean, inv, rmb, rvb, dx, _, dg, db, yi device.Buffer) {
				plain.BatchNormReLUTrain(s, xb, gb, bb, y, mean, inv, rmb, rvb, momentum, eps)
				plain.BatchNormReLUBackward(s, xb, y, dyb, gb, mean, inv, dx, dg, db)
				plain.BatchNormReLUInfer(s, xb, gb, bb, rmb, rvb, yi, eps)
			}), inTurn(false), false)
		}
		if residual != nil {
			compare("BatchNormAddReLU", run(func(y, mean, inv, rmb, rvb, dx, dr, dg, db, yi device.Buffer) {
				residual.BatchNormAddReLUTrain(s, xb, gb, bb, rb, y, mean, inv, rmb, rvb, momentum, eps)
				residual.BatchNormAddReLUBackward(s, xb, y, dyb, gb, mean, inv, dx, dr, dg, db)
				residual.BatchNormAddReLUInfer(s, xb, gb, bb, rb, rmb, rvb, yi, eps)
			}), inTurn(true), true)
		}
	}
}

func testReLU(h *harness, _ Tolerances) {
	for _, n := range []int{1, 37, 10007} {
		x := h.random(n, -1, 1)
		want := make([]float32, n)
		for i, v := range x {
			want[i] = max(v, 0)
		}
		y := h.poisoned(n)
		xb := h.upload(x)
		h.be.ReLU(xb, y)
		h.checkExact(fmt.Sprintf("ReLU n=%d", n), h.download(y), want)
		h.be.ReLU(xb, xb)
		h.checkExact(fmt.Sprintf("ReLU n=%d in place", n), h.download(xb), want)

		dy := h.random(n, -1, 1)
		wantDx := make([]float32, n)
		for i := range dy {
			if want[i] > 0 {
				wantDx[i] = dy[i]
			}
		}
		dx := h.poisoned(n)
		h.be.ReLUBackward(y, h.upload(dy), dx)
		h.checkExact(fmt.Sprintf("ReLUBackward n=%d", n), h.download(dx), wantDx)
	}
}

// poolShapes cover the ResNet stem pool (3×3/2 pad 1), non-overlapping 2×2,
// overlapping stride 1, and odd sizes.
var poolShapes = []device.PoolShape{
	{N: 2, C: 3, H: 7, W: 7, Size: 3, Stride: 2, Pad: 1},
	{N: 1, C: 2, H: 6, W: 5, Size: 2, Stride: 2, Pad: 0},
	{N: 2, C: 1, H: 5, W: 5, Size: 3, Stride: 1, Pad: 1},
	{N: 3, C: 4, H: 16, W: 16, Size: 3, Stride: 2, Pad: 1},
}

func testMaxPool(h *harness, tol Tolerances) {
	for _, s := range poolShapes {
		for _, ties := range []bool{false, true} {
			name := fmt.Sprintf("%+v ties=%v", s, ties)
			x := h.random(s.N*s.C*s.H*s.W, -1, 1)
			if ties { // three distinct values: most windows hold several maxima
				for i := range x {
					x[i] = float32(h.rng.IntN(3)) - 1
				}
			}
			ny := s.N * s.C * s.OutH() * s.OutW()
			dy := h.random(ny, -1, 1)
			xb := h.upload(x)
			wantY, _ := refMaxPool(s, f64(x))
			y := h.poisoned(ny)
			h.be.MaxPoolForward(s, xb, y)
			h.checkExact("MaxPoolForward "+name, h.download(y), f32(wantY))
			dx := h.poisoned(len(x))
			h.be.MaxPoolBackward(s, xb, h.upload(dy), dx)
			h.check("MaxPoolBackward "+name, dx, refMaxPoolBackward(s, f64(x), f64(dy)), tol.Elementwise)
		}
	}
}

func testGlobalAvgPool(h *harness, tol Tolerances) {
	for _, sz := range [][3]int{{1, 1, 1}, {2, 3, 5}, {4, 64, 16}, {1, 5, 49}} {
		n, c, hw := sz[0], sz[1], sz[2]
		x, dy := h.random(n*c*hw, -1, 2), h.random(n*c, -1, 1)
		y := h.poisoned(n * c)
		h.be.GlobalAvgPool(n, c, hw, h.upload(x), y)
		h.check(fmt.Sprintf("GlobalAvgPool %v", sz), y, refAvgPool(n*c, hw, f64(x)), tol.Reduction)
		dx := h.poisoned(n * c * hw)
		h.be.GlobalAvgPoolBackward(n, c, hw, h.upload(dy), dx)
		h.check(fmt.Sprintf("GlobalAvgPoolBackward %v", sz), dx, refAvgPoolBackward(n*c, hw, f64(dy)), tol.Elementwise)
	}
}

func testL2Normalize(h *harness, tol Tolerances) {
	for _, sz := range [][2]int{{1, 1}, {4, 9}, {3, 128}, {2, 1000}} {
		rows, cols := sz[0], sz[1]
		for _, tiny := range []bool{false, true} {
			x := h.random(rows*cols, -1, 1)
			if tiny { // the last row's norm is below the 1e-12 floor
				for i := (rows - 1) * cols; i < rows*cols; i++ {
					x[i] *= 1e-15
				}
			}
			name := fmt.Sprintf("%d×%d tiny=%v", rows, cols, tiny)
			dy := h.random(rows*cols, -1, 1)
			xb := h.upload(x)
			y := h.poisoned(rows * cols)
			h.be.L2Normalize(rows, cols, xb, y)
			h.check("L2Normalize "+name, y, refL2Normalize(rows, cols, f64(x)), tol.Reduction)
			dx := h.poisoned(rows * cols)
			h.be.L2NormalizeBackward(rows, cols, xb, y, h.upload(dy), dx)
			h.check("L2NormalizeBackward "+name, dx, refL2NormalizeBackward(rows, cols, f64(x), f64(dy)), tol.Reduction)
		}
	}
}

func testSoftmaxCE(h *harness, tol Tolerances) {
	for _, c := range []struct {
		rows, cols   int
		tau, scale   float32
		logitsFactor float64
	}{
		{1, 1, 1, 1, 1},
		{5, 7, 0.2, 1.0 / 5, 1},
		{3, 1000, 0.07, 0.5, 1},
		{4, 33, 0.05, 1, 30}, // logits/τ up to 600: needs the max subtracted
	} {
		name := fmt.Sprintf("%d×%d τ=%v", c.rows, c.cols, c.tau)
		logits := h.random(c.rows*c.cols, -c.logitsFactor, c.logitsFactor)
		labels := make([]int32, c.rows)
		for i := range labels {
			labels[i] = int32(h.rng.IntN(c.cols))
		}
		lb := h.uploadInt32(labels)
		loss, prob := h.poisoned(c.rows), h.poisoned(c.rows*c.cols)
		h.be.SoftmaxCrossEntropy(c.rows, c.cols, c.tau, h.upload(logits), lb, loss, prob)
		wantLoss, wantProb := refSoftmaxCE(c.rows, c.cols, float64(c.tau), f64(logits), labels)
		h.check("SoftmaxCrossEntropy loss "+name, loss, wantLoss, tol.Reduction)
		h.check("SoftmaxCrossEntropy prob "+name, prob, wantProb, tol.Reduction)
		d := h.poisoned(c.rows * c.cols)
		p := h.download(prob)
		h.be.SoftmaxCrossEntropyBackward(c.rows, c.cols, c.tau, c.scale, prob, lb, d)
		h.check("SoftmaxCrossEntropyBackward "+name, d, refSoftmaxCEBackward(c.rows, c.cols, float64(c.tau), float64(c.scale), f64(p), labels), tol.Elementwise)
	}
}

func testTopN(h *harness, _ Tolerances) {
	for _, c := range []struct {
		rows, cols, n int
		ties          bool
	}{
		{1, 1, 1, false},
		{4, 37, 5, false},
		{3, 10, 10, false}, // n = cols
		{5, 40, 12, true},  // values from 4 levels: ordered by index within a level
		{3, 8, 8, true},
		{2, 4096, 64, false},
		{2, 1000, 1, true},
		{4, 300, 20, false}, // a third of each row masked with −∞ (the class oracle)
	} {
		name := fmt.Sprintf("TopN %d×%d n=%d ties=%v", c.rows, c.cols, c.n, c.ties)
		x := h.random(c.rows*c.cols, -1, 1)
		if c.ties {
			for i := range x {
				x[i] = float32(h.rng.IntN(4)) / 4
			}
		}
		if c.rows == 4 && c.cols == 300 {
			for i := range x {
				if h.rng.IntN(3) == 0 {
					x[i] = float32(math.Inf(-1))
				}
			}
		}
		idx := h.poisonedInt32(c.rows * c.n)
		h.be.TopN(c.rows, c.cols, c.n, h.upload(x), idx)
		got, want := h.downloadInt32(idx), refTopN(c.rows, c.cols, c.n, f64(x))
		for i := range want {
			if got[i] != want[i] {
				h.t.Errorf("%s: row %d rank %d is %d, want %d", name, i/c.n, i%c.n, got[i], want[i])
				break
			}
		}
	}
}

// randomMixDraw draws a MoCHi mixing draw (i = j allowed) with top the reference
// top-N of sim.
func (h *harness) randomMixDraw(s device.MixShape, sim []float64) mixDraw {
	p := mixDraw{top: refTopN(s.B, s.K, s.N, sim)}
	for i := 0; i < s.B*s.S; i++ {
		p.pairI = append(p.pairI, int32(h.rng.IntN(s.N)))
		p.pairJ = append(p.pairJ, int32(h.rng.IntN(s.N)))
		p.alpha = append(p.alpha, float64(float32(h.rng.Float64())))
	}
	for i := 0; i < s.B*s.SPrime; i++ {
		p.negJ = append(p.negJ, int32(h.rng.IntN(s.N)))
		p.beta = append(p.beta, float64(float32(0.5*h.rng.Float64())))
	}
	return p
}

// mixShapes include S = 0 and S′ = 0, N = K and D = 128, and the shape of
// the first GPU run's CPU-twin table (B=64, K=4096, N=256, S=256, S′=64),
// where thousands of mixes per query share a block of the backward.
var mixShapes = []device.MixShape{
	{B: 3, D: 8, K: 20, N: 5, S: 4, SPrime: 3},
	{B: 1, D: 5, K: 6, N: 6, S: 7, SPrime: 0},
	{B: 2, D: 16, K: 30, N: 4, S: 0, SPrime: 5},
	{B: 4, D: 128, K: 256, N: 32, S: 16, SPrime: 8},
	{B: 64, D: 128, K: 4096, N: 256, S: 256, SPrime: 64},
}

// mixShapeLarge is a MoCo-sized step (S = N = 1024), checked unit-norm
// only and skipped with -short: its float64 reference takes about a second on one core.
var mixShapeLarge = device.MixShape{B: 64, D: 128, K: 16384, N: 1024, S: 1024, SPrime: 256}

func testMixLogits(h *harness, tol Tolerances) {
	shapes := mixShapes
	if !testing.Short() {
		shapes = append(shapes[:len(shapes):len(shapes)], mixShapeLarge)
	}
	for _, s := range shapes {
		for _, unit := range []bool{true, false} {
			if !unit && s == mixShapeLarge {
				continue
			}
			name := fmt.Sprintf("%+v unit=%v", s, unit)
			q := h.random(s.B*s.D, -1, 1)
			queue := h.random(s.K*s.D, -1, 1)
			if unit { // the training case: q and every queue row unit-norm
				q = f32(refL2Normalize(s.B, s.D, f64(q)))
				queue = f32(refL2Normalize(s.K, s.D, f64(queue)))
			}
			sim := make([]float64, s.B*s.K)
			refGemm(false, true, s.B, s.K, s.D, 1, f64(q), f64(queue), 0, sim)
			sim = f64(f32(sim)) // the kernel sees sim in float32
			p := h.randomMixDraw(s, sim)
			qb, kb, tb := h.upload(q), h.upload(queue), h.uploadInt32(p.top)
			pb := h.upload(append(p.packed(s), 0)) // never empty: S = S′ = 0 has no columns
			m := s.S + s.SPrime
			out := h.poisoned(s.B * m)
			h.be.MixLogits(s, qb, kb, h.upload(f32(sim)), tb, pb, out)
			h.check("MixLogits "+name, out, refMixLogits(s, f64(q), f64(queue), p), tol.Mix)

			dout := h.random(s.B*m, -1, 1)
			for _, through := range []bool{false, true} {
				dq := h.poisoned(s.B * s.D)
				h.be.MixLogitsBackward(s, qb, kb, tb, pb, h.upload(dout), through, dq)
				h.check(fmt.Sprintf("MixLogitsBackward %s gradThroughHPrime=%v", name, through), dq,
					refMixLogitsBackward(s, f64(q), f64(queue), p, f64(dout), through), tol.Mix)
			}
		}
	}
}

// testScaleRows checks ScaleRows into a separate buffer and in place.
func testScaleRows(h *harness, tol Tolerances) {
	for _, sz := range [][2]int{{1, 1}, {5, 7}, {3, 1001}, {1, 4000}} {
		rows, cols := sz[0], sz[1]
		g, x := h.random(rows, -2, 2), h.random(rows*cols, -1, 1)
		want := refScaleRows(rows, cols, f64(g), f64(x))
		name := fmt.Sprintf("ScaleRows %d×%d", rows, cols)
		out := h.poisoned(rows * cols)
		h.be.ScaleRows(rows, cols, h.upload(g), h.upload(x), out)
		h.check(name, out, want, tol.Elementwise)
		xb := h.upload(x) // in place: out aliases x
		h.be.ScaleRows(rows, cols, h.upload(g), xb, xb)
		h.check(name+" in place", xb, want, tol.Elementwise)
	}
}

// testCopyCols assembles [a | b | c] column blocks into a wider matrix and
// takes a block out again, on views with offsets; elements outside the
// copied columns must keep their values.
func testCopyCols(h *harness, _ Tolerances) {
	for _, c := range []struct{ rows, srcCols, srcOff, dstCols, dstOff, n int }{
		{1, 1, 0, 1, 0, 1},
		{4, 1, 0, 10, 0, 1},     // l_pos into column 0
		{4, 7, 0, 10, 1, 7},     // l_neg after it
		{4, 2, 0, 10, 8, 2},     // extra at the end
		{4, 10, 1, 7, 0, 7},     // the l_neg block out again
		{3, 300, 17, 50, 9, 33}, // inner blocks on both sides
		{2, 5, 0, 5, 0, 0},      // nothing to copy
	} {
		name := fmt.Sprintf("CopyCols %+v", c)
		src := h.random(c.rows*c.srcCols, -1, 1)
		dst := h.random(c.rows*c.dstCols, -1, 1)
		srcBuf := h.upload(append(h.random(3, -1, 1), src...))
		dstBuf := h.upload(append(h.random(2, -1, 1), dst...))
		h.be.CopyCols(c.rows, c.srcCols, c.srcOff, c.dstCols, c.dstOff, c.n,
			h.be.View(srcBuf, 3, len(src)), h.be.View(dstBuf, 2, len(dst)))
		want := refCopyCols(c.rows, c.srcCols, c.srcOff, c.dstCols, c.dstOff, c.n, f64(src), f64(dst))
		got := h.download(dstBuf)
		h.checkExact(name, got[2:], f32(want))
	}
}

// testMaskEqual masks with −∞ (the class oracle) and with a finite value;
// labels include negative (unknown) ones on both sides.
func testMaskEqual(h *harness, _ Tolerances) {
	for _, c := range []struct {
		rows, cols int
		value      float32
	}{
		{1, 1, float32(math.Inf(-1))},
		{6, 50, float32(math.Inf(-1))},
		{5, 1001, -7},
	} {
		label := func(n int) []float32 {
			l := make([]float32, n)
			for i := range l {
				l[i] = float32(h.rng.IntN(4) - 1) // −1 (unknown), 0, 1, 2
			}
			return l
		}
		rowLab, colLab := label(c.rows), label(c.cols)
		x := h.random(c.rows*c.cols, -1, 1)
		xb := h.upload(x)
		h.be.MaskEqual(c.rows, c.cols, h.upload(rowLab), h.upload(colLab), xb, c.value)
		want := refMaskEqual(c.rows, c.cols, f64(rowLab), f64(colLab), f64(x), float64(c.value))
		h.checkExact(fmt.Sprintf("MaskEqual %d×%d value %v", c.rows, c.cols, c.value), h.download(xb), f32(want))
	}
}

func testSGD(h *harness, tol Tolerances) {
	for _, sp := range []device.SGDParams{
		{LR: 0.03, Momentum: 0.9, WeightDecay: 5e-4},
		{LR: 0.03, Momentum: 0.9, WeightDecay: 5e-4, Nesterov: true},
		{LR: 0.1, Momentum: 0, WeightDecay: 0},
		{LR: 0.5, Momentum: 0.5, WeightDecay: 0.1, Nesterov: true},
	} {
		const n = 1003
		p := h.random(n, -1, 1)
		pb, vb := h.upload(p), h.alloc(device.Float32, n)
		wantP, wantV := f64(p), make([]float64, n)
		ref := device.SGDParams{LR: sp.LR, Momentum: sp.Momentum, WeightDecay: sp.WeightDecay, Nesterov: sp.Nesterov}
		for step := 0; step < 3; step++ {
			g := h.random(n, -1, 1)
			h.be.SGDStep(sp, pb, h.upload(g), vb)
			refSGD(ref, wantP, f64(g), wantV)
			h.check(fmt.Sprintf("SGDStep %+v step %d param", sp, step), pb, wantP, tol.Elementwise)
			h.check(fmt.Sprintf("SGDStep %+v step %d velocity", sp, step), vb, wantV, tol.Elementwise)
		}
	}
}

func testMomentumUpdate(h *harness, tol Tolerances) {
	for _, m := range []float32{0.999, 0.99, 0} {
		const n = 1001
		src, dst := h.random(n, -1, 1), h.random(n, -1, 1)
		want := make([]float64, n)
		for i := range want {
			want[i] = float64(m)*float64(dst[i]) + (1-float64(m))*float64(src[i])
		}
		db := h.upload(dst)
		h.be.MomentumUpdate(m, h.upload(src), db)
		h.check(fmt.Sprintf("MomentumUpdate m=%v", m), db, want, tol.Elementwise)
	}
}
