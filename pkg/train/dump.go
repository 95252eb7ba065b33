package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/runstate"
)

// stepDump writes what an independent implementation needs to replay the
// first steps of a run and hold its training against mochi's
// (scripts/torch_moco.py does it in PyTorch):
//
//	meta.json          the hyper-parameters of the model, loss and optimizer
//	state-0000.npz     the state before the first step: f_q and f_k weights
//	                   (encoder_q/…, encoder_k/…), their BatchNorm running
//	                   statistics (bn_q/…, bn_k/…), the SGD momentum buffers
//	                   (optim/…) and the queue (queue K×D, queue_ptr)
//	steps.jsonl        per step: step (from 1), epoch, lr, loss, mixing
//	step-NNNN.npz      step NNNN's inputs: both views x_q and x_k (B×C×H×W),
//	                   the ShuffleBN permutation perm (key i is computed in
//	                   row perm[i]) and, when mixing, the draws (mix_i,
//	                   mix_j, alpha: B×s; mix_jq, beta: B×s′) and the
//	                   hardest entries the loss took, topn (B×N queue indices)
//	state-NNNN.npz     the state after step NNNN
//
// The state after every step lets the reference also start each step from
// mochi's state, where float32 rounding cannot accumulate (3 model sizes
// per step: weights of both encoders and the momentum buffers).
type stepDump struct {
	dir   string
	steps int // steps to dump
	log   *os.File
}

// openDump starts the dump a run's Options ask for (nil when they ask for
// none) and writes the state before the first step.
func openDump(t *trainer, opts Options) (*stepDump, error) {
	if opts.DumpSteps <= 0 {
		return nil, nil
	}
	total := t.cfg.Optim.Epochs * t.loader.StepsPerEpoch()
	switch {
	case opts.DumpDir == "":
		return nil, errors.New("train: a step dump needs a directory")
	case opts.Resume != "":
		return nil, errors.New("train: a step dump starts from a new run's initial weights; drop --resume (or the dump)")
	case opts.DumpSteps > total:
		return nil, fmt.Errorf("train: dumping %d steps but the run has %d (%d epochs of %d); lower the dump's steps or raise optim.epochs",
			opts.DumpSteps, total, t.cfg.Optim.Epochs, t.loader.StepsPerEpoch())
	}
	meta := filepath.Join(opts.DumpDir, "meta.json")
	if _, err := os.Stat(meta); err == nil {
		return nil, fmt.Errorf("train: %s holds a step dump already; remove it or choose another directory", opts.DumpDir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(opts.DumpDir, 0o755); err != nil {
		return nil, fmt.Errorf("step dump: %w", err)
	}
	d := &stepDump{dir: opts.DumpDir, steps: opts.DumpSteps}
	if err := d.writeState(0, t); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(dumpMeta(t, opts.DumpSteps), "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(meta, append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	if d.log, err = os.Create(filepath.Join(d.dir, "steps.jsonl")); err != nil {
		return nil, err
	}
	return d, nil
}

// dumpMeta is meta.json: what the reference needs to build the same model
// and optimizer; the learning rate it derives on its own from the schedule.
func dumpMeta(t *trainer, steps int) map[string]any {
	c, s := t.cfg, t.spec
	return map[string]any{
		"steps": steps, "steps_per_epoch": t.loader.StepsPerEpoch(),
		"batch": s.B, "image_shape": []int{s.C, s.H, s.W},
		"model": map[string]any{"depth": s.Net.Depth, "stem": s.Net.Stem.String(), "width": s.Net.Width,
			"in_channels": s.C, "embed_dim": s.Net.EmbedDim, "bn_splits": c.Model.BNSplits},
		"moco": map[string]any{"k": s.K, "m": s.M, "tau": s.Mix.Tau, "symmetric": c.MoCo.Symmetric},
		"mochi": map[string]any{"n": s.Mix.N, "s": s.Mix.S, "s_prime": s.Mix.SPrime, "mix_start_epoch": s.Mix.MixStartEpoch,
			"grad_through_hprime": s.Mix.GradThroughHPrime, "class_oracle": s.Mix.ClassOracle},
		"optim": map[string]any{"lr": c.Optim.LR, "batch": c.Optim.Batch, "momentum": c.Optim.Momentum,
			"weight_decay": c.Optim.WeightDecay, "nesterov": c.Optim.Nesterov, "schedule": c.Optim.Schedule,
			"milestones": c.Optim.Milestones, "warmup_epochs": c.Optim.WarmupEpochs, "epochs": c.Optim.Epochs},
	}
}

// writeState writes the weights, running statistics, momentum buffers and
// queue after step n (0: before the first).
func (d *stepDump) writeState(n int, t *trainer) error {
	name := fmt.Sprintf("state-%04d.npz", n)
	w, err := createNPZ(filepath.Join(d.dir, name))
	if err != nil {
		return fmt.Errorf("step dump: %w", err)
	}
	m := t.model
	shapes := m.EncoderQ.Shapes()
	put := func(prefix string, values map[string][]float32, shaped bool) error {
		for _, n := range slices.Sorted(maps.Keys(values)) {
			shape := []int{len(values[n])}
			if shaped {
				shape = shapes[n]
			}
			if err := w.add(prefix+n, shape, values[n]); err != nil {
				return err
			}
		}
		return nil
	}
	q := m.Queue.Snapshot()
	err = errors.Join(put(runstate.PrefixQ, m.EncoderQ.Weights(), true), put(runstate.PrefixK, m.EncoderK.Weights(), true),
		put(runstate.PrefixQStats, m.EncoderQ.RunningStats(), false), put(runstate.PrefixKStats, m.EncoderK.RunningStats(), false),
		put(runstate.PrefixVelocity, m.Opt.Velocity(), true),
		w.add("queue", []int{q.K, q.D}, q.Keys), w.add("queue_ptr", nil, []int32{int32(q.Ptr)}))
	if err = errors.Join(err, w.close()); err != nil {
		return fmt.Errorf("step dump %s: %w", name, err)
	}
	return nil
}

// step records the step just taken (its optimizer update and enqueue
// done, its batch not yet released): inputs, draws, lr, loss and the state
// after it. Nothing happens on a nil dump or once the dump is complete.
func (d *stepDump) step(t *trainer, xq, xk []float32, perm []int, draw *hardneg.MixDraw, lr, loss float64) error {
	n := t.global + 1 // this step, counted from 1
	if d == nil || n > d.steps {
		return nil
	}
	s := t.spec
	w, err := createNPZ(filepath.Join(d.dir, fmt.Sprintf("step-%04d.npz", n)))
	if err != nil {
		return fmt.Errorf("step dump: %w", err)
	}
	p := make([]int32, len(perm))
	for i, v := range perm {
		p[i] = int32(v)
	}
	img := []int{s.B, s.C, s.H, s.W}
	err = errors.Join(w.add("x_q", img, xq), w.add("x_k", img, xk), w.add("perm", []int{s.B}, p))
	if draw != nil {
		topN := t.model.TopN()
		err = errors.Join(err,
			w.add("mix_i", []int{s.B, draw.S}, draw.I), w.add("mix_j", []int{s.B, draw.S}, draw.J),
			w.add("alpha", []int{s.B, draw.S}, draw.Alpha),
			w.add("mix_jq", []int{s.B, draw.SPrime}, draw.JQ), w.add("beta", []int{s.B, draw.SPrime}, draw.Beta),
			w.add("topn", []int{s.B, s.Mix.N}, topN))
	}
	if err = errors.Join(err, w.close()); err != nil {
		return fmt.Errorf("step dump step %d: %w", n, err)
	}
	line, err := json.Marshal(map[string]any{"step": n, "epoch": t.epoch, "lr": lr, "loss": loss, "mixing": draw != nil})
	if err != nil {
		return err
	}
	if _, err := d.log.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("step dump: %w", err)
	}
	if n == d.steps {
		if err := d.log.Close(); err != nil {
			return fmt.Errorf("step dump: %w", err)
		}
	}
	return d.writeState(n, t)
}
