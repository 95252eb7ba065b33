package eval

import (
	"fmt"
	"math"
	"slices"

	"github.com/mochi-ssl/mochi/internal/parallel"
)

// KNNConfig holds the weighted kNN monitor's parameters (Wu et al. 2018,
// InstDisc; the MoCo CIFAR-10 demo): k = 200, t = 0.1.
type KNNConfig struct {
	// K is the number of nearest training features that vote (default 200).
	// It is capped at the number of training features.
	K int
	// T is the temperature of the vote weights exp(sim/T) (default 0.1).
	T float64
	// Classes is the number of classes; 0 means max label + 1 over train
	// and test labels.
	Classes int
	// BlockRows is how many test rows share one test×trainᵀ GEMM block
	// (default 256); it bounds the scratch memory to BlockRows×Ntrain floats.
	BlockRows int
}

// DefaultKNNConfig returns the MoCo monitor's settings: k = 200, t = 0.1.
func DefaultKNNConfig() KNNConfig { return KNNConfig{K: 200, T: 0.1, BlockRows: 256} }

// KNNResult is the outcome of a kNN evaluation.
type KNNResult struct {
	// Top1 and Top5 are accuracies in [0, 1]; with fewer than 5 classes Top5
	// counts every class and is 1.
	Top1, Top5 float64
	// Predictions holds the top-1 class of every test row.
	Predictions []int
}

// KNN classifies every test feature by a weighted vote of its K nearest
// training features. Features are L2-normalised (copies; inputs are kept), so
// the similarity is the cosine; neighbour i votes for its class with weight
// exp(sim_i/T) and the class with the largest summed weight wins:
//
//	sim = normalize(test)·normalize(train)ᵀ        // Ntest×Ntrain, in blocks
//	score[c] = Σ_{i ∈ topK(sim)} exp(sim_i/T)·[y_i = c]
//
// Ties between classes go to the lower class index.
func KNN(train Matrix, trainLabels []int, test Matrix, testLabels []int, cfg KNNConfig) (KNNResult, error) {
	if err := train.validate("kNN train features"); err != nil {
		return KNNResult{}, err
	}
	if err := test.validate("kNN test features"); err != nil {
		return KNNResult{}, err
	}
	if train.D != test.D {
		return KNNResult{}, fmt.Errorf("eval: kNN train features have dimension %d but test features %d; extract both with the same encoder", train.D, test.D)
	}
	if len(trainLabels) != train.N || len(testLabels) != test.N {
		return KNNResult{}, fmt.Errorf("eval: kNN has %d train labels for %d train rows and %d test labels for %d test rows", len(trainLabels), train.N, len(testLabels), test.N)
	}
	if train.N == 0 || test.N == 0 {
		return KNNResult{}, fmt.Errorf("eval: kNN needs at least one train and one test feature (got %d and %d)", train.N, test.N)
	}
	if cfg.K <= 0 || !(cfg.T > 0) {
		return KNNResult{}, fmt.Errorf("eval: kNN needs k > 0 and t > 0 (got k = %d, t = %v); DefaultKNNConfig gives k = 200, t = 0.1", cfg.K, cfg.T)
	}
	classes, err := numClasses(cfg.Classes, trainLabels, testLabels)
	if err != nil {
		return KNNResult{}, err
	}
	block := cfg.BlockRows
	if block <= 0 {
		block = 256
	}
	k := min(cfg.K, train.N)

	trainN := normalizeRows(train) // Ntrain×D
	testN := normalizeRows(test)   // Ntest×D
	res := KNNResult{Predictions: make([]int, test.N)}
	hit1 := make([]bool, test.N)
	hit5 := make([]bool, test.N)
	sim := make([]float32, min(block, test.N)*train.N) // block×Ntrain

	for lo := 0; lo < test.N; lo += block {
		hi := min(lo+block, test.N)
		rows := hi - lo
		gemmNT(testN.Data[lo*test.D:hi*test.D], trainN.Data, rows, train.N, train.D, sim[:rows*train.N])
		parallel.Rows(rows, func(rlo, rhi int) {
			idx := make([]int, 0, k)
			score := make([]float64, classes)
			order := make([]int, min(5, classes))
			for r := rlo; r < rhi; r++ {
				s := sim[r*train.N : (r+1)*train.N] // 1×Ntrain
				idx = topKIndices(s, k, idx)
				clear(score)
				for _, i := range idx {
					score[trainLabels[i]] += math.Exp(float64(s[i]) / cfg.T)
				}
				topClasses(score, order)
				t := lo + r
				res.Predictions[t] = order[0]
				hit1[t] = order[0] == testLabels[t]
				for _, c := range order {
					hit5[t] = hit5[t] || c == testLabels[t]
				}
			}
		})
	}
	res.Top1, res.Top5 = fraction(hit1), fraction(hit5)
	return res, nil
}

// numClasses returns want when positive, else max label + 1, and checks that
// every label lies in [0, classes).
func numClasses(want int, labelSets ...[]int) (int, error) {
	classes := want
	if classes <= 0 {
		for _, ls := range labelSets {
			for _, l := range ls {
				classes = max(classes, l+1)
			}
		}
	}
	for _, ls := range labelSets {
		for i, l := range ls {
			if l < 0 || l >= classes {
				return 0, fmt.Errorf("eval: label %d at row %d is outside [0, %d); labels must be class indices 0…classes−1", l, i, classes)
			}
		}
	}
	if classes < 1 {
		return 0, fmt.Errorf("eval: no classes: pass labels or set Classes")
	}
	return classes, nil
}

// topClasses fills order (len m ≤ len(score)) with the m classes of highest
// score, best first (ties: lower index first), by m linear scans: O(m·classes).
func topClasses(score []float64, order []int) {
	for r := range order {
		best := -1
		for c, v := range score {
			if slices.Contains(order[:r], c) {
				continue
			}
			if best < 0 || v > score[best] {
				best = c
			}
		}
		order[r] = best
	}
}

// fraction returns the share of true values in hits.
func fraction(hits []bool) float64 {
	n := 0
	for _, h := range hits {
		if h {
			n++
		}
	}
	return float64(n) / float64(len(hits))
}
