package resnet

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/internal/torchpy"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/graph"
)

// tau is the InfoNCE temperature of MoCo-v2, used for the test loss.
const tau = 0.2

// lossGraph is a model on a fixed batch with MoCo's loss form,
// CE(z/τ, labels), and the gradient of the loss in every parameter.
type lossGraph struct {
	g      *gorgonia.ExprGraph
	m      *Model
	x      []float32 // N×C×H×W
	labels []int32   // N
	loss   *gorgonia.Node
	grads  gorgonia.Nodes // grads[i] is ∂loss/∂m.Params[i]
}

func newLossGraph(t testing.TB, cfg Config, n, h, w int) *lossGraph {
	t.Helper()
	cfg = cfg.WithDefaults()
	lg := &lossGraph{g: gorgonia.NewGraph()}
	x := input(lg.g, "x", cfg.Seed+100, n, cfg.InChannels, h, w)
	lg.x = x.Value().Data().([]float32)
	rng := rand.New(rand.NewPCG(cfg.Seed, 3))
	lg.labels = make([]int32, n)
	for i := range lg.labels {
		lg.labels[i] = int32(rng.IntN(cfg.EmbedDim))
	}
	labels := gorgonia.NodeFromAny(lg.g, tensor.New(tensor.WithShape(n), tensor.WithBacking(lg.labels)), gorgonia.WithName("labels"))
	var err error
	if lg.m, err = Build(lg.g, x, cfg, nil); err != nil {
		t.Fatal(err)
	}
	if lg.loss, err = graph.SoftmaxCrossEntropy(lg.m.Embedding, labels, tau); err != nil {
		t.Fatal(err)
	}
	params := make(gorgonia.Nodes, len(lg.m.Params))
	for i, p := range lg.m.Params {
		params[i] = p.Node
	}
	if lg.grads, err = gorgonia.Grad(lg.loss, params...); err != nil {
		t.Fatal(err)
	}
	return lg
}

// relErr is ‖got − want‖/‖want‖, the error of a whole tensor.
func relErr(got, want []float32) float64 {
	var d, n float64
	for i := range want {
		d += (float64(got[i]) - float64(want[i])) * (float64(got[i]) - float64(want[i]))
		n += float64(want[i]) * float64(want[i])
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}

// TestMatchesTorch runs one training-mode forward and backward of the same
// network with the same weights and batch in mochi (TapeMachine) and in
// PyTorch (scripts/torch_resnet.py) and compares the loss, the embedding,
// every parameter gradient and every updated running statistic, in each
// convolution mode of the CPU backend (cpu.conv).
func TestMatchesTorch(t *testing.T) {
	python := torchpy.Python(t, "torch", "torchvision")
	script := torchpy.Script("torch_resnet.py")
	for _, tc := range []struct {
		name    string
		cfg     Config
		n, h, w int
	}{
		{"resnet18-small-w16", Config{Depth: 18, Stem: SmallStem, Width: 16, EmbedDim: 32, Seed: 11}, 8, 32, 32},
		{"resnet18-grey-splitbn", Config{Depth: 18, Stem: SmallStem, Width: 8, InChannels: 1, BNGroups: 4, EmbedDim: 16, Seed: 12}, 8, 28, 28},
		{"resnet50-imagenet-w4", Config{Depth: 50, Stem: ImageNetStem, Width: 4, EmbedDim: 16, Seed: 13}, 4, 64, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lg := newLossGraph(t, tc.cfg, tc.n, tc.h, tc.w)
			cfg := lg.m.Config
			dir := t.TempDir()
			var in []namedTensor
			weights, shapes := lg.m.Weights(), lg.m.Shapes()
			for _, p := range lg.m.Params {
				in = append(in, namedTensor{Name: p.Name, Shape: shapes[p.Name], data: weights[p.Name]})
			}
			labels := make([]float32, len(lg.labels))
			for i, l := range lg.labels {
				labels[i] = float32(l)
			}
			in = append(in, namedTensor{Name: "input", Shape: []int{tc.n, cfg.InChannels, tc.h, tc.w}, data: lg.x},
				namedTensor{Name: "labels", Shape: []int{tc.n}, data: labels})
			if err := writeTensors(filepath.Join(dir, "in"), in); err != nil {
				t.Fatal(err)
			}
			conf, _ := json.Marshal(map[string]any{"depth": cfg.Depth, "stem": cfg.Stem.String(), "width": cfg.Width,
				"in_channels": cfg.InChannels, "embed_dim": cfg.EmbedDim, "bn_groups": cfg.BNGroups, "tau": tau})
			if err := os.WriteFile(filepath.Join(dir, "config.json"), conf, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(python, script, dir)
			cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s %s: %v\n%s", python, script, err, out)
			}

			t32, err := readTensors(filepath.Join(dir, "out"))
			if err != nil {
				t.Fatal(err)
			}
			t64, err := readTensors(filepath.Join(dir, "out64"))
			if err != nil {
				t.Fatal(err)
			}
			host := graph.Host().(*cpu.Backend)
			defer host.SetConvMode(host.ConvMode())
			for _, mode := range cpu.ConvModes {
				if err := host.SetConvMode(mode); err != nil {
					t.Logf("cpu.conv %s: %v", mode, err) // the purego build: auto and blas only
					continue
				}
				if mode != cpu.ConvModes[0] { // a new graph from the same seed: the same weights and batch
					lg = newLossGraph(t, tc.cfg, tc.n, tc.h, tc.w)
				}
				compareTorch(t, mode, lg, t32, t64)
			}
		})
	}
}

// compareTorch runs lg once on the TapeMachine (graph.Host, in the
// convolution mode given) and measures its loss, embedding, every
// parameter gradient and every updated running statistic, and PyTorch's
// float32 ones (t32), against PyTorch's float64 results (t64).
func compareTorch(t *testing.T, mode cpu.ConvMode, lg *lossGraph, t32, t64 map[string]namedTensor) {
	t.Helper()
	vm := gorgonia.NewTapeMachine(lg.g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	// Float32 rounding grows through the network (most through the
	// BatchNorm backward of small batches), so the bound for each tensor is
	// a multiple of PyTorch's own float32 error, with a floor for tensors
	// that PyTorch happens to get almost exact. PyTorch's CPU convolutions
	// are direct (oneDNN or its own); Winograd's transforms make each
	// convolution's error about 5 times a direct one's (relative 1e-6
	// against 2e-7, see package device/cpu's modeBound), so the modes that
	// may run Winograd get 5 times the bound.
	ratio, floor := 4.0, 1e-5
	if mode == cpu.ConvWinograd || mode == cpu.ConvAuto {
		ratio, floor = 5*ratio, 5*floor
	}
	var worst struct {
		ours, torch32 float64
		name          string
	}
	compare := func(name string, ours []float32) {
		ref, f32 := t64[name], t32[name]
		if len(ref.data) != len(ours) || len(f32.data) != len(ours) {
			t.Fatalf("%s: torch wrote %d (float64) and %d (float32) values, mochi has %d", name, len(ref.data), len(f32.data), len(ours))
		}
		eOurs, eTorch := relErr(ours, ref.data), relErr(f32.data, ref.data)
		if eOurs > worst.ours {
			worst.ours, worst.torch32, worst.name = eOurs, eTorch, name
		}
		if eOurs > math.Max(ratio*eTorch, floor) {
			t.Errorf("cpu.conv %s: %s: relative error %.2g against float64, PyTorch's float32 has %.2g", mode, name, eOurs, eTorch)
		}
	}
	loss := lg.loss.Value().Data().(float32)
	compare("loss", []float32{loss})
	compare("embedding", lg.m.Embedding.Value().Data().([]float32))
	for i, p := range lg.m.Params {
		compare("grad."+p.Name, lg.grads[i].Value().Data().([]float32))
	}
	for name, v := range lg.m.RunningStats() {
		compare(name, v)
	}
	t.Logf("cpu.conv %s: loss %.7f, PyTorch float32 %.7f, float64 %.7f; worst of %d tensors: %s, relative error %.2g (PyTorch float32: %.2g)",
		mode, loss, t32["loss"].data[0], t64["loss"].data[0], 2+len(lg.m.Params)+2*len(lg.m.Norms), worst.name, worst.ours, worst.torch32)
}
