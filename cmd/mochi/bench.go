package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mochi-ssl/mochi/pkg/bench"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/registry"
)

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
	c := bench.Config{WeightDecay: 1e-4}
	var dev string
	var tf32 bool
	var cpuConv string // the CPU backend's convolution kernels (cpu.conv)
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
			be, err := openDevice(dev, tf32, cpuConv, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer closeBackend(be)
			if compare {
				ref, err := registry.Open("cpu")
				if err != nil {
					return err
				}
				cmp, err := bench.CompareBackends(c, ref, be)
				if err != nil {
					return err
				}
				return cmp.Print(w, c, ref.Name(), be.Name())
			}
			r, err := bench.Run(c, be)
			if err != nil {
				return err
			}
			precision := ""
			if _, ok := be.(device.ConvTF32); ok && tf32 {
				precision = " tf32"
			}
			_, err = fmt.Fprintf(w, "mochi %s %dx%d batch %d%s on %s: %.0f images/s (%.2f ms/step, %d steps after %d warm-up), "+
				"plan %.0f MiB, %d kernels/step, %d parameters, loss %.4g\n",
				c.Model, c.Size, c.Size, c.Batch, precision, deviceName(be), r.ImagesPerSec, float64(r.Step.Microseconds())/1000,
				c.Steps, c.Warmup, r.PlanMiB, r.Kernels, r.Params, r.Loss)
			if err != nil || r.Profile == nil {
				return err
			}
			return bench.PrintProfile(w, r.Profile, r.Step)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dev, "device", "cpu", "backend: "+strings.Join(registry.Available(), ", ")+" (cuda needs the GPU binary, bin/mochi-gpu)")
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
	f.BoolVar(&tf32, "tf32", false, "cuda: convolutions on TensorFloat-32 tensor cores (run.tf32); compare with scripts/torch_gpu_bench.py --tf32")
	f.StringVar(&cpuConv, "cpu-conv", config.Default().CPU.Conv, "cpu: convolution kernels, auto, winograd, direct or blas (cpu.conv)")
	f.BoolVar(&c.Profile, "profile", false, "then run --steps more steps with a sync after every kernel and print the time per kind of kernel and the costliest kernels")
	f.BoolVar(&compare, "compare-cpu", false, "train on the CPU and on --device from the same start and compare losses and weights")
	return cmd
}
