package eval

import (
	"math"
	"math/rand/v2"
	"testing"
)

// uniformityRef is the float64 reference: log mean_{i<j} exp(−t‖x_i − x_j‖²)
// from explicit differences (no Gram matrix), as in Wang & Isola's
// torch.pdist(x).pow(2).mul(−t).exp().mean().log().
func uniformityRef(x [][]float64, t float64) float64 {
	var s float64
	var pairs int
	for i := range x {
		for j := i + 1; j < len(x); j++ {
			var d2 float64
			for c := range x[i] {
				d := x[i][c] - x[j][c]
				d2 += d * d
			}
			s += math.Exp(-t * d2)
			pairs++
		}
	}
	return math.Log(s / float64(pairs))
}

func TestAlignment(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	x := normalizeRows(randMatrix(rng, 50, 16))
	a, err := Alignment(x, x.clone(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if a != 0 {
		t.Fatalf("identical pairs: alignment %v, want 0", a)
	}
	y := normalizeRows(randMatrix(rng, 50, 16))
	for _, alpha := range []float64{1, 2, 3} {
		got, err := Alignment(x, y, alpha)
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		for i := 0; i < x.N; i++ {
			var d2 float64
			for j := range x.Row(i) {
				d := float64(x.Row(i)[j] - y.Row(i)[j])
				d2 += d * d
			}
			want += math.Pow(math.Sqrt(d2), alpha)
		}
		want /= float64(x.N)
		if math.Abs(got-want) > 1e-6*want {
			t.Fatalf("α %v: alignment %v, reference %v", alpha, got, want)
		}
	}
	// Antipodal unit pairs: ‖x − (−x)‖² = 4 for every pair.
	neg := x.clone()
	for i := range neg.Data {
		neg.Data[i] = -neg.Data[i]
	}
	if a, _ := Alignment(x, neg, 2); math.Abs(a-4) > 1e-5 {
		t.Fatalf("antipodal pairs: alignment %v, want 4", a)
	}
	if _, err := Alignment(x, Matrix{N: 49, D: 16, Data: make([]float32, 49*16)}, 2); err == nil {
		t.Fatal("unequal shapes accepted")
	}
}

func TestUniformityAllEqualIsZero(t *testing.T) {
	x := Matrix{N: 600, D: 3, Data: make([]float32, 600*3)}
	for i := 0; i < x.N; i++ {
		copy(x.Row(i), []float32{0.6, 0, 0.8})
	}
	u, err := Uniformity(x, 2)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(u) > 1e-6 {
		t.Fatalf("all features equal: uniformity %v, want 0", u)
	}
}

func TestUniformityMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, n := range []int{2, 3, 513, 700} { // 513, 700 cross the 512-row block
		for _, unit := range []bool{true, false} {
			x := randMatrix(rng, n, 9)
			if unit {
				x = normalizeRows(x)
			} else {
				for i := range x.Data {
					x.Data[i] *= 0.3 // general vectors: ‖x_i‖² ≠ 1
				}
			}
			got, err := Uniformity(x, 2)
			if err != nil {
				t.Fatal(err)
			}
			rows := make([][]float64, n)
			for i := range rows {
				rows[i] = make([]float64, x.D)
				for j, v := range x.Row(i) {
					rows[i][j] = float64(v)
				}
			}
			if want := uniformityRef(rows, 2); math.Abs(got-want) > 1e-5 {
				t.Fatalf("n %d unit %v: uniformity %v, reference %v", n, unit, got, want)
			}
		}
	}
}

// besselI0 is the modified Bessel function I₀(x) = Σ_k (x/2)^{2k}/(k!)².
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 60; k++ {
		term *= (x / 2) * (x / 2) / float64(k*k)
		sum += term
	}
	return sum
}

func TestUniformityCircle(t *testing.T) {
	const n, temp = 1000, 2.0
	x := Matrix{N: n, D: 2, Data: make([]float32, 2*n)}
	for i := 0; i < n; i++ {
		a := 2 * math.Pi * float64(i) / n
		x.Data[2*i], x.Data[2*i+1] = float32(math.Cos(a)), float32(math.Sin(a))
	}
	got, err := Uniformity(x, temp)
	if err != nil {
		t.Fatal(err)
	}
	// Exact finite-n value from the angles: pair (i, j) has
	// ‖x_i − x_j‖² = 2 − 2cos(2π(j−i)/n), so the pair mean is
	// Σ_{m=1}^{n−1} exp(−t(2 − 2cos(2πm/n))) / (n − 1).
	var s float64
	for m := 1; m < n; m++ {
		s += math.Exp(-temp * (2 - 2*math.Cos(2*math.Pi*float64(m)/n)))
	}
	finite := math.Log(s / (n - 1))
	if math.Abs(got-finite) > 1e-5 {
		t.Fatalf("circle n=%d: uniformity %v, exact finite-n value %v", n, got, finite)
	}
	// Continuous limit on S¹: E exp(−t‖x−y‖²) = e^{−2t} I₀(2t); t = 2 gives
	// e^{−4} I₀(4) ≈ 0.2070. The finite-n value differs by O(1/n).
	limit := math.Log(math.Exp(-2*temp) * besselI0(2*temp))
	if math.Abs(got-limit) > 5e-3 {
		t.Fatalf("circle n=%d: uniformity %v, continuous limit %v", n, got, limit)
	}
}

func TestUniformityFibonacciSphere(t *testing.T) {
	const n, temp = 2000, 2.0
	x := Matrix{N: n, D: 3, Data: make([]float32, 3*n)}
	golden := math.Pi * (3 - math.Sqrt(5))
	for i := 0; i < n; i++ {
		z := 1 - (2*float64(i)+1)/n
		r := math.Sqrt(1 - z*z)
		x.Data[3*i], x.Data[3*i+1], x.Data[3*i+2] = float32(r*math.Cos(golden*float64(i))), float32(r*math.Sin(golden*float64(i))), float32(z)
	}
	got, err := Uniformity(x, temp)
	if err != nil {
		t.Fatal(err)
	}
	// On S², x·y is U(−1, 1) for independent uniform points, so
	// E exp(−t(2 − 2x·y)) = (1 − e^{−4t})/(4t).
	want := math.Log((1 - math.Exp(-4*temp)) / (4 * temp))
	if math.Abs(got-want) > 5e-3 {
		t.Fatalf("Fibonacci sphere n=%d: uniformity %v, continuous value %v", n, got, want)
	}
}

func TestUniformitySubsampledError(t *testing.T) {
	// Stated bound: |Δ| < 0.05 at m = 2000 of n = 10000 (m = 800 of 4000 with -short).
	n, m := 10000, 2000
	if testing.Short() {
		n, m = 4000, 800
	}
	rng := rand.New(rand.NewPCG(25, 26))
	x, _ := clusters(rng, n, 32, 10, 1, 0.5) // clustered: harder than uniform
	x = normalizeRows(x)
	exact, err := Uniformity(x, 2)
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for seed := uint64(0); seed < 4; seed++ {
		est, err := UniformitySubsampled(x, 2, m, seed)
		if err != nil {
			t.Fatal(err)
		}
		worst = max(worst, math.Abs(est-exact))
	}
	t.Logf("n %d m %d: exact %.4f, worst |Δ| over 4 seeds %.4f", n, m, exact, worst)
	if worst >= 0.05 {
		t.Fatalf("subsampled uniformity off by %v ≥ 0.05 (exact %v)", worst, exact)
	}
	if full, _ := UniformitySubsampled(x, 2, n, 0); full != exact {
		t.Fatalf("m = n gives %v, exact %v", full, exact)
	}
}

func BenchmarkUniformity4096(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := normalizeRows(randMatrix(rng, 4096, 128))
	for b.Loop() {
		if _, err := Uniformity(x, 2); err != nil {
			b.Fatal(err)
		}
	}
}
