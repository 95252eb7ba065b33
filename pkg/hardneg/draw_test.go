package hardneg_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"gonum.org/v1/gonum/stat/distuv"
	"gorgonia.org/tensor"
)

// chiSquareUniform tests counts of ranks in [0, n) against the uniform
// distribution; it returns the statistic and the 0.999 quantile.
func chiSquareUniform(ranks []int32, n int) (stat, limit float64) {
	counts := make([]float64, n)
	for _, r := range ranks {
		counts[r]++
	}
	want := float64(len(ranks)) / float64(n)
	for _, c := range counts {
		stat += (c - want) * (c - want) / want
	}
	return stat, distuv.ChiSquared{K: float64(n - 1)}.Quantile(0.999)
}

// ksUniform is the one-sample Kolmogorov–Smirnov statistic of x against
// U(0, hi).
func ksUniform(x []float32, hi float64) float64 {
	s := make([]float64, len(x))
	for i, v := range x {
		s[i] = float64(v) / hi
	}
	slices.Sort(s)
	var d float64
	n := float64(len(s))
	for i, v := range s {
		d = max(d, math.Abs(float64(i+1)/n-v), math.Abs(v-float64(i)/n))
	}
	return d
}

func TestMixDrawDistributions(t *testing.T) {
	const b, n, s, sp = 64, 16, 200, 100
	p, err := hardneg.NewMixDraw(rand.New(rand.NewPCG(2024, 7)), b, n, s, sp)
	if err != nil {
		t.Fatal(err)
	}
	for name, ranks := range map[string][]int32{"i": p.I, "j": p.J, "j′": p.JQ} {
		for _, r := range ranks {
			if r < 0 || r >= n {
				t.Fatalf("rank %s = %d outside [0, N = %d)", name, r, n)
			}
		}
		if stat, limit := chiSquareUniform(ranks, n); stat > limit {
			t.Errorf("ranks %s: χ² = %.1f over %d bins exceeds the 0.999 quantile %.1f", name, stat, n, limit)
		}
	}
	// KS critical value at level 0.001: 1.95/√n.
	for _, tc := range []struct {
		name string
		x    []float32
		lo   float32
		hi   float64
	}{{"α", p.Alpha, 0, 1}, {"β", p.Beta, 0, 0.5}} {
		for _, v := range tc.x {
			if v < tc.lo || float64(v) >= tc.hi {
				t.Fatalf("%s = %v outside [%v, %v)", tc.name, v, tc.lo, tc.hi)
			}
		}
		if d, limit := ksUniform(tc.x, tc.hi), 1.95/math.Sqrt(float64(len(tc.x))); d > limit {
			t.Errorf("%s: KS distance %.4f from U(0, %v) exceeds %.4f", tc.name, d, tc.hi, limit)
		}
	}
	// α and β must not be confused: U(0, 0.5) fails the U(0, 1) test.
	if d := ksUniform(p.Beta, 1); d < 1.95/math.Sqrt(float64(len(p.Beta))) {
		t.Errorf("β passes as U(0, 1) (KS %.4f): the test cannot tell the ranges apart", d)
	}
}

func TestMixDrawSeeded(t *testing.T) {
	draw := func(seed uint64) *hardneg.MixDraw {
		p, err := hardneg.NewMixDraw(rand.New(rand.NewPCG(seed, 3)), 4, 10, 5, 3)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, c := draw(1), draw(1), draw(2)
	same := func(x, y *hardneg.MixDraw) bool {
		return slices.Equal(x.I, y.I) && slices.Equal(x.J, y.J) && slices.Equal(x.Alpha, y.Alpha) &&
			slices.Equal(x.JQ, y.JQ) && slices.Equal(x.Beta, y.Beta)
	}
	if !same(a, b) {
		t.Error("two plans from seed 1 differ")
	}
	if same(a, c) {
		t.Error("plans from seeds 1 and 2 are equal")
	}
}

// TestNextMixDraw: a draw made in the last draw's memory is the draw
// NewMixDraw makes next from the same stream (the trainer's steps allocate
// nothing for it, and its losses stay those of fresh draws), other sizes
// get a draw of their own, and Encode reuses its dst.
func TestNextMixDraw(t *testing.T) {
	fresh, reused := rand.New(rand.NewPCG(7, 7)), rand.New(rand.NewPCG(7, 7))
	var p *hardneg.MixDraw
	var enc []float32
	for step := range 3 {
		want, err := hardneg.NewMixDraw(fresh, 4, 10, 5, 3)
		if err != nil {
			t.Fatal(err)
		}
		last := p
		if p, err = hardneg.NextMixDraw(p, reused, 4, 10, 5, 3); err != nil {
			t.Fatal(err)
		}
		if step > 0 && p != last {
			t.Fatalf("step %d: a draw of the same sizes was allocated anew", step)
		}
		prev := enc
		enc = p.Encode(enc)
		if !slices.Equal(enc, want.Encode(nil)) {
			t.Fatalf("step %d: the redrawn draw differs from a fresh one", step)
		}
		if step > 0 && &prev[0] != &enc[0] {
			t.Fatalf("step %d: Encode reallocated a dst of the right size", step)
		}
	}
	other, err := hardneg.NextMixDraw(p, reused, 4, 10, 5, 2)
	if err != nil {
		t.Fatal(err)
	}
	if other == p || len(other.JQ) != 4*2 {
		t.Fatalf("a draw of other sizes reused the last one's (%d query mixes)", len(other.JQ))
	}
}

func TestMixDrawTensorLayout(t *testing.T) {
	p, err := hardneg.NewMixDraw(rand.New(rand.NewPCG(5, 5)), 3, 7, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	pt := p.Tensor()
	if !pt.Shape().Eq(tensor.Shape{3, 3*4 + 2*2}) {
		t.Fatalf("draw tensor shape %v", pt.Shape())
	}
	at := func(b, c int) float32 {
		v, err := pt.At(b, c)
		if err != nil {
			t.Fatal(err)
		}
		return v.(float32)
	}
	for b := range 3 {
		for tt := range 4 {
			if at(b, tt) != float32(p.I[b*4+tt]) || at(b, 4+tt) != float32(p.J[b*4+tt]) || at(b, 8+tt) != p.Alpha[b*4+tt] {
				t.Fatalf("row %d mix %d does not hold (i, j, α)", b, tt)
			}
		}
		for tt := range 2 {
			if at(b, 12+tt) != float32(p.JQ[b*2+tt]) || at(b, 14+tt) != p.Beta[b*2+tt] {
				t.Fatalf("row %d query mix %d does not hold (j′, β)", b, tt)
			}
		}
	}
}

func TestMixDrawRejectsBadSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, c := range [][4]int{{0, 4, 1, 1}, {2, 0, 1, 1}, {2, 4, -1, 1}, {2, 4, 1, -1}} {
		if _, err := hardneg.NewMixDraw(rng, c[0], c[1], c[2], c[3]); err == nil {
			t.Errorf("NewMixDraw(B=%d, N=%d, s=%d, s′=%d) returned no error", c[0], c[1], c[2], c[3])
		}
	}
}
