package eval

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// ProbeConfig holds the linear-probe recipe. DefaultProbeConfig gives MoCo's
// main_lincls.py values (He et al. 2020, facebookresearch/moco).
type ProbeConfig struct {
	// Epochs is the number of passes over the training features (100).
	Epochs int
	// LR is the initial SGD learning rate (30).
	LR float64
	// Momentum is the SGD momentum μ, PyTorch form v ← μv + g, w ← w − lr·v (0.9).
	Momentum float64
	// WeightDecay adds WeightDecay·w to the weight and bias gradients (0).
	WeightDecay float64
	// Milestones are the 0-based epochs from which the rate is multiplied by
	// Gamma once more ({60, 80}).
	Milestones []int
	// Gamma is the step factor at every milestone (0.1).
	Gamma float64
	// BatchSize is the minibatch size; the last partial batch is kept (256).
	BatchSize int
	// InitStd is the standard deviation of the N(0, InitStd²) weight init
	// (0.01); the bias starts at 0.
	InitStd float64
	// Seed drives the weight init and the per-epoch shuffling.
	Seed uint64
	// Classes is the number of classes; 0 means max label + 1.
	Classes int
	// Standardize rescales every feature to zero mean and unit variance with
	// the training set's statistics (applied to train and test alike). MoCo
	// uses the backbone's avgpool features raw, and lr = 30 is tuned for them
	// (non-negative, small post-ReLU values), so keep it off to reproduce the
	// paper. Turn it on for inputs on another scale — raw pixels (the
	// `--baseline pixels` mode) or any features whose norms run into the tens —
	// where lr = 30 makes plain SGD diverge.
	Standardize bool
	// Progress, if set, is called after every epoch.
	Progress func(ProbeEpoch)
}

// ProbeEpoch is what the Progress callback receives after each epoch.
type ProbeEpoch struct {
	Epoch int     // 0-based
	LR    float64 // learning rate used in this epoch
	Loss  float64 // mean training cross-entropy over the epoch
}

// DefaultProbeConfig returns MoCo's linear-evaluation recipe: SGD lr 30,
// momentum 0.9, no weight decay, 100 epochs, lr ×0.1 at 60 and 80, batch 256,
// fc init N(0, 0.01²), bias 0.
func DefaultProbeConfig() ProbeConfig {
	return ProbeConfig{
		Epochs: 100, LR: 30, Momentum: 0.9, Milestones: []int{60, 80}, Gamma: 0.1,
		BatchSize: 256, InitStd: 0.01, Seed: 1,
	}
}

// lrAt returns the step-schedule learning rate of a 0-based epoch.
func (c ProbeConfig) lrAt(epoch int) float64 {
	lr := c.LR
	for _, m := range c.Milestones {
		if epoch >= m {
			lr *= c.Gamma
		}
	}
	return lr
}

// LinearModel is a trained probe: scores = standardize(x)·W + B.
type LinearModel struct {
	D, Classes int
	// W is D×Classes, row-major.
	W []float32
	// B is the bias, one per class.
	B []float32
	// Mean and Std are the training-set feature statistics applied before W
	// when the probe was trained with Standardize; nil otherwise.
	Mean, Std []float32
}

// ProbeResult is the outcome of a linear probe.
type ProbeResult struct {
	// Top1 and Top5 are test accuracies in [0, 1]; with fewer than 5
	// classes Top5 is 1.
	Top1, Top5 float64
	// LossCurve is the mean training cross-entropy of every epoch.
	LossCurve []float64
	// Model is the trained classifier.
	Model LinearModel
}

// Diverged says why the probe's training went wrong, or "" when nothing
// shows it did: a final loss that is not finite, above twice the first
// epoch's or above ten times an untrained probe's ln(classes) (the loss of
// the near-zero initial layer), or above ln(classes) with test top-1 below
// chance (1/classes). A probe on features without signal ends near chance
// too, but with a loss at or below ln(classes).
func (r ProbeResult) Diverged(classes int) string {
	if len(r.LossCurve) == 0 || classes < 2 {
		return ""
	}
	first, last := r.LossCurve[0], r.LossCurve[len(r.LossCurve)-1]
	chance, untrained := 1/float64(classes), math.Log(float64(classes))
	switch {
	case math.IsNaN(last) || math.IsInf(last, 0):
		return fmt.Sprintf("its loss ended at %v", last)
	case last > 2*first:
		return fmt.Sprintf("its loss rose from %.4g in the first epoch to %.4g", first, last)
	case last > 10*untrained:
		return fmt.Sprintf("its loss ended at %.4g, over ten times an untrained probe's ln %d = %.4g", last, classes, untrained)
	case last > untrained && r.Top1 < chance:
		return fmt.Sprintf("its loss ended at %.4g, above an untrained probe's ln %d = %.4g, and top-1 %.2f%% is below chance (%.2f%%)",
			last, classes, untrained, 100*r.Top1, 100*chance)
	}
	return ""
}

// LinearProbe trains a multinomial logistic regression (a d→classes linear
// layer with bias, softmax cross-entropy) on frozen training features with
// SGD + momentum and evaluates it on the test features.
func LinearProbe(train Matrix, trainLabels []int, test Matrix, testLabels []int, cfg ProbeConfig) (ProbeResult, error) {
	same := func(int) (Matrix, []int, error) { return train, trainLabels, nil }
	return linearProbe(same, true, test, testLabels, cfg)
}

// TrainFeatures supplies the probe's training features of one 0-based
// epoch and their labels: the features of freshly augmented images, for
// MoCo's linear evaluation with augmentation. Every epoch must give the
// same dimension; the number of rows may change.
type TrainFeatures func(epoch int) (Matrix, []int, error)

// LinearProbeEpochs is LinearProbe with training features that may change
// from epoch to epoch: trainFeatures is called once per epoch, in order,
// before that epoch's SGD steps. With Standardize the statistics are those
// of epoch 0's features, kept for every epoch and for the test features. A
// provider that returns the same features every epoch gives LinearProbe's
// result exactly.
func LinearProbeEpochs(trainFeatures TrainFeatures, test Matrix, testLabels []int, cfg ProbeConfig) (ProbeResult, error) {
	return linearProbe(trainFeatures, false, test, testLabels, cfg)
}

// linearProbe is the training loop of LinearProbe and LinearProbeEpochs.
// With fixed the provider is asked for epoch 0 only and its features (once
// standardised) serve every epoch.
func linearProbe(trainFeatures TrainFeatures, fixed bool, test Matrix, testLabels []int, cfg ProbeConfig) (ProbeResult, error) {
	if err := test.validate("probe test features"); err != nil {
		return ProbeResult{}, err
	}
	switch {
	case len(testLabels) != test.N:
		return ProbeResult{}, fmt.Errorf("eval: probe has %d test labels for %d rows", len(testLabels), test.N)
	case test.N == 0:
		return ProbeResult{}, errors.New("eval: probe needs at least one test feature")
	case cfg.Epochs <= 0 || cfg.BatchSize <= 0 || !(cfg.LR > 0) || cfg.Momentum < 0 || cfg.InitStd < 0:
		return ProbeResult{}, fmt.Errorf("eval: probe config needs epochs > 0, batch size > 0, lr > 0, momentum ≥ 0, init std ≥ 0 (got %d, %d, %v, %v, %v); start from DefaultProbeConfig", cfg.Epochs, cfg.BatchSize, cfg.LR, cfg.Momentum, cfg.InitStd)
	}
	train, trainLabels, err := epochFeatures(trainFeatures, 0, test.D)
	if err != nil {
		return ProbeResult{}, err
	}
	classes, err := numClasses(cfg.Classes, trainLabels, testLabels)
	if err != nil {
		return ProbeResult{}, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6d6f6368692d7072)) // "mochi-pr"
	d := test.D
	m := LinearModel{D: d, Classes: classes, W: make([]float32, d*classes), B: make([]float32, classes)}
	for i := range m.W {
		m.W[i] = float32(rng.NormFloat64() * cfg.InitStd)
	}
	if cfg.Standardize {
		m.Mean, m.Std = featureStats(train)
		train = m.standardize(train)
	}

	vW := make([]float32, len(m.W)) // momentum buffers
	vB := make([]float32, classes)
	gW := make([]float32, len(m.W))
	gB := make([]float32, classes)
	var (
		xb, scratch []float32 // B×D gathered batch, B×C logits
		yb, perm    []int
	)
	res := ProbeResult{LossCurve: make([]float64, 0, cfg.Epochs)}
	for epoch := 0; epoch < cfg.Epochs; epoch++ {
		if epoch > 0 && !fixed {
			if train, trainLabels, err = epochFeatures(trainFeatures, epoch, d); err != nil {
				return ProbeResult{}, err
			}
			if err := checkLabels(trainLabels, classes, epoch); err != nil {
				return ProbeResult{}, err
			}
			train = m.standardize(train) // a no-op without statistics
		}
		if len(perm) != train.N {
			perm = make([]int, train.N)
			for i := range perm {
				perm[i] = i
			}
			b := min(cfg.BatchSize, train.N)
			xb, yb, scratch = make([]float32, b*d), make([]int, 0, b), make([]float32, b*classes)
		}
		lr := cfg.lrAt(epoch)
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		var lossSum float64
		for lo := 0; lo < train.N; lo += cfg.BatchSize {
			hi := min(lo+cfg.BatchSize, train.N)
			yb = yb[:0]
			for r, i := range perm[lo:hi] {
				copy(xb[r*d:(r+1)*d], train.Row(i))
				yb = append(yb, trainLabels[i])
			}
			batch := Matrix{N: hi - lo, D: d, Data: xb[:(hi-lo)*d]}
			loss := m.crossEntropyGrad(batch, yb, gW, gB, scratch)
			lossSum += loss * float64(hi-lo)
			sgdMomentumStep(m.W, gW, vW, lr, cfg.Momentum, cfg.WeightDecay)
			sgdMomentumStep(m.B, gB, vB, lr, cfg.Momentum, cfg.WeightDecay)
		}
		loss := lossSum / float64(train.N)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return ProbeResult{}, fmt.Errorf("eval: linear probe diverged at epoch %d (loss %v, lr %v); lower ProbeConfig.LR or set Standardize for features on a large scale such as raw pixels", epoch, loss, lr)
		}
		res.LossCurve = append(res.LossCurve, loss)
		if cfg.Progress != nil {
			cfg.Progress(ProbeEpoch{Epoch: epoch, LR: lr, Loss: loss})
		}
	}
	res.Model = m
	res.Top1, res.Top5 = m.accuracy(test, testLabels)
	return res, nil
}

// epochFeatures calls the provider for one epoch and checks its answer
// against the test features' dimension d.
func epochFeatures(trainFeatures TrainFeatures, epoch, d int) (Matrix, []int, error) {
	train, labels, err := trainFeatures(epoch)
	if err != nil {
		return Matrix{}, nil, fmt.Errorf("eval: probe train features of epoch %d: %w", epoch, err)
	}
	if err := train.validate("probe train features"); err != nil {
		return Matrix{}, nil, err
	}
	switch {
	case train.D != d:
		return Matrix{}, nil, fmt.Errorf("eval: probe train features have dimension %d but test features %d; extract both with the same encoder", train.D, d)
	case len(labels) != train.N:
		return Matrix{}, nil, fmt.Errorf("eval: probe has %d train labels for %d rows (epoch %d)", len(labels), train.N, epoch)
	case train.N == 0:
		return Matrix{}, nil, fmt.Errorf("eval: probe needs at least one train feature (epoch %d has none)", epoch)
	}
	return train, labels, nil
}

// checkLabels reports a label outside [0, classes) in a later epoch's
// training labels (epoch 0's were checked when the classes were counted).
func checkLabels(labels []int, classes, epoch int) error {
	for i, l := range labels {
		if l < 0 || l >= classes {
			return fmt.Errorf("eval: probe train label %d at row %d of epoch %d is outside [0, %d); every epoch must use the classes of epoch 0", l, i, epoch, classes)
		}
	}
	return nil
}

// sgdMomentumStep applies PyTorch's SGD with momentum to w in place:
// g ← g + wd·w; v ← μ·v + g; w ← w − lr·v. The probe keeps this update and
// crossEntropyGrad rather than pkg/optim and pkg/graph's softmax
// cross-entropy: its model is a d→C layer on host slices, two GEMMs per
// batch, which those would run only as a compiled plan on a backend, and it
// accumulates in float64 (lr 30 amplifies float32 rounding).
func sgdMomentumStep(w, g, v []float32, lr, mu, wd float64) {
	for i := range w {
		gi := float64(g[i]) + wd*float64(w[i])
		vi := mu*float64(v[i]) + gi
		v[i] = float32(vi)
		w[i] = float32(float64(w[i]) - lr*vi)
	}
}

// scores writes the logits x·W + B (x: n×D, out: n×Classes).
func (m LinearModel) scores(x Matrix, out []float32) {
	for r := 0; r < x.N; r++ {
		copy(out[r*m.Classes:(r+1)*m.Classes], m.B)
	}
	blas32.Gemm(blas.NoTrans, blas.NoTrans, 1,
		blas32.General{Rows: x.N, Cols: m.D, Stride: m.D, Data: x.Data},
		blas32.General{Rows: m.D, Cols: m.Classes, Stride: m.Classes, Data: m.W},
		1, blas32.General{Rows: x.N, Cols: m.Classes, Stride: m.Classes, Data: out[:x.N*m.Classes]})
}

// crossEntropyGrad returns the mean softmax cross-entropy of the batch x
// (B×D) with labels y and writes its gradients: with P = softmax(xW + b)
// (B×C) and Y one-hot, dW = xᵀ(P − Y)/B (D×C) and db = Σ_rows (P − Y)/B.
// scratch holds at least B×C floats.
func (m LinearModel) crossEntropyGrad(x Matrix, y []int, gW, gB, scratch []float32) float64 {
	c := m.Classes
	logits := scratch[:x.N*c] // B×C
	m.scores(x, logits)
	var loss float64
	clear(gB)
	inv := 1 / float64(x.N)
	for r := 0; r < x.N; r++ {
		row := logits[r*c : (r+1)*c]
		lse := logSumExp32(row)
		loss += lse - float64(row[y[r]])
		for j, z := range row {
			p := math.Exp(float64(z) - lse)
			if j == y[r] {
				p--
			}
			row[j] = float32(p * inv) // row now holds (P − Y)/B
			gB[j] += row[j]
		}
	}
	blas32.Gemm(blas.Trans, blas.NoTrans, 1,
		blas32.General{Rows: x.N, Cols: m.D, Stride: m.D, Data: x.Data},
		blas32.General{Rows: x.N, Cols: c, Stride: c, Data: logits},
		0, blas32.General{Rows: m.D, Cols: c, Stride: c, Data: gW})
	return loss * inv
}

// logSumExp32 returns log Σ exp(v_i) in float64, shifted by the maximum.
func logSumExp32(v []float32) float64 {
	mx := math.Inf(-1)
	for _, z := range v {
		mx = math.Max(mx, float64(z))
	}
	var s float64
	for _, z := range v {
		s += math.Exp(float64(z) - mx)
	}
	return mx + math.Log(s)
}

// accuracy returns the top-1 and top-5 accuracy of m on x (raw features:
// the model's standardisation is applied here).
func (m LinearModel) accuracy(x Matrix, y []int) (top1, top5 float64) {
	x = m.standardize(x)
	hit1 := make([]bool, x.N)
	hit5 := make([]bool, x.N)
	const block = 1024
	logits := make([]float32, min(block, x.N)*m.Classes)
	for lo := 0; lo < x.N; lo += block {
		hi := min(lo+block, x.N)
		m.scores(Matrix{N: hi - lo, D: x.D, Data: x.Data[lo*x.D : hi*x.D]}, logits)
		score := make([]float64, m.Classes)
		order := make([]int, min(5, m.Classes))
		for r := lo; r < hi; r++ {
			for j, z := range logits[(r-lo)*m.Classes : (r-lo+1)*m.Classes] {
				score[j] = float64(z)
			}
			topClasses(score, order)
			hit1[r] = order[0] == y[r]
			for _, c := range order {
				hit5[r] = hit5[r] || c == y[r]
			}
		}
	}
	return fraction(hit1), fraction(hit5)
}

// Predict returns the top-1 class of every row of x (raw features).
func (m LinearModel) Predict(x Matrix) ([]int, error) {
	if err := x.validate("features to classify"); err != nil {
		return nil, err
	}
	if x.D != m.D {
		return nil, fmt.Errorf("eval: the probe expects dimension %d, features have %d", m.D, x.D)
	}
	x = m.standardize(x)
	logits := make([]float32, x.N*m.Classes)
	m.scores(x, logits)
	pred := make([]int, x.N)
	score := make([]float64, m.Classes)
	order := make([]int, 1)
	for r := range pred {
		for j, z := range logits[r*m.Classes : (r+1)*m.Classes] {
			score[j] = float64(z)
		}
		topClasses(score, order)
		pred[r] = order[0]
	}
	return pred, nil
}

// featureStats returns the per-column mean and standard deviation of x
// (float64 accumulation); a column with std below 1e-8 gets std 1 so that a
// constant feature maps to 0 instead of dividing by zero.
func featureStats(x Matrix) (mean, std []float32) {
	sum := make([]float64, x.D)
	sq := make([]float64, x.D)
	for i := 0; i < x.N; i++ {
		for j, v := range x.Row(i) {
			sum[j] += float64(v)
		}
	}
	mean = make([]float32, x.D)
	for j := range sum {
		sum[j] /= float64(x.N)
		mean[j] = float32(sum[j])
	}
	for i := 0; i < x.N; i++ {
		for j, v := range x.Row(i) {
			dv := float64(v) - sum[j]
			sq[j] += dv * dv
		}
	}
	std = make([]float32, x.D)
	for j := range sq {
		s := math.Sqrt(sq[j] / float64(x.N))
		if s < 1e-8 {
			s = 1
		}
		std[j] = float32(s)
	}
	return mean, std
}

// standardize returns (x − Mean)/Std as a copy, or x itself when the model
// has no statistics.
func (m LinearModel) standardize(x Matrix) Matrix {
	if m.Mean == nil {
		return x
	}
	out := x.clone()
	for i := 0; i < out.N; i++ {
		row := out.Row(i)
		for j := range row {
			row[j] = (row[j] - m.Mean[j]) / m.Std[j]
		}
	}
	return out
}
