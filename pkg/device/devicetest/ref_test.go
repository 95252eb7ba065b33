package devicetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// The gradient references are checked here against central finite
// differences of the forward references, in float64, so that a backend
// matching them has correct gradients.

// fdStep is the finite-difference step; with float64 and O(1) data the
// central difference is accurate to about 1e-9.
const fdStep = 1e-5

// fdTol bounds |analytic − numeric| / max(|analytic|, rms(analytic)).
const fdTol = 1e-6

func randSlice(rng *rand.Rand, n int, lo, hi float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		for x[i] == 0 {
			x[i] = lo + (hi-lo)*rng.Float64()
		}
	}
	return x
}

// checkGrad compares grad with central differences of loss with respect to
// x at up to 40 sampled elements (x is perturbed in place and restored).
func checkGrad(t *testing.T, name string, rng *rand.Rand, x, grad []float64, loss func() float64) {
	t.Helper()
	var ss float64
	for _, g := range grad {
		ss += g * g
	}
	rms := math.Sqrt(ss / float64(len(grad)))
	idx := rng.Perm(len(x))
	if len(idx) > 40 {
		idx = idx[:40]
	}
	for _, i := range idx {
		v := x[i]
		x[i] = v + fdStep
		lp := loss()
		x[i] = v - fdStep
		lm := loss()
		x[i] = v
		num := (lp - lm) / (2 * fdStep)
		d := math.Abs(num - grad[i])
		if d < 1e-12 { // both zero up to rounding (e.g. a sign function)
			continue
		}
		if e := d / math.Max(math.Abs(grad[i]), rms); !(e <= fdTol) {
			t.Errorf("%s: element %d: analytic %v, finite difference %v (error %.3g)", name, i, grad[i], num, e)
			return
		}
	}
}

func TestRefConvGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range convShapes[:6] {
		name := fmt.Sprintf("%+v", s)
		x := randSlice(rng, s.N*s.C*s.H*s.W, -1, 1)
		w := randSlice(rng, s.K*s.C*s.R*s.S, -1, 1)
		dy := randSlice(rng, s.N*s.K*s.OutH()*s.OutW(), -1, 1)
		loss := func() float64 { return dot(dy, refConvForward(s, x, w)) }
		dx, dw := refConvBackward(s, x, w, dy)
		checkGrad(t, "conv dx "+name, rng, x, dx, loss)
		checkGrad(t, "conv dw "+name, rng, w, dw, loss)
	}
}

func TestRefBatchNormGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range bnShapes {
		name := fmt.Sprintf("%+v", s)
		n := s.N * s.C * s.HW
		x, dy := randSlice(rng, n, -1, 3), randSlice(rng, n, -1, 1)
		gamma, beta := randSlice(rng, s.C, 0.5, 1.5), randSlice(rng, s.C, -0.5, 0.5)
		run := make([]float64, s.C)
		loss := func() float64 {
			y, _, _, _, _ := refBNTrain(s, x, gamma, beta, run, run, 0.1, 1e-5)
			return dot(dy, y)
		}
		_, mean, inv, _, _ := refBNTrain(s, x, gamma, beta, run, run, 0.1, 1e-5)
		dx, dg, db := refBNBackward(s, x, dy, gamma, mean, inv)
		checkGrad(t, "BN dx "+name, rng, x, dx, loss)
		checkGrad(t, "BN dgamma "+name, rng, gamma, dg, loss)
		checkGrad(t, "BN dbeta "+name, rng, beta, db, loss)
	}
}

func TestRefPoolGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range poolShapes {
		x := randSlice(rng, s.N*s.C*s.H*s.W, -1, 1) // continuous: no ties
		dy := randSlice(rng, s.N*s.C*s.OutH()*s.OutW(), -1, 1)
		loss := func() float64 { y, _ := refMaxPool(s, x); return dot(dy, y) }
		checkGrad(t, fmt.Sprintf("max pool %+v", s), rng, x, refMaxPoolBackward(s, x, dy), loss)
	}
	x, dy := randSlice(rng, 6*7, -1, 1), randSlice(rng, 6, -1, 1)
	loss := func() float64 { return dot(dy, refAvgPool(6, 7, x)) }
	checkGrad(t, "global average pool", rng, x, refAvgPoolBackward(6, 7, dy), loss)
}

func TestRefL2NormalizeGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, sz := range [][2]int{{1, 1}, {4, 9}, {3, 128}} {
		rows, cols := sz[0], sz[1]
		x, dy := randSlice(rng, rows*cols, -1, 1), randSlice(rng, rows*cols, -1, 1)
		loss := func() float64 { return dot(dy, refL2Normalize(rows, cols, x)) }
		checkGrad(t, fmt.Sprintf("L2 normalize %d×%d", rows, cols), rng, x, refL2NormalizeBackward(rows, cols, x, dy), loss)
	}
}

func TestRefSoftmaxCEGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const rows, cols, tau, scale = 5, 7, 0.2, 0.2
	logits := randSlice(rng, rows*cols, -1, 1)
	labels := []int32{0, 3, 6, 0, 2}
	loss := func() float64 {
		l, _ := refSoftmaxCE(rows, cols, tau, logits, labels)
		var s float64
		for _, v := range l {
			s += scale * v
		}
		return s
	}
	_, prob := refSoftmaxCE(rows, cols, tau, logits, labels)
	checkGrad(t, "softmax cross-entropy", rng, logits, refSoftmaxCEBackward(rows, cols, tau, scale, prob, labels), loss)
}

func TestRefMixLogitsGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, s := range mixShapes[:3] {
		q, queue := randSlice(rng, s.B*s.D, -1, 1), randSlice(rng, s.K*s.D, -1, 1)
		sim := make([]float64, s.B*s.K)
		refGemm(false, true, s.B, s.K, s.D, 1, q, queue, 0, sim)
		h := &harness{rng: rng}
		p := h.randomMixDraw(s, sim)
		dout := randSlice(rng, s.B*(s.S+s.SPrime), -1, 1)
		name := fmt.Sprintf("%+v", s)

		// Detached: h and h′ are built from a frozen copy q0 of q.
		q0 := append([]float64(nil), q...)
		detached := func() float64 {
			var l float64
			for b := 0; b < s.B; b++ {
				hs, _ := refMixVectors(s, b, q0, queue, p)
				for t, ht := range hs {
					l += dout[b*(s.S+s.SPrime)+t] * dot(q[b*s.D:(b+1)*s.D], ht)
				}
			}
			return l
		}
		checkGrad(t, "MixLogits detached "+name, rng, q, refMixLogitsBackward(s, q, queue, p, dout, false), detached)
		through := func() float64 { return dot(dout, refMixLogits(s, q, queue, p)) }
		checkGrad(t, "MixLogits through q "+name, rng, q, refMixLogitsBackward(s, q, queue, p, dout, true), through)
	}
}

// TestRefGemmAgainstDefinition checks refGemm's transposes on a 2×3·3×2
// product written out by hand.
func TestRefGemmAgainstDefinition(t *testing.T) {
	a := []float64{1, 2, 3, 4, 5, 6}    // 2×3
	b := []float64{7, 8, 9, 10, 11, 12} // 3×2
	want := []float64{58, 64, 139, 154}
	at := []float64{1, 4, 2, 5, 3, 6}    // aᵀ stored 3×2
	bt := []float64{7, 9, 11, 8, 10, 12} // bᵀ stored 2×3
	for _, c := range []struct {
		ta, tb bool
		a, b   []float64
	}{{false, false, a, b}, {true, false, at, b}, {false, true, a, bt}, {true, true, at, bt}} {
		got := make([]float64, 4)
		refGemm(c.ta, c.tb, 2, 2, 3, 1, c.a, c.b, 0, got)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("refGemm tA=%v tB=%v = %v, want %v", c.ta, c.tb, got, want)
		}
	}
}

// TestRefTopNTies checks on hand-made rows that ties go to the lower index
// and that the selection is listed in index order.
func TestRefTopNTies(t *testing.T) {
	for _, c := range []struct {
		x    []float64
		n    int
		want []int32
	}{
		{[]float64{0.5, 1, 0.5, 1, -1, 0.5}, 4, []int32{0, 1, 2, 3}}, // 1, 1, then the 0.5 at 0 and 2, not 5
		{[]float64{0.5, -1, 1, 0.5, 0.5}, 3, []int32{0, 2, 3}},
		{[]float64{-1, math.Inf(-1), 2}, 2, []int32{0, 2}},
	} {
		if got := refTopN(1, len(c.x), c.n, c.x); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("refTopN(%v, n=%d) = %v, want %v", c.x, c.n, got, c.want)
		}
	}
}

// TestRefBNRunningStats checks the running statistics on a hand-made
// split-BN batch: two groups of two samples, one channel, HW = 1.
func TestRefBNRunningStats(t *testing.T) {
	s := device.BNShape{N: 4, C: 1, HW: 1, Groups: 2}
	x := []float64{1, 3, 10, 14} // group means 2, 12; unbiased variances 2, 8
	_, mean, _, rm, rv := refBNTrain(s, x, []float64{1}, []float64{0}, []float64{1}, []float64{1}, 0.1, 0)
	if mean[0] != 2 || mean[1] != 12 {
		t.Errorf("group means %v, want [2 12]", mean)
	}
	if want := 0.9*1 + 0.1*7.0; math.Abs(rm[0]-want) > 1e-12 {
		t.Errorf("running mean %v, want %v", rm[0], want)
	}
	if want := 0.9*1 + 0.1*5.0; math.Abs(rv[0]-want) > 1e-12 {
		t.Errorf("running var %v, want %v", rv[0], want)
	}
}
