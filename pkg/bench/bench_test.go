package bench

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
)

// tinyBench is a CIFAR ResNet-18 small enough for a test (width 4, 8 images
// of 16×16) with split-BN.
func tinyBench() Config {
	return Config{Model: "resnet18-cifar", Width: 4, Channels: 3, Size: 16, Batch: 8,
		BNGroups: 2, Steps: 2, Warmup: 1, LR: 0.03, WeightDecay: 1e-4, Seed: 7}
}

// TestStepIsTorchSGDOnMeanSquare checks the rescaling Step relies
// on: one step of SGD with lr/M and wd·M on Σy² must be torch.optim.SGD's
// first step on mean(y²), p₁ = p₀ − lr·(∂mean(y²)/∂p + wd·p₀), computed
// here in float64 from the gradient buffers of Σy².
func TestStepIsTorchSGDOnMeanSquare(t *testing.T) {
	c := tinyBench()
	be := cpu.New(1)
	s, err := NewStep(c, be)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Free()
	before := s.Model.Weights()
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
	after := s.Model.Weights()
	const wd = 1e-4
	worst := 0.0
	for i, p := range s.Model.Params {
		g := make([]float32, len(before[p.Name]))
		be.Download(g, s.Plan.Buffer(s.Grads[i]))
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

// TestStepLossDecreases: five steps at lr 0.5 lower mean(y²) every
// step (the gradient has the right sign and reaches every layer).
func TestStepLossDecreases(t *testing.T) {
	c := tinyBench()
	c.LR = 0.5
	s, err := NewStep(c, cpu.New(1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Free()
	prev := math.Inf(1)
	for k := range 5 {
		if err := s.Run(); err != nil {
			t.Fatal(err)
		}
		loss, err := s.Loss()
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
	cmp, err := CompareBackends(c, cpu.New(1), cpu.New(2))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := cmp.Print(&out, c, "cpu1", "cpu2"); err != nil {
		t.Errorf("%v\n%s", err, out.String())
	}
	t.Logf("1 vs 2 threads after %d steps: loss drift %.2g, weight drift %.2g", c.Steps, cmp.WorstLoss(), cmp.TotalErr)
	if !strings.Contains(out.String(), "cpu2 matches cpu1") {
		t.Errorf("comparison lacks %q:\n%s", "cpu2 matches cpu1", out.String())
	}

	cmp, err = CompareBackends(c, cpu.New(1), skewedSGD{cpu.New(1)})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := cmp.Print(&out, c, "cpu", "skewed"); err == nil {
		t.Errorf("an SGD with a 5%% larger learning rate passed the comparison:\n%s", out.String())
	}
}

// TestMoCoStepTrains checks that the MoCo benchmark runs the whole step:
// after each Run the queue holds that step's keys at the old pointer, f_q
// moved (SGD ran) and f_k followed it by the momentum update — the parts
// a bench that timed only some of the step would skip.
func TestMoCoStepTrains(t *testing.T) {
	c := MoCoConfig{Config: tinyBench(), K: 20, M: 0.9, Mix: hardneg.Config{N: 6, S: 4, SPrime: 2, Tau: 0.1}}
	s := newMoCoStep(t, c)
	q0 := s.Model.EncoderQ.Weights()
	for step := range 3 {
		ptr := s.Model.Queue.Ptr()
		if err := s.Run(); err != nil {
			t.Fatal(err)
		}
		if want := (ptr + c.Batch) % c.K; s.Model.Queue.Ptr() != want {
			t.Fatalf("step %d: queue pointer %d, want %d", step, s.Model.Queue.Ptr(), want)
		}
		keys, queue, d := s.Model.Keys(nil), s.Model.Queue.Host(), s.Model.Spec.Net.EmbedDim
		for i := range c.Batch {
			row := (ptr + i) % c.K
			if !slices.Equal(queue[row*d:(row+1)*d], keys[i*d:(i+1)*d]) {
				t.Fatalf("step %d: queue row %d is not key %d", step, row, i)
			}
		}
	}
	loss, _ := s.Loss()
	if math.IsNaN(loss) || loss <= 0 {
		t.Fatalf("loss %v", loss)
	}
	// f_k starts as f_q; after three steps it lies strictly between f_q's
	// start and f_q's present.
	q, k := s.Model.EncoderQ.Weights(), s.Model.EncoderK.Weights()
	moved, followed := 0.0, 0.0
	for name, w := range q {
		for i := range w {
			moved += math.Abs(float64(w[i] - q0[name][i]))
			followed += math.Abs(float64(k[name][i] - q0[name][i]))
		}
	}
	if !(moved > 0) || !(followed > 0) || !(followed < moved) {
		t.Errorf("Σ|Δθ_q| = %g, Σ|θ_k − θ_q(0)| = %g: want 0 < θ_k's change < θ_q's", moved, followed)
	}
}

// TestMoCoStepAllocatesNothing: after warm-up a MoCo/MoCHi step, on one
// thread and on two, with the reference convolutions (blas) and the
// default ones (auto: oneDNN's, with activations kept in its channel
// blocks from 8 channels), makes no heap allocation (the plans' buffers,
// the kernels' scratch, the mixing draw and the queue's copy are all
// reused), so a long run puts no load on the garbage collector.
func TestMoCoStepAllocatesNothing(t *testing.T) {
	for i := range 4 {
		threads, mode := 1+i%2, []cpu.ConvMode{cpu.ConvBLAS, cpu.ConvAuto}[i/2]
		c := MoCoConfig{Config: tinyBench(), K: 20, M: 0.99, Mix: hardneg.Config{N: 6, S: 4, SPrime: 2, Tau: 0.1}}
		c.EmbedDim = 8
		be := cpu.New(threads)
		if err := be.SetConvMode(mode); err != nil {
			t.Fatal(err)
		}
		s, err := NewMoCoStep(c, be)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Model.Free()
		var runErr error
		run := func() {
			if err := s.Run(); err != nil && runErr == nil {
				runErr = err
			}
		}
		// K = 20 is not a multiple of the batch of 8: the steps measured
		// include enqueues that wrap around the queue's end.
		if n := testing.AllocsPerRun(5, run); n != 0 {
			t.Errorf("%d threads, cpu.conv %s: %v heap allocations per MoCo step after warm-up, want 0", threads, mode, n)
		}
		if runErr != nil {
			t.Fatal(runErr)
		}
	}
}

// BenchmarkMoCoStep is the whole MoCo-v2/MoCHi step of a small encoder; its
// allocs/op is what a training step allocates after warm-up.
func BenchmarkMoCoStep(b *testing.B) {
	s := newMoCoStep(b, MoCoConfig{Config: tinyBench(), K: 64, M: 0.99, Mix: hardneg.Config{N: 16, S: 8, SPrime: 4, Tau: 0.1}})
	for range 2 { // warm-up: scratch sized, buffers made
		if err := s.Run(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// newMoCoStep builds c's MoCo step with 8-dimensional keys on one CPU
// thread, freed when tb ends.
func newMoCoStep(tb testing.TB, c MoCoConfig) *MoCoStep {
	tb.Helper()
	c.EmbedDim = 8
	s, err := NewMoCoStep(c, cpu.New(1))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Model.Free)
	return s
}
