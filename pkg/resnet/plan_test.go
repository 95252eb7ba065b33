package resnet

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/graph"
	"github.com/mochi-ssl/mochi/pkg/optim"
)

// download returns a copy of a plan buffer.
func download(p *graph.Plan, n *gorgonia.Node) []float32 {
	v := make([]float32, max(n.Shape().TotalSize(), 1))
	p.Backend().Download(v, p.Buffer(n))
	return v
}

// TestPlanMatchesTapeMachine runs one forward and backward of small
// networks under Gorgonia's TapeMachine and under graph's compiled plan:
// the loss, the embedding and every gradient must agree, and the second
// run's BatchNorm update must be the first one applied again.
func TestPlanMatchesTapeMachine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		n, h, w int
	}{
		{"resnet18-small", Config{Depth: 18, Stem: SmallStem, Width: 4, EmbedDim: 8, BNGroups: 2, Seed: 21}, 4, 12, 12},
		{"resnet50-imagenet", Config{Depth: 50, Stem: ImageNetStem, Width: 2, InChannels: 1, EmbedDim: 8, Seed: 22}, 2, 32, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lg := newLossGraph(t, tc.cfg, tc.n, tc.h, tc.w)
			lg.differentiate(t)
			initial := lg.m.RunningStats()

			vm := gorgonia.NewTapeMachine(lg.g)
			defer vm.Close()
			if err := vm.RunAll(); err != nil {
				t.Fatal(err)
			}
			tapeStats := lg.m.RunningStats()

			plan, err := graph.Compile(lg.g, graph.Host(), append(gorgonia.Nodes{lg.loss, lg.m.Embedding}, lg.grads...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer plan.Free()
			if err := plan.Run(); err != nil {
				t.Fatal(err)
			}

			// Same kernels on the same backend; only the summation order of
			// threaded reductions may differ.
			const tol = 1e-6
			check := func(name string, tape []float32, planned []float32) {
				if e := relErr(planned, tape); e > tol {
					t.Errorf("%s: plan differs from TapeMachine by %.2g (relative)", name, e)
				}
			}
			check("loss", []float32{lg.loss.Value().Data().(float32)}, download(plan, lg.loss))
			check("embedding", lg.m.Embedding.Value().Data().([]float32), download(plan, lg.m.Embedding))
			for i, p := range lg.m.Params {
				check("grad."+p.Name, lg.grads[i].Value().Data().([]float32), download(plan, lg.grads[i]))
			}
			// Each run moved the running statistics towards the same batch
			// statistic s: r₁ = (1−μ)·r₀ + μ·s, r₂ = (1−μ)·r₁ + μ·s, so
			// r₂ = (2−μ)·r₁ − (1−μ)·r₀.
			mu := float32(lg.m.Config.BNMomentum)
			for name, r2 := range lg.m.RunningStats() {
				r0, r1 := initial[name], tapeStats[name]
				want := make([]float32, len(r1))
				for i := range want {
					want[i] = (2-mu)*r1[i] - (1-mu)*r0[i]
				}
				if e := relErr(r2, want); e > 1e-5 {
					t.Errorf("%s after the plan's run: relative error %.2g", name, e)
				}
			}
		})
	}
}

// TestTrainingStepsOnPlan compiles a model for training (bound to its
// plan), takes SGD steps on one batch and checks that the loss falls and that Weights reads the trained
// values from the plan, not the initial ones from the nodes.
func TestTrainingStepsOnPlan(t *testing.T) {
	lg := newLossGraph(t, Config{Depth: 18, Stem: SmallStem, Width: 4, EmbedDim: 8, Seed: 31}, 8, 8, 8)
	initial := lg.m.Weights()
	tr, err := lg.m.CompileTraining(graph.Host(), lg.loss, optim.SGDConfig{Momentum: 0.9, WeightDecay: 5e-4})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Free()
	plan := tr.Plan
	var losses []float32
	for range 8 {
		if err := plan.Run(); err != nil {
			t.Fatal(err)
		}
		losses = append(losses, download(plan, lg.loss)[0])
		tr.Opt.Step(0.05)
	}
	t.Logf("losses: %v", losses)
	if !(losses[len(losses)-1] < 0.9*losses[0]) {
		t.Errorf("losses over 8 steps on one batch: %v; expected a fall of more than 10%%", losses)
	}
	trained := lg.m.Weights()
	if relErr(trained["layer1.0.conv1.weight"], initial["layer1.0.conv1.weight"]) < 1e-4 {
		t.Error("Weights after training equal the initial weights: not read from the plan")
	}
	if err := lg.m.LoadWeights(initial); err != nil {
		t.Fatal(err)
	}
	if got := download(plan, lg.m.Params[0].Node); math.Abs(float64(got[0]-initial["conv1.weight"][0])) != 0 {
		t.Error("LoadWeights did not reach the plan's buffer")
	}
}

// plainBackend hides a backend's device.Blocked (keeping its fused
// batch-norm kernels): a plan compiled on it keeps every activation NCHW.
type plainBackend struct {
	device.Backend
	device.BatchNormReLU
	device.BatchNormAddReLU
}

// TestBlockedLayoutMatchesNCHW compiles a ResNet-18 of base width 16 on
// the CPU backend in mode auto, where the activations of the 16- and
// 32-channel stages stay in oneDNN's channel blocks between its
// convolutions, and on the same backend with every activation NCHW: the
// loss, the embedding and every gradient agree within 1e-5 (relative, per
// tensor; the blocked BatchNorm sums each channel's float64 statistics in
// another order, which can move a float32 statistic by an ulp), over two
// runs. The PyTorch parity tests (TestMatchesTorch) run the TapeMachine,
// whose kernels are the NCHW ones this compares against.
func TestBlockedLayoutMatchesNCHW(t *testing.T) {
	be := cpu.New(2)
	if err := be.SetConvMode(cpu.ConvAuto); err != nil {
		t.Fatal(err)
	}
	lg := newLossGraph(t, Config{Depth: 18, Stem: SmallStem, Width: 16, EmbedDim: 16, Seed: 41}, 4, 16, 16)
	lg.differentiate(t)
	outputs := append(gorgonia.Nodes{lg.loss, lg.m.Embedding}, lg.grads...)
	blocked, err := graph.Compile(lg.g, be, outputs...)
	if err != nil {
		t.Fatal(err)
	}
	defer blocked.Free()
	plain, err := graph.Compile(lg.g, plainBackend{be, be, be}, outputs...)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Free()
	prof := graph.NewProfile()
	if err := blocked.RunProfiled(prof); err != nil {
		t.Fatal(err)
	}
	// Every batch norm (plain, +ReLU, +Add+ReLU, forward and backward) of
	// the 16- and 32-channel stages and every convolution between them
	// runs blocked.
	if x, _ := be.ConvBlocks(device.ConvShape{N: 4, C: 16, H: 16, W: 16, K: 16, R: 3, S: 3, Stride: 1, Pad: 1}); x != 0 {
		bn, conv := fmt.Sprintf("Block:%d}", x), fmt.Sprintf("XBlock:%d YBlock:%d}", x, x)
		n := 0
		for _, e := range prof.Entries() {
			inner := strings.Contains(e.Op, " C:16 ") || strings.Contains(e.Op, " C:32 ")
			switch {
			case strings.HasPrefix(e.Op, "BatchNorm") && inner && !strings.Contains(e.Op, bn),
				strings.HasPrefix(e.Op, "Conv2D") && inner && (strings.Contains(e.Op, " K:16 ") || strings.Contains(e.Op, " K:32 ")) && !strings.Contains(e.Op, conv):
				t.Errorf("%s runs on NCHW activations, want blocks of %d", e.Op, x)
			case strings.HasPrefix(e.Op, "BatchNormAddReLU") && inner:
				n++
			}
		}
		if n != 8 { // profiles name each BatchNorm apart (by its state)
			t.Errorf("%d blocked BatchNormAddReLU kernels of 16 or 32 channels, want 8 (2 stages × 2 blocks, forward and backward)", n)
		}
	}
	for run := range 2 {
		if err := plain.Run(); err != nil {
			t.Fatal(err)
		}
		if err := blocked.Run(); err != nil {
			t.Fatal(err)
		}
		for _, n := range outputs {
			if e := relErr(download(blocked, n), download(plain, n)); e > 1e-5 {
				t.Errorf("run %d, %v: blocked plan differs from the NCHW one by %.2g (relative)", run+1, n.Name(), e)
			}
		}
	}
}
