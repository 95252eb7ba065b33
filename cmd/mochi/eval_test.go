package main

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/data"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/eval"
	"github.com/mochi-ssl/mochi/pkg/frozen"
	"github.com/mochi-ssl/mochi/pkg/train"
)

const (
	ciConfigPath = "../../configs/ci.yaml"
	evalImages   = 256 // data.limit of the test runs: images per split
)

// sharedRuns holds the pretraining runs the evaluation tests share: made
// once per test binary, removed by TestMain.
var sharedRuns struct {
	sync.Mutex
	dir  string
	ckpt map[string]string // variant → checkpoint
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedRuns.dir != "" {
		os.RemoveAll(sharedRuns.dir)
	}
	os.Exit(code)
}

// pretrained returns a copy, in a fresh run folder named variant, of the
// checkpoint of one epoch of configs/ci.yaml on 256 Fashion-MNIST images:
// variant "mochi" mixes from the first step (MoCHi(64, 32, 16)), "moco" is
// plain MoCo-v2. Each test gets its own copy, so caches and reports of one
// test never reach another.
func pretrained(t *testing.T, variant string) string {
	t.Helper()
	testenv.FashionMNIST(t)
	sharedRuns.Lock()
	defer sharedRuns.Unlock()
	if sharedRuns.dir == "" {
		dir, err := os.MkdirTemp("", "mochi-eval-test-")
		if err != nil {
			t.Fatal(err)
		}
		sharedRuns.dir, sharedRuns.ckpt = dir, map[string]string{}
	}
	src, ok := sharedRuns.ckpt[variant]
	if !ok {
		cfg, _, err := config.Load(ciConfigPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Optim.Epochs, cfg.MoCHi.MixStartEpoch = 1, 0
		cfg.Data.Limit, cfg.Eval.KNNEvery = evalImages, 0
		cfg.Run.OutputDir = filepath.Join(sharedRuns.dir, variant)
		if variant == "moco" {
			cfg.MoCHi.S, cfg.MoCHi.SPrime = 0, 0
		}
		sum, err := train.Pretrain(context.Background(), cfg, train.Options{Progress: io.Discard})
		if err != nil {
			t.Fatalf("pretraining the %s test checkpoint: %v", variant, err)
		}
		src = sum.Checkpoint
		sharedRuns.ckpt[variant] = src
	}
	raw := testenv.ReadFile(t, src)
	dst := filepath.Join(t.TempDir(), variant, "checkpoints", "last.ckpt")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// fashionSplit opens the first evalImages images of a Fashion-MNIST split.
func fashionSplit(t *testing.T, split string) data.Dataset {
	t.Helper()
	ds, err := data.Open(data.Spec{Kind: "fashion-mnist", Path: testenv.FashionMNIST(t), Split: split, Limit: evalImages})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// splitLabels returns the labels of every image of ds.
func splitLabels(ds data.Dataset) []int {
	out := make([]int, ds.Len())
	for i := range out {
		out[i] = ds.Label(i)
	}
	return out
}

// cachedSplit finds, among the feature files of dir, the one whose labels
// are those of ds, and returns its rows as float64.
func cachedSplit(t *testing.T, dir string, ds data.Dataset) (rows [][]float64, labels []int, path string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*[0-9a-f].npy")) // features, not *.labels.npy
	if err != nil || len(files) == 0 {
		t.Fatalf("no feature cache in %s (%v)", dir, err)
	}
	want := splitLabels(ds)
	for _, f := range files {
		feats, labels, n, d, err := eval.LoadFeatures(f)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(labels) != fmt.Sprint(want) {
			continue
		}
		rows = make([][]float64, n)
		for i := range rows {
			rows[i] = make([]float64, d)
			for j := range rows[i] {
				rows[i][j] = float64(feats[i*d+j])
			}
		}
		return rows, labels, f
	}
	t.Fatalf("no feature file in %s has the labels of %s", dir, ds.Name())
	return nil, nil, ""
}

// refKNNTop1 is the weighted kNN classifier written out in float64: cosine
// similarity, the k most similar training rows vote exp(sim/t) for their
// class, the largest sum wins (ties to the lower class).
func refKNNTop1(train [][]float64, trainY []int, test [][]float64, testY []int, k int, temp float64, classes int) float64 {
	unit := func(v []float64) []float64 {
		var s float64
		for _, x := range v {
			s += x * x
		}
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = x / math.Sqrt(s)
		}
		return out
	}
	tr := make([][]float64, len(train))
	for i := range train {
		tr[i] = unit(train[i])
	}
	correct := 0
	for i, x := range test {
		x = unit(x)
		type nb struct {
			sim float64
			y   int
		}
		nbs := make([]nb, len(tr))
		for j, r := range tr {
			var s float64
			for c := range r {
				s += r[c] * x[c]
			}
			nbs[j] = nb{s, trainY[j]}
		}
		sort.Slice(nbs, func(a, b int) bool { return nbs[a].sim > nbs[b].sim })
		score := make([]float64, classes)
		for _, n := range nbs[:min(k, len(nbs))] {
			score[n.y] += math.Exp(n.sim / temp)
		}
		best := 0
		for c := range score {
			if score[c] > score[best] {
				best = c
			}
		}
		if best == testY[i] {
			correct++
		}
	}
	return float64(correct) / float64(len(test))
}

// pixelRows are the images of ds normalised with the Fashion-MNIST
// statistics, one flattened row each.
func pixelRows(t *testing.T, ds data.Dataset) [][]float64 {
	t.Helper()
	mean, std, ok := data.DatasetStats("fashion-mnist")
	if !ok {
		t.Fatal("no Fashion-MNIST statistics")
	}
	rows := make([][]float64, ds.Len())
	for i := range rows {
		px := ds.Pixels(i)
		rows[i] = make([]float64, len(px))
		for j, v := range px {
			rows[i][j] = (float64(v)/255 - float64(mean[0])) / float64(std[0])
		}
	}
	return rows
}

// near reports |got − want| ≤ tol·(1 + |want|).
func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol*(1+math.Abs(want)) }

func TestLinearEval(t *testing.T) {
	ckpt := pretrained(t, "mochi")
	run1 := filepath.Dir(filepath.Dir(ckpt))
	args := []string{"linear-eval", "--checkpoint", ckpt, "--knn", "--baseline", "pixels",
		"--set", "eval.linear_epochs=3", "--set", "eval.knn_k=20", "--set", "eval.knn_t=0.05"}
	out, errOut := mustRun(t, args...)
	testenv.Contains(t, "table", out, "linear top-1", "mochi/last", "pixels", "report: ")
	// lr 30, ×0.1 from epoch 1 (configs/ci.yaml: eval.linear_milestones [1]).
	testenv.Contains(t, "progress", errOut, "extracted features 256×64", "probe epoch 1/3  lr 30 ", "probe epoch 3/3  lr 3 ")

	jsonPath := filepath.Join(run1, "checkpoints", "last.linear-eval.json")
	rep, err := eval.ReadReport(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Checkpoints) != 2 || rep.Checkpoints[0].Name != "mochi/last" || rep.Checkpoints[1].Name != "pixels" {
		t.Fatalf("report rows %+v, want mochi/last and pixels", rep.Checkpoints)
	}
	for _, r := range rep.Checkpoints {
		for _, f := range []struct {
			name string
			v    *float64
		}{{"linear_top1", r.LinearTop1}, {"linear_top5", r.LinearTop5}, {"knn_top1", r.KNNTop1}, {"knn_top5", r.KNNTop5}} {
			if f.v == nil || *f.v < 0 || *f.v > 1 {
				t.Errorf("%s: %s = %v, want an accuracy in [0, 1]", r.Name, f.name, f.v)
			}
		}
		if r.LinearTop5 != nil && r.LinearTop1 != nil && *r.LinearTop5 < *r.LinearTop1 {
			t.Errorf("%s: linear top-5 %v < top-1 %v", r.Name, *r.LinearTop5, *r.LinearTop1)
		}
		if len(r.LinearLoss) != 3 {
			t.Errorf("%s: %d probe losses, want one per epoch (3)", r.Name, len(r.LinearLoss))
		}
		if r.Alignment != nil || r.Hardness != nil {
			t.Errorf("%s: linear-eval reported alignment or hardness", r.Name)
		}
	}

	// The kNN ran on the cached backbone features and on the raw pixels,
	// with eval.knn_k = 20, eval.knn_t = 0.05: a float64 reference agrees
	// up to the order of near-equal neighbours (at most two test images).
	trainSet, testSet := fashionSplit(t, "train"), fashionSplit(t, "test")
	cacheDir := filepath.Join(run1, "features")
	trainX, trainY, trainFile := cachedSplit(t, cacheDir, trainSet)
	testX, testY, testFile := cachedSplit(t, cacheDir, testSet)
	for _, c := range []struct {
		name        string
		train, test [][]float64
		got         float64
	}{
		{"backbone", trainX, testX, *rep.Checkpoints[0].KNNTop1},
		{"pixels", pixelRows(t, trainSet), pixelRows(t, testSet), *rep.Checkpoints[1].KNNTop1},
	} {
		want := refKNNTop1(c.train, trainY, c.test, testY, 20, 0.05, 10)
		if math.Abs(c.got-want) > 2.0/evalImages {
			t.Errorf("%s kNN top-1 %.4f, float64 reference %.4f", c.name, c.got, want)
		}
	}

	// The features are BatchNorm in evaluation mode: a test image alone in
	// a batch gives the row it got in a batch of 256.
	p, err := frozen.LoadPretrained(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := p.Encoder(cpu.New(1), 1, false)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Free()
	mean, std, _ := data.DatasetStats("fashion-mnist")
	seen := 0
	err = data.EvalBatches(testSet, mean, std, 1, func(x []float32, _ []int, idx []int) error {
		if idx[0] >= 3 {
			return nil
		}
		alone, err := enc.Embed(x, 1)
		if err != nil {
			return err
		}
		for j, v := range alone {
			if !near(float64(v), testX[idx[0]][j], 1e-4) {
				return fmt.Errorf("test image %d feature %d: %v alone, %v in the batch", idx[0], j, v, testX[idx[0]][j])
			}
		}
		seen++
		return nil
	})
	if err != nil || seen != 3 {
		t.Fatalf("BN evaluation mode check: %v (%d images)", err, seen)
	}

	// A second run reads the cache: the files are not rewritten and the
	// result is the same.
	before := map[string]time.Time{}
	for _, f := range []string{trainFile, testFile} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		before[f] = st.ModTime()
	}
	jsonPath2 := filepath.Join(t.TempDir(), "again.json")
	_, errOut2, err := run(t, "linear-eval", "--checkpoint", ckpt, "--knn", "--json", jsonPath2,
		"--set", "eval.linear_epochs=3", "--set", "eval.knn_k=20", "--set", "eval.knn_t=0.05")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(errOut2, "cached features") != 2 || strings.Contains(errOut2, "extracted") {
		t.Errorf("second run did not take both splits from the cache:\n%s", errOut2)
	}
	for f, mt := range before {
		if st, err := os.Stat(f); err != nil || !st.ModTime().Equal(mt) {
			t.Errorf("cache file %s rewritten by the second run (%v)", f, err)
		}
	}
	rep2, err := eval.ReadReport(jsonPath2)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep2.Checkpoints) != 1 || *rep2.Checkpoints[0].LinearTop1 != *rep.Checkpoints[0].LinearTop1 || *rep2.Checkpoints[0].KNNTop1 != *rep.Checkpoints[0].KNNTop1 {
		t.Errorf("second run reports %+v, first %+v", rep2.Checkpoints, rep.Checkpoints[0])
	}
}

// TestLinearEvalAugment runs the probe on augmented train views: the
// report says so, the run is reproducible from run.seed, and it differs
// from the probe on the cached, un-augmented features.
func TestLinearEvalAugment(t *testing.T) {
	ckpt := pretrained(t, "mochi")
	old := augmentWarnAfter
	augmentWarnAfter = 0 // every CPU run warns: check the warning
	t.Cleanup(func() { augmentWarnAfter = old })
	linearEval := func(extra ...string) (eval.Report, string, string) {
		t.Helper()
		jsonPath := filepath.Join(t.TempDir(), "report.json")
		args := append([]string{"linear-eval", "--checkpoint", ckpt, "--json", jsonPath, "--set", "eval.linear_epochs=3"}, extra...)
		out, errOut := mustRun(t, args...)
		r, err := eval.ReadReport(jsonPath)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Checkpoints) != 1 || r.Checkpoints[0].LinearTop1 == nil || r.Checkpoints[0].LinearTop5 == nil || len(r.Checkpoints[0].LinearLoss) != 3 {
			t.Fatalf("report %s: %+v, want one row with top-1, top-5 and 3 losses", jsonPath, r.Checkpoints)
		}
		if r.ProbeAugment == nil {
			t.Fatalf("report %s has no probe_augment", jsonPath)
		}
		return r, out, errOut
	}

	a, out, errOut := linearEval("--augment")
	testenv.Contains(t, "progress", errOut,
		"probe train augmentation: RandomResizedCrop(scale 0.08–1, ratio 3/4–4/3) + horizontal flip p=0.5",
		"mochi/last: augmented train features: 256 images through the backbone",
		"warning: --augment on the CPU",
		"probe epoch 1/3  lr 30 ", "probe epoch 2/3  lr 3 ", "probe epoch 3/3  lr 3 ", "(augmented features ")
	testenv.Contains(t, "table", out, "linear probe of mochi/last trained on augmented views")
	aug := a.ProbeAugment
	if !aug.Enabled || fmt.Sprint(aug.AppliesTo) != "[mochi/last]" || fmt.Sprint(aug.CropScale) != "[0.08 1]" ||
		!near(aug.CropRatio[0], 0.75, 1e-12) || !near(aug.CropRatio[1], 4.0/3, 1e-12) || aug.FlipProb != 0.5 || aug.Seed != 1 {
		t.Errorf("probe_augment %+v, want enabled for mochi/last with scale 0.08–1, ratio 3/4–4/3, flip 0.5, seed 1", aug)
	}
	top1, top5 := *a.Checkpoints[0].LinearTop1, *a.Checkpoints[0].LinearTop5
	if top1 < 0 || top5 > 1 || top5 < top1 {
		t.Errorf("augmented probe: top-1 %v, top-5 %v; want 0 ≤ top-1 ≤ top-5 ≤ 1", top1, top5)
	}

	b, _, _ := linearEval("--augment")
	ra, rb := a.Checkpoints[0], b.Checkpoints[0]
	if *rb.LinearTop1 != *ra.LinearTop1 || *rb.LinearTop5 != *ra.LinearTop5 || !slices.Equal(rb.LinearLoss, ra.LinearLoss) {
		t.Errorf("same seed, different reports: top-1 %v / %v, top-5 %v / %v, losses %v / %v",
			*ra.LinearTop1, *rb.LinearTop1, *ra.LinearTop5, *rb.LinearTop5, ra.LinearLoss, rb.LinearLoss)
	}
	c, _, _ := linearEval("--augment", "--set", "run.seed=2")
	if slices.Equal(c.Checkpoints[0].LinearLoss, a.Checkpoints[0].LinearLoss) || c.ProbeAugment.Seed != 2 {
		t.Errorf("run.seed 1 and 2 give the same augmented probe (losses %v): the views do not follow the seed", a.Checkpoints[0].LinearLoss)
	}
	plain, _, errPlain := linearEval()
	if plain.ProbeAugment.Enabled || strings.Contains(errPlain, "augment") {
		t.Errorf("without --augment the report says %+v and the log mentions augmentation:\n%s", plain.ProbeAugment, errPlain)
	}
	if slices.Equal(plain.Checkpoints[0].LinearLoss, a.Checkpoints[0].LinearLoss) {
		t.Errorf("the probe on augmented views has the losses of the one on cached features (%v)", a.Checkpoints[0].LinearLoss)
	}
}

// TestLinearEvalPixelsOnly runs the baseline from a config alone.
func TestLinearEvalPixelsOnly(t *testing.T) {
	testenv.FashionMNIST(t)
	jsonPath := filepath.Join(t.TempDir(), "pixels.json")
	out, errOut := mustRun(t, "linear-eval", "--config", ciConfigPath, "--baseline", "pixels", "--limit", "256", "--json", jsonPath)
	testenv.Contains(t, "table", out, "pixels", "report: "+jsonPath)
	testenv.Contains(t, "progress", errOut, "pixels: probe epoch 2/2", "on 256×784 features")
	rep, err := eval.ReadReport(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Checkpoints) != 1 || rep.Checkpoints[0].LinearTop1 == nil || rep.Checkpoints[0].KNNTop1 != nil {
		t.Errorf("report %+v: want one pixels row with a linear probe and no kNN", rep.Checkpoints)
	}
}

// TestKNNCommand runs the kNN alone and checks it shares linear-eval's
// feature cache and gives the same kNN figures.
func TestKNNCommand(t *testing.T) {
	ckpt := pretrained(t, "mochi")
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	knnJSON, linJSON := filepath.Join(dir, "knn.json"), filepath.Join(dir, "lin.json")
	out, errOut := mustRun(t, "knn", "--checkpoint", ckpt, "--cache-dir", cache, "--json", knnJSON)
	testenv.Contains(t, "table", out, "mochi/last", "report: "+knnJSON)
	if strings.Contains(errOut, "probe epoch") {
		t.Errorf("mochi knn trained a linear probe:\n%s", errOut)
	}
	knn, err := eval.ReadReport(knnJSON)
	if err != nil {
		t.Fatal(err)
	}
	if len(knn.Checkpoints) != 1 || knn.Checkpoints[0].KNNTop1 == nil || knn.Checkpoints[0].LinearTop1 != nil {
		t.Fatalf("knn report %+v: want one row with kNN and no linear probe", knn.Checkpoints)
	}
	_, errOut = mustRun(t, "linear-eval", "--checkpoint", ckpt, "--cache-dir", cache, "--json", linJSON, "--knn")
	if strings.Contains(errOut, "extracted features") {
		t.Errorf("linear-eval re-extracted features that mochi knn had cached:\n%s", errOut)
	}
	lin, err := eval.ReadReport(linJSON)
	if err != nil {
		t.Fatal(err)
	}
	if *lin.Checkpoints[0].KNNTop1 != *knn.Checkpoints[0].KNNTop1 {
		t.Errorf("kNN top-1: knn %v, linear-eval --knn %v", *knn.Checkpoints[0].KNNTop1, *lin.Checkpoints[0].KNNTop1)
	}
	runFails(t, []string{"knn", "--checkpoint", ckpt, "--augment"})
}

func TestAnalyzeUniformity(t *testing.T) {
	if testing.Short() {
		t.Skip("pretrains two checkpoints and embeds augmented pairs")
	}
	mochi, moco := pretrained(t, "mochi"), pretrained(t, "moco")
	out, _ := mustRun(t, "analyze-uniformity", "--checkpoint", mochi, moco, "--pairs", "256")
	outDir := filepath.Join(filepath.Dir(filepath.Dir(mochi)), "analysis")
	testenv.Contains(t, "table", out, "alignment", "uniformity", "mochi/last", "moco/last",
		filepath.Join(outDir, "analysis.json"), filepath.Join(outDir, "plane.png"))
	rep, err := eval.ReadReport(filepath.Join(outDir, "analysis.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Checkpoints) != 2 {
		t.Fatalf("%d report rows, want 2", len(rep.Checkpoints))
	}
	testSet := fashionSplit(t, "test")
	for i, c := range []struct {
		ckpt, name string
		s, sPrime  int
	}{{mochi, "mochi/last", 32, 16}, {moco, "moco/last", 0, 0}} {
		r := rep.Checkpoints[i]
		if r.Name != c.name || r.Alignment == nil || r.Uniformity == nil || r.Hardness == nil {
			t.Fatalf("row %d: %+v, want %s with alignment, uniformity and hardness", i, r, c.name)
		}
		h := r.Hardness
		// 256 queries × K = 256 queue entries, N = 64 hardest, MoCHi(64, s, s′).
		if h.Negatives.Total != 256*256 || h.HardNegatives.Total != 256*64 ||
			h.Mixed.Total != 256*c.s || h.QueryMixed.Total != 256*c.sPrime || h.Positives.Total != 256 || h.Config.Tau != 0.2 {
			t.Errorf("%s hardness counts: all %d, top-N %d, h %d, h′ %d, positives %d, τ %v",
				c.name, h.Negatives.Total, h.HardNegatives.Total, h.Mixed.Total, h.QueryMixed.Total, h.Positives.Total, h.Config.Tau)
		}
		if h.NegligibleShare < 0 || h.NegligibleShare > 1 {
			t.Errorf("%s negligible share %v", c.name, h.NegligibleShare)
		}
		// 256 pairs are the hardness batch, and for unit vectors
		// ‖x − y‖² = 2 − 2·x·y: alignment = 2 − 2·mean q·k.
		if want := 2 - 2*h.Positives.Mean; !near(*r.Alignment, want, 1e-4) {
			t.Errorf("%s alignment %v, 2 − 2·mean q·k = %v", c.name, *r.Alignment, want)
		}
		// Uniformity over the 256 cached test embeddings (fewer than
		// --subsample: exact), recomputed in float64.
		emb, _, _ := cachedSplit(t, filepath.Join(filepath.Dir(filepath.Dir(c.ckpt)), "features"), testSet)
		var sum float64
		var pairs int
		for a := range emb {
			var norm float64
			for _, v := range emb[a] {
				norm += v * v
			}
			if !near(norm, 1, 1e-4) {
				t.Fatalf("%s embedding %d has squared norm %v, want 1", c.name, a, norm)
			}
			for b := a + 1; b < len(emb); b++ {
				var d2 float64
				for j := range emb[a] {
					d := emb[a][j] - emb[b][j]
					d2 += d * d
				}
				sum += math.Exp(-2 * d2)
				pairs++
			}
		}
		if want := math.Log(sum / float64(pairs)); !near(*r.Uniformity, want, 1e-6) {
			t.Errorf("%s uniformity %v, float64 reference %v", c.name, *r.Uniformity, want)
		}
	}

	// The figures are PNGs of the requested size with their series drawn
	// (colours of pkg/eval/plot.go): the plane's points, and the synthetic
	// h curve only for the run that mixes.
	pointColor, mixedColor := color.RGBA{220, 20, 60, 255}, color.RGBA{44, 160, 44, 255}
	for _, f := range []struct {
		file  string
		color color.RGBA
		drawn bool
	}{
		{"plane.png", pointColor, true},
		{"hardness-mochi-last.png", mixedColor, true},
		{"hardness-moco-last.png", mixedColor, false},
	} {
		img := decodePNG(t, filepath.Join(outDir, f.file))
		if b := img.Bounds(); b.Dx() != 800 || b.Dy() != 600 {
			t.Errorf("%s is %d×%d, want 800×600", f.file, b.Dx(), b.Dy())
		}
		if n := countColor(img, f.color); (n > 0) != f.drawn {
			t.Errorf("%s has %d pixels of %v, want drawn = %v", f.file, n, f.color, f.drawn)
		}
	}
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

func countColor(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)) == c {
				n++
			}
		}
	}
	return n
}

func TestEvalErrors(t *testing.T) {
	ckpt := pretrained(t, "mochi")
	dir := t.TempDir()
	absent := filepath.Join(dir, "absent.ckpt")
	raw := testenv.ReadFile(t, ckpt)
	truncated := filepath.Join(dir, "truncated.ckpt")
	if err := os.WriteFile(truncated, raw[:len(raw)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "notes.ckpt")
	if err := os.WriteFile(foreign, []byte(strings.Repeat("not a checkpoint\n", 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	ci := testenv.ReadFile(t, ciConfigPath)
	cifarDir := t.TempDir()
	cifar := writeConfig(t, strings.NewReplacer("kind: fashion-mnist", "kind: cifar10",
		"path: /usr/share/datasets/fashion-mnist", "path: "+cifarDir).Replace(string(ci)))

	tests := []struct {
		name     string
		args     []string
		fakeData bool // cifar10-shaped in-memory data behind openDataset
		want     []string
	}{
		{name: "no checkpoint", args: []string{"linear-eval"},
			want: []string{"needs --checkpoint", "--baseline pixels"}},
		{name: "unknown baseline", args: []string{"linear-eval", "--checkpoint", ckpt, "--baseline", "noise"},
			want: []string{"--baseline noise", `"pixels"`}},
		{name: "missing checkpoint", args: []string{"linear-eval", "--checkpoint", absent},
			want: []string{"checkpoint " + absent + " not found", "mochi pretrain"}},
		{name: "missing checkpoint (analyze)", args: []string{"analyze-uniformity", "--checkpoint", ckpt, absent},
			want: []string{"checkpoint " + absent + " not found"}},
		{name: "checkpoint is a folder", args: []string{"linear-eval", "--checkpoint", dir},
			want: []string{"is a folder", filepath.Join(dir, "checkpoints", "last.ckpt")}},
		{name: "truncated checkpoint", args: []string{"linear-eval", "--checkpoint", truncated},
			want: []string{truncated, "corrupt checkpoint", "truncated"}},
		{name: "not a checkpoint", args: []string{"analyze-uniformity", "--checkpoint", foreign},
			want: []string{foreign, "not a mochi checkpoint"}},
		{name: "other width than --config", args: []string{"linear-eval", "--checkpoint", ckpt, "--config", ciConfigPath, "--set", "model.width=16"},
			want: []string{ckpt, "--config " + ciConfigPath, "model.width: the config says 16", "holds 8", "leave out --config"}},
		{name: "other backbone than the saved config", args: []string{"analyze-uniformity", "--checkpoint", ckpt, "--set", "model.backbone=resnet34"},
			want: []string{"the config saved in " + ckpt, "model.backbone: the config says resnet34", "holds resnet18"}},
		{name: "dataset mismatch", args: []string{"linear-eval", "--checkpoint", ckpt, "--config", cifar}, fakeData: true,
			want: []string{"dataset mismatch", "cifar10/train", "3×32×32", "trained on 1×28×28", "data.kind"}},
		{name: "dataset mismatch (analyze)", args: []string{"analyze-uniformity", "--checkpoint", ckpt, "--config", cifar}, fakeData: true,
			want: []string{"dataset mismatch", "cifar10/test", "3×32×32"}},
		{name: "augment without checkpoint", args: []string{"linear-eval", "--config", ciConfigPath, "--baseline", "pixels", "--augment"},
			want: []string{"--augment needs --checkpoint", "un-augmented pixels"}},
		{name: "bad augment scale", args: []string{"linear-eval", "--checkpoint", ckpt, "--augment", "--augment-scale-min", "0"},
			want: []string{"--augment-scale-min 0", "(0, 1]"}},
		{name: "bad pairs", args: []string{"analyze-uniformity", "--checkpoint", ckpt, "--pairs", "0"},
			want: []string{"--pairs 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fakeData {
				fakeDataset(t, 64, 3, 32)
			}
			runFails(t, tt.args, tt.want...)
		})
	}
}
