// Command benchstep times mochi's training step — forward, backward and an
// SGD update — for the CIFAR ResNet-18 (small stem, MoCo-v2 head, InfoNCE
// form of the loss) on the compiled plan, and prints images/s of the median
// timed step (and of the fastest step), the peak resident memory and the bytes
// the Go heap allocated per step.
//
//	go run ./scripts/benchstep -width 64 -batch 64 -threads 2
//
// scripts/bench-cpu.sh runs it beside scripts/torch_bench.py, which times
// the same network in PyTorch.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/graph"
	"github.com/mochi-ssl/mochi/pkg/optim"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

func main() {
	width := flag.Int("width", 64, "ResNet-18 base width (stages w, 2w, 4w, 8w)")
	batch := flag.Int("batch", 64, "images per step")
	threads := flag.Int("threads", 2, "CPU threads")
	warmup := flag.Int("warmup", 2, "untimed steps")
	steps := flag.Int("steps", 5, "timed steps")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the timed steps to this file (go tool pprof)")
	blas := flag.Bool("blas", false, "print the BLAS library and kernel set, and exit")
	conv := flag.String("conv", "blas", "CPU convolution kernels (cpu.conv): blas, auto, winograd or direct")
	flag.Parse()
	if *blas {
		fmt.Println(cpu.BLAS())
		return
	}
	if err := run(*width, *batch, *threads, *warmup, *steps, *profile, *conv); err != nil {
		fmt.Fprintln(os.Stderr, "benchstep:", err)
		os.Exit(1)
	}
}

func run(width, batch, threads, warmup, steps int, profile, conv string) error {
	runtime.GOMAXPROCS(threads)
	be := cpu.New(threads)
	mode, err := cpu.ParseConvMode(conv)
	if err == nil {
		err = be.SetConvMode(mode)
	}
	if err != nil {
		return fmt.Errorf("-conv: %w", err)
	}
	const embed, tau = 128, 0.2

	g := gorgonia.NewGraph()
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, batch*3*32*32) // x: B×3×32×32
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	labels := make([]int32, batch)
	for i := range labels {
		labels[i] = int32(rng.IntN(embed))
	}
	xNode := gorgonia.NodeFromAny(g, tensor.New(tensor.WithShape(batch, 3, 32, 32), tensor.WithBacking(x)), gorgonia.WithName("x"))
	lNode := gorgonia.NodeFromAny(g, tensor.New(tensor.WithShape(batch), tensor.WithBacking(labels)), gorgonia.WithName("labels"))
	m, err := resnet.Build(g, xNode, resnet.Config{Depth: 18, Stem: resnet.SmallStem, Width: width, EmbedDim: embed, Seed: 1}, be)
	if err != nil {
		return err
	}
	loss, err := graph.SoftmaxCrossEntropy(m.Embedding, lNode, tau) // CE(z/τ, labels)
	if err != nil {
		return err
	}
	params := make(gorgonia.Nodes, len(m.Params))
	for i, p := range m.Params {
		params[i] = p.Node
	}
	grads, err := gorgonia.Grad(loss, params...)
	if err != nil {
		return err
	}
	plan, err := graph.Compile(g, be, append(gorgonia.Nodes{loss}, grads...)...)
	if err != nil {
		return err
	}
	if err := m.Bind(plan); err != nil {
		return err
	}
	ops, err := m.OptimParams(plan, grads)
	if err != nil {
		return err
	}
	opt, err := optim.NewSGD(be, ops, optim.SGDConfig{Momentum: 0.9, WeightDecay: 5e-4})
	if err != nil {
		return err
	}
	step := func() error {
		if err := plan.Run(); err != nil {
			return err
		}
		opt.Step(0.06)
		return be.Sync()
	}
	for range warmup {
		if err := step(); err != nil {
			return err
		}
	}
	// The median step is the figure scripts/bench-cpu.sh compares (as
	// scripts/torch_bench.py does); the fastest is printed beside it.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	times := make([]time.Duration, steps)
	for i := range times {
		start := time.Now()
		if err := step(); err != nil {
			return err
		}
		times[i] = time.Since(start)
	}
	slices.Sort(times)
	median := (times[(steps-1)/2] + times[steps/2]) / 2
	runtime.ReadMemStats(&after)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return err
	}
	lossVal := make([]float32, 1)
	be.Download(lossVal, plan.Buffer(loss))
	fmt.Printf("mochi  width %3d batch %d threads %d: %7.1f images/s  peak RSS %6.0f MiB  (fastest %.1f images/s)  heap alloc/step %d B  loss %.4f\n",
		width, batch, threads, float64(batch)/median.Seconds(), float64(ru.Maxrss)/1024, float64(batch)/times[0].Seconds(),
		(after.TotalAlloc-before.TotalAlloc)/uint64(steps), lossVal[0])
	return nil
}
