package eval

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// refCrossEntropy is the float64 reference: mean_r [logsumexp(x_r W + b) − (x_r W + b)_{y_r}].
func refCrossEntropy(x Matrix, y []int, w, b []float64, classes int) float64 {
	var loss float64
	for r := 0; r < x.N; r++ {
		z := make([]float64, classes)
		for c := range z {
			z[c] = b[c]
			for j, v := range x.Row(r) {
				z[c] += float64(v) * w[j*classes+c]
			}
		}
		var s float64
		for _, v := range z {
			s += math.Exp(v)
		}
		loss += math.Log(s) - z[y[r]]
	}
	return loss / float64(x.N)
}

func TestCrossEntropyGradFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n, d, classes = 7, 5, 4
	x := randMatrix(rng, n, d)
	y := make([]int, n)
	for i := range y {
		y[i] = rng.IntN(classes)
	}
	m := LinearModel{D: d, Classes: classes, W: make([]float32, d*classes), B: make([]float32, classes)}
	w64, b64 := make([]float64, d*classes), make([]float64, classes)
	for i := range m.W {
		m.W[i] = float32(0.5 * rng.NormFloat64())
		w64[i] = float64(m.W[i])
	}
	for i := range m.B {
		m.B[i] = float32(0.5 * rng.NormFloat64())
		b64[i] = float64(m.B[i])
	}
	gW, gB := make([]float32, d*classes), make([]float32, classes)
	loss := m.crossEntropyGrad(x, y, gW, gB, make([]float32, n*classes))
	if ref := refCrossEntropy(x, y, w64, b64, classes); math.Abs(loss-ref) > 1e-5 {
		t.Fatalf("loss %v, reference %v", loss, ref)
	}
	const h = 1e-5
	check := func(name string, p []float64, g []float32) {
		for i := range p {
			orig := p[i]
			p[i] = orig + h
			up := refCrossEntropy(x, y, w64, b64, classes)
			p[i] = orig - h
			down := refCrossEntropy(x, y, w64, b64, classes)
			p[i] = orig
			fd := (up - down) / (2 * h)
			if math.Abs(fd-float64(g[i])) > 1e-5+1e-3*math.Abs(fd) {
				t.Errorf("%s[%d]: analytic %v, finite difference %v", name, i, g[i], fd)
			}
		}
	}
	check("dW", w64, gW)
	check("db", b64, gB)
}

func TestSGDMomentumStepMatchesPyTorchForm(t *testing.T) {
	w := []float32{1, -2}
	v := []float32{0, 0}
	g := []float32{0.5, 0.25}
	const lr, mu, wd = 0.1, 0.9, 0.01
	w64, v64 := []float64{1, -2}, []float64{0, 0}
	for range 3 {
		sgdMomentumStep(w, g, v, lr, mu, wd)
		for i := range w64 {
			gi := float64(g[i]) + wd*w64[i]
			v64[i] = mu*v64[i] + gi
			w64[i] -= lr * v64[i]
		}
	}
	for i := range w {
		if math.Abs(float64(w[i])-w64[i]) > 1e-6 {
			t.Fatalf("w[%d] = %v, reference %v", i, w[i], w64[i])
		}
	}
}

// shortProbe is the MoCo recipe shrunk to 20 epochs with the same step
// positions (60%, 80%), to keep the tests fast.
func shortProbe() ProbeConfig {
	cfg := DefaultProbeConfig()
	cfg.Epochs, cfg.Milestones = 20, []int{12, 16}
	return cfg
}

func split(x Matrix, y []int, nTrain int) (Matrix, []int, Matrix, []int) {
	return Matrix{N: nTrain, D: x.D, Data: x.Data[:nTrain*x.D]}, y[:nTrain],
		Matrix{N: x.N - nTrain, D: x.D, Data: x.Data[nTrain*x.D:]}, y[nTrain:]
}

// probeSplit trains the probe cfg on the first nTrain rows of x and tests
// it on the rest.
func probeSplit(t *testing.T, x Matrix, y []int, nTrain int, cfg ProbeConfig) ProbeResult {
	t.Helper()
	trX, trY, teX, teY := split(x, y, nTrain)
	res, err := LinearProbe(trX, trY, teX, teY, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestLinearProbeSeparable(t *testing.T) {
	for _, standardize := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(13, 14))
		x, y := clusters(rng, 3000, 32, 10, 1, 0.3)
		cfg := shortProbe()
		cfg.Standardize = standardize
		res := probeSplit(t, x, y, 2000, cfg)
		if res.Top1 < 0.99 || res.Top5 < res.Top1 {
			t.Fatalf("standardize %v: top1 %v top5 %v on separable features, want ≥ 0.99 and top5 ≥ top1", standardize, res.Top1, res.Top5)
		}
		if first, last := res.LossCurve[0], res.LossCurve[len(res.LossCurve)-1]; !(last < first) || last > 0.05 {
			t.Fatalf("standardize %v: loss went %v → %v, want a decrease to < 0.05", standardize, first, last)
		}
	}
}

func TestLinearProbeShuffledLabelsNearChance(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	const classes = 10
	x, y := clusters(rng, 3000, 32, 10, 1, 0.3)
	for i := range y {
		y[i] = rng.IntN(classes)
	}
	res := probeSplit(t, x, y, 2000, shortProbe())
	if res.Top1 >= 2.0/classes || res.Top5 < res.Top1 {
		t.Fatalf("top1 %v top5 %v on shuffled labels, want < 2× chance (0.2) and top5 ≥ top1", res.Top1, res.Top5)
	}
}

func TestLinearProbeDeterministicAndProgress(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	x, y := clusters(rng, 600, 8, 5, 0.5, 1)
	trX, trY, teX, teY := split(x, y, 400)
	run := func(seed uint64) (ProbeResult, []ProbeEpoch) {
		cfg := shortProbe()
		cfg.Seed = seed
		cfg.BatchSize = 64 // several batches and a partial last one
		var epochs []ProbeEpoch
		cfg.Progress = func(e ProbeEpoch) { epochs = append(epochs, e) }
		res, err := LinearProbe(trX, trY, teX, teY, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return res, epochs
	}
	a, epochs := run(3)
	b, _ := run(3)
	c, _ := run(4)
	if !slices.Equal(a.LossCurve, b.LossCurve) || !slices.Equal(a.Model.W, b.Model.W) {
		t.Fatal("two runs with the same seed differ")
	}
	if slices.Equal(a.LossCurve, c.LossCurve) {
		t.Fatal("runs with seeds 3 and 4 are identical: the seed is not used")
	}
	if len(epochs) != 20 {
		t.Fatalf("progress called %d times, want 20", len(epochs))
	}
	for _, e := range epochs {
		want := 30.0
		if e.Epoch >= 12 {
			want = 3
		}
		if e.Epoch >= 16 {
			want = 0.3
		}
		if math.Abs(e.LR-want) > 1e-12 || e.Loss != a.LossCurve[e.Epoch] {
			t.Fatalf("epoch %d: lr %v loss %v, want lr %v loss %v", e.Epoch, e.LR, e.Loss, want, a.LossCurve[e.Epoch])
		}
	}
}

func TestLinearProbeStandardizeRawPixels(t *testing.T) {
	// Pixel-like inputs: values in [0, 255] with a large common offset; the
	// class shows in a few pixels only.
	rng := rand.New(rand.NewPCG(19, 20))
	const n, d, classes = 1500, 64, 4
	x := Matrix{N: n, D: d, Data: make([]float32, n*d)}
	y := make([]int, n)
	for i := 0; i < n; i++ {
		y[i] = rng.IntN(classes)
		for j := 0; j < d; j++ {
			v := 120 + 30*rng.NormFloat64()
			if j%classes == y[i] && j < 16 {
				v += 80
			}
			x.Data[i*d+j] = float32(min(max(v, 0), 255))
		}
	}
	trX, trY, teX, teY := split(x, y, 1000)
	cfg := shortProbe()
	cfg.Standardize = true
	res, err := LinearProbe(trX, trY, teX, teY, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Top1 < 0.95 {
		t.Fatalf("standardized probe on pixels: top1 %v, want ≥ 0.95", res.Top1)
	}
	pred, err := res.Model.Predict(teX)
	if err != nil {
		t.Fatal(err)
	}
	hits := 0
	for i, p := range pred {
		if p == teY[i] {
			hits++
		}
	}
	if got := float64(hits) / float64(len(pred)); got != res.Top1 {
		t.Fatalf("Predict accuracy %v, LinearProbe top1 %v", got, res.Top1)
	}
}

func TestFeatureStats(t *testing.T) {
	x := Matrix{N: 3, D: 2, Data: []float32{1, 5, 2, 5, 6, 5}}
	mean, std := featureStats(x)
	// Column 0: mean 3, population std sqrt((4+1+9)/3); column 1 constant → std 1.
	if math.Abs(float64(mean[0])-3) > 1e-6 || math.Abs(float64(std[0])-math.Sqrt(14.0/3)) > 1e-6 || mean[1] != 5 || std[1] != 1 {
		t.Fatalf("mean %v std %v", mean, std)
	}
}

func TestLinearProbeErrors(t *testing.T) {
	good := Matrix{N: 2, D: 2, Data: []float32{1, 0, 0, 1}}
	bad := DefaultProbeConfig()
	bad.LR = 0
	if _, err := LinearProbe(good, []int{0, 1}, good, []int{0, 1}, bad); err == nil {
		t.Fatal("lr 0 accepted")
	}
	if _, err := LinearProbe(good, []int{0, 1}, Matrix{N: 1, D: 3, Data: []float32{1, 2, 3}}, []int{0}, DefaultProbeConfig()); err == nil {
		t.Fatal("dimension mismatch accepted")
	}
	if _, err := LinearProbe(good, []int{0, 2}, good, []int{0, 1}, ProbeConfig{Epochs: 1, LR: 1, BatchSize: 1, Classes: 2}); err == nil {
		t.Fatal("label ≥ Classes accepted")
	}
}

// jittered returns x with N(0, σ²) noise drawn from (seed, epoch): the
// stand-in for the features of one epoch's augmented images.
func jittered(x Matrix, sigma float64, seed uint64, epoch int) Matrix {
	rng := rand.New(rand.NewPCG(seed, uint64(epoch)))
	out := x.clone()
	for i := range out.Data {
		out.Data[i] += float32(sigma * rng.NormFloat64())
	}
	return out
}

func TestLinearProbeEpochsConstantProviderIsLinearProbe(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	x, y := clusters(rng, 500, 12, 6, 0.6, 1)
	trX, trY, teX, teY := split(x, y, 350)
	for _, standardize := range []bool{false, true} {
		cfg := shortProbe()
		cfg.BatchSize, cfg.WeightDecay, cfg.Standardize = 64, 1e-4, standardize
		want, err := LinearProbe(trX, trY, teX, teY, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var calls []int
		// A fresh copy every epoch: equality must not rest on the same slice.
		same := func(epoch int) (Matrix, []int, error) {
			calls = append(calls, epoch)
			return trX.clone(), slices.Clone(trY), nil
		}
		got, err := LinearProbeEpochs(same, teX, teY, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(calls, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}) {
			t.Fatalf("standardize %v: provider called for epochs %v, want 0…19 once each in order", standardize, calls)
		}
		if !slices.Equal(got.LossCurve, want.LossCurve) || !slices.Equal(got.Model.W, want.Model.W) ||
			!slices.Equal(got.Model.B, want.Model.B) || !slices.Equal(got.Model.Mean, want.Model.Mean) ||
			!slices.Equal(got.Model.Std, want.Model.Std) || got.Top1 != want.Top1 || got.Top5 != want.Top5 {
			t.Fatalf("standardize %v: LinearProbeEpochs with the same features every epoch differs from LinearProbe:\nloss %v\nwant %v", standardize, got.LossCurve, want.LossCurve)
		}
	}
}

// refProbeEpochs is the probe written out in float64: the same seeded
// stream for the N(0, InitStd²) init and the per-epoch shuffle, then for
// every epoch e the features of provider(e), softmax cross-entropy
// gradients per minibatch and PyTorch's SGD with momentum.
func refProbeEpochs(provider TrainFeatures, classes int, cfg ProbeConfig) (w, b, losses []float64) {
	x0, _, _ := provider(0)
	d := x0.D
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6d6f6368692d7072))
	w, b = make([]float64, d*classes), make([]float64, classes)
	for i := range w {
		w[i] = rng.NormFloat64() * cfg.InitStd
	}
	vw, vb := make([]float64, len(w)), make([]float64, classes)
	perm := make([]int, x0.N)
	for i := range perm {
		perm[i] = i
	}
	for epoch := range cfg.Epochs {
		x, y, _ := provider(epoch)
		lr := cfg.LR
		for _, m := range cfg.Milestones {
			if epoch >= m {
				lr *= cfg.Gamma
			}
		}
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		var lossSum float64
		for lo := 0; lo < x.N; lo += cfg.BatchSize {
			rows := perm[lo:min(lo+cfg.BatchSize, x.N)]
			gw, gb := make([]float64, len(w)), make([]float64, classes)
			for _, r := range rows {
				z := make([]float64, classes)
				var s float64
				for c := range z {
					z[c] = b[c]
					for j, v := range x.Row(r) {
						z[c] += float64(v) * w[j*classes+c]
					}
					s += math.Exp(z[c])
				}
				lossSum += math.Log(s) - z[y[r]]
				for c := range z {
					p := math.Exp(z[c]) / s
					if c == y[r] {
						p--
					}
					p /= float64(len(rows))
					gb[c] += p
					for j, v := range x.Row(r) {
						gw[j*classes+c] += float64(v) * p
					}
				}
			}
			for _, u := range []struct{ p, g, v []float64 }{{w, gw, vw}, {b, gb, vb}} {
				for i := range u.p {
					u.v[i] = cfg.Momentum*u.v[i] + u.g[i] + cfg.WeightDecay*u.p[i]
					u.p[i] -= lr * u.v[i]
				}
			}
		}
		losses = append(losses, lossSum/float64(x.N))
	}
	return w, b, losses
}

// closeTo reports |got − want| ≤ tol·(1 + |want|).
func closeTo(got, want, tol float64) bool { return math.Abs(got-want) <= tol*(1+math.Abs(want)) }

func TestLinearProbeEpochsMatchesFloat64Reference(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	const classes = 3
	x, y := clusters(rng, 70, 5, classes, 1, 0.5)
	trX, trY, teX, teY := split(x, y, 50)
	cfg := ProbeConfig{Epochs: 5, LR: 0.5, Momentum: 0.9, WeightDecay: 1e-3, Milestones: []int{3}, Gamma: 0.1,
		BatchSize: 16, InitStd: 0.01, Seed: 7, Classes: classes} // 16 does not divide 50: a partial batch
	provider := func(epoch int) (Matrix, []int, error) { return jittered(trX, 0.3, 99, epoch), trY, nil }
	res, err := LinearProbeEpochs(provider, teX, teY, cfg)
	if err != nil {
		t.Fatal(err)
	}
	w, b, losses := refProbeEpochs(provider, classes, cfg)
	for e, l := range losses {
		if !closeTo(res.LossCurve[e], l, 1e-4) {
			t.Errorf("epoch %d loss %v, float64 reference %v", e, res.LossCurve[e], l)
		}
	}
	for _, p := range []struct {
		name      string
		got       []float32
		reference []float64
	}{{"W", res.Model.W, w}, {"B", res.Model.B, b}} {
		for i := range p.reference {
			if !closeTo(float64(p.got[i]), p.reference[i], 1e-4) {
				t.Errorf("%s[%d] = %v, float64 reference %v", p.name, i, p.got[i], p.reference[i])
			}
		}
	}
	// The reference on epoch 0's features alone ends elsewhere: the probe
	// did train on each epoch's own features.
	w0, _, _ := refProbeEpochs(func(int) (Matrix, []int, error) { return provider(0) }, classes, cfg)
	var diff float64
	for i := range w {
		diff = max(diff, math.Abs(w[i]-w0[i]))
	}
	if diff < 1e-3 {
		t.Fatalf("weights trained on changing and on fixed features differ by only %v: the test cannot tell them apart", diff)
	}
}

func TestLinearProbeEpochsAugmentedFeatures(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	x, y := clusters(rng, 3000, 32, 10, 1, 0.3)
	trX, trY, teX, teY := split(x, y, 2000)
	run := func(seed uint64, standardize bool) ProbeResult {
		cfg := shortProbe()
		cfg.Standardize = standardize
		seen := map[float32]bool{}
		provider := func(epoch int) (Matrix, []int, error) {
			m := jittered(trX, 0.2, seed, epoch)
			seen[m.Data[0]] = true
			return m, trY, nil
		}
		res, err := LinearProbeEpochs(provider, teX, teY, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != cfg.Epochs {
			t.Fatalf("%d distinct feature sets over %d epochs", len(seen), cfg.Epochs)
		}
		return res
	}
	for _, standardize := range []bool{false, true} {
		a, b, c := run(1, standardize), run(1, standardize), run(2, standardize)
		if !slices.Equal(a.LossCurve, b.LossCurve) || !slices.Equal(a.Model.W, b.Model.W) {
			t.Fatalf("standardize %v: same provider seed, different probes", standardize)
		}
		if slices.Equal(a.LossCurve, c.LossCurve) {
			t.Fatalf("standardize %v: provider seeds 1 and 2 give the same loss curve: the features are not used", standardize)
		}
		if a.Top1 < 0.99 || a.Top5 < a.Top1 {
			t.Fatalf("standardize %v: top1 %v top5 %v on separable features with per-epoch noise, want ≥ 0.99 and top5 ≥ top1", standardize, a.Top1, a.Top5)
		}
	}
}

func TestLinearProbeEpochsErrors(t *testing.T) {
	good := Matrix{N: 2, D: 2, Data: []float32{1, 0, 0, 1}}
	cfg := ProbeConfig{Epochs: 3, LR: 1, BatchSize: 1}
	boom := errors.New("boom")
	for _, c := range []struct {
		name     string
		provider TrainFeatures
		want     string
	}{
		{"provider error", func(e int) (Matrix, []int, error) {
			if e == 1 {
				return Matrix{}, nil, boom
			}
			return good, []int{0, 1}, nil
		}, "epoch 1: boom"},
		{"dimension change", func(e int) (Matrix, []int, error) {
			if e == 2 {
				return Matrix{N: 1, D: 3, Data: []float32{1, 2, 3}}, []int{0}, nil
			}
			return good, []int{0, 1}, nil
		}, "dimension 3"},
		{"new class", func(e int) (Matrix, []int, error) {
			if e == 1 {
				return good, []int{0, 2}, nil
			}
			return good, []int{0, 1}, nil
		}, "label 2 at row 1 of epoch 1"},
		{"empty epoch", func(e int) (Matrix, []int, error) {
			if e == 1 {
				return Matrix{N: 0, D: 2}, nil, nil
			}
			return good, []int{0, 1}, nil
		}, "epoch 1 has none"},
	} {
		_, err := LinearProbeEpochs(c.provider, good, []int{0, 1}, cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := LinearProbeEpochs(func(int) (Matrix, []int, error) { return good, []int{0, 1}, boom }, good, []int{0, 1}, cfg); !errors.Is(err, boom) {
		t.Errorf("provider error %v does not wrap the provider's", err)
	}
}

func BenchmarkLinearProbeEpoch(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x, y := clusters(rng, 10000, 512, 10, 1, 1)
	cfg := DefaultProbeConfig()
	cfg.Epochs = 1
	for b.Loop() {
		if _, err := LinearProbe(x, y, x, y, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// TestProbeDiverged: lr 30 on pixel-scale features diverges and is flagged
// (standardised, the same features reach 99%); a healthy probe and one on
// labels without signal are not.
func TestProbeDiverged(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	const classes = 10
	x, y := clusters(rng, 1500, 32, classes, 1, 0.3)
	cfg := shortProbe()
	healthy := probeSplit(t, x, y, 1000, cfg)
	if why := healthy.Diverged(classes); why != "" {
		t.Errorf("separable features (top-1 %v, loss %v): flagged as diverged: %s", healthy.Top1, healthy.LossCurve, why)
	}

	shuffled := append([]int(nil), y...)
	for i := range shuffled {
		shuffled[i] = rng.IntN(classes)
	}
	noSignal := probeSplit(t, x, shuffled, 1000, cfg)
	if why := noSignal.Diverged(classes); why != "" {
		t.Errorf("shuffled labels (top-1 %v, loss %v): flagged as diverged: %s", noSignal.Top1, noSignal.LossCurve, why)
	}

	scaled := Matrix{N: x.N, D: x.D, Data: make([]float32, len(x.Data))}
	for i, v := range x.Data {
		scaled.Data[i] = 120 + 10*v // pixel-like scale and offset
	}
	bad := probeSplit(t, scaled, y, 1000, cfg)
	if why := bad.Diverged(classes); why == "" {
		t.Errorf("lr 30 on pixel-scale features (top-1 %v, loss %v): not flagged", bad.Top1, bad.LossCurve)
	}

	for _, tt := range []struct {
		r    ProbeResult
		want string
	}{
		{ProbeResult{Top1: 0.5, LossCurve: []float64{2, math.NaN()}}, "NaN"},
		{ProbeResult{Top1: 0.5, LossCurve: []float64{2, 5}}, "rose from 2 "},
		{ProbeResult{Top1: 0.5, LossCurve: []float64{30, 24}}, "over ten times"},
		{ProbeResult{Top1: 0.08, LossCurve: []float64{20.9, 20}}, "below chance"},
		{ProbeResult{Top1: 0.08, LossCurve: []float64{2.3, 2.2}}, ""},
	} {
		if got := tt.r.Diverged(classes); !strings.Contains(got, tt.want) || (tt.want == "") != (got == "") {
			t.Errorf("%+v: Diverged %q, want %q", tt.r, got, tt.want)
		}
	}
}
