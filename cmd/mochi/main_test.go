package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/data"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
)

// run executes the command tree in-process and returns stdout, stderr and the error.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

// writeConfig writes a config file into a fresh temporary directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	return testenv.TempFile(t, "run.yaml", []byte(text))
}

// mustRun runs mochi with args and returns its stdout and stderr; an error
// ends t, with the stderr.
func mustRun(t *testing.T, args ...string) (string, string) {
	t.Helper()
	out, errOut, err := run(t, args...)
	if err != nil {
		t.Fatalf("mochi %v: %v\n%s", args, err, errOut)
	}
	return out, errOut
}

// runFails runs mochi with args and fails t unless it ends with an error
// that contains each of wants.
func runFails(t *testing.T, args []string, wants ...string) {
	t.Helper()
	_, _, err := run(t, args...)
	if err == nil {
		t.Fatalf("mochi %v succeeded, want an error", args)
	}
	testenv.Contains(t, "error", err.Error(), wants...)
}

func TestHelp(t *testing.T) {
	out, _ := mustRun(t, "--help")
	testenv.Contains(t, "help", out, "MoCo-v2", "MoCHi", "arxiv.org/abs/2010.01028", "Examples:",
		"pretrain", "linear-eval", "analyze-uniformity", "config", "version")
	for _, k := range config.Keys() {
		testenv.Contains(t, "help", out, k.Env)
	}
}

func TestVersion(t *testing.T) {
	out, _ := mustRun(t, "version")
	testenv.Contains(t, "version", out, "mochi "+version, "commit: ", "go: "+runtime.Version(), "backends: cpu", "blas: "+cpu.BLAS(), "onednn: "+cpu.OneDNN())
}

func TestConfigProvenance(t *testing.T) {
	path := writeConfig(t, "moco:\n  k: 8192\n")
	t.Setenv("MOCHI_OPTIM_LR", "0.05")
	out, _ := mustRun(t, "config", "--config", path, "--seed", "3", "--set", "mochi.n=100")
	testenv.Contains(t, "config output", out,
		"k: 8192", "# file "+path+":2",
		"lr: 0.05", "# env MOCHI_OPTIM_LR",
		"seed: 3", "# flag --seed",
		"n: 100", "# flag --set mochi.n",
		"tau: 0.2", "# default")
	// Every key is printed with its origin.
	for _, k := range config.Keys() {
		_, name, _ := strings.Cut(k.Name, ".")
		testenv.Contains(t, "config output", out, "  "+name+": ")
	}
}

func TestConfigReference(t *testing.T) {
	out, _ := mustRun(t, "config", "--reference")
	testenv.Contains(t, "reference", out, "| `moco.k` | `MOCHI_MOCO_K` | integer | `4096` |", "| `mochi.s_prime` |")
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		args []string
		want []string
	}{
		{name: "unknown key", file: "mochi:\n  sprime: 3\n",
			want: []string{"run.yaml:2", "unknown key mochi.sprime", "did you mean mochi.s_prime?"}},
		{name: "invalid value names key and origin", file: "moco:\n  tau: 0\n",
			want: []string{"moco.tau = 0: must be > 0", "from file", "run.yaml:2"}},
		{name: "N above K from flags", args: []string{"--k", "512", "--n", "1024"},
			want: []string{"mochi.n = 1024: must be ≤ moco.k (512)", "from flag --n"}},
		{name: "wrong type", args: []string{"--epochs", "ten"},
			want: []string{"optim.epochs (from flag --epochs)", `"ten" is not an integer`}},
		{name: "missing file", args: []string{"--config", "/nonexistent/x.yaml"},
			want: []string{"config file /nonexistent/x.yaml does not exist"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"config"}, tt.args...)
			if tt.file != "" {
				args = append(args, "--config", writeConfig(t, tt.file))
			}
			runFails(t, args, tt.want...)
		})
	}
}

func TestPretrainCommand(t *testing.T) {
	testenv.FashionMNIST(t)
	out := t.TempDir()
	stdout, _, err := run(t, "pretrain", "--config", "../../configs/ci.yaml", "--limit", "128", "--batch", "32",
		"--k", "64", "--n", "16", "--s", "8", "--s-prime", "4", "--mix-start-epoch", "0", "--epochs", "1",
		"--set", "eval.knn_every=0", "--output-dir", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "pretrained 1 epochs (4 steps)") {
		t.Errorf("pretrain printed %q, want the summary of 1 epoch of 4 steps", stdout)
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoints", "last.ckpt")); err != nil {
		t.Errorf("no checkpoint after pretraining: %v", err)
	}
	if !slices.Contains(backends, "cuda") {
		runFails(t, []string{"pretrain", "--config", "../../configs/ci.yaml", "--device", "cuda", "--output-dir", out}, "build-gpu.sh")
	}
}

// fakeDataset points openDataset at random in-memory datasets of n images.
func fakeDataset(t *testing.T, n, channels, side int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	pixels := make([]uint8, n*channels*side*side)
	for i := range pixels {
		pixels[i] = uint8(rng.IntN(256))
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = rng.IntN(10)
	}
	old := openDataset
	t.Cleanup(func() { openDataset = old })
	openDataset = func(spec data.Spec) (data.Dataset, error) {
		return data.NewInMemory(spec.Kind+"/"+spec.Split, channels, side, side, 10, pixels, labels)
	}
}

func TestDryRunPlan(t *testing.T) {
	fakeDataset(t, 1000, 3, 32)
	path := writeConfig(t, `model: {width: 8, bn_splits: 2}
moco: {k: 1000, symmetric: true}
mochi: {n: 100, s: 20, s_prime: 10, mix_start_epoch: 2}
optim: {batch: 96, epochs: 4, lr: 0.06}
data: {kind: cifar10, path: `+t.TempDir()+`}
eval: {knn_every: 0}
`)
	out, _ := mustRun(t, "pretrain", "--config", path, "--dry-run")
	testenv.Contains(t, "plan", out,
		"cifar10/train: 1000 images, 3×32×32, 10 classes",
		"10 per epoch (batch 96, drop-last leaves out 40 images), 4 epochs = 40 steps",
		"feature 64 → MLP 64 → ReLU → D = 128; split-BN 2 groups of 48",
		"192 keys enqueued per step (K is not a multiple of the 192 keys per step: writes wrap around the end), refilled every 6 steps",
		"InfoNCE (symmetric)",
		"MoCHi(N = 100, s = 20, s′ = 10) from epoch 2 (step 20)",
		"logits per query 1 + K + s + s′ = 1031",
		"B·(s+s′)·D = 368640",
		"SGD lr 0.06·96/256 = 0.0225",
		"two views of 32×32",
		"kNN monitor off")
}

func TestDryRunErrors(t *testing.T) {
	fakeDataset(t, 20, 1, 28)
	dataDir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "fewer images than a batch", args: []string{"--batch", "32", "--k", "256", "--n", "64"},
			want: []string{"has 20 images, fewer than optim.batch 32: no full batch"}},
		{name: "device not built in", args: []string{"--batch", "16", "--k", "256", "--n", "64", "--device", "cuda"},
			want: []string{"run.device = cuda (from flag --device)", "backends cpu"}},
		{name: "invalid value", args: []string{"--set", "moco.m=1"},
			want: []string{"moco.m = 1: must be in [0, 1)", "from flag --set moco.m"}},
		{name: "missing data", args: []string{"--set", "data.path=" + filepath.Join(dataDir, "absent")},
			want: []string{"data.path = " + filepath.Join(dataDir, "absent") + ": directory not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"pretrain", "--dry-run", "--set", "data.path=" + dataDir}, tt.args...)
			runFails(t, args, tt.want...)
		})
	}
}

// TestDryRunCI plans the CI config on the real Fashion-MNIST files.
func TestDryRunCI(t *testing.T) {
	testenv.FashionMNIST(t)
	out, _ := mustRun(t, "pretrain", "--config", "../../configs/ci.yaml", "--dry-run")
	testenv.Contains(t, "plan", out,
		"fashion-mnist/train: 512 images, 1×28×28, 10 classes (data.limit 512)",
		"fashion-mnist/test: 512 images for the kNN monitor",
		"16 per epoch (batch 32, drop-last leaves out 0 images), 2 epochs = 32 steps",
		"K = 256 keys × D = 32",
		"MoCHi(N = 64, s = 32, s′ = 16) from epoch 1 (step 16)",
		"SGD lr 0.03·32/256 = 0.00375")
}

// TestReadmeReference keeps the README's key table equal to the code's.
func TestReadmeReference(t *testing.T) {
	readme := testenv.ReadFile(t, "../../README.md")
	out, _ := mustRun(t, "config", "--reference")
	if !strings.Contains(string(readme), out) {
		t.Fatal("README.md's config reference differs from `mochi config --reference`: paste the command's output into the README")
	}
}
