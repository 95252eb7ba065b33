package train

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/torchpy"
)

// torchReplay is what scripts/torch_moco.py reports.
type torchReplay struct {
	Steps []struct {
		Step            int
		LR              float64
		Mixing          bool
		Loss            float64 // free replay
		ForcedLoss      float64 `json:"forced_loss"`
		QUpdateErr      float64 `json:"q_update_err"`
		KUpdateErr      float64 `json:"k_update_err"`
		VelocityErr     float64 `json:"velocity_err"`
		BNErr           float64 `json:"bn_err"`
		QueueErr        float64 `json:"queue_err"`
		QueuePtrOK      bool    `json:"queue_ptr_ok"`
		TopNRowsChanged int     `json:"topn_rows_changed"`
		TopNViolation   float64 `json:"topn_violation"`
	}
	Queue    [][]float64
	QueuePtr int `json:"queue_ptr"`
}

// Bounds of TestTrainingMatchesTorchMoCo, for mochi's float32 against
// PyTorch's float64 (measured on the CI-sized run below, 24 steps, both
// cases; the largest value over the steps in brackets):
//
// The forced replay starts every step from mochi's state before it, so a
// step's error is float32 rounding of that step alone:
//   - loss: InfoNCE over 1+K+s+s′ logits of size ≤ 1/τ = 5, each with a
//     relative rounding error of a few 2⁻²⁴ through the network [3e-7];
//   - the change of f_q, f_k and the momentum buffers, relative to the
//     change: 6e-5 typically, up to 9e-3 on a step where a ReLU input lies
//     within float32 rounding of 0 and the two sides pass a different
//     gradient element through it. Such steps are a minority, so the
//     median over the steps of f_q's and the buffers' errors stays at the
//     rounding level [3e-4] and is held to 1e-3: weight decay is 4e-3 of
//     each step's change here, skipping it fails that where the bound on
//     the worst step (5e-2, for the ReLU decisions) cannot see it. f_k's
//     change, (1−m)(θ_q − θ_k), is small against θ_k, so its error is
//     mostly the float32 rounding of θ_k [1e-2 at step 2, 9e-4 later]:
//     held to 5e-2 only;
//   - BatchNorm running statistics [5e-8], queue entries (unit keys) [5e-7];
//   - MoCHi's top-N: where the float64 set differs from mochi's, the
//     swapped similarities are within rounding [2e-8].
//
// The free replay trains on its own from the same start. Its loss matches
// to rounding until the first such ReLU decision changes a gradient, then
// the two runs differ by that kick of size lr·(one gradient element) and
// the kicks add up step by step: in float64 a perturbation of 10⁻¹⁰ of
// every weight stays 10⁻¹⁰ in the loss over 32 steps (the dynamics do not
// amplify), one of 10⁻⁷ jumps to 10⁻⁴ within five steps. Measured |Δloss|:
// mochi ≤ 1.9e-4·step (MoCo-v2) and ≤ 9.1e-4·step (MoCHi); PyTorch's own
// float32 against its float64 ≤ 1.1e-3·step (MoCo-v2, the 32 steps of
// configs/ci.yaml); the final queues' entries 1.7e-2 and 3.6e-2 apart
// after 24 steps. The bound, 5e-3·step for both, leaves room for another
// float32 summation order (other BLAS kernels flip other ReLU decisions),
// so it catches only gross errors; the forced replay pins each step down.
const (
	forcedLossTol   = 5e-6
	forcedUpdateTol = 5e-2
	medianUpdateTol = 1e-3
	bnTol           = 1e-6
	queueTol        = 1e-5
	topNTol         = 1e-5
	freePerStepTol  = 5e-3
)

// TestTrainingMatchesTorchMoCo trains the CI configuration for 24 steps
// (3 epochs of 8: the cosine schedule moves twice, the queue of 8 batches
// turns over three times) with mochi, dumping every step, and replays the
// dump in PyTorch (scripts/torch_moco.py, float64, written from the
// official MoCo code): plain MoCo-v2 and MoCHi mixing from the first step.
// The loss curves must agree step by step, and the queues at the end; each
// step started from mochi's state must give mochi's loss and mochi's next
// state (weights of both encoders, momentum buffers, BatchNorm statistics,
// queue and its pointer).
func TestTrainingMatchesTorchMoCo(t *testing.T) {
	torchpy.Need(t, "torch", "torchvision", "numpy")
	const steps = 24
	for _, tc := range []struct {
		name      string
		s, sPrime int
	}{
		{"MoCo-v2", 0, 0},
		{"MoCHi(64,32,16)", 32, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			run, dump := filepath.Join(dir, "run"), filepath.Join(dir, "dump")
			cfg := ciConfig(t, run)
			cfg.Data.Limit, cfg.Optim.Epochs, cfg.Eval.KNNEvery = 256, 3, 0
			cfg.MoCHi.S, cfg.MoCHi.SPrime, cfg.MoCHi.MixStartEpoch = tc.s, tc.sPrime, 0
			mustPretrain(t, cfg, Options{Progress: io.Discard, DumpSteps: steps, DumpDir: dump})
			var ref torchReplay
			torchpy.Exchange(t, nil, &ref, torchpy.Script("torch_moco.py"), dump)
			var mochi []map[string]any
			for _, m := range readMetrics(t, run, cfg.Optim.Batch) {
				if _, epochLine := m["epoch_loss"]; !epochLine {
					mochi = append(mochi, m)
				}
			}
			if len(ref.Steps) != steps || len(mochi) != steps {
				t.Fatalf("torch replayed %d steps, mochi's metrics hold %d; want %d", len(ref.Steps), len(mochi), steps)
			}

			var table strings.Builder
			fmt.Fprintf(&table, "step   loss (mochi)   |Δ| free   |Δ| forced  f_q step  f_k step  velocity  queue\n")
			var worstFree float64
			var qErrs, vErrs []float64
			for i, r := range ref.Steps {
				m, n := mochi[i], float64(i+1)
				loss, lr := m["loss"].(float64), m["lr"].(float64)
				free, forced := math.Abs(r.Loss-loss), math.Abs(r.ForcedLoss-loss)
				worstFree = max(worstFree, free/n)
				fmt.Fprintf(&table, "%4d  %12.7f   %9.2e  %9.2e  %8.1e  %8.1e  %8.1e  %7.1e\n",
					r.Step, loss, free, forced, r.QUpdateErr, r.KUpdateErr, r.VelocityErr, r.QueueErr)
				fail := func(format string, args ...any) { t.Errorf("step %d: "+format, append([]any{r.Step}, args...)...) }
				if math.Abs(r.LR-lr) > 1e-12*lr {
					fail("lr %g, MoCo's schedule gives %g", lr, r.LR)
				}
				if r.Mixing != m["mixing"].(bool) || r.Mixing != (tc.s+tc.sPrime > 0) {
					fail("mixing %v in mochi, %v in the reference", m["mixing"], r.Mixing)
				}
				if forced > forcedLossTol {
					fail("loss %.9f, the reference from mochi's state %.9f: |Δ| %.2e > %g", loss, r.ForcedLoss, forced, forcedLossTol)
				}
				if free > freePerStepTol*n {
					fail("loss %.9f, the free reference %.9f: |Δ| %.2e > %g·step", loss, r.Loss, free, freePerStepTol)
				}
				for _, e := range []struct {
					what string
					err  float64
				}{{"f_q", r.QUpdateErr}, {"f_k", r.KUpdateErr}, {"the SGD momentum buffers", r.VelocityErr}} {
					if !(e.err <= forcedUpdateTol) {
						fail("the change of %s differs from the reference's by %.2e of itself (> %g)", e.what, e.err, forcedUpdateTol)
					}
				}
				qErrs, vErrs = append(qErrs, r.QUpdateErr), append(vErrs, r.VelocityErr)
				if !(r.BNErr <= bnTol) {
					fail("BatchNorm running statistics differ by %.2e (> %g)", r.BNErr, bnTol)
				}
				if !(r.QueueErr <= queueTol) || !r.QueuePtrOK {
					fail("queue after the step: entries differ by up to %.2e (> %g), pointer equal: %v", r.QueueErr, queueTol, r.QueuePtrOK)
				}
				if r.Mixing && !(r.TopNViolation <= topNTol) {
					fail("mochi's top-%d leaves out a queue entry %.2e more similar than one it took (%d rows differ)", cfg.MoCHi.N, r.TopNViolation, r.TopNRowsChanged)
				}
			}

			for _, e := range []struct {
				what string
				errs []float64
			}{{"f_q", qErrs}, {"the SGD momentum buffers", vErrs}} {
				if m := median(e.errs); !(m <= medianUpdateTol) {
					t.Errorf("the change of %s differs from the reference's by %.2e of itself in the median step (> %g)", e.what, m, medianUpdateTol)
				}
			}

			// the free replay's queue against mochi's at the end of the run
			st, err := readState(filepath.Join(run, "checkpoints", "last.ckpt"))
			if err != nil {
				t.Fatal(err)
			}
			q := st.Queue
			if ref.QueuePtr != q.Ptr || len(ref.Queue) != q.K {
				t.Fatalf("final queue: reference pointer %d and %d entries, mochi's %d and %d", ref.QueuePtr, len(ref.Queue), q.Ptr, q.K)
			}
			var queueDiff float64
			for i, row := range ref.Queue {
				for j, v := range row {
					queueDiff = max(queueDiff, math.Abs(v-float64(q.Keys[i*q.D+j])))
				}
			}
			fmt.Fprintf(&table, "final queue (free replay): max |Δ| %.2e; free loss |Δ|/step ≤ %.2e; median step error f_q %.1e, buffers %.1e",
				queueDiff, worstFree, median(qErrs), median(vErrs))
			t.Logf("mochi (float32) against PyTorch (float64), %d steps:\n%s", steps, table.String())
			if queueDiff > freePerStepTol*steps {
				t.Errorf("final queue: entries differ by up to %.2e from the free reference's (> %g·%d steps)", queueDiff, freePerStepTol, steps)
			}
		})
	}
}

func median(x []float64) float64 {
	s := slices.Sorted(slices.Values(x))
	return s[len(s)/2]
}

// TestDumpRefusesWhatItCannotDo: a dump longer than the run and a dump into
// a directory that holds one are errors before any run file is written.
func TestDumpRefusesWhatItCannotDo(t *testing.T) {
	dir := t.TempDir()
	cfg := ciConfig(t, filepath.Join(dir, "run"))
	cfg.Eval.KNNEvery = 0
	dump := filepath.Join(dir, "dump")
	_, err := Pretrain(context.Background(), cfg, Options{Progress: io.Discard, DumpSteps: 33, DumpDir: dump})
	if err == nil || !strings.Contains(err.Error(), "the run has 32") {
		t.Errorf("a 33-step dump of a 32-step run: error %v, want one naming the run's 32 steps", err)
	}
	if err := os.MkdirAll(dump, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dump, "meta.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Pretrain(context.Background(), cfg, Options{Progress: io.Discard, DumpSteps: 2, DumpDir: dump})
	if err == nil || !strings.Contains(err.Error(), "holds a step dump already") {
		t.Errorf("a dump into a directory holding one: error %v, want a refusal", err)
	}
	// The run directory exists (pretrain locks it first), but holds nothing.
	if entries, err := os.ReadDir(filepath.Join(dir, "run")); err == nil && len(entries) > 0 {
		t.Errorf("a refused dump left %s in the run directory", entries[0].Name())
	}
}
