package frozen

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/eval"
)

// classFeatures are n features in d dimensions of 4 classes: class c is the
// unit vector e_c plus small noise, so both classifiers separate them.
func classFeatures(rng *rand.Rand, n, d int) (eval.Matrix, []int) {
	x := eval.Matrix{N: n, D: d, Data: make([]float32, n*d)}
	y := make([]int, n)
	for i := range n {
		y[i] = i % 4
		for j := range d {
			x.Data[i*d+j] = 0.05 * float32(rng.NormFloat64())
		}
		x.Data[i*d+y[i]] += 1
	}
	return x, y
}

// TestEvaluationRun checks that the eval section reaches the probe and the
// kNN, that Run fills the rows of the classifiers asked for only, that both
// score separable features, and that a diverging probe is reported with the
// advice the log promises.
func TestEvaluationRun(t *testing.T) {
	cfg := config.Default()
	cfg.Eval.LinearEpochs, cfg.Eval.LinearMilestones, cfg.Eval.LinearLR, cfg.Eval.LinearBatch = 5, []int{3}, 1, 32
	cfg.Eval.KNNK, cfg.Eval.KNNT = 7, 0.3
	pc, kc := ProbeConfig(&cfg, 4), KNNConfig(&cfg, 4)
	if pc.Epochs != 5 || pc.LR != 1 || pc.BatchSize != 32 || pc.Classes != 4 || pc.Seed != uint64(cfg.Run.Seed) || len(pc.Milestones) != 1 {
		t.Fatalf("ProbeConfig %+v does not carry the eval section", pc)
	}
	if kc.K != 7 || kc.T != 0.3 || kc.Classes != 4 {
		t.Fatalf("KNNConfig %+v does not carry the eval section", kc)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	trX, trY := classFeatures(rng, 400, 8)
	teX, teY := classFeatures(rng, 200, 8)

	var log bytes.Buffer
	ev := Evaluation{Name: "ckpt", Linear: true, KNN: true, Probe: pc, KNNCfg: kc, Log: &log}
	r, err := ev.Run(trX, trY, teX, teY)
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "ckpt" || r.LinearTop1 == nil || *r.LinearTop1 < 0.99 || r.KNNTop1 == nil || *r.KNNTop1 < 0.99 || len(r.LinearLoss) != 5 {
		t.Fatalf("report %+v on separable features: want both top-1 ≥ 0.99 and 5 losses\n%s", r, log.String())
	}
	if !strings.Contains(log.String(), "ckpt: probe epoch 5/5") {
		t.Errorf("log lacks the last epoch's line:\n%s", log.String())
	}

	ev.Linear = false
	if r, err = ev.Run(trX, trY, teX, teY); err != nil || r.LinearTop1 != nil || r.KNNTop1 == nil {
		t.Fatalf("kNN alone: report %+v, err %v; want the kNN row only", r, err)
	}
	ev.Linear, ev.KNN = true, false
	ev.Probe.LR = 1e6 // on random labels: the loss cannot fall, it explodes
	noise := make([]int, len(trY))
	for i := range noise {
		noise[i] = rng.IntN(4)
	}
	log.Reset()
	if r, err = ev.Run(trX, noise, teX, teY); err != nil || r.KNNTop1 != nil || r.LinearDiverged == "" {
		t.Fatalf("diverging probe alone: report %+v, err %v; want no kNN row and the divergence recorded", r, err)
	}
	if !strings.Contains(log.String(), "the linear probe diverged") || !strings.Contains(log.String(), "--standardize") {
		t.Errorf("the log does not warn of the divergence with its advice:\n%s", log.String())
	}
}
