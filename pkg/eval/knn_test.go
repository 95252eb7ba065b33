package eval

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/floats"
)

func TestKNNHandBuilt(t *testing.T) {
	// Train points on the unit circle; a test point's vote is computable by hand.
	train := Matrix{N: 4, D: 2, Data: []float32{1, 0, 0.8, 0.6, 0, 1, -1, 0}}
	trainLabels := []int{0, 0, 1, 2}
	tests := []struct {
		name  string
		x     []float32
		label int
		k     int
		want  int
	}{
		// Nearest neighbour (k = 1) of (0.6, 0.8) is (0.8, 0.6): class 0.
		{"k1", []float32{0.6, 0.8}, 0, 1, 0},
		// k = 3 around (0.1, 1): neighbours (0,1) class 1 with sim 0.995,
		// (0.8,0.6) 0.676, (1,0) 0.0995 class 0. With t = 0.1:
		// class 1: e^9.95 ≈ 20952 > class 0: e^6.76 + e^0.995 ≈ 865. → 1.
		{"k3", []float32{0.1, 1}, 1, 3, 1},
		// Scale must not matter (cosine): same as k1 with a long vector.
		{"scaled", []float32{60, 80}, 0, 1, 0},
		// k = 4 at (−1, 0.05): class 2 wins alone with sim ≈ 0.9988.
		{"k4", []float32{-1, 0.05}, 2, 4, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			test := Matrix{N: 1, D: 2, Data: tc.x}
			res, err := KNN(train, trainLabels, test, []int{tc.label}, KNNConfig{K: tc.k, T: 0.1})
			if err != nil {
				t.Fatal(err)
			}
			if res.Predictions[0] != tc.want {
				t.Fatalf("prediction %d, want %d", res.Predictions[0], tc.want)
			}
			if res.Top1 != 1 || res.Top5 != 1 {
				t.Fatalf("top1 %v top5 %v, want 1 1", res.Top1, res.Top5)
			}
		})
	}
}

func TestKNNWeightsBeatCounts(t *testing.T) {
	// Two far class-1 neighbours against one very close class-0 neighbour:
	// a plain majority vote says 1, the exp(sim/t) weights say 0.
	train := Matrix{N: 3, D: 2, Data: []float32{1, 0, 0, 1, 0.05, 1}}
	test := Matrix{N: 1, D: 2, Data: []float32{1, 0.01}}
	res, err := KNN(train, []int{0, 1, 1}, test, []int{0}, KNNConfig{K: 3, T: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	// class 0: e^{~10} ≈ 22000; class 1: e^{0.1} + e^{0.15} ≈ 2.3.
	if res.Predictions[0] != 0 {
		t.Fatalf("prediction %d, want 0 (weighted vote)", res.Predictions[0])
	}
}

func TestKNNSeparatedClusters(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x, y := clusters(rng, 1500, 16, 10, 3, 0.3)
	train, test := Matrix{N: 1000, D: 16, Data: x.Data[:1000*16]}, Matrix{N: 500, D: 16, Data: x.Data[1000*16:]}
	res, err := KNN(train, y[:1000], test, y[1000:], KNNConfig{K: 200, T: 0.1, BlockRows: 64})
	if err != nil {
		t.Fatal(err)
	}
	if res.Top1 != 1 || res.Top5 != 1 {
		t.Fatalf("top1 %v top5 %v on separated clusters, want 1 1", res.Top1, res.Top5)
	}
}

func TestKNNShuffledLabelsNearChance(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const classes = 10
	x, y := clusters(rng, 3000, 16, 50, 3, 0.3)
	for i := range y {
		y[i] = rng.IntN(classes) // labels independent of the features
	}
	train, test := Matrix{N: 2000, D: 16, Data: x.Data[:2000*16]}, Matrix{N: 1000, D: 16, Data: x.Data[2000*16:]}
	res, err := KNN(train, y[:2000], test, y[2000:], KNNConfig{K: 200, T: 0.1, Classes: classes})
	if err != nil {
		t.Fatal(err)
	}
	// Chance is 0.1 / 0.5; binomial σ over 1000 tests is ≈ 0.01 / 0.016.
	if math.Abs(res.Top1-0.1) > 0.05 || math.Abs(res.Top5-0.5) > 0.08 {
		t.Fatalf("top1 %v top5 %v on shuffled labels, want ≈ 0.1 and ≈ 0.5", res.Top1, res.Top5)
	}
}

func TestKNNk1IsNaiveNearestNeighbour(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	train, trainLabels := clusters(rng, 700, 12, 7, 0.5, 1)
	test, testLabels := clusters(rng, 300, 12, 7, 0.5, 1)
	res, err := KNN(train, trainLabels, test, testLabels, KNNConfig{K: 1, T: 0.1, BlockRows: 37})
	if err != nil {
		t.Fatal(err)
	}
	tr, te := unitRows64(train), unitRows64(test)
	hits := 0
	for i, q := range te {
		best, bestSim := -1, math.Inf(-1)
		for j, x := range tr {
			if s := floats.Dot(q, x); s > bestSim {
				best, bestSim = j, s
			}
		}
		if res.Predictions[i] != trainLabels[best] {
			t.Fatalf("test %d: prediction %d, naive nearest neighbour %d has label %d", i, res.Predictions[i], best, trainLabels[best])
		}
		if trainLabels[best] == testLabels[i] {
			hits++
		}
	}
	if want := float64(hits) / float64(len(te)); res.Top1 != want {
		t.Fatalf("top1 %v, naive %v", res.Top1, want)
	}
}

func TestKNNTop5AtLeastTop1AndInputsKept(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	train, trainLabels := clusters(rng, 400, 8, 12, 0.7, 1)
	test, testLabels := clusters(rng, 200, 8, 12, 0.7, 1)
	before := slices.Clone(train.Data)
	res, err := KNN(train, trainLabels, test, testLabels, DefaultKNNConfig())
	if err != nil {
		t.Fatal(err)
	}
	if res.Top5 < res.Top1 {
		t.Fatalf("top5 %v < top1 %v", res.Top5, res.Top1)
	}
	if !slices.Equal(before, train.Data) {
		t.Fatal("KNN modified its input")
	}
}

func TestKNNErrors(t *testing.T) {
	good := Matrix{N: 2, D: 2, Data: []float32{1, 0, 0, 1}}
	tests := []struct {
		name        string
		train, test Matrix
		trainL      []int
		cfg         KNNConfig
	}{
		{"dim mismatch", good, Matrix{N: 1, D: 3, Data: []float32{1, 2, 3}}, []int{0, 1}, DefaultKNNConfig()},
		{"label count", good, good, []int{0}, DefaultKNNConfig()},
		{"negative label", good, good, []int{0, -1}, DefaultKNNConfig()},
		{"k zero", good, good, []int{0, 1}, KNNConfig{K: 0, T: 0.1}},
		{"bad data length", Matrix{N: 2, D: 2, Data: []float32{1}}, good, []int{0, 1}, DefaultKNNConfig()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			testL := make([]int, tc.test.N)
			if _, err := KNN(tc.train, tc.trainL, tc.test, testL, tc.cfg); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestTopKIndices(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 5, 100} {
		for _, k := range []int{1, 3, 100, 200} {
			s := make([]float32, n)
			for i := range s {
				s[i] = float32(rng.IntN(20)) // ties on purpose
			}
			got := topKIndices(s, k, nil)
			want := make([]int, n)
			for i := range want {
				want[i] = i
			}
			slices.SortStableFunc(want, func(a, b int) int {
				switch {
				case s[a] > s[b]:
					return -1
				case s[a] < s[b]:
					return 1
				}
				return 0
			})
			if !slices.Equal(got, want[:min(k, n)]) {
				t.Fatalf("n %d k %d: got %v want %v", n, k, got, want[:min(k, n)])
			}
		}
	}
}

func BenchmarkKNN(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	train, trainLabels := clusters(rng, 10000, 128, 10, 1, 1)
	test, testLabels := clusters(rng, 1000, 128, 10, 1, 1)
	for b.Loop() {
		if _, err := KNN(train, trainLabels, test, testLabels, DefaultKNNConfig()); err != nil {
			b.Fatal(err)
		}
	}
}
