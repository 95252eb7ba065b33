package eval

import (
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"testing"

	"gonum.org/v1/gonum/floats"
)

// histRef bins values on [−1, 1] like Histogram, in the test's own code.
func histRef(values []float64, bins int) []int {
	counts := make([]int, bins)
	for _, v := range values {
		b := int((v + 1) / 2 * float64(bins))
		counts[min(max(b, 0), bins-1)]++
	}
	return counts
}

func TestAnalyzeHardnessHistogramsAndNegligibleShare(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	q := randMatrix(rng, 37, 8)
	k := randMatrix(rng, 37, 8)
	negs := randMatrix(rng, 300, 8)
	cfg := HardnessConfig{N: 20, S: 0, SPrime: 0, Tau: 0.2, Bins: 16, Epsilon: 2e-3, Seed: 1}
	got, err := AnalyzeHardness(q, k, negs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	qu, ku, nu := unitRows64(q), unitRows64(k), unitRows64(negs)
	var all, top, pos []float64
	negligible := 0
	for b := range qu {
		l := make([]float64, len(nu))
		for i := range nu {
			l[i] = floats.Dot(qu[b], nu[i])
		}
		all = append(all, l...)
		sorted := slices.Clone(l)
		sort.Sort(sort.Reverse(sort.Float64Slice(sorted)))
		top = append(top, sorted[:cfg.N]...)
		lpos := floats.Dot(qu[b], ku[b])
		pos = append(pos, lpos)
		z := math.Exp(lpos / cfg.Tau)
		for _, v := range l {
			z += math.Exp(v / cfg.Tau)
		}
		for _, v := range l {
			if math.Exp(v/cfg.Tau)/z < cfg.Epsilon {
				negligible++
			}
		}
	}
	for _, c := range []struct {
		name string
		h    Histogram
		vals []float64
	}{{"negatives", got.Negatives, all}, {"hard negatives", got.HardNegatives, top}, {"positives", got.Positives, pos}} {
		if want := histRef(c.vals, cfg.Bins); !slices.Equal(c.h.Counts, want) {
			t.Fatalf("%s: counts %v, reference %v", c.name, c.h.Counts, want)
		}
		var mean float64
		for _, v := range c.vals {
			mean += v
		}
		if mean /= float64(len(c.vals)); math.Abs(c.h.Mean-mean) > 1e-6 {
			t.Fatalf("%s: mean %v, reference %v", c.name, c.h.Mean, mean)
		}
	}
	wantShare := float64(negligible) / float64(len(all))
	if got.NegligibleShare != wantShare || wantShare == 0 || wantShare == 1 {
		t.Fatalf("negligible share %v, reference %v (must lie strictly in (0, 1) for the test to mean something)", got.NegligibleShare, wantShare)
	}
	if got.Mixed.Total != 0 || got.QueryMixed.Total != 0 {
		t.Fatal("synthetic histograms filled with s = s′ = 0")
	}
}

// meanMixedRef integrates E_α q·normalize(α a + (1−α) b), α ~ U(0, alphaHi),
// by the midpoint rule.
func meanMixedRef(q, a, b []float64, alphaHi float64) float64 {
	const steps = 20000
	var s float64
	for i := 0; i < steps; i++ {
		al := alphaHi * (float64(i) + 0.5) / steps
		h := make([]float64, len(a))
		for c := range h {
			h[c] = al*a[c] + (1-al)*b[c]
		}
		s += floats.Dot(q, h) / math.Sqrt(floats.Dot(h, h))
	}
	return s / steps
}

func TestAnalyzeHardnessSyntheticNegatives(t *testing.T) {
	// One query, q = e₁, and two negatives; with N = 2 the pairs (i, j) are
	// uniform over {1,2}², so E q·h = ¼(q·n₁ + q·n₂) + ½ E_α q·normalize(α n₁ + (1−α) n₂),
	// and with N = 1, h′ = normalize(β q + (1−β) n₁), β ~ U(0, 0.5).
	q := Matrix{N: 1, D: 3, Data: []float32{1, 0, 0}}
	negs := Matrix{N: 3, D: 3, Data: []float32{0.6, 0.8, 0, 0, 0, 1, -1, 0, 0}}
	qv, n1, n2 := []float64{1, 0, 0}, []float64{0.6, 0.8, 0}, []float64{0, 0, 1}
	const s = 200000
	got, err := AnalyzeHardness(q, q, negs, HardnessConfig{N: 2, S: s, SPrime: s, Tau: 0.2, Bins: 40, Epsilon: 1e-5, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	wantH := 0.25*(0.6+0) + 0.5*meanMixedRef(qv, n1, n2, 1)
	// The per-draw values lie in [0, 0.6]: σ ≤ 0.3, so 5σ/√s ≈ 0.0034.
	if math.Abs(got.Mixed.Mean-wantH) > 0.004 || got.Mixed.Total != s {
		t.Fatalf("mean q·h %v over %d, reference %v", got.Mixed.Mean, got.Mixed.Total, wantH)
	}
	// h′ mixes q with j ∈ Q̃_2 = {n₁, n₂} uniformly.
	wantHP := 0.5*meanMixedRef(qv, qv, n1, 0.5) + 0.5*meanMixedRef(qv, qv, n2, 0.5)
	if math.Abs(got.QueryMixed.Mean-wantHP) > 0.004 {
		t.Fatalf("mean q·h′ %v, reference %v", got.QueryMixed.Mean, wantHP)
	}
	// With N = 1 every h is n₁ itself (i = j), so q·h = 0.6 in one bin.
	one, err := AnalyzeHardness(q, q, negs, HardnessConfig{N: 1, S: 100, SPrime: 100, Tau: 0.2, Bins: 40, Epsilon: 1e-5})
	if err != nil {
		t.Fatal(err)
	}
	if one.Mixed.Counts[histRefBin(0.6, 40)] != 100 || math.Abs(one.Mixed.Mean-0.6) > 1e-6 {
		t.Fatalf("N = 1: q·h histogram %v mean %v, want all 100 at 0.6", one.Mixed.Counts, one.Mixed.Mean)
	}
	// q·h′ with N = 1 lies between q·n₁ = 0.6 (β = 0) and q·normalize(q + n₁) (β = ½).
	hiHP := (1 + 0.6) / math.Sqrt(floats.Dot([]float64{1.6, 0.8, 0}, []float64{1.6, 0.8, 0}))
	for b, c := range one.QueryMixed.Counts {
		lo, hi := -1+2*float64(b)/40, -1+2*float64(b+1)/40
		if c > 0 && (hi < 0.6 || lo > hiHP) {
			t.Fatalf("q·h′ count in bin [%v, %v) outside [0.6, %v]", lo, hi, hiHP)
		}
	}
}

// histRefBin is the bin of v on [−1, 1] with bins bins.
func histRefBin(v float64, bins int) int {
	return slices.Index(histRef([]float64{v}, bins), 1)
}

func TestAnalyzeHardnessDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	q, k, negs := randMatrix(rng, 300, 16), randMatrix(rng, 300, 16), randMatrix(rng, 512, 16)
	cfg := HardnessConfig{N: 64, S: 32, SPrime: 16, Tau: 0.2, Bins: 20, Epsilon: 1e-5, Seed: 5}
	a, err := AnalyzeHardness(q, k, negs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// One goroutine instead of several: the draw is one stream in query order.
	prev := runtime.GOMAXPROCS(1)
	b, err := AnalyzeHardness(q, k, negs, cfg)
	runtime.GOMAXPROCS(prev)
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]Histogram{{a.Mixed, b.Mixed}, {a.QueryMixed, b.QueryMixed}, {a.HardNegatives, b.HardNegatives}} {
		if !reflect.DeepEqual(pair[0].Counts, pair[1].Counts) {
			t.Fatalf("counts depend on the goroutine split: %v vs %v", pair[0].Counts, pair[1].Counts)
		}
	}
	cfg.Seed = 6
	c, _ := AnalyzeHardness(q, k, negs, cfg)
	if slices.Equal(a.Mixed.Counts, c.Mixed.Counts) {
		t.Fatal("seeds 5 and 6 give the same synthetic histogram: the seed is not used")
	}
	// Hard negatives are harder than the queue on average, synthetic h′ harder still.
	if !(a.HardNegatives.Mean > a.Negatives.Mean && a.QueryMixed.Mean > a.HardNegatives.Mean) {
		t.Fatalf("means: all %v, top-N %v, h′ %v; want increasing", a.Negatives.Mean, a.HardNegatives.Mean, a.QueryMixed.Mean)
	}
}

func TestAnalyzeHardnessErrors(t *testing.T) {
	m := Matrix{N: 2, D: 2, Data: []float32{1, 0, 0, 1}}
	bad := []HardnessConfig{
		{N: 0, S: 1, Tau: 0.2, Bins: 10, Epsilon: 1e-5},
		{N: 1, S: -1, Tau: 0.2, Bins: 10, Epsilon: 1e-5},
		{N: 1, Tau: 0, Bins: 10, Epsilon: 1e-5},
		{N: 1, Tau: 0.2, Bins: 0, Epsilon: 1e-5},
	}
	for i, cfg := range bad {
		if _, err := AnalyzeHardness(m, m, m, cfg); err == nil {
			t.Errorf("config %d accepted: %+v", i, cfg)
		}
	}
	if _, err := AnalyzeHardness(m, Matrix{N: 1, D: 2, Data: []float32{1, 0}}, m, DefaultHardnessConfig()); err == nil {
		t.Error("keys of another count accepted")
	}
}

func BenchmarkAnalyzeHardness(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	q, k, negs := randMatrix(rng, 256, 128), randMatrix(rng, 256, 128), randMatrix(rng, 16384, 128)
	for b.Loop() {
		if _, err := AnalyzeHardness(q, k, negs, DefaultHardnessConfig()); err != nil {
			b.Fatal(err)
		}
	}
}
