package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/internal/torchpy"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/data"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/eval"
	"github.com/mochi-ssl/mochi/pkg/frozen"
	"github.com/mochi-ssl/mochi/pkg/interop"
	"github.com/mochi-ssl/mochi/pkg/npy"
	"github.com/mochi-ssl/mochi/pkg/resnet"
	"github.com/mochi-ssl/mochi/pkg/train"
)

// The export and import tests use torchvision's own resnet18, whose stages
// are 64, 128, 256 and 512 channels wide (torchvision has no width
// argument), so their mochi networks have model.width 64; the CIFAR stem
// (3×3 stride-1 conv1, no max-pool) on 1-channel Fashion-MNIST is the one
// change made to the torchvision model, as the README documents.
const (
	interopWidth = 64
	interopBatch = 8 // images compared between mochi and PyTorch
	featureTol   = 1e-4
)

// randomBatch writes a batch of n standard-normal images (a normalised
// input) to dir/input.npy and returns it.
func randomBatch(t *testing.T, dir string, n, c, h, w int, seed uint64) []float32 {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 5))
	x := make([]float32, n*c*h*w)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	writeNPY(t, filepath.Join(dir, "input.npy"), npy.Array{Shape: []int{n, c, h, w}, F32: x})
	return x
}

func writeNPY(t *testing.T, path string, a npy.Array) {
	t.Helper()
	b, err := npy.Encode(a)
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func readNPY(t *testing.T, path string) npy.Array {
	t.Helper()
	b := testenv.ReadFile(t, path)
	a, err := npy.Decode(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return a
}

// maxRelDiff is max_i |got_i − want_i| / max_i |want_i|: elementwise
// relative errors would blow up on the ReLU features near zero, so the
// differences are measured against the tensor's scale.
func maxRelDiff(t *testing.T, got, want []float32) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d values, the reference has %d", len(got), len(want))
	}
	var diff, scale float64
	for i := range want {
		diff = math.Max(diff, math.Abs(float64(got[i])-float64(want[i])))
		scale = math.Max(scale, math.Abs(float64(want[i])))
	}
	if scale == 0 || math.IsNaN(diff) {
		return math.Inf(1)
	}
	return diff / scale
}

// encode runs an encoder of p's network with the given weights on x in
// evaluation mode: backbone features, or with head the embeddings.
func encode(t *testing.T, p *frozen.Pretrained, weights, stats map[string][]float32, x []float32, head bool) []float32 {
	t.Helper()
	enc, err := frozen.NewEncoder(cpu.New(0), p.Net, weights, stats, interopBatch, p.C, p.H, p.W, head)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Free()
	out, err := enc.Embed(x, interopBatch)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExportLoadsIntoTorchvision trains configs/ci.yaml at width 64 for two
// steps, exports the query backbone (safetensors) and the key encoder with
// its head (npz), loads both strictly into torchvision's resnet18 and
// compares the features of one batch in evaluation mode.
func TestExportLoadsIntoTorchvision(t *testing.T) {
	torchpy.Need(t, "torch", "torchvision", "numpy")
	testenv.FashionMNIST(t)
	cfg, _, err := config.Load(ciConfigPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.Model.Width, cfg.Data.Limit, cfg.Optim.Epochs, cfg.Eval.KNNEvery = interopWidth, 2*cfg.Optim.Batch, 1, 0
	cfg.MoCHi.MixStartEpoch = 0
	cfg.Run.OutputDir = filepath.Join(dir, "run")
	sum, err := train.Pretrain(context.Background(), cfg, train.Options{Progress: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	p, err := frozen.LoadPretrained(sum.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "export", "--checkpoint", sum.Checkpoint, "--out", filepath.Join(dir, "backbone.safetensors")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "export", "--checkpoint", sum.Checkpoint, "--out", filepath.Join(dir, "key-head.npz"),
		"--format", "npz", "--encoder", "key", "--with-head"); err != nil {
		t.Fatal(err)
	}
	x := randomBatch(t, dir, interopBatch, p.C, p.H, p.W, 1)
	var out struct{ Metadata map[string]string }
	torchpy.Exchange(t, nil, &out, torchpy.Script("torch_interop.py"), "check-export", dir)

	if got := out.Metadata["mochi.checkpoint_sha256"]; got != p.SHA256 {
		t.Errorf("metadata mochi.checkpoint_sha256 = %q, the checkpoint's is %s", got, p.SHA256)
	}
	saved, _, err := config.Parse("metadata", []byte(out.Metadata["mochi.config"]), nil)
	if err != nil || saved.Model.Width != interopWidth || saved.Data.Limit != cfg.Data.Limit {
		t.Errorf("metadata mochi.config does not hold the run's config (%v):\n%s", err, out.Metadata["mochi.config"])
	}
	// The query and key encoders differ after training (momentum 0.99), so
	// each comparison also checks that --encoder picked the right one.
	if d := maxRelDiff(t, encode(t, p, p.Weights, p.Stats, x, false), readNPY(t, filepath.Join(dir, "features.npy")).F32); d > featureTol {
		t.Errorf("query backbone features: max relative difference %.3g to torchvision's, want ≤ %g", d, featureTol)
	} else {
		t.Logf("query backbone features: max relative difference %.3g", d)
	}
	if d := maxRelDiff(t, encode(t, p, p.KeyWeights, p.KeyStats, x, true), readNPY(t, filepath.Join(dir, "key-embeddings.npy")).F32); d > featureTol {
		t.Errorf("key encoder embeddings: max relative difference %.3g to torchvision's, want ≤ %g", d, featureTol)
	} else {
		t.Logf("key encoder embeddings: max relative difference %.3g", d)
	}
}

// TestImportMoCoCheckpoint has PyTorch write a random MoCo-v2 checkpoint in
// facebookresearch/moco's layout (zip and legacy format) and the same query
// backbone as a plain torchvision safetensors file; mochi imports each and
// must compute PyTorch's features, embeddings and queue. The imports then
// go through knn and analyze-uniformity.
func TestImportMoCoCheckpoint(t *testing.T) {
	torchpy.Need(t, "torch", "torchvision", "numpy")
	testenv.FashionMNIST(t)
	const embedDim, queueK = 128, 512
	dir := t.TempDir()
	x := randomBatch(t, dir, interopBatch, 1, 28, 28, 2)
	params, _ := json.Marshal(map[string]any{"channels": 1, "embed_dim": embedDim, "queue": queueK, "seed": 3})
	if err := os.WriteFile(filepath.Join(dir, "params.json"), params, 0o644); err != nil {
		t.Fatal(err)
	}
	var ok map[string]bool
	torchpy.Exchange(t, nil, &ok, torchpy.Script("torch_interop.py"), "write-moco", dir)
	qFeat := readNPY(t, filepath.Join(dir, "q-features.npy")).F32
	qEmb := readNPY(t, filepath.Join(dir, "q-embeddings.npy")).F32
	kEmb := readNPY(t, filepath.Join(dir, "k-embeddings.npy")).F32
	queueRef := readNPY(t, filepath.Join(dir, "queue.npy")).F32

	common := []string{"--config", ciConfigPath, "--set", "model.width=64", "--set", "model.embed_dim=128", "--limit", "128"}
	check := func(p *frozen.Pretrained, what string, head bool) {
		t.Helper()
		if d := maxRelDiff(t, encode(t, p, p.Weights, p.Stats, x, false), qFeat); d > featureTol {
			t.Errorf("%s: backbone features: max relative difference %.3g to PyTorch's, want ≤ %g", what, d, featureTol)
		}
		if !head {
			return
		}
		if d := maxRelDiff(t, encode(t, p, p.Weights, p.Stats, x, true), qEmb); d > featureTol {
			t.Errorf("%s: query embeddings: max relative difference %.3g to PyTorch's, want ≤ %g", what, d, featureTol)
		}
		if d := maxRelDiff(t, encode(t, p, p.KeyWeights, p.KeyStats, x, true), kEmb); d > featureTol {
			t.Errorf("%s: key encoder embeddings: max relative difference %.3g to PyTorch's, want ≤ %g", what, d, featureTol)
		}
	}
	checkQueue := func(p *frozen.Pretrained, what string) {
		t.Helper()
		if p.Queue.K != queueK || p.Queue.Ptr != 7 || maxRelDiff(t, p.Queue.Keys, queueRef) != 0 {
			t.Errorf("%s: queue K %d, pointer %d: not PyTorch's %d keys at pointer 7", what, p.Queue.K, p.Queue.Ptr, queueK)
		}
	}
	// analyze runs analyze-uniformity on ckpt and returns which negatives
	// its hardness analysis scored.
	analyze := func(ckpt string) string {
		t.Helper()
		out := filepath.Join(filepath.Dir(ckpt), "analysis")
		if _, _, err := run(t, "analyze-uniformity", "--checkpoint", ckpt, "--pairs", "256", "--subsample", "128", "--out", out); err != nil {
			t.Fatalf("analyze-uniformity %s: %v", ckpt, err)
		}
		r, err := eval.ReadReport(filepath.Join(out, "analysis.json"))
		if err != nil {
			t.Fatal(err)
		}
		if c := r.Checkpoints[0]; c.Hardness == nil || c.Uniformity == nil || c.Alignment == nil {
			t.Fatalf("analyze-uniformity %s: report without hardness, uniformity or alignment: %+v", ckpt, c)
		}
		return r.Checkpoints[0].Negatives
	}
	for _, file := range []string{"moco.pth.tar", "moco-legacy.pth.tar"} {
		ckpt := filepath.Join(dir, strings.TrimSuffix(file, ".pth.tar"), "checkpoints", "last.ckpt")
		stdout, _ := mustRun(t, append([]string{"import", "--from", filepath.Join(dir, file), "--out", ckpt}, common...)...)
		testenv.Contains(t, "import "+file, stdout, "layout MoCo (module.encoder_q.), epoch 200", "queue: 512 negatives", "key encoder: from the file",
			"epoch (not a tensor", "optimizer (not a tensor", "module.encoder_q.bn1.num_batches_tracked (BatchNorm counter")
		p, err := frozen.LoadPretrained(ckpt)
		if err != nil {
			t.Fatal(err)
		}
		check(p, file, true)
		checkQueue(p, file)
		// MoCo's "epoch" counts the epochs done (200); Pretrained.Epoch is
		// the last one done, counted from 0.
		if p.Epoch != 199 {
			t.Errorf("%s: last epoch %d, the file says 200 were done (want 199, counted from 0)", file, p.Epoch)
		}
	}
	moco := filepath.Join(dir, "moco", "checkpoints", "last.ckpt")
	if got := analyze(moco); got != "the checkpoint's queue of 512 keys" {
		t.Errorf("analyze-uniformity of the MoCo import scored %q, want the imported queue", got)
	}

	// mochi's own export of the import, head included, back through
	// safetensors: the same networks, but no queue.
	roundTrip := filepath.Join(dir, "roundtrip.safetensors")
	if _, _, err := run(t, "export", "--checkpoint", moco, "--with-head", "--out", roundTrip); err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(dir, "roundtrip", "checkpoints", "last.ckpt")
	stdout, _ := mustRun(t, append([]string{"import", "--from", roundTrip, "--out", again}, common...)...)
	testenv.Contains(t, "import "+roundTrip, stdout, "safetensors, layout torchvision", "head: MoCo-v2 MLP, embeddings of dimension 128", "queue: none")
	p, err := frozen.LoadPretrained(again)
	if err != nil {
		t.Fatal(err)
	}
	check(p, "roundtrip.safetensors", false)
	if d := maxRelDiff(t, encode(t, p, p.Weights, p.Stats, x, true), qEmb); d > featureTol {
		t.Errorf("roundtrip.safetensors: query embeddings: max relative difference %.3g to PyTorch's, want ≤ %g", d, featureTol)
	}
	if got := analyze(again); !strings.Contains(got, "keys of the evaluated images") {
		t.Errorf("analyze-uniformity of an import without queue scored %q, want the evaluated images' keys", got)
	}

	// A plain torchvision backbone in safetensors: its classifier is
	// ignored, there is no head, key encoder or queue.
	plain := filepath.Join(dir, "plain", "checkpoints", "last.ckpt")
	stdout, _ = mustRun(t, append([]string{"import", "--from", filepath.Join(dir, "plain.safetensors"), "--out", plain}, common...)...)
	testenv.Contains(t, "import plain.safetensors", stdout, "safetensors, layout torchvision", "head: none", "queue: none", "fc.weight (a classifier")
	p, err = frozen.LoadPretrained(plain)
	if err != nil {
		t.Fatal(err)
	}
	check(p, "plain.safetensors", false)
	if _, _, err := run(t, "knn", "--checkpoint", plain); err != nil {
		t.Errorf("knn on the imported torchvision backbone: %v", err)
	}
	saved := filepath.Join(dir, "saved")
	if _, _, err := run(t, "linear-eval", "--checkpoint", plain, "--save-features", saved); err != nil {
		t.Errorf("linear-eval on the imported torchvision backbone: %v", err)
	}
	for _, split := range []string{"train", "test"} {
		ds, err := data.Open(data.Spec{Kind: "fashion-mnist", Path: testenv.FashionMNIST(t), Split: split, Limit: 128})
		if err != nil {
			t.Fatal(err)
		}
		feats, labels := readNPY(t, filepath.Join(saved, split+".npy")), readNPY(t, filepath.Join(saved, split+".labels.npy"))
		want := splitLabels(ds)
		if !slices.Equal(feats.Shape, []int{128, 512}) || len(labels.I64) != len(want) {
			t.Fatalf("--save-features %s: features %v, %d labels; want 128×512 and 128", split, feats.Shape, len(labels.I64))
		}
		for i, l := range labels.I64 {
			if int(l) != want[i] {
				t.Fatalf("--save-features %s: label %d is %d, the dataset's is %d", split, i, l, want[i])
			}
		}
	}
	runFails(t, []string{"analyze-uniformity", "--checkpoint", plain}, "no projection head")
	runFails(t, []string{"pretrain", "--config", ciConfigPath, "--resume", plain}, "cannot be resumed")
}

// TestImportErrors checks the command's own refusals: a file for RGB images
// against grey data, a head of another embedding dimension, a missing file.
func TestImportErrors(t *testing.T) {
	testenv.FashionMNIST(t)
	dir := t.TempDir()
	write := func(name string, net resnet.Config, head bool) string {
		t.Helper()
		enc := interop.Encoder{Weights: map[string][]float32{}, Stats: map[string][]float32{}}
		g := gorgonia.NewGraph()
		x := gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithShape(1, net.InChannels, 28, 28), gorgonia.WithName("x"))
		m, err := resnet.Build(g, x, net, nil)
		if err != nil {
			t.Fatal(err)
		}
		enc.Weights, enc.Stats = m.Weights(), m.RunningStats()
		sd, err := interop.Export(net, enc, head, 0)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := interop.WriteSafetensors(&b, sd, nil); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rgb := write("rgb.safetensors", resnet.Config{Depth: 18, Stem: resnet.SmallStem, Width: 8, InChannels: 3}, false)
	head64 := write("head64.safetensors", resnet.Config{Depth: 18, Stem: resnet.SmallStem, Width: 8, InChannels: 1, EmbedDim: 64}, true)
	out := filepath.Join(dir, "out", "last.ckpt")
	for _, tc := range []struct {
		from  string
		wants []string
	}{
		{rgb, []string{"rgb.safetensors", "conv1.weight takes 3 input channels", "has 1"}},
		{head64, []string{"head64.safetensors", `key "fc.2.weight" has shape [64, 64]`, "set model.embed_dim to 64"}},
		{filepath.Join(dir, "absent.pth.tar"), []string{"absent.pth.tar", "no such file"}},
	} {
		_, _, err := run(t, "import", "--from", tc.from, "--out", out, "--config", ciConfigPath)
		if err == nil {
			t.Errorf("import --from %s: accepted", tc.from)
			continue
		}
		testenv.Contains(t, "import --from "+tc.from, err.Error(), tc.wants...)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused import wrote %s", out)
	}
}
