package resnet

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/internal/torchpy"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/graph"
)

// tau is the InfoNCE temperature of MoCo-v2, used for the test loss.
const tau = 0.2

// lossGraph is a model on a fixed batch with MoCo's loss form,
// CE(z/τ, labels), and after differentiate the gradient of the loss in
// every parameter.
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
	return lg
}

// differentiate adds the gradient of the loss in every parameter to the
// graph (lg.grads), for the tests that compare it with a reference;
// training compiles its own through Model.CompileTraining.
func (lg *lossGraph) differentiate(t testing.TB) {
	t.Helper()
	params := make(gorgonia.Nodes, len(lg.m.Params))
	for i, p := range lg.m.Params {
		params[i] = p.Node
	}
	var err error
	if lg.grads, err = gorgonia.Grad(lg.loss, params...); err != nil {
		t.Fatal(err)
	}
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

// branchTensors lists, in forward order, what the backward of each ReLU and
// max-pool node of g reads to choose its piecewise branch, from the last run:
// a ReLU's (or BatchNormReLU's, BatchNormAddReLU's) output y (dy passes
// where y > 0) and a max-pool's input x (dy goes to the first maximum of
// each window).
func branchTensors(g *gorgonia.ExprGraph) []namedTensor {
	var out []namedTensor
	for _, n := range g.AllNodes() {
		op := n.Op()
		if op == nil {
			continue
		}
		var kind string
		v := n
		switch s := op.String(); {
		case strings.HasPrefix(s, "ReLU{"), strings.HasPrefix(s, "BatchNormReLU{"), strings.HasPrefix(s, "BatchNormAddReLU{"):
			kind = "relu"
		case strings.HasPrefix(s, "MaxPool2D{"):
			kind = "maxpool"
			it := g.From(n.ID()) // the max-pool's one input
			it.Next()
			v = it.Node().(*gorgonia.Node)
		default:
			continue
		}
		out = append(out, namedTensor{Name: fmt.Sprintf("branch.%d.%s", len(out), kind),
			Shape: []int(v.Shape()), data: v.Value().Data().([]float32)})
	}
	return out
}

// branch is what scripts/torch_resnet.py reports for one ReLU or max-pool
// after the float64 pass followed mochi's branch there: the elements (ReLU)
// or windows (max-pool) where float64 alone would have chosen another one,
// the largest distance from the kink among those (|x| for a ReLU, the
// window's maximum less the value mochi chose for a max-pool), and the
// largest error of PyTorch float32's input to the layer, both relative to
// the RMS of the layer's float64 input.
type branch struct {
	Name     string
	Elements int
	Flips    int
	Worst    float64
	Float32  float64
}

// TestMatchesTorch runs one training-mode forward and backward of the same
// network with the same weights and batch in mochi (TapeMachine) and in
// PyTorch (scripts/torch_resnet.py) and compares the loss, the embedding,
// every parameter gradient and every updated running statistic.
//
// A ReLU or max-pool whose input lies within float32 rounding of its kink
// (x ≈ 0, or two near-equal maxima) may choose either branch, and which one
// depends on the summation order of the BLAS kernels; one such flip changes
// every gradient below it by far more than rounding. So PyTorch, in float32
// and float64 alike, is fed mochi's forward decisions (branchTensors) and
// differentiates the same branch: a ReLU computes x·[y_mochi > 0], a
// max-pool takes x at mochi's first arg-max. The float64 forward still
// checks mochi's forward values. That alone would not catch a wrong branch,
// which the float64 pass now follows, so the script also reports where
// float64 would have chosen another branch: only within float32 rounding of
// the kink.
//
// It runs once per convolution mode of the CPU backend (cpu.conv), each mode
// with its own forward decisions fed to its own PyTorch run. Winograd's
// transforms make a convolution's error several times a direct one's:
// oneDNN quotes 1e-6 against 2e-7 for its own; mochi's F(4×4, 3×3), which
// winograd mode runs on CPUs without AVX-512, errs by 1e-6–4e-6 against
// oneDNN direct's 1e-7–1e-6 on the ResNet-18's shapes, at most 14 times
// on one kernel (cpu's TestConvPathsAgree). So winograd and auto (which
// runs mochi's Winograd from 64 channels) get 5 times every bound, a ratio
// of 20 to PyTorch's float32 error; with mochi's
// Winograd (AVX2) the tensor of largest error measured up to 3.9 times
// PyTorch's float32 error (with it from 32 channels; 1.9 from 64, the
// default), direct 1.2.
func TestMatchesTorch(t *testing.T) {
	torchpy.Need(t, "torch", "torchvision")
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
		for _, mode := range cpu.ConvModes {
			t.Run(tc.name+"/"+string(mode), func(t *testing.T) {
				host := graph.Host().(*cpu.Backend)
				defer host.SetConvMode(host.ConvMode())
				if err := host.SetConvMode(mode); err != nil {
					t.Skipf("cpu.conv %s: %v", mode, err) // the purego build: auto and blas only
				}
				scale := 1.0
				if mode == cpu.ConvWinograd || mode == cpu.ConvAuto {
					scale = 5
				}
				matchTorch(t, script, tc.cfg, tc.n, tc.h, tc.w, scale)
			})
		}
	}
}

// matchTorch is one case of TestMatchesTorch on graph.Host in its present
// convolution mode, with every bound multiplied by scale.
func matchTorch(t *testing.T, script string, tcfg Config, n, h, w int, scale float64) {
	lg := newLossGraph(t, tcfg, n, h, w)
	lg.differentiate(t)
	cfg := lg.m.Config
	var in []namedTensor
	weights, shapes := lg.m.Weights(), lg.m.Shapes()
	for _, p := range lg.m.Params {
		in = append(in, namedTensor{Name: p.Name, Shape: shapes[p.Name], data: weights[p.Name]})
	}
	labels := make([]float32, len(lg.labels))
	for i, l := range lg.labels {
		labels[i] = float32(l)
	}
	in = append(in, namedTensor{Name: "input", Shape: []int{n, cfg.InChannels, h, w}, data: lg.x},
		namedTensor{Name: "labels", Shape: []int{n}, data: labels})

	vm := gorgonia.NewTapeMachine(lg.g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	in = append(in, branchTensors(lg.g)...)

	dir := t.TempDir()
	if err := writeTensors(filepath.Join(dir, "in"), in); err != nil {
		t.Fatal(err)
	}
	conf, _ := json.Marshal(map[string]any{"depth": cfg.Depth, "stem": cfg.Stem.String(), "width": cfg.Width,
		"in_channels": cfg.InChannels, "embed_dim": cfg.EmbedDim, "bn_groups": cfg.BNGroups, "tau": tau})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	torchpy.Exchange(t, nil, nil, script, dir)
	t32, err := readTensors(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	t64, err := readTensors(filepath.Join(dir, "out64"))
	if err != nil {
		t.Fatal(err)
	}
	raw := testenv.ReadFile(t, filepath.Join(dir, "branches64.json"))
	var branches []branch
	if err := json.Unmarshal(raw, &branches); err != nil {
		t.Fatalf("branches64.json: %v", err)
	}

	// float64 may choose another branch than mochi only where its
	// input is within mochi's float32 error of the kink. That error
	// is measured by PyTorch float32's on the same layer (from 1e-5
	// of the layer's RMS in the ResNet-18s to 2.4e-4 deep in the
	// ResNet-50), and mochi's is within a few times PyTorch's (see
	// ratio below); kinkRatio allows twice that. A wrong branch (a
	// ReLU or max-pool bug, or layers of the two networks paired
	// wrongly) is off by a good fraction of the RMS. The floor, about
	// 16 float32 unit roundoffs, is for a layer that PyTorch happens
	// to get almost exact.
	kinkRatio, kinkFloor := 8*scale, 1e-6*scale
	flips := 0
	for _, b := range branches {
		flips += b.Flips
		if b.Worst > math.Max(kinkRatio*b.Float32, kinkFloor) {
			t.Errorf("%s: float64 chooses another branch than mochi at %d of %d places, up to %.2g of the RMS from the kink (PyTorch float32's error there: %.2g)",
				b.Name, b.Flips, b.Elements, b.Worst, b.Float32)
		}
	}

	// Both float32 results are measured against PyTorch's float64 one,
	// all three along the same branch. Float32 rounding grows through
	// the network (most through the BatchNorm backward of small
	// batches, whose γ and β gradients are sums that nearly cancel),
	// so the bound for each tensor is a multiple of PyTorch's own
	// float32 error; mochi's error was at most 2.4 times PyTorch's
	// with OpenBLAS and 3.6 times with -tags purego, whose GEMM sums
	// in another order. The floor, about 16 float32 unit roundoffs, is
	// for tensors that PyTorch happens to get almost exact (running
	// statistics). A gradient kernel's error of a few roundings is
	// caught where it propagates (a relative 1e-6 planted on every
	// fourth element of ReLUBackward's output fails five tensors);
	// one confined to a single tensor, as Conv2DBackwardFilter's, must
	// exceed ratio times PyTorch's own error in it.
	ratio, floor := 4*scale, 1e-6*scale
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
			t.Errorf("%s: relative error %.2g against float64, PyTorch's float32 has %.2g", name, eOurs, eTorch)
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
	t.Logf("loss %.7f, PyTorch float32 %.7f, float64 %.7f; worst of %d tensors: %s, relative error %.2g (PyTorch float32: %.2g); float64 alone would choose another branch at %d places in %d ReLUs and max-pools",
		loss, t32["loss"].data[0], t64["loss"].data[0], 2+len(lg.m.Params)+2*len(lg.m.Norms), worst.name, worst.ours, worst.torch32, flips, len(branches))
}
