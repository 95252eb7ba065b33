// Package bench times mochi's training step — forward, backward and SGD of
// a ResNet on one fixed random batch, on the compiled plan — on any
// backend. `mochi bench` and scripts/bench-cpu.sh (through
// scripts/benchstep) both run it; CompareBackends trains the same step on
// two backends for `mochi bench --compare-cpu`.
package bench

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/graph"
	"github.com/mochi-ssl/mochi/pkg/optim"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// Loss is the loss a benchmark trains on.
type Loss int

const (
	// MeanSquare is mean(y²) of the output, as scripts/torch_gpu_bench.py.
	MeanSquare Loss = iota
	// CrossEntropy is CE(y/τ, labels) with τ = 0.2 and random labels below
	// the output dimension — the InfoNCE form of MoCo's loss — as
	// scripts/torch_bench.py.
	CrossEntropy
)

// crossEntropyTau is CrossEntropy's temperature.
const crossEntropyTau = 0.2

// Config is one benchmark.
type Config struct {
	Model       string  // resnet18-cifar or resnet50
	Width       int     // channels of the stem; 64 is torchvision's
	Channels    int     // input channels, 1 or 3
	Size        int     // input height = width
	Batch       int     // images per step
	BNGroups    int     // split-BN groups
	EmbedDim    int     // MoCo-v2 head output D; 0 = backbone only
	Steps       int     // timed steps
	Warmup      int     // untimed steps first (workspaces, JIT, pool)
	LR          float64 // SGD learning rate
	WeightDecay float64 // SGD weight decay (momentum is 0.9)
	Seed        uint64  // weights and batch
	Loss        Loss
	Profile     bool      // after the timed steps, as many profiled ones (graph.Plan.RunProfiled)
	CPUProfile  io.Writer // where not nil, a Go CPU profile of the timed steps
}

// models are the networks bench builds, with torchvision's stems.
var models = map[string]resnet.Config{
	"resnet18-cifar": {Depth: 18, Stem: resnet.SmallStem},
	"resnet50":       {Depth: 50, Stem: resnet.ImageNetStem},
}

// resnetConfig is the network of c.
func (c Config) resnetConfig() (resnet.Config, error) {
	base, ok := models[c.Model]
	if !ok {
		names := make([]string, 0, len(models))
		for n := range models {
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

// Step is one compiled training step on a backend: forward, backward and
// SGD update of a ResNet on a fixed batch.
//
// MeanSquare's loss node is Σy² (graph.Dot(y, y)), not mean(y²) = Σy²/M,
// because package graph has no scaling op. The optimizer runs with lr/M and
// weight decay wd·M instead, which is exactly torch.optim.SGD on mean(y²)
// with lr and wd: its gradient g′ = M·g enters as lr/M·(g′ + wd·M·p) =
// lr·(g + wd·p), and the velocity is M times torch's, so every update is
// the same.
type Step struct {
	Model *resnet.Model
	*resnet.Training
	loss *gorgonia.Node
	m    int     // M, the elements of y for MeanSquare; 1 for CrossEntropy
	lr   float64 // lr/M
}

// NewStep builds and compiles the step of c on be.
func NewStep(c Config, be device.Backend) (*Step, error) {
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
	s := &Step{Model: model, m: 1}
	if c.Loss == CrossEntropy {
		labels := make([]int32, c.Batch)
		for i := range labels {
			labels[i] = int32(rng.IntN(y.Shape()[1]))
		}
		l := gorgonia.NodeFromAny(g, tensor.New(tensor.WithShape(c.Batch), tensor.WithBacking(labels)), gorgonia.WithName("labels"))
		s.loss, err = graph.SoftmaxCrossEntropy(y, l, crossEntropyTau)
	} else {
		s.m = y.Shape().TotalSize()
		s.loss, err = graph.Dot(y, y) // Σy²
	}
	if err != nil {
		return nil, err
	}
	s.lr = c.LR / float64(s.m)
	sgd := optim.SGDConfig{Momentum: 0.9, WeightDecay: c.WeightDecay * float64(s.m)}
	if s.Training, err = model.CompileTraining(be, s.loss, sgd); err != nil {
		return nil, err
	}
	return s, nil
}

// Run queues one step: Plan.Run (forward and backward, ending in the
// backend's Sync) and the SGD update, which is left queued.
func (s *Step) Run() error {
	if err := s.Plan.Run(); err != nil {
		return err
	}
	s.Opt.Step(s.lr)
	return nil
}

// runProfiled runs one step with the backend synchronised after every
// kernel, adding each kernel's time, and the SGD update's, to prof.
func (s *Step) runProfiled(prof *graph.Profile) error {
	if err := s.Plan.RunProfiled(prof); err != nil {
		return err
	}
	start := time.Now()
	s.Opt.Step(s.lr)
	if err := s.Plan.Backend().Sync(); err != nil {
		return err
	}
	prof.Add("SGDStep (all parameters)", time.Since(start))
	return nil
}

// Loss is the loss of the last step's forward (mean(y²) for MeanSquare).
func (s *Step) Loss() (float64, error) {
	var v [1]float32
	be := s.Plan.Backend()
	be.Download(v[:], s.Plan.Buffer(s.loss))
	if err := be.Sync(); err != nil {
		return 0, err
	}
	return float64(v[0]) / float64(s.m), nil
}

// Result is what Run measured.
type Result struct {
	ImagesPerSec float64       // over all timed steps
	Step         time.Duration // wall time per timed step, all timed steps over their number
	// Median and Fastest are single steps' wall times: exact on a
	// synchronous backend (the CPU); on CUDA a step's SGD update, left
	// queued, is counted in the next step.
	Median, Fastest time.Duration
	HeapPerStep     uint64         // bytes the Go heap allocated per timed step
	CPU             time.Duration  // process CPU time (user + system) per timed step: steadier than wall time on a shared machine
	Loss            float64        // of the last step
	PlanMiB         float64        // the plan's buffers (kernel workspaces excluded)
	Kernels         int            // kernels per Plan.Run
	Params          int            // trainable values
	Profile         *graph.Profile // per-op times of the profiled steps, when asked for
}

// Run trains c.Warmup untimed steps, then c.Steps timed ones, on be.
func Run(c Config, be device.Backend) (Result, error) {
	s, err := NewStep(c, be)
	if err != nil {
		return Result{}, err
	}
	defer s.Free()
	r, err := measure(c, be, s)
	if err != nil {
		return Result{}, err
	}
	if c.Profile {
		r.Profile = graph.NewProfile()
		for range c.Steps {
			if err := s.runProfiled(r.Profile); err != nil {
				return Result{}, err
			}
		}
	}
	r.PlanMiB = float64(s.Plan.Elements()) * 4 / (1 << 20)
	r.Kernels, r.Params = s.Plan.Steps(), s.Model.ParamCount()
	return r, nil
}

// stepper is a compiled training step that measure times: Step, MoCoStep.
type stepper interface {
	Run() error
	Loss() (float64, error)
}

// measure runs c.Warmup untimed steps of s, then c.Steps timed ones, and
// fills the times, heap and loss of the Result.
func measure(c Config, be device.Backend, s stepper) (Result, error) {
	for range c.Warmup {
		if err := s.Run(); err != nil {
			return Result{}, err
		}
	}
	if err := be.Sync(); err != nil {
		return Result{}, err
	}
	if c.CPUProfile != nil {
		if err := pprof.StartCPUProfile(c.CPUProfile); err != nil {
			return Result{}, err
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0, err := processCPU()
	if err != nil {
		return Result{}, err
	}
	times := make([]time.Duration, c.Steps)
	start := time.Now()
	for i := range times {
		t := time.Now()
		if err := s.Run(); err != nil {
			return Result{}, err
		}
		times[i] = time.Since(t)
	}
	if err := be.Sync(); err != nil {
		return Result{}, err
	}
	elapsed := time.Since(start)
	cpu1, err := processCPU()
	if err != nil {
		return Result{}, err
	}
	runtime.ReadMemStats(&after)
	if c.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	loss, err := s.Loss()
	if err != nil {
		return Result{}, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return Result{}, fmt.Errorf("bench: the loss is %v after %d steps: lower --lr", loss, c.Warmup+c.Steps)
	}
	slices.Sort(times)
	return Result{
		ImagesPerSec: float64(c.Batch*c.Steps) / elapsed.Seconds(),
		Step:         elapsed / time.Duration(c.Steps),
		Median:       (times[(c.Steps-1)/2] + times[c.Steps/2]) / 2,
		Fastest:      times[0],
		HeapPerStep:  (after.TotalAlloc - before.TotalAlloc) / uint64(c.Steps),
		CPU:          (cpu1 - cpu0) / time.Duration(c.Steps),
		Loss:         loss,
	}, nil
}

// processCPU is the process's user + system CPU time so far.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
