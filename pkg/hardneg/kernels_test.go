package hardneg_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"gorgonia.org/tensor"
)

// refSelect is Q̃_N by full sort: the n entries of highest sim (ties to the
// lower index) that the oracle keeps, listed by index.
func refSelect(sim []float32, qLab int32, kLab []int32, n int) []int32 {
	var idx []int32
	for i := range sim {
		if kLab == nil || qLab < 0 || kLab[i] != qLab {
			idx = append(idx, int32(i))
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return sim[idx[a]] > sim[idx[b]] })
	idx = idx[:n]
	slices.Sort(idx)
	return idx
}

func TestSelectTopNMatchesFullSort(t *testing.T) {
	const b = 6
	for _, tc := range []struct {
		name string
		k, n int
		sim  func(rng *rand.Rand, q, i int) float32
		lab  int
	}{
		{"random, small K", 50, 7, func(r *rand.Rand, _, _ int) float32 { return r.Float32()*2 - 1 }, 0},
		{"random, sampled threshold", 4096, 64, func(r *rand.Rand, _, _ int) float32 { return r.Float32()*2 - 1 }, 0},
		{"ties, sampled threshold", 4096, 64, func(r *rand.Rand, _, _ int) float32 { return float32(r.IntN(5)) / 5 }, 0},
		{"all equal", 300, 10, func(*rand.Rand, int, int) float32 { return 0.25 }, 0},
		{"N = K", 40, 40, func(r *rand.Rand, _, _ int) float32 { return float32(r.IntN(3)) }, 0},
		// Every 4th entry is a sampling point; 40 of them hold the maximum, so
		// the estimated threshold passes only 40 < N entries and the
		// selection must fall back to all of them.
		{"misleading sample", 4096, 64, func(r *rand.Rand, _, i int) float32 {
			if i%4 == 0 && i/4 < 40 {
				return 1
			}
			return r.Float32() * 0.9
		}, 0},
		{"oracle", 4096, 64, func(r *rand.Rand, _, _ int) float32 { return r.Float32()*2 - 1 }, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, 9))
			sim := make([]float32, b*tc.k)
			for q := range b {
				for i := range tc.k {
					sim[q*tc.k+i] = tc.sim(rng, q, i)
				}
			}
			var qLab, kLab []int32
			if tc.lab > 0 {
				qLab, kLab = make([]int32, b), make([]int32, tc.k)
				for i := range qLab {
					qLab[i] = int32(rng.IntN(tc.lab))
				}
				qLab[0] = -1 // unknown label: nothing excluded
				for i := range kLab {
					kLab[i] = int32(rng.IntN(tc.lab))
				}
			}
			sel := make([]int32, b*tc.n)
			if err := hardneg.SelectTopN(sel, sim, qLab, kLab, b, tc.k, tc.n); err != nil {
				t.Fatal(err)
			}
			for q := range b {
				var ql int32 = -1
				if qLab != nil {
					ql = qLab[q]
				}
				if want := refSelect(sim[q*tc.k:(q+1)*tc.k], ql, kLab, tc.n); !slices.Equal(sel[q*tc.n:(q+1)*tc.n], want) {
					t.Fatalf("query %d:\n got %v\nwant %v", q, sel[q*tc.n:(q+1)*tc.n], want)
				}
			}
		})
	}
}

func TestSelectTopNTooFewAfterOracle(t *testing.T) {
	sim := []float32{0.1, 0.2, 0.3, 0.4}
	err := hardneg.SelectTopN(make([]int32, 3), sim, []int32{1}, []int32{1, 1, 0, 2}, 1, 4, 3)
	if _, ok := err.(hardneg.ErrTooFewCandidates); !ok {
		t.Fatalf("error %v, want ErrTooFewCandidates", err)
	}
}

// TestSynthesizedNegatives checks the explicit construction: every h and h′
// has unit norm, and q·h from it equals MixLogits' closed form.
func TestSynthesizedNegatives(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		t.Run(fmt.Sprint(dt), func(t *testing.T) {
			cfg := hardneg.Config{N: 32, S: 40, SPrime: 20, Tau: 0.2}
			p := newProblem(77, 5, 300, 16, cfg, 0)
			dm := hardneg.Dims{B: p.B, K: p.K, D: p.D, N: cfg.N, S: cfg.S, SPrime: cfg.SPrime}
			switch dt {
			case tensor.Float64:
				checkSynthesized(t, p, dm, dt, func(x []float64) []float64 { return x }, 1e-12)
			case tensor.Float32:
				checkSynthesized(t, p, dm, dt, func(x []float64) []float32 {
					out := make([]float32, len(x))
					for i, v := range x {
						out[i] = float32(v)
					}
					return out
				}, 1e-5)
			}
		})
	}
}

func checkSynthesized[T hardneg.Float](t *testing.T, p problem, dm hardneg.Dims, dt tensor.Dtype, conv func([]float64) []T, tol float64) {
	q, queue := conv(p.q), conv(p.queue)
	sim := make([]T, dm.B*dm.K)
	hardneg.Similarities(sim, q, queue, dm.B, dm.K, dm.D)
	sel := make([]int32, dm.B*dm.N)
	if err := hardneg.SelectTopN(sel, sim, nil, nil, dm.B, dm.K, dm.N); err != nil {
		t.Fatal(err)
	}
	pt, err := p.plan.Tensor(dt)
	if err != nil {
		t.Fatal(err)
	}
	plan := pt.Data().([]T)
	e := dm.E()
	h := make([]T, dm.B*e*dm.D)
	hardneg.Synthesize(h, q, queue, sel, plan, dm)
	extra := make([]T, dm.B*e)
	hardneg.MixLogits(extra, q, queue, sim, sel, plan, dm)
	for b := range dm.B {
		for x := range e {
			v := h[(b*e+x)*dm.D : (b*e+x+1)*dm.D]
			var n2, qh float64
			for i, c := range v {
				n2 += float64(c) * float64(c)
				qh += float64(c) * float64(q[b*dm.D+i])
			}
			if math.Abs(math.Sqrt(n2)-1) > tol {
				t.Fatalf("synthetic negative %d of query %d has norm %v", x, b, math.Sqrt(n2))
			}
			if math.Abs(qh-float64(extra[b*e+x])) > tol {
				t.Fatalf("query %d, negative %d: explicit q·h = %v, closed form %v", b, x, qh, extra[b*e+x])
			}
		}
	}
}

func TestCheckCandidates(t *testing.T) {
	queue := []int32{0, 1, 1, 2, 2, 2, -1, -1}
	for _, c := range []struct {
		query []int32
		n     int
		want  error
	}{
		{[]int32{0, 1, 2}, 5, nil}, // 7, 6, 5 left
		{[]int32{0, 1, 2}, 6, hardneg.ErrTooFewCandidates{Query: 2, Left: 5, N: 6}},
		{[]int32{1, 0}, 7, hardneg.ErrTooFewCandidates{Query: 0, Left: 6, N: 7}},
		{[]int32{-1, 3}, 8, nil}, // unknown and unseen classes keep all 8
		{[]int32{-1, 3}, 9, hardneg.ErrTooFewCandidates{Query: 0, Left: 8, N: 9}},
	} {
		if got := hardneg.CheckCandidates(c.query, queue, c.n); got != c.want {
			t.Errorf("CheckCandidates(%v, N %d) = %v, want %v", c.query, c.n, got, c.want)
		}
	}
}
