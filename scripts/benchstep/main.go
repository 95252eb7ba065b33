// Command benchstep times mochi's training step — forward, backward and an
// SGD update — for the CIFAR ResNet-18 (small stem, MoCo-v2 head, InfoNCE
// form of the loss) with pkg/bench on the CPU, and prints images/s of the
// median timed step (and of the fastest step), the peak resident memory and
// the bytes the Go heap allocated per step. With -moco it times the whole
// MoCo-v2 / MoCHi step instead (both encoders, momentum update, queue,
// loss with hard negatives).
//
//	go run ./scripts/benchstep -width 64 -batch 64 -threads 2
//	go run ./scripts/benchstep -moco -width 16 -bn-groups 8 -k 4096 -n 256 -s 256 -s-prime 64
//
// scripts/bench-cpu.sh runs it beside scripts/torch_bench.py (and
// scripts/torch_moco_bench.py), which time the same steps in PyTorch.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"github.com/mochi-ssl/mochi/pkg/bench"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
)

func main() {
	width := flag.Int("width", 64, "ResNet-18 base width (stages w, 2w, 4w, 8w)")
	batch := flag.Int("batch", 64, "images per step")
	threads := flag.Int("threads", 2, "CPU threads")
	warmup := flag.Int("warmup", 2, "untimed steps")
	steps := flag.Int("steps", 5, "timed steps")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the timed steps to this file (go tool pprof)")
	conv := flag.String("conv", "auto", "CPU convolution kernels (cpu.conv): auto, winograd, direct or blas")
	blas := flag.Bool("blas", false, "print the BLAS library and kernel set, and exit")
	bnGroups := flag.Int("bn-groups", 1, "split-BN groups")
	mocoStep := flag.Bool("moco", false, "time the MoCo-v2 / MoCHi step (momentum 0.99, τ 0.1) instead of the ResNet step")
	k := flag.Int("k", 4096, "-moco: queue size K")
	n := flag.Int("n", 256, "-moco: MoCHi's N hardest negatives")
	s := flag.Int("s", 256, "-moco: MoCHi's s negative–negative mixes (0 with -s-prime 0: MoCo-v2 alone)")
	sPrime := flag.Int("s-prime", 64, "-moco: MoCHi's s′ query–negative mixes")
	flag.Parse()
	if *blas {
		fmt.Println(cpu.BLAS())
		return
	}
	// torch_bench.py's step: CE(z/0.2, labels), SGD lr 0.06, momentum 0.9, wd 5e-4
	c := bench.Config{Model: "resnet18-cifar", Width: *width, Channels: 3, Size: 32, Batch: *batch, BNGroups: *bnGroups, EmbedDim: 128,
		Steps: *steps, Warmup: *warmup, LR: 0.06, WeightDecay: 5e-4, Seed: 1, Loss: bench.CrossEntropy}
	var mc *bench.MoCoConfig
	if *mocoStep {
		// torch_moco_bench.py's step: the MoCo CIFAR demo's m and τ
		mc = &bench.MoCoConfig{Config: c, K: *k, M: 0.99, Mix: hardneg.Config{N: *n, S: *s, SPrime: *sPrime, Tau: 0.1}}
	}
	if err := run(c, mc, *threads, *profile, *conv); err != nil {
		fmt.Fprintln(os.Stderr, "benchstep:", err)
		os.Exit(1)
	}
}

func run(c bench.Config, mc *bench.MoCoConfig, threads int, profile, conv string) error {
	runtime.GOMAXPROCS(threads)
	be := cpu.New(threads)
	mode, err := cpu.ParseConvMode(conv)
	if err == nil {
		err = be.SetConvMode(mode)
	}
	if err != nil {
		return fmt.Errorf("-conv: %w", err)
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		c.CPUProfile = f
	}
	var r bench.Result
	step := "mochi "
	if mc != nil {
		mc.CPUProfile = c.CPUProfile
		r, err = bench.RunMoCo(*mc, be)
		step = "mochi moco"
	} else {
		r, err = bench.Run(c, be)
	}
	if err != nil {
		return err
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return err
	}
	fmt.Printf("%s width %3d batch %d threads %d: %7.1f images/s  peak RSS %6.0f MiB  (fastest %.1f images/s)  heap alloc/step %d B  loss %.4f  CPU %.3f s/step\n",
		step, c.Width, c.Batch, threads, float64(c.Batch)/r.Median.Seconds(), float64(ru.Maxrss)/1024, float64(c.Batch)/r.Fastest.Seconds(),
		r.HeapPerStep, r.Loss, r.CPU.Seconds())
	return nil
}
