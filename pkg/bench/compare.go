package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/graph"
)

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

// Comparison is the outcome of CompareBackends.
type Comparison struct {
	LossA, LossB []float64          // per step
	WeightErr    map[string]float64 // ‖w_b − w_a‖/‖w_a‖ per tensor
	TotalErr     float64            // ‖W_b − W_a‖/‖W_a‖ over all parameters
}

// WorstLoss is the largest per-step relative loss difference.
func (c Comparison) WorstLoss() float64 {
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

// CompareBackends trains c.Steps steps of the same network, from the same
// weights and batch, on a and on b, and returns both loss curves and the
// per-tensor relative weight error ‖w_b − w_a‖/‖w_a‖.
func CompareBackends(c Config, a, b device.Backend) (Comparison, error) {
	var cmp Comparison
	var weights [2]map[string][]float32
	for i, be := range []device.Backend{a, b} {
		s, err := NewStep(c, be)
		if err != nil {
			return cmp, err
		}
		losses := make([]float64, c.Steps)
		for k := range losses {
			if err = s.Run(); err == nil {
				losses[k], err = s.Loss()
			}
			if err != nil {
				s.Free()
				return cmp, fmt.Errorf("%s step %d: %w", be.Name(), k, err)
			}
		}
		weights[i] = s.Model.Weights()
		s.Free()
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

// Print writes the loss table and the worst weight errors and
// returns an error when a tolerance is exceeded.
func (cmp Comparison) Print(w io.Writer, c Config, nameA, nameB string) error {
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
	lw := cmp.WorstLoss()
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

// PrintProfile writes the profiled steps' time per kind of kernel and the
// costliest kernels (op and shape), per step, beside the unprofiled step
// time: syncing after every kernel adds the launch latencies a plain step
// hides, so the shares are what to read.
func PrintProfile(w io.Writer, prof *graph.Profile, step time.Duration) error {
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
