package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/devicetest"
)

// newFine returns a backend that splits every kernel across its threads
// however small, so that the suite's small shapes exercise the splits.
func newFine(threads int) *Backend {
	b := New(threads)
	b.workers.fine = true
	return b
}

func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name string
		be   *Backend
	}{
		{"1thread", New(1)},
		{"2threads", New(2)},
		{"3threadsFineSplit", newFine(3)},
	} {
		t.Run(c.name, func(t *testing.T) { devicetest.Run(t, c.be, devicetest.DefaultTolerances()) })
	}
}

// TestThreadsAgree runs every kernel on one thread and on three threads
// (split as finely as possible) and requires bit-identical results, except
// Gemm and the convolutions: their GEMMs are cut differently across threads
// (bands of c; images per GEMM; per-thread partial sums of dw), so the BLAS
// rounds differently, and they must agree within 1e-5 relative to the
// output's largest element.
func TestThreadsAgree(t *testing.T) {
	one, three := New(1), newFine(3)
	rng := rand.New(rand.NewPCG(1, 1))
	rnd := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(2*rng.Float64() - 1)
		}
		return x
	}
	// run applies the same kernel to fresh copies of the inputs on both
	// backends and compares every buffer afterwards.
	run := func(name string, tol float64, inputs [][]float32, kernel func(be device.Backend, bufs []device.Buffer)) {
		t.Helper()
		var got [2][][]float32
		for k, be := range []device.Backend{one, three} {
			bufs := make([]device.Buffer, len(inputs))
			for i, in := range inputs {
				bufs[i] = Wrap(append([]float32(nil), in...))
			}
			kernel(be, bufs)
			if err := be.Sync(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, b := range bufs {
				got[k] = append(got[k], Float32s(b))
			}
		}
		for i := range got[0] {
			var worst, scale float64
			for j, v := range got[0][i] {
				worst = math.Max(worst, math.Abs(float64(v-got[1][i][j])))
				scale = math.Max(scale, math.Abs(float64(v)))
				if tol == 0 && math.Float32bits(v) != math.Float32bits(got[1][i][j]) {
					t.Errorf("%s: buffer %d element %d: 1 thread %v, 3 threads %v", name, i, j, v, got[1][i][j])
					return
				}
			}
			if worst > tol*scale {
				t.Errorf("%s: buffer %d differs by %v (scale %v)", name, i, worst, scale)
			}
		}
	}
	cs := device.ConvShape{N: 5, C: 8, H: 9, W: 9, K: 6, R: 3, S: 3, Stride: 1, Pad: 1}
	nx, nw, ny := cs.N*cs.C*cs.H*cs.W, cs.K*cs.C*cs.R*cs.S, cs.N*cs.K*cs.OutH()*cs.OutW()
	run("Conv2DForward", 1e-5, [][]float32{rnd(nx), rnd(nw), rnd(ny)}, func(be device.Backend, b []device.Buffer) { be.Conv2DForward(cs, b[0], b[1], b[2]) })
	run("Conv2DBackwardData", 1e-5, [][]float32{rnd(ny), rnd(nw), rnd(nx)}, func(be device.Backend, b []device.Buffer) { be.Conv2DBackwardData(cs, b[0], b[1], b[2]) })
	run("Conv2DBackwardFilter", 1e-5, [][]float32{rnd(nx), rnd(ny), rnd(nw)}, func(be device.Backend, b []device.Buffer) { be.Conv2DBackwardFilter(cs, b[0], b[1], b[2]) })
	run("Gemm", 1e-5, [][]float32{rnd(37 * 29), rnd(29 * 41), rnd(37 * 41)}, func(be device.Backend, b []device.Buffer) {
		be.Gemm(false, true, 37, 41, 29, 1, b[0], b[1], 0.5, b[2])
	})
	bs := device.BNShape{N: 8, C: 6, HW: 10, Groups: 2}
	nb := bs.N * bs.C * bs.HW
	run("BatchNorm", 0, [][]float32{rnd(nb), rnd(6), rnd(6), rnd(nb), rnd(12), rnd(12), rnd(6), rnd(6), rnd(nb), rnd(nb), rnd(6), rnd(6)},
		func(be device.Backend, b []device.Buffer) {
			be.BatchNormTrain(bs, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], 0.1, 1e-5)
			be.BatchNormBackward(bs, b[0], b[8], b[1], b[4], b[5], b[9], b[10], b[11])
		})
	n := 100003
	run("Elementwise", 0, [][]float32{rnd(n), rnd(n), rnd(n), rnd(n), rnd(1)}, func(be device.Backend, b []device.Buffer) {
		be.SGDStep(device.SGDParams{LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4, Nesterov: true}, b[0], b[1], b[2])
		be.MomentumUpdate(0.99, b[0], b[3])
		be.Axpy(0.5, b[1], b[3])
		be.ReLU(b[3], b[3])
		be.Sum(b[0], b[4])
	})
	ps := device.PoolShape{N: 3, C: 4, H: 9, W: 9, Size: 3, Stride: 2, Pad: 1}
	run("MaxPool", 0, [][]float32{rnd(3 * 4 * 81), rnd(3 * 4 * 25), rnd(3 * 4 * 81), rnd(3 * 4 * 25)}, func(be device.Backend, b []device.Buffer) {
		be.MaxPoolForward(ps, b[0], b[3])
		be.MaxPoolBackward(ps, b[0], b[1], b[2])
	})
	run("Rows", 0, [][]float32{rnd(7 * 50), rnd(7 * 50), rnd(7 * 50), rnd(7), rnd(50), rnd(7 * 50)}, func(be device.Backend, b []device.Buffer) {
		be.L2Normalize(7, 50, b[0], b[1])
		be.L2NormalizeBackward(7, 50, b[0], b[1], b[2], b[5])
		be.RowDot(7, 50, b[0], b[2], b[3])
		be.SumRows(7, 50, b[2], b[4])
	})
	labels := make([]float32, 7+50)
	for i := range labels {
		labels[i] = float32(rng.IntN(3))
	}
	run("Logits", 0, [][]float32{rnd(7 * 50), rnd(7), rnd(7 * 60), labels}, func(be device.Backend, b []device.Buffer) {
		be.ScaleRows(7, 50, b[1], b[0], b[0])
		be.CopyCols(7, 50, 0, 60, 10, 50, b[0], b[2])
		be.MaskEqual(7, 50, be.View(b[3], 0, 7), be.View(b[3], 7, 50), b[0], float32(math.Inf(-1)))
	})
}

// TestWrap checks that Wrap, WrapInt32 and View share the caller's memory
// and that Float32s and Int32s return exactly the wrapped elements.
func TestWrap(t *testing.T) {
	be := New(1)
	f := []float32{1, 2, 3, 4, 5}
	v := be.View(Wrap(f), 1, 3)
	be.Scale(10, v)
	if got := fmt.Sprint(f); got != "[1 20 30 40 5]" {
		t.Errorf("Scale on a view of Wrap(f): f = %v, want [1 20 30 40 5]", got)
	}
	if got := Float32s(v); len(got) != 3 || &got[0] != &f[1] {
		t.Errorf("Float32s(view) = %v, want f[1:4] sharing memory", got)
	}
	x := []int32{7, 8, 9}
	xv := be.View(WrapInt32(x), 2, 1)
	be.UploadInt32(xv, []int32{-9})
	if x[2] != -9 || len(Int32s(xv)) != 1 || &Int32s(xv)[0] != &x[2] {
		t.Errorf("UploadInt32 into a view of WrapInt32(x): x = %v, want [7 8 -9]", x)
	}
}

// TestSyncReportsShapeErrors checks that a kernel given a short buffer
// records an error, leaves its output alone, and that Sync reports the first
// error once.
func TestSyncReportsShapeErrors(t *testing.T) {
	be := New(2)
	s := device.ConvShape{N: 2, C: 3, H: 5, W: 5, K: 4, R: 3, S: 3, Stride: 1, Pad: 1}
	y := make([]float32, s.N*s.K*25)
	be.Conv2DForward(s, Wrap(make([]float32, 10)), Wrap(make([]float32, 4*3*9)), Wrap(y))
	be.Gemm(false, false, 2, 2, 2, 1, Wrap(make([]float32, 3)), Wrap(make([]float32, 4)), 0, Wrap(make([]float32, 4)))
	err := be.Sync()
	if err == nil || !strings.Contains(err.Error(), "Conv2DForward: x has 10 elements") {
		t.Errorf("Sync after a short x = %v, want the Conv2DForward error", err)
	}
	for _, v := range y {
		if v != 0 {
			t.Fatalf("Conv2DForward with a short x wrote its output")
		}
	}
	if err := be.Sync(); err != nil {
		t.Errorf("second Sync = %v, want nil (errors are reported once)", err)
	}
	be.BatchNormTrain(device.BNShape{N: 3, C: 1, HW: 2, Groups: 2}, Wrap(make([]float32, 6)), Wrap(make([]float32, 1)),
		Wrap(make([]float32, 1)), Wrap(make([]float32, 6)), Wrap(make([]float32, 2)), Wrap(make([]float32, 2)),
		Wrap(make([]float32, 1)), Wrap(make([]float32, 1)), 0.1, 1e-5)
	if err := be.Sync(); err == nil || !strings.Contains(err.Error(), "multiple of Groups") {
		t.Errorf("Sync after N = 3, Groups = 2: %v, want a multiple-of-Groups error", err)
	}
}

// TestMixRejectsBadDraw: a draw rank outside [0, N), or not an integer, and
// a top index outside the queue are errors from Sync that name the element
// (the draw comes from another N or is corrupt; a GPU cannot report this).
func TestMixRejectsBadDraw(t *testing.T) {
	s := device.MixShape{B: 2, D: 3, K: 5, N: 2, S: 1, SPrime: 1}
	good := []float32{0, 1, 0.5, 1, 0.25, 1, 1, 0.5, 0, 0.125} // B×(3S+2S′): [i, j, α, j′, β] per query
	for _, c := range []struct {
		name    string
		draw    []float32
		top     []int32
		wantErr string
	}{
		{"good", good, []int32{0, 4, 1, 2}, ""},
		{"rank = N", []float32{0, 2, 0.5, 1, 0.25, 1, 1, 0.5, 0, 0.125}, []int32{0, 4, 1, 2}, "draw[0, 1] = 2 is not a rank in [0, N = 2)"},
		{"fractional rank", []float32{0, 1, 0.5, 1, 0.25, 1, 1, 0.5, 0.5, 0.125}, []int32{0, 4, 1, 2}, "draw[1, 3] = 0.5"},
		{"top ≥ K", good, []int32{0, 4, 5, 2}, "top[1, 0] = 5 is not a queue index"},
	} {
		be := New(2)
		q, queue := make([]float32, s.B*s.D), make([]float32, s.K*s.D)
		for i := range queue {
			queue[i] = float32(i%7) - 3
		}
		for i := range q {
			q[i] = float32(i%5) - 2
		}
		sim := make([]float32, s.B*s.K)
		out, dq := make([]float32, s.B*2), make([]float32, s.B*s.D)
		be.MixLogits(s, Wrap(q), Wrap(queue), Wrap(sim), WrapInt32(c.top), Wrap(c.draw), Wrap(out))
		err := be.Sync()
		be.MixLogitsBackward(s, Wrap(q), Wrap(queue), WrapInt32(c.top), Wrap(c.draw), Wrap(out), true, Wrap(dq))
		errBack := be.Sync()
		for kernel, e := range map[string]error{"MixLogits": err, "MixLogitsBackward": errBack} {
			if c.wantErr == "" {
				if e != nil {
					t.Errorf("%s, %s: %v", c.name, kernel, e)
				}
			} else if e == nil || !strings.Contains(e.Error(), kernel+": "+c.wantErr) {
				t.Errorf("%s, %s: error %v, want one containing %q", c.name, kernel, e, c.wantErr)
			}
		}
	}
}

// TestPositiveMask checks ReLU's backward mask on the values a ReLU output
// holds and on those it cannot (negatives, −0, NaN), against v > 0 — except
// NaN with the sign bit clear, which the mask passes.
func TestPositiveMask(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		v    float32
		want uint32
	}{
		{0, 0}, {float32(math.Copysign(0, -1)), 0}, {1e-45, ^uint32(0)}, {0.5, ^uint32(0)},
		{float32(math.Inf(1)), ^uint32(0)}, {-1e-45, 0}, {-3, 0}, {float32(math.Inf(-1)), 0},
		{nan, ^uint32(0)}, {-nan, 0},
	} {
		if got := positiveMask(c.v); got != c.want {
			t.Errorf("positiveMask(%v, bits %#x) = %#x, want %#x", c.v, math.Float32bits(c.v), got, c.want)
		}
	}
}

// strideOneShapes are stride-1 convolutions as wide as their input, with
// rows and columns falling off every edge, planes of one row, and planes of
// 256 values and more (col2im's BLAS path).
var strideOneShapes = []device.ConvShape{
	{C: 2, H: 5, W: 4, R: 3, S: 3, Stride: 1, Pad: 1},
	{C: 1, H: 3, W: 3, R: 5, S: 5, Stride: 1, Pad: 2},
	{C: 2, H: 6, W: 4, R: 3, S: 1, Stride: 1, Pad: 0},
	{C: 3, H: 4, W: 5, R: 1, S: 3, Stride: 1, Pad: 1},
	{C: 1, H: 1, W: 3, R: 3, S: 3, Stride: 1, Pad: 1},
	{C: 2, H: 2, W: 2, R: 7, S: 7, Stride: 1, Pad: 3},
	{C: 2, H: 20, W: 16, R: 3, S: 3, Stride: 1, Pad: 1},
}

// TestCol2imIsAdjoint checks ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for random x
// and c on the stride-1 shapes and a strided one.
func TestCol2imIsAdjoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, s := range append(strideOneShapes, device.ConvShape{C: 2, H: 7, W: 6, R: 3, S: 3, Stride: 2, Pad: 1}) {
		oh, ow := s.OutH(), s.OutW()
		ld := oh*ow + 2
		x := make([]float32, s.C*s.H*s.W)
		c := make([]float32, s.C*s.R*s.S*ld)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		for i := range c {
			c[i] = float32(rng.NormFloat64())
		}
		col := make([]float32, len(c))
		im2col(s, x, col, ld)
		var lhs, rhs float64
		for row := range s.C * s.R * s.S {
			for p := range oh * ow {
				lhs += float64(col[row*ld+p]) * float64(c[row*ld+p])
			}
		}
		back := make([]float32, len(x))
		col2im(s, c, ld, back)
		for i := range x {
			rhs += float64(x[i]) * float64(back[i])
		}
		if math.Abs(lhs-rhs) > 1e-4*(1+math.Abs(lhs)) {
			t.Errorf("%+v: ⟨im2col(x), c⟩ = %v, ⟨x, col2im(c)⟩ = %v", s, lhs, rhs)
		}
	}
}

// TestIm2colStrideOne checks im2col's whole-plane copy for stride-1
// convolutions as wide as their input against the definition.
func TestIm2colStrideOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, s := range strideOneShapes {
		oh, ow := s.OutH(), s.OutW()
		if ow != s.W {
			t.Fatalf("%+v: output width %d, not the input's", s, ow)
		}
		x := make([]float32, s.C*s.H*s.W)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		ld := oh*ow + 3 // a row stride wider than a row, as side-by-side chunks have
		col := make([]float32, s.C*s.R*s.S*ld)
		for i := range col {
			col[i] = float32(rng.NormFloat64()) // stale values must be overwritten
		}
		im2col(s, x, col, ld)
		for c := range s.C {
			for r := range s.R {
				for q := range s.S {
					for i := range oh {
						for j := range ow {
							h, w := i-s.Pad+r, j-s.Pad+q
							var want float32
							if h >= 0 && h < s.H && w >= 0 && w < s.W {
								want = x[(c*s.H+h)*s.W+w]
							}
							if got := col[((c*s.R+r)*s.S+q)*ld+i*ow+j]; got != want {
								t.Fatalf("%+v: col[(%d,%d,%d),(%d,%d)] = %v, want %v", s, c, r, q, i, j, got, want)
							}
						}
					}
				}
			}
		}
	}
}
