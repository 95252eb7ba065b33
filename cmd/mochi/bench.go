package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/registry"
	"github.com/mochi-ssl/mochi/pkg/graph"
	"github.com/mochi-ssl/mochi/pkg/optim"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// benchConfig is one `mochi bench` run: a ResNet trained on one random
// batch with the loss of scripts/torch_gpu_bench.py, mean(y²) of the output.
type benchConfig struct {
	Device   string  // backend name (package registry)
	Model    string  // resnet18-cifar or resnet50
	Width    int     // channels of the stem; 64 is torchvision's
	Channels int     // input channels, 1 or 3
	Size     int     // input height = width
	Batch    int     // images per step
	BNGroups int     // split-BN groups
	EmbedDim int     // MoCo-v2 head output D; 0 = backbone only
	Steps    int     // timed steps
	Warmup   int     // untimed steps first (workspaces, JIT, pool)
	LR       float64 // SGD learning rate for mean(y²)
	Seed     uint64  // weights and batch
	TF32     bool    // convolutions on TF32 tensor cores (device.ConvTF32)
	CPUConv  string  // the CPU backend's convolution kernels (cpu.conv)
	Profile  bool    // after the timed steps, as many profiled ones (graph.Plan.RunProfiled)
}

// benchModels are the networks bench builds, with torchvision's stems.
var benchModels = map[string]resnet.Config{
	"resnet18-cifar": {Depth: 18, Stem: resnet.SmallStem},
	"resnet50":       {Depth: 50, Stem: resnet.ImageNetStem},
}

// resnetConfig is the network of c.
func (c benchConfig) resnetConfig() (resnet.Config, error) {
	base, ok := benchModels[c.Model]
	if !ok {
		names := make([]string, 0, len(benchModels))
		for n := range benchModels {
			names = append(names, n)
		}
		sort.Strings(names)
		return resnet.Config{}, fmt.Errorf("--model %q: choose one of %s", c.Model, strings.Join(names, ", "))
	}
	if c.Batch < 1 || c.Size < 1 || c.Steps < 1 || c.Warmup < 0 {
		return resnet.Config{}, fmt.Errorf("--batch %d, --size %d, --steps %d, --warmup %d: need batch, size, steps ≥ 1 and warmup ≥ 0",
			c.Batch, c.Size, c.Steps, c.Warmup)
	}
	base.Width, base.InChannels, base.BNGroups, base.EmbedDim, base.Seed = c.Width, c.Channels, c.BNGroups, c.EmbedDim, c.Seed
	cfg := base.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return resnet.Config{}, err
	}
	if c.Batch%cfg.BNGroups != 0 {
		return resnet.Config{}, fmt.Errorf("--batch %d is not a multiple of --bn-groups %d", c.Batch, cfg.BNGroups)
	}
	return cfg, nil
}

// trainStep is one compiled training step on a backend: forward, backward
// and SGD update of a ResNet on a fixed batch.
//
// The loss node is Σy² (graph.Dot(y, y)), not mean(y²) = Σy²/M, because
// package graph has no scaling op. The optimizer runs with lr/M and
// weight decay wd·M instead, which is exactly torch.optim.SGD on mean(y²)
// with lr and wd: its gradient g′ = M·g enters as lr/M·(g′ + wd·M·p) =
// lr·(g + wd·p), and the velocity is M times torch's, so every update is
// the same.
type trainStep struct {
	model *resnet.Model
	plan  *graph.Plan
	opt   *optim.SGD
	loss  *gorgonia.Node
	grads gorgonia.Nodes // ∂Σy²/∂Params[i]
	m     int            // M, the elements of y
	lr    float64        // lr/M
}

// newTrainStep builds and compiles the step of c on be.
func newTrainStep(c benchConfig, be device.Backend) (*trainStep, error) {
	cfg, err := c.resnetConfig()
	if err != nil {
		return nil, err
	}
	g := gorgonia.NewGraph()
	// x: Batch×Channels×Size×Size, N(0, 1) like torch.randn, uploaded once
	// by Compile.
	rng := rand.New(rand.NewPCG(c.Seed, 0x62656e6368))
	batch := make([]float32, c.Batch*cfg.InChannels*c.Size*c.Size)
	for i := range batch {
		batch[i] = float32(rng.NormFloat64())
	}
	x := gorgonia.NewTensor(g, tensor.Float32, 4, gorgonia.WithName("x"),
		gorgonia.WithShape(c.Batch, cfg.InChannels, c.Size, c.Size),
		gorgonia.WithValue(tensor.New(tensor.WithShape(c.Batch, cfg.InChannels, c.Size, c.Size), tensor.WithBacking(batch))))
	model, err := resnet.Build(g, x, cfg, be)
	if err != nil {
		return nil, err
	}
	y := model.Features // Batch×FeatureDim
	if model.Embedding != nil {
		y = model.Embedding // Batch×EmbedDim
	}
	loss, err := graph.Dot(y, y) // Σy²
	if err != nil {
		return nil, err
	}
	params := make(gorgonia.Nodes, len(model.Params))
	for i, p := range model.Params {
		params[i] = p.Node
	}
	grads, err := gorgonia.Grad(loss, params...)
	if err != nil {
		return nil, fmt.Errorf("gradient of the bench loss: %w", err)
	}
	plan, err := graph.Compile(g, be, append(gorgonia.Nodes{loss}, grads...)...)
	if err != nil {
		return nil, err
	}
	s := &trainStep{model: model, plan: plan, loss: loss, grads: grads, m: y.Shape().TotalSize()}
	s.lr = c.LR / float64(s.m)
	if err := model.Bind(plan); err != nil {
		plan.Free()
		return nil, err
	}
	ps, err := model.OptimParams(plan, grads)
	if err == nil {
		s.opt, err = optim.NewSGD(be, ps, optim.SGDConfig{Momentum: 0.9, WeightDecay: 1e-4 * float64(s.m)})
	}
	if err != nil {
		plan.Free()
		return nil, err
	}
	return s, nil
}

// run queues one step: Plan.Run (forward and backward, ending in the
// backend's Sync) and the SGD update, which is left queued.
func (s *trainStep) run() error {
	if err := s.plan.Run(); err != nil {
		return err
	}
	s.opt.Step(s.lr)
	return nil
}

// runProfiled runs one step with the backend synchronised after every
// kernel, adding each kernel's time, and the SGD update's, to prof.
func (s *trainStep) runProfiled(prof *graph.Profile) error {
	if err := s.plan.RunProfiled(prof); err != nil {
		return err
	}
	start := time.Now()
	s.opt.Step(s.lr)
	if err := s.plan.Backend().Sync(); err != nil {
		return err
	}
	prof.Add("SGDStep (all parameters)", time.Since(start))
	return nil
}

// lossValue is mean(y²) of the last step's forward.
func (s *trainStep) lossValue() (float64, error) {
	var v [1]float32
	be := s.plan.Backend()
	be.Download(v[:], s.plan.Buffer(s.loss))
	if err := be.Sync(); err != nil {
		return 0, err
	}
	return float64(v[0]) / float64(s.m), nil
}

// free releases the step's device memory.
func (s *trainStep) free() {
	s.opt.Free()
	s.plan.Free()
}

// benchResult is what bench measured.
type benchResult struct {
	ImagesPerSec float64
	Step         time.Duration  // wall time per timed step
	Loss         float64        // mean(y²) of the last step
	PlanMiB      float64        // the plan's buffers (kernel workspaces excluded)
	Kernels      int            // kernels per Plan.Run
	Params       int            // trainable values
	Profile      *graph.Profile // per-op times of the profiled steps, when asked for
}

// runBench trains c.Warmup untimed steps, then c.Steps timed ones, on be.
func runBench(c benchConfig, be device.Backend) (benchResult, error) {
	s, err := newTrainStep(c, be)
	if err != nil {
		return benchResult{}, err
	}
	defer s.free()
	for range c.Warmup {
		if err := s.run(); err != nil {
			return benchResult{}, err
		}
	}
	if err := be.Sync(); err != nil {
		return benchResult{}, err
	}
	start := time.Now()
	for range c.Steps {
		if err := s.run(); err != nil {
			return benchResult{}, err
		}
	}
	if err := be.Sync(); err != nil {
		return benchResult{}, err
	}
	elapsed := time.Since(start)
	var prof *graph.Profile
	if c.Profile {
		prof = graph.NewProfile()
		for range c.Steps {
			if err := s.runProfiled(prof); err != nil {
				return benchResult{}, err
			}
		}
	}
	loss, err := s.lossValue()
	if err != nil {
		return benchResult{}, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return benchResult{}, fmt.Errorf("bench: the loss is %v after %d steps: lower --lr", loss, c.Warmup+c.Steps)
	}
	return benchResult{
		ImagesPerSec: float64(c.Batch*c.Steps) / elapsed.Seconds(),
		Step:         elapsed / time.Duration(c.Steps),
		Loss:         loss,
		PlanMiB:      float64(s.plan.Elements()) * 4 / (1 << 20),
		Kernels:      s.plan.Steps(),
		Params:       s.model.ParamCount(),
		Profile:      prof,
	}, nil
}

// Tolerances of --compare-cpu, for 20 float32 SGD steps of the small
// ResNet. Two backends round differently (GEMM summation order, fused
// multiply-adds, reduction trees: ~1e-7 relative per kernel), and training
// amplifies that: a ReLU or max-pool decision that flips feeds a different
// gradient into the next step. Measured between two CPU backends that only
// split their GEMMs differently (1 and 2 threads), the resnet18-cifar of
// gpu-check.sh step 2 (width 16, batch 32, split-BN 4, lr 0.03) drifts by
// 3e-4 in the loss and 1.3e-3 in the whole weight vector after 20 steps,
// while single BatchNorm biases, which start at 0 and move by sums of
// cancelling terms, differ by up to 0.14 relative to their tiny norm. The
// weights are therefore judged as one vector, the per-tensor errors are
// shown for information, and the tolerances leave room for a GPU rounding
// more differently than a second CPU split. A wrong kernel or update shows
// as errors of 1e-2 to 1 from the first steps.
const (
	compareLossTol   = 5e-3 // |Δloss|/|loss| at every step
	compareWeightTol = 1e-2 // ‖ΔW‖/‖W‖ over all parameters after the last step
)

// comparison is the outcome of compareBackends.
type comparison struct {
	LossA, LossB []float64          // per step
	WeightErr    map[string]float64 // ‖w_b − w_a‖/‖w_a‖ per tensor
	TotalErr     float64            // ‖W_b − W_a‖/‖W_a‖ over all parameters
}

// worstLoss is the largest per-step relative loss difference.
func (c comparison) worstLoss() float64 {
	w := 0.0
	for i := range c.LossA {
		w = math.Max(w, relDiff(c.LossB[i], c.LossA[i]))
	}
	return w
}

func relDiff(got, want float64) float64 {
	if got == want {
		return 0
	}
	return math.Abs(got-want) / math.Max(math.Abs(want), 1e-30)
}

// compareBackends trains c.Steps steps of the same network, from the same
// weights and batch, on a and on b, and returns both loss curves and the
// per-tensor relative weight error ‖w_b − w_a‖/‖w_a‖.
func compareBackends(c benchConfig, a, b device.Backend) (comparison, error) {
	var cmp comparison
	var weights [2]map[string][]float32
	for i, be := range []device.Backend{a, b} {
		s, err := newTrainStep(c, be)
		if err != nil {
			return cmp, err
		}
		losses := make([]float64, c.Steps)
		for k := range losses {
			if err = s.run(); err == nil {
				losses[k], err = s.lossValue()
			}
			if err != nil {
				s.free()
				return cmp, fmt.Errorf("%s step %d: %w", be.Name(), k, err)
			}
		}
		weights[i] = s.model.Weights()
		s.free()
		if i == 0 {
			cmp.LossA = losses
		} else {
			cmp.LossB = losses
		}
	}
	cmp.WeightErr = make(map[string]float64, len(weights[0]))
	var dAll, nAll float64
	for name, wa := range weights[0] {
		wb := weights[1][name]
		var d, n float64
		for i := range wa {
			d += (float64(wb[i]) - float64(wa[i])) * (float64(wb[i]) - float64(wa[i]))
			n += float64(wa[i]) * float64(wa[i])
		}
		cmp.WeightErr[name] = math.Sqrt(d / math.Max(n, 1e-30))
		dAll, nAll = dAll+d, nAll+n
	}
	cmp.TotalErr = math.Sqrt(dAll / math.Max(nAll, 1e-30))
	return cmp, nil
}

// printComparison writes the loss table and the worst weight errors and
// returns an error when a tolerance is exceeded.
func printComparison(w io.Writer, c benchConfig, cmp comparison, nameA, nameB string) error {
	fmt.Fprintf(w, "%s width %d batch %d split-BN %d, %d SGD steps (lr %g, momentum 0.9, wd 1e-4), loss mean(y²)\n",
		c.Model, c.Width, c.Batch, c.BNGroups, c.Steps, c.LR)
	fmt.Fprintf(w, "%5s %14s %14s %10s\n", "step", "loss "+nameA, "loss "+nameB, "rel err")
	for i := range cmp.LossA {
		fmt.Fprintf(w, "%5d %14.7g %14.7g %10.2g\n", i+1, cmp.LossA[i], cmp.LossB[i], relDiff(cmp.LossB[i], cmp.LossA[i]))
	}
	names := make([]string, 0, len(cmp.WeightErr))
	for n := range cmp.WeightErr {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return cmp.WeightErr[names[i]] > cmp.WeightErr[names[j]] })
	fmt.Fprintf(w, "weights after step %d, ‖w_%s − w_%s‖/‖w_%s‖, worst 5 of %d tensors:\n", c.Steps, nameB, nameA, nameA, len(names))
	for _, n := range names[:min(5, len(names))] {
		fmt.Fprintf(w, "  %-36s %10.2g\n", n, cmp.WeightErr[n])
	}
	lw := cmp.worstLoss()
	fmt.Fprintf(w, "max loss rel err %.2g (tolerance %.0e), all weights ‖ΔW‖/‖W‖ %.2g (tolerance %.0e)\n",
		lw, compareLossTol, cmp.TotalErr, compareWeightTol)
	var errs []error
	if !(lw <= compareLossTol) {
		errs = append(errs, fmt.Errorf("losses differ by %.2g > %.0e", lw, compareLossTol))
	}
	if !(cmp.TotalErr <= compareWeightTol) {
		errs = append(errs, fmt.Errorf("weights differ by %.2g > %.0e", cmp.TotalErr, compareWeightTol))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s does not match %s: %w", nameB, nameA, err)
	}
	fmt.Fprintf(w, "%s matches %s\n", nameB, nameA)
	return nil
}

// closeBackend closes backends that hold device resources (cuda).
func closeBackend(be device.Backend) error {
	if c, ok := be.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// deviceName is the GPU's name where the backend reports one.
func deviceName(be device.Backend) string {
	if d, ok := be.(interface{ Device() string }); ok {
		return be.Name() + ", " + d.Device()
	}
	return be.Name()
}

func newBenchCmd() *cobra.Command {
	var c benchConfig
	var compare bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the training throughput (images/s) of a ResNet on a backend",
		Long: `Train a ResNet on one random batch (uploaded once) with SGD (momentum 0.9,
weight decay 1e-4) and the loss mean(y²) of its output, as
scripts/torch_gpu_bench.py does in PyTorch, and print images/s over the timed
steps (after --warmup untimed ones) and the memory of the compiled plan.

--compare-cpu instead trains --steps steps on the CPU and on --device from the
same weights and batch and compares the losses of every step and the final
weights (scripts/gpu-check.sh step 2); it exits non-zero beyond the tolerances
(relative 5e-3 for the loss of every step, 1e-2 for all weights as one vector).`,
		Example: `  mochi bench --device cpu --model resnet18-cifar --width 16 --batch 32 --steps 3
  mochi-gpu bench --device cuda --model resnet18-cifar --batch 256
  mochi-gpu bench --device cuda --model resnet50 --size 224 --batch 64
  mochi-gpu bench --device cuda --model resnet50 --size 224 --batch 64 --tf32
  mochi-gpu bench --device cuda --model resnet18-cifar --batch 256 --profile
  mochi-gpu bench --device cuda --compare-cpu --width 16 --batch 32 --bn-groups 4 --steps 20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("size") && c.Model == "resnet50" {
				c.Size = 224
			}
			w := cmd.OutOrStdout()
			be, err := openDevice(c.Device, c.TF32, c.CPUConv, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer closeBackend(be)
			if compare {
				ref, err := registry.Open("cpu")
				if err != nil {
					return err
				}
				cmp, err := compareBackends(c, ref, be)
				if err != nil {
					return err
				}
				return printComparison(w, c, cmp, ref.Name(), be.Name())
			}
			r, err := runBench(c, be)
			if err != nil {
				return err
			}
			precision := ""
			if _, ok := be.(device.ConvTF32); ok && c.TF32 {
				precision = " tf32"
			}
			_, err = fmt.Fprintf(w, "mochi %s %dx%d batch %d%s on %s: %.0f images/s (%.2f ms/step, %d steps after %d warm-up), "+
				"plan %.0f MiB, %d kernels/step, %d parameters, loss %.4g\n",
				c.Model, c.Size, c.Size, c.Batch, precision, deviceName(be), r.ImagesPerSec, float64(r.Step.Microseconds())/1000,
				c.Steps, c.Warmup, r.PlanMiB, r.Kernels, r.Params, r.Loss)
			if err != nil || r.Profile == nil {
				return err
			}
			return printProfile(w, r.Profile, r.Step)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Device, "device", "cpu", "backend: "+strings.Join(registry.Available(), ", ")+" (cuda needs the GPU binary, bin/mochi-gpu)")
	f.StringVar(&c.Model, "model", "resnet18-cifar", "network: resnet18-cifar (3×3 stem, no max-pool) or resnet50 (ImageNet stem)")
	f.IntVar(&c.Width, "width", 64, "channels of the stem and first stage (torchvision: 64)")
	f.IntVar(&c.Channels, "channels", 3, "input channels (1 or 3)")
	f.IntVar(&c.Size, "size", 32, "input height and width (224 by default for resnet50)")
	f.IntVar(&c.Batch, "batch", 256, "images per step")
	f.IntVar(&c.BNGroups, "bn-groups", 1, "split-BN groups (the batch must be a multiple)")
	f.IntVar(&c.EmbedDim, "embed-dim", 0, "add MoCo-v2's head with this output dimension (0: backbone only)")
	f.IntVar(&c.Steps, "steps", 20, "timed training steps (with --compare-cpu: steps compared)")
	f.IntVar(&c.Warmup, "warmup", 5, "untimed steps before timing")
	f.Float64Var(&c.LR, "lr", 0.03, "SGD learning rate")
	f.Uint64Var(&c.Seed, "seed", 1, "seed of the weights and the batch")
	f.BoolVar(&c.TF32, "tf32", false, "cuda: convolutions on TensorFloat-32 tensor cores (run.tf32); compare with scripts/torch_gpu_bench.py --tf32")
	f.StringVar(&c.CPUConv, "cpu-conv", "blas", "cpu: convolution kernels, auto, winograd, direct or blas (cpu.conv)")
	f.BoolVar(&c.Profile, "profile", false, "then run --steps more steps with a sync after every kernel and print the time per kind of kernel and the costliest kernels")
	f.BoolVar(&compare, "compare-cpu", false, "train on the CPU and on --device from the same start and compare losses and weights")
	return cmd
}

// printProfile writes the profiled steps' time per kind of kernel and the
// costliest kernels (op and shape), per step, beside the unprofiled step
// time: syncing after every kernel adds the launch latencies a plain step
// hides, so the shares are what to read.
func printProfile(w io.Writer, prof *graph.Profile, step time.Duration) error {
	runs := float64(prof.Runs())
	perStep := func(d time.Duration) float64 { return d.Seconds() * 1000 / runs }
	total := prof.Total()
	share := func(d time.Duration) float64 { return 100 * d.Seconds() / total.Seconds() }
	fmt.Fprintf(w, "profile over %d steps, synchronised after every kernel: %.2f ms/step (%.2f ms unprofiled)\n",
		prof.Runs(), perStep(total), float64(step.Microseconds())/1000)
	fmt.Fprintf(w, "%-30s %10s %10s %7s\n", "kind", "calls/step", "ms/step", "share")
	for _, e := range prof.ByKind() {
		fmt.Fprintf(w, "%-30s %10.0f %10.3f %6.1f%%\n", e.Op, float64(e.Calls)/runs, perStep(e.Time), share(e.Time))
	}
	const top = 15
	fmt.Fprintf(w, "costliest %d kernels:\n%10s %7s  %s\n", top, "ms/step", "share", "op")
	for i, e := range prof.Entries() {
		if i == top {
			break
		}
		fmt.Fprintf(w, "%10.3f %6.1f%%  %s\n", perStep(e.Time), share(e.Time), e.Op)
	}
	_, err := fmt.Fprintln(w)
	return err
}
