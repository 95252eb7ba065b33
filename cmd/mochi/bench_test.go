package main

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
)

// tinyBench is a CIFAR ResNet-18 small enough for a test (width 4, 8 images
// of 16×16) with split-BN.
func tinyBench() benchConfig {
	return benchConfig{Device: "cpu", Model: "resnet18-cifar", Width: 4, Channels: 3, Size: 16, Batch: 8,
		BNGroups: 2, Steps: 2, Warmup: 1, LR: 0.03, Seed: 7}
}

func TestBenchCommandCPU(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"bench", "--device", "cpu", "--width", "4", "--size", "16", "--batch", "8", "--steps", "2", "--warmup", "1", "--cpu-conv", "blas"})
	if err := root.Execute(); err != nil {
		t.Fatalf("mochi bench: %v\n%s", err, out.String())
	}
	mustContain(t, "bench", out.String(), "mochi resnet18-cifar 16x16 batch 8 on cpu, convolutions blas (im2col + BLAS): ", " images/s", "MiB", "kernels/step")
}

func TestBenchRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--model", "vgg16"},
		{"bench", "--batch", "6", "--bn-groups", "4"},
		{"bench", "--steps", "0"},
		{"bench", "--device", "tpu"},
		{"bench", "--cpu-conv", "fft"},
	} {
		root := newRootCmd()
		root.SetOut(new(bytes.Buffer))
		root.SetArgs(args)
		if err := root.Execute(); err == nil {
			t.Errorf("mochi %s succeeded", strings.Join(args, " "))
		}
	}
}

// TestTrainStepIsTorchSGDOnMeanSquare checks the rescaling trainStep relies
// on: one step of SGD with lr/M and wd·M on Σy² must be torch.optim.SGD's
// first step on mean(y²), p₁ = p₀ − lr·(∂mean(y²)/∂p + wd·p₀), computed
// here in float64 from the gradient buffers of Σy².
func TestTrainStepIsTorchSGDOnMeanSquare(t *testing.T) {
	c := tinyBench()
	be := cpu.New(1)
	s, err := newTrainStep(c, be)
	if err != nil {
		t.Fatal(err)
	}
	defer s.free()
	before := s.model.Weights()
	if err := s.run(); err != nil {
		t.Fatal(err)
	}
	after := s.model.Weights()
	const wd = 1e-4
	worst := 0.0
	for i, p := range s.model.Params {
		g := make([]float32, len(before[p.Name]))
		be.Download(g, s.plan.Buffer(s.grads[i]))
		for k, p0 := range before[p.Name] {
			gMean := float64(g[k]) / float64(s.m) // ∂mean(y²)/∂p from ∂Σy²/∂p
			want := float64(p0) - c.LR*(gMean+wd*float64(p0))
			d := math.Abs(float64(after[p.Name][k])-want) / math.Max(math.Abs(want), 1e-3)
			worst = math.Max(worst, d)
		}
	}
	if err := be.Sync(); err != nil {
		t.Fatal(err)
	}
	if worst > 1e-5 {
		t.Errorf("first update differs from torch's SGD on mean(y²) by %.3g (relative)", worst)
	}
}

// TestTrainStepLossDecreases: five steps at lr 0.5 lower mean(y²) every
// step (the gradient has the right sign and reaches every layer).
func TestTrainStepLossDecreases(t *testing.T) {
	c := tinyBench()
	c.LR = 0.5
	s, err := newTrainStep(c, cpu.New(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.free()
	prev := math.Inf(1)
	for k := range 5 {
		if err := s.run(); err != nil {
			t.Fatal(err)
		}
		loss, err := s.lossValue()
		if err != nil {
			t.Fatal(err)
		}
		if !(loss < prev) || loss <= 0 {
			t.Fatalf("step %d: loss %v after %v", k+1, loss, prev)
		}
		prev = loss
	}
}

// skewedSGD is a CPU backend whose SGD learning rate is 5% too large: a
// kernel error --compare-cpu must catch.
type skewedSGD struct{ *cpu.Backend }

func (b skewedSGD) SGDStep(p device.SGDParams, param, grad, velocity device.Buffer) {
	p.LR *= 1.05
	b.Backend.SGDStep(p, param, grad, velocity)
}

// TestCompareBackends runs --compare-cpu's check on two CPU backends that
// split their GEMMs differently (one and two threads: float32 rounding
// differences like a GPU's, smaller), which must pass, and against a
// backend whose SGD learning rate is 5% off, which must fail. The
// tolerances were set on gpu-check.sh's larger network (see
// compareLossTol); this tiny one is more sensitive, so it runs 6 steps.
func TestCompareBackends(t *testing.T) {
	c := tinyBench()
	c.Steps = 6
	cmp, err := compareBackends(c, cpu.New(1), cpu.New(2))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printComparison(&out, c, cmp, "cpu1", "cpu2"); err != nil {
		t.Errorf("%v\n%s", err, out.String())
	}
	t.Logf("1 vs 2 threads after %d steps: loss drift %.2g, weight drift %.2g", c.Steps, cmp.worstLoss(), cmp.TotalErr)
	mustContain(t, "comparison", out.String(), "cpu2 matches cpu1")

	cmp, err = compareBackends(c, cpu.New(1), skewedSGD{cpu.New(1)})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := printComparison(&out, c, cmp, "cpu", "skewed"); err == nil {
		t.Errorf("an SGD with a 5%% larger learning rate passed the comparison:\n%s", out.String())
	}
}

// tf32Backend is a CPU backend that claims a TF32 mode, to watch setTF32.
type tf32Backend struct {
	device.Backend
	on  bool
	err error
}

func (b *tf32Backend) SetConvTF32(on bool) error {
	b.on = on
	return b.err
}

func TestSetTF32(t *testing.T) {
	var log bytes.Buffer
	if err := setTF32(cpu.New(1), &log); err != nil || !strings.Contains(log.String(), "run.tf32 has no effect on the cpu backend") {
		t.Errorf("cpu: err %v, log %q; want a note and no error", err, log.String())
	}
	log.Reset()
	be := &tf32Backend{Backend: cpu.New(1)}
	if err := setTF32(be, &log); err != nil || !be.on || log.Len() != 0 {
		t.Errorf("TF32 backend: err %v, on %v, log %q; want it switched on silently", err, be.on, log.String())
	}
	be = &tf32Backend{Backend: cpu.New(1), err: errors.New("cublasSetMathMode: status 7")}
	if err := setTF32(be, &log); err == nil || !strings.Contains(err.Error(), "run.tf32") || !strings.Contains(err.Error(), "status 7") {
		t.Errorf("failing TF32 backend: err %v, want it named run.tf32 with the cause", err)
	}
}
