package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mochi-ssl/mochi/internal/vec"
	"github.com/mochi-ssl/mochi/pkg/device"
)

// vecInput is n values of mixed scale with the values where the kernels'
// branches and roundings differ: ±0, ±Inf, NaNs of either sign,
// subnormals, ±1.
func vecInput(rng *rand.Rand, n int) []float32 {
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.Float32frombits(0xffc00001), 1e-40, -1e-40, 1, -1}
	x := make([]float32, n)
	for i := range x {
		if rng.IntN(8) == 0 {
			x[i] = special[rng.IntN(len(special))]
		} else {
			x[i] = float32(rng.NormFloat64() * math.Exp(4*rng.NormFloat64()))
		}
	}
	return x
}

// TestVecMatchesScalar: the AVX2 loops of internal/vec change no bit of
// any kernel they speed up — the losses of configs/ci.yaml stay
// bit-identical — for lengths that leave scalar tails of every size, on
// inputs holding signed zeros, infinities, NaNs and subnormals.
func TestVecMatchesScalar(t *testing.T) {
	if !vec.AVX2 {
		t.Skip("no AVX2 loops in this build or on this CPU: the scalar loops run alone")
	}
	rng := rand.New(rand.NewPCG(17, 1))
	// run calls every kernel the loops serve into fresh outputs.
	type shape struct{ n, c, hw, groups int }
	run := func(sh shape, in [5][]float32) [][]float32 {
		be := New(1)
		n := sh.n * sh.c * sh.hw
		x, y, dy, gamma, beta := in[0], in[1], in[2], in[3], in[4]
		out := func() []float32 { return make([]float32, n) }
		relu, rb, add := out(), out(), out()
		be.ReLU(Wrap(x), Wrap(relu))
		be.ReLUBackward(Wrap(x), Wrap(y), Wrap(rb))
		be.Add(Wrap(x), Wrap(y), Wrap(add))
		s := device.BNShape{N: sh.n, C: sh.c, HW: sh.hw, Groups: sh.groups}
		fx, fdy := finite(y), finite(dy)
		c, gc := sh.c, sh.groups*sh.c
		bn, mean, inv, rm, rv := out(), make([]float32, gc), make([]float32, gc), make([]float32, c), make([]float32, c)
		for i := range rv {
			rv[i] = 1
		}
		be.BatchNormTrain(s, Wrap(fx), Wrap(gamma), Wrap(beta), Wrap(bn), Wrap(mean), Wrap(inv), Wrap(rm), Wrap(rv), 0.1, 1e-5)
		infer := out()
		be.BatchNormInfer(s, Wrap(fx), Wrap(gamma), Wrap(beta), Wrap(rm), Wrap(rv), Wrap(infer), 1e-5)
		dx, dg, db := out(), make([]float32, c), make([]float32, c)
		be.BatchNormBackward(s, Wrap(fx), Wrap(fdy), Wrap(gamma), Wrap(mean), Wrap(inv), Wrap(dx), Wrap(dg), Wrap(db))
		if err := be.Sync(); err != nil {
			t.Fatal(err)
		}
		return [][]float32{relu, rb, add, bn, mean, inv, rm, rv, infer, dx, dg, db}
	}
	// The float64 sums, before BatchNorm rounds them to float32, on
	// values of widely spread magnitudes (where float64 sums round).
	for n := 1; n <= 70; n++ {
		x := finite(vecInput(rng, n))
		for i := range x {
			x[i] *= float32(math.Exp(8 * rng.NormFloat64()))
		}
		dy := finite(vecInput(rng, n))
		for i := range dy {
			dy[i] *= float32(math.Exp(8 * rng.NormFloat64()))
		}
		mu, inv := rng.NormFloat64(), float32(rng.ExpFloat64())
		sums := func() [4]float64 {
			a, b := sumsDyAndDyXhat(x, dy, float32(mu), inv)
			return [4]float64{sumOf(x), sumSquaredDev(x, mu), a, b}
		}
		got := sums()
		vec.AVX2 = false
		want := sums()
		vec.AVX2 = true
		for k, name := range []string{"Σx", "Σ(x−μ)²", "Σdy", "Σdy·x̂"} {
			if math.Float64bits(got[k]) != math.Float64bits(want[k]) && !(got[k] != got[k] && want[k] != want[k]) {
				t.Errorf("%d values: %s is %v with AVX2, %v scalar", n, name, got[k], want[k])
			}
		}
	}
	names := []string{"ReLU", "ReLUBackward", "Add", "BatchNormTrain y", "mean", "invStd", "running mean",
		"running var", "BatchNormInfer", "BatchNormBackward dx", "dgamma", "dbeta"}
	for _, sh := range []shape{{2, 3, 1, 1}, {4, 3, 7, 2}, {2, 5, 13, 1}, {8, 4, 36, 4}, {6, 3, 1021, 3}} {
		n := sh.n * sh.c * sh.hw
		in := [5][]float32{vecInput(rng, n), vecInput(rng, n), vecInput(rng, n),
			finite(vecInput(rng, sh.c)), finite(vecInput(rng, sh.c))}
		fast := run(sh, in)
		vec.AVX2 = false
		scalar := run(sh, in)
		vec.AVX2 = true
		for k := range fast {
			if i := slices.IndexFunc(fast[k], differs(scalar[k])); i >= 0 {
				t.Errorf("%+v %s: element %d is %g (%#x) with AVX2, %g (%#x) scalar", sh, names[k], i,
					fast[k][i], math.Float32bits(fast[k][i]), scalar[k][i], math.Float32bits(scalar[k][i]))
			}
		}
	}
}

// differs reports, for an element of got (by its index in got), whether
// it differs from want's in any bit; two NaNs agree whatever their sign
// and payload, which Go's max leaves unspecified.
func differs(want []float32) func(float32) bool {
	i := -1
	return func(v float32) bool {
		i++
		w := want[i]
		if v != v && w != w {
			return false
		}
		return math.Float32bits(v) != math.Float32bits(w)
	}
}

// finite is x with its NaNs and infinities replaced by ±0.5 and mapped
// by tanh into (−1, 1): BatchNorm's statistics over a NaN or an infinity
// are NaN everywhere, which would compare nothing.
func finite(x []float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			v = float32(math.Copysign(0.5, float64(v)))
		}
		out[i] = float32(math.Tanh(float64(v)))
	}
	return out
}
