package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/devicetest"
)

// modeBackend returns a backend on threads goroutines in mode m, one of
// the modes this build has (buildModes).
func modeBackend(t testing.TB, threads int, m ConvMode) *Backend {
	t.Helper()
	be := New(threads)
	if err := be.SetConvMode(m); err != nil {
		t.Fatal(err)
	}
	return be
}

// buildModes are the convolution modes this build has: every mode, or
// without oneDNN (build tag purego) auto and blas (TestSetConvMode checks
// that the others are refused there).
func buildModes() []ConvMode {
	if haveOneDNN {
		return ConvModes
	}
	return []ConvMode{ConvAuto, ConvBLAS}
}

// TestConformanceConvModes runs the conformance suite in every mode on two
// threads and on three split as finely as possible; in auto and winograd
// mode mochi's Winograd runs the suite's 3×3 stride-1 shapes whatever
// their channels. The suite's convolution
// bound (Tolerances.Gemm, 1e-4 of the largest element or the rms) holds
// for Winograd too: its dot products have at most 7·7·3 = 147 terms, a
// float32 direct sum of that length errs by about √147·2⁻²⁴ ≈ 7e-7 of the
// rms, Winograd's transforms multiply that by at most about 14 (mochi's
// against direct's relative error on ResNet shapes, 5 for oneDNN's) and
// the worst element of a few hundred lies within 4× the typical one:
// ≈ 4e-5, 2.5× below the bound.
func TestConformanceConvModes(t *testing.T) {
	for _, m := range buildModes() {
		t.Run(string(m), func(t *testing.T) {
			be := modeBackend(t, 2, m)
			be.winogradAnyChannels()
			devicetest.Run(t, be, devicetest.DefaultTolerances())
			fine := modeBackend(t, 3, m)
			fine.workers.fine = true
			fine.winogradAnyChannels()
			t.Run("3threadsFineSplit", func(t *testing.T) { devicetest.Run(t, fine, devicetest.DefaultTolerances()) })
		})
	}
}

// convCase is a convolution's inputs and its float64 results.
type convCase struct {
	s               device.ConvShape
	x, w, dy        []float32
	y64, dx64, dw64 []float64
	name            string
}

// newConvCase draws x, w and dy uniform in [−1, 1) and computes the three
// results in float64 by the definition (devicetest.ConvTaps: no im2col, no
// blocking).
func newConvCase(s device.ConvShape, seed uint64) *convCase {
	rng := rand.New(rand.NewPCG(seed, 11))
	rnd := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(2*rng.Float64() - 1)
		}
		return v
	}
	oh, ow := s.OutH(), s.OutW()
	c := &convCase{s: s, x: rnd(s.N * s.C * s.H * s.W), w: rnd(s.K * s.C * s.R * s.S), dy: rnd(s.N * s.K * oh * ow),
		name: fmt.Sprintf("%dx%d@%dx%d/k%ds%d", s.C, s.K, s.H, s.W, s.R, s.Stride)}
	c.y64 = make([]float64, len(c.dy))
	c.dx64 = make([]float64, len(c.x))
	c.dw64 = make([]float64, len(c.w))
	devicetest.ConvTaps(s, func(yi, xi, wi int) {
		c.y64[yi] += float64(c.x[xi]) * float64(c.w[wi])
		c.dx64[xi] += float64(c.w[wi]) * float64(c.dy[yi])
		c.dw64[wi] += float64(c.x[xi]) * float64(c.dy[yi])
	})
	return c
}

// l2Err is ‖got − want‖/‖want‖.
func l2Err(got []float32, want []float64) float64 {
	var d, n float64
	for i, w := range want {
		e := float64(got[i]) - w
		d += e * e
		n += w * w
	}
	return math.Sqrt(d / n)
}

// l2Diff is ‖a − b‖/‖ref‖.
func l2Diff(a, b []float32, ref []float64) float64 {
	var d, n float64
	for i := range a {
		e := float64(a[i]) - float64(b[i])
		d += e * e
		n += ref[i] * ref[i]
	}
	return math.Sqrt(d / n)
}

// modeBound is each mode's bound on the relative L2 error of a
// convolution result against float64. A float32 dot product of n
// random-sign terms summed one after another errs by at most about
// 2⁻²⁴·√n relative to the result when the roundings are independent
// (≈ 4e-6 for the longest sums here, 512·9 = 4608 terms); blocked sums do
// better. Measured on an AVX2 CPU: 9e-8–3e-7 for im2col + BLAS, 9e-8–1.1e-6
// for oneDNN's direct kernels, so the bound is 1e-5. Winograd F(4×4, 3×3)
// adds the rounding of its input, filter and output transforms, whose
// coefficients reach 8 and 1/24: oneDNN quotes ≈ 1e-6 for its avx512_core
// kernels against direct's 2e-7; mochi's (winograd.go, AVX2) measured
// 8e-7–3.8e-6 at these shapes and 1e-7–2e-6 on the odd ones of
// TestWinogradAgainstFloat64, growing with the channels like a direct
// sum, so its bound (winograd, and auto, which runs mochi's) is 5×
// direct's, 5e-5, 13× the worst measured. A
// wrong transform, layout, padding or split errs by O(1) (a lost part of
// dw: 0.7; a wrong transform coefficient: 0.3).
func modeBound(m ConvMode) float64 {
	if m == ConvWinograd || m == ConvAuto {
		return 5e-5
	}
	return 1e-5
}

// agreeShapes are the CIFAR ResNet-18's convolutions at batch 4 (the
// 3×3 stride-1 convolution of each stage, the stride-2 3×3 and 1×1 that
// enter a stage) and a batch large enough that oneDNN would pick Winograd
// where it can (more than 8 images per thread).
var agreeShapes = []device.ConvShape{
	{N: 4, C: 64, H: 32, W: 32, K: 64, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: 4, C: 128, H: 16, W: 16, K: 128, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: 4, C: 256, H: 8, W: 8, K: 256, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: 4, C: 512, H: 4, W: 4, K: 512, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: 4, C: 64, H: 32, W: 32, K: 128, R: 3, S: 3, Stride: 2, Pad: 1},
	{N: 4, C: 64, H: 32, W: 32, K: 128, R: 1, S: 1, Stride: 2, Pad: 0},
	{N: 4, C: 3, H: 32, W: 32, K: 64, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: 20, C: 32, H: 8, W: 8, K: 32, R: 3, S: 3, Stride: 1, Pad: 1},
}

// TestConvPathsAgree runs the three convolutions of ResNet-18 shapes in
// every mode on two threads and checks each result against float64 within
// its mode's bound (modeBound), and every pair of modes against each
// other within the sum of their bounds (each lies that close to float64).
func TestConvPathsAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("float64 references of ResNet-sized convolutions (-short)")
	}
	type result struct{ y, dx, dw []float32 }
	for i, s := range agreeShapes {
		c := newConvCase(s, uint64(i))
		t.Run(c.name, func(t *testing.T) {
			got := map[ConvMode]result{}
			for _, m := range buildModes() {
				be := modeBackend(t, 2, m)
				r := result{make([]float32, len(c.y64)), make([]float32, len(c.x)), make([]float32, len(c.w))}
				be.Conv2DForward(s, Wrap(c.x), Wrap(c.w), Wrap(r.y))
				be.Conv2DBackwardData(s, Wrap(c.dy), Wrap(c.w), Wrap(r.dx))
				be.Conv2DBackwardFilter(s, Wrap(c.x), Wrap(c.dy), Wrap(r.dw))
				if err := be.Sync(); err != nil {
					t.Fatalf("%s: %v", m, err)
				}
				for _, o := range []struct {
					name string
					got  []float32
					want []float64
				}{{"y", r.y, c.y64}, {"dx", r.dx, c.dx64}, {"dw", r.dw, c.dw64}} {
					e := l2Err(o.got, o.want)
					if !(e <= modeBound(m)) {
						t.Errorf("%s %s: relative error %.2g against float64 > %.2g", m, o.name, e, modeBound(m))
					}
					t.Logf("%-8s %-2s relative error %.2g (%s)", m, o.name, e, be.convImplName(o.name, s))
				}
				got[m] = r
			}
			for i, a := range ConvModes {
				for _, b := range ConvModes[i+1:] {
					ra, okA := got[a]
					rb, okB := got[b]
					if !okA || !okB {
						continue
					}
					bound := modeBound(a) + modeBound(b)
					for _, o := range []struct {
						name string
						a, b []float32
						ref  []float64
					}{{"y", ra.y, rb.y, c.y64}, {"dx", ra.dx, rb.dx, c.dx64}, {"dw", ra.dw, rb.dw, c.dw64}} {
						if d := l2Diff(o.a, o.b, o.ref); !(d <= bound) {
							t.Errorf("%s and %s differ in %s by %.2g (relative) > %.2g", a, b, o.name, d, bound)
						}
					}
				}
			}
		})
	}
}

// TestConvModeAllocatesNothing: once a shape's primitives exist, the three
// convolutions allocate nothing, in every mode (the training plan's zero
// allocations per step rest on it). The purego build is exempt: gonum's
// BLAS allocates inside its GEMMs.
func TestConvModeAllocatesNothing(t *testing.T) {
	s := device.ConvShape{N: 4, C: 16, H: 8, W: 8, K: 16, R: 3, S: 3, Stride: 1, Pad: 1}
	c := newConvCase(s, 1)
	y, dx, dw := Wrap(make([]float32, len(c.y64))), Wrap(make([]float32, len(c.x))), Wrap(make([]float32, len(c.w)))
	x, w, dy := Wrap(c.x), Wrap(c.w), Wrap(c.dy)
	if !haveOneDNN {
		t.Skip("the purego build's gonum BLAS allocates inside its GEMMs")
	}
	for _, m := range ConvModes {
		t.Run(string(m), func(t *testing.T) {
			be := modeBackend(t, 2, m)
			be.winogradAnyChannels() // mochi's Winograd runs this 16-channel shape in winograd mode
			step := func() {
				be.Conv2DForward(s, x, w, y)
				be.Conv2DBackwardData(s, dy, w, dx)
				be.Conv2DBackwardFilter(s, x, dy, dw)
			}
			step()
			if n := testing.AllocsPerRun(5, step); n != 0 {
				t.Errorf("%v allocations per forward + backward after warm-up", n)
			}
			if err := be.Sync(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSetConvMode: every documented mode is accepted where the build has
// it, an unknown one is refused naming the choices, and the purego build
// refuses the oneDNN modes saying what to do.
func TestSetConvMode(t *testing.T) {
	be := New(1)
	if be.ConvMode() != ConvBLAS {
		t.Errorf("a new backend's mode is %s, want blas", be.ConvMode())
	}
	for _, m := range ConvModes {
		err := be.SetConvMode(m)
		oneDNNMode := m == ConvWinograd || m == ConvDirect
		switch {
		case err == nil && (haveOneDNN || !oneDNNMode):
			if be.ConvMode() != m {
				t.Errorf("SetConvMode(%s) left mode %s", m, be.ConvMode())
			}
		case err != nil && !haveOneDNN && oneDNNMode:
			if !strings.Contains(err.Error(), "purego") || !strings.Contains(err.Error(), "blas") {
				t.Errorf("SetConvMode(%s) in the purego build: %q does not say why and what to use", m, err)
			}
		default:
			t.Errorf("SetConvMode(%s) = %v (oneDNN built in: %v)", m, err, haveOneDNN)
		}
	}
	if err := be.SetConvMode("fft"); err == nil || !strings.Contains(err.Error(), "auto, winograd, direct, blas") {
		t.Errorf("SetConvMode(fft) = %v, want an error listing the modes", err)
	}
}

// TestBackendIsCollected: a backend that has run oneDNN convolutions can
// be garbage-collected, so that the cleanups freeing its workers and its
// oneDNN primitives and arenas run (nothing reachable from a cleanup's
// argument may point back into the backend).
func TestBackendIsCollected(t *testing.T) {
	collected := make(chan struct{})
	func() {
		be := New(2)
		s := device.ConvShape{N: 4, C: 8, H: 6, W: 6, K: 8, R: 3, S: 3, Stride: 1, Pad: 1}
		c := newConvCase(s, 2)
		be.Conv2DForward(s, Wrap(c.x), Wrap(c.w), Wrap(make([]float32, len(c.y64))))
		be.Conv2DBackwardFilter(s, Wrap(c.x), Wrap(c.dy), Wrap(make([]float32, len(c.w))))
		if err := be.Sync(); err != nil {
			t.Fatal(err)
		}
		runtime.AddCleanup(be, func(ch chan struct{}) { close(ch) }, collected)
	}()
	for range 20 {
		runtime.GC()
		select {
		case <-collected:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("the backend was never garbage-collected")
}
