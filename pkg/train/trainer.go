package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/data"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/optim"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// Options are the parts of a run that are not in its config.
type Options struct {
	// Backend runs the model; nil means the CPU with one thread per core.
	Backend device.Backend
	// Progress receives the progress bar or log lines; nil means os.Stderr.
	Progress io.Writer
	// Resume is a checkpoint to continue from; "" starts a new run.
	Resume string
	// LogEvery is the step interval of log lines when Progress is not a
	// terminal; 0 means 50.
	LogEvery int
	// StopAfter ends the run, checkpointed, once this many epochs are done
	// (0: run all optim.epochs). The schedule still spans optim.epochs, so a
	// run split this way and resumed equals one run straight through.
	StopAfter int
	// DumpSteps > 0 writes the inputs, random draws, lr and loss of the
	// run's first DumpSteps steps, and the state before and after them, to
	// DumpDir, for a reference implementation to replay (see stepDump).
	DumpSteps int
	DumpDir   string
}

// Summary is what a finished (or interrupted) run reports; it is also
// written to summary.json in the run directory.
type Summary struct {
	Epochs       int      `json:"epochs"`         // epochs completed
	Steps        int      `json:"steps"`          // optimisation steps completed
	FinalLoss    float64  `json:"final_loss"`     // mean loss of the last epoch
	KNNTop1      *float64 `json:"knn_top1"`       // last kNN monitor accuracy
	Seconds      float64  `json:"seconds"`        // wall time of this invocation
	ImagesPerSec float64  `json:"images_per_sec"` // training images per second in this invocation
	Interrupted  bool     `json:"interrupted"`
	Checkpoint   string   `json:"checkpoint"` // the newest checkpoint
}

// ErrInterrupted is returned (wrapped) when the context is cancelled: the
// run saved a checkpoint and can be resumed.
var ErrInterrupted = errors.New("training interrupted")

// trainer is one pretraining run.
type trainer struct {
	cfg    *config.Config
	be     device.Backend
	dir    string
	train  data.Dataset
	test   data.Dataset // nil without the kNN monitor
	loader *data.TwoViewLoader
	spec   MoCoSpec
	sym    *symmetricBatch // nil unless moco.symmetric
	model  *moco
	opt    *optim.SGD
	sched  optim.Schedule
	mixSrc *rand.PCG // mixing plans: i, j, α, β
	bnSrc  *rand.PCG // ShuffleBN permutations
	mixRNG *rand.Rand
	bnRNG  *rand.Rand

	// position: the next step to run is step `step` of epoch `epoch`
	epoch, step, global int
	metrics             *metricsLog
	epochLoss           float64       // sum of this epoch's losses so far
	epochWait           time.Duration // this invocation's wait for data in the epoch
	lastKNN             *float64
	prog                *progress
	stopAfter           int
	pending             *pendingStats // the last step, its statistics still being computed
	dump                *stepDump     // nil unless Options.DumpSteps
}

// Pretrain runs (or resumes) MoCo-v2/MoCHi pretraining as cfg says and
// returns its summary. When ctx is cancelled it saves a checkpoint and
// returns an error wrapping ErrInterrupted with the summary.
func Pretrain(ctx context.Context, cfg *config.Config, opts Options) (*Summary, error) {
	t, err := newTrainer(cfg, opts)
	if err != nil {
		return nil, err
	}
	defer t.model.free()
	sum, err := t.run(ctx)
	if cerr := t.metrics.close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing the metrics log: %w", cerr)
	}
	return sum, err
}

// ResNetConfig maps the model section of a config onto pkg/resnet.
func ResNetConfig(cfg *config.Config, channels int) (resnet.Config, error) {
	depth := map[string]int{"resnet18": 18, "resnet34": 34, "resnet50": 50}[cfg.Model.Backbone]
	stem := resnet.SmallStem
	if cfg.Model.Stem == "imagenet" {
		stem = resnet.ImageNetStem
	}
	rc := resnet.Config{Depth: depth, Stem: stem, Width: cfg.Model.Width, InChannels: channels,
		BNGroups: cfg.Model.BNSplits, EmbedDim: cfg.Model.EmbedDim, Seed: uint64(cfg.Run.Seed)}
	if h := cfg.Model.MLPHidden; h != 0 && h != rc.WithDefaults().FeatureDim() {
		return rc, fmt.Errorf("model.mlp_hidden = %d: the projection head's hidden width is the backbone's feature dimension (%d) in this version; set model.mlp_hidden to 0", h, rc.WithDefaults().FeatureDim())
	}
	return rc, rc.Validate()
}

// AugmentConfig maps the augment section onto the data pipeline's MoCo-v2
// augmentation, normalised with the dataset's own statistics where known.
func AugmentConfig(cfg *config.Config, channels, size int) data.AugmentConfig {
	a := data.MoCoV2Augment(channels, size)
	if mean, std, ok := data.DatasetStats(cfg.Data.Kind); ok && len(mean) == channels {
		a.Mean, a.Std = mean, std
	}
	c := cfg.Augment
	a.ScaleMin, a.ScaleMax = c.CropScaleMin, c.CropScaleMax
	a.Brightness, a.Contrast, a.Saturation, a.Hue, a.JitterProb = c.Brightness, c.Contrast, c.Saturation, c.Hue, c.JitterProb
	a.GrayProb = c.GrayProb
	a.BlurProb, a.BlurSigmaMin, a.BlurSigmaMax = c.BlurProb, c.BlurSigmaMin, c.BlurSigmaMax
	a.FlipProb = c.FlipProb
	return a
}

// OpenSplit opens one split of the configured dataset.
func OpenSplit(cfg *config.Config, split string) (data.Dataset, error) {
	d := cfg.Data
	ds, err := data.Open(data.Spec{Kind: d.Kind, Path: d.Path, Split: split, ImageSize: d.ImageSize, Limit: d.Limit})
	if err != nil {
		return nil, fmt.Errorf("data (data.kind %s, data.path %s, split %s): %w", d.Kind, d.Path, split, err)
	}
	return ds, nil
}

func newTrainer(cfg *config.Config, opts Options) (*trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &trainer{cfg: cfg, be: opts.Backend, dir: cfg.Run.OutputDir, stopAfter: opts.StopAfter}
	if t.be == nil {
		t.be = cpu.New(0)
	}
	var err error
	if t.train, err = OpenSplit(cfg, cfg.Data.TrainSplit); err != nil {
		return nil, err
	}
	if cfg.Eval.KNNEvery > 0 {
		if t.test, err = OpenSplit(cfg, cfg.Data.TestSplit); err != nil {
			return nil, fmt.Errorf("kNN monitor (set eval.knn_every 0 to turn it off): %w", err)
		}
	}
	size := cfg.Data.ImageSize
	if size == 0 {
		size = t.train.Height()
	}
	aug := AugmentConfig(cfg, t.train.Channels(), size)
	if t.loader, err = data.NewTwoViewLoader(t.train, aug, cfg.Optim.Batch, uint64(cfg.Run.Seed), cfg.Data.Workers, cfg.Data.Prefetch); err != nil {
		return nil, err
	}
	rc, err := ResNetConfig(cfg, t.train.Channels())
	if err != nil {
		return nil, err
	}
	// The symmetric loss (MoCo's CIFAR demo: ctr(q1, k2) + ctr(q2, k1)) runs
	// both views as queries in one batch of 2B, [x1; x2] against keys
	// [k2; k1]: with split-BN each group holds one view, as two passes would.
	t.spec = MoCoSpec{Net: rc, B: cfg.KeysPerStep(), C: t.train.Channels(), H: size, W: size,
		K: cfg.MoCo.K, M: cfg.MoCo.M, QueueSeed: uint64(cfg.Run.Seed) + 1,
		Mix: hardneg.Config{N: cfg.MoCHi.N, S: cfg.MoCHi.S, SPrime: cfg.MoCHi.SPrime, Tau: cfg.MoCo.Tau,
			GradThroughQueryMix: cfg.MoCHi.GradThroughHPrime, ClassOracle: cfg.MoCHi.ClassOracle,
			MixStartEpoch: cfg.MoCHi.MixStartEpoch}}
	if cfg.MoCo.Symmetric {
		t.sym = &symmetricBatch{}
	}
	if t.sched, err = schedule(cfg); err != nil {
		return nil, err
	}
	seed := uint64(cfg.Run.Seed)
	t.mixSrc, t.bnSrc = rand.NewPCG(seed, 0x6d6978), rand.NewPCG(seed, 0x73687566)
	t.mixRNG, t.bnRNG = rand.New(t.mixSrc), rand.New(t.bnSrc)

	var st *state
	if opts.Resume != "" {
		if st, err = loadState(opts.Resume, cfg); err != nil {
			return nil, err
		}
		t.epoch, t.step, t.global = st.Progress.Epoch, st.Progress.Step, st.Progress.Global
		t.epochLoss, t.lastKNN = st.Progress.EpochLoss, st.Progress.KNNTop1
	}
	if err := t.build(); err != nil {
		return nil, err
	}
	var offset int64
	if st != nil {
		if err := t.restore(st); err != nil {
			return nil, fmt.Errorf("resuming from %s: %w", opts.Resume, err)
		}
		offset = st.Progress.MetricsOffset
	}
	if t.dump, err = openDump(t, opts); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(t.dir, "checkpoints"), 0o755); err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	if err := writeConfig(filepath.Join(t.dir, "config.yaml"), cfg); err != nil {
		return nil, err
	}
	if t.metrics, err = openMetrics(filepath.Join(t.dir, "metrics.jsonl"), offset); err != nil {
		return nil, err
	}
	w := opts.Progress
	if w == nil {
		w = os.Stderr
	}
	logEvery := opts.LogEvery
	if logEvery <= 0 {
		logEvery = 50
	}
	t.prog = newProgress(w, cfg.Optim.Epochs*t.loader.StepsPerEpoch(), logEvery)
	return t, nil
}

// schedule is the learning-rate schedule of the config, in epochs: MoCo's
// per-epoch cosine or step schedule, behind a linear warm-up if asked.
func schedule(cfg *config.Config) (optim.Schedule, error) {
	o := cfg.Optim
	total := float64(o.Epochs - o.WarmupEpochs)
	var s optim.Schedule = optim.Cosine{Base: cfg.EffectiveLR(), Total: total}
	if o.Schedule == "step" {
		ms := make([]float64, len(o.Milestones))
		for i, m := range o.Milestones {
			ms[i] = float64(m - o.WarmupEpochs)
		}
		step, err := optim.NewMultiStep(cfg.EffectiveLR(), ms, 0.1)
		if err != nil {
			return nil, fmt.Errorf("optim.milestones: %w", err)
		}
		s = step
	}
	if o.WarmupEpochs > 0 {
		s = optim.Warmup{Length: float64(o.WarmupEpochs), Then: s}
	}
	return s, nil
}

// mixingAt reports whether epoch e trains with MoCHi's synthetic negatives.
func (t *trainer) mixingAt(e int) bool { return t.spec.Mix.Mixes(e) }

// build (re)builds the model for the current epoch's mixing setting and the
// optimizer over its parameters, carrying over any existing state.
func (t *trainer) build() error {
	var carry *state
	if t.model != nil {
		carry = t.snapshot()
		t.model.free()
	}
	m, err := newMoCo(t.be, t.spec, t.mixingAt(t.epoch))
	if err != nil {
		return err
	}
	t.model = m
	params, err := m.qNet.OptimParams(m.lossPlan, m.grads)
	if err != nil {
		return err
	}
	o := t.cfg.Optim
	if t.opt, err = optim.NewSGD(t.be, params, optim.SGDConfig{Momentum: o.Momentum, WeightDecay: o.WeightDecay, Nesterov: o.Nesterov}); err != nil {
		return err
	}
	if carry != nil {
		return t.restore(carry)
	}
	return nil
}

// lr is the learning rate of the current step: MoCo's schedule moves once
// per epoch; a warm-up moves every step.
func (t *trainer) lr() float64 {
	e := float64(t.epoch)
	if t.cfg.Optim.WarmupEpochs > 0 {
		e += float64(t.step) / float64(t.loader.StepsPerEpoch())
	}
	return t.sched.LR(e)
}

func (t *trainer) run(ctx context.Context) (*Summary, error) {
	start := time.Now()
	startGlobal := t.global
	steps := t.loader.StepsPerEpoch()
	t.prog.skip(t.global)
	sum := &Summary{}
	finish := func() *Summary {
		sum.Epochs, sum.Steps, sum.KNNTop1 = t.epoch, t.global, t.lastKNN
		sum.Seconds = time.Since(start).Seconds()
		if sum.Seconds > 0 {
			sum.ImagesPerSec = float64((t.global-startGlobal)*t.spec.B) / sum.Seconds
		}
		return sum
	}
	end := t.cfg.Optim.Epochs
	if t.stopAfter > 0 {
		end = min(end, t.stopAfter)
	}
	for t.epoch < end {
		if t.mixingAt(t.epoch) != t.model.mixing {
			if err := t.build(); err != nil {
				return nil, err
			}
			t.prog.info("MoCHi mixing starts", "epoch", t.epoch)
		}
		epochStart := time.Now()
		done, err := t.runEpoch(ctx)
		if err != nil {
			return nil, err
		}
		if !done {
			path, err := t.save("last.ckpt")
			if err != nil {
				return nil, fmt.Errorf("%w; saving the checkpoint failed too: %v", ErrInterrupted, err)
			}
			sum.Interrupted, sum.Checkpoint = true, path
			t.prog.finish()
			return finish(), fmt.Errorf("%w at epoch %d step %d: resume with --resume %s", ErrInterrupted, t.epoch, t.step, path)
		}
		em := EpochMetrics{Epoch: t.epoch, Loss: t.epochLoss / float64(steps), Seconds: time.Since(epochStart).Seconds()}
		em.ImagesSec = float64(steps*t.spec.B) / em.Seconds
		em.DataWait = t.epochWait.Seconds() / em.Seconds
		sum.FinalLoss = em.Loss
		if k := t.cfg.Eval.KNNEvery; k > 0 && ((t.epoch+1)%k == 0 || t.epoch+1 == t.cfg.Optim.Epochs) {
			acc, err := t.knn()
			if err != nil {
				return nil, fmt.Errorf("kNN monitor: %w", err)
			}
			t.lastKNN, em.KNNTop1 = &acc, &acc
		}
		t.prog.epoch(em)
		if err := t.metrics.write(em); err != nil {
			return nil, err
		}
		t.epoch, t.step, t.epochLoss, t.epochWait = t.epoch+1, 0, 0, 0
		path, err := t.save("last.ckpt")
		if err != nil {
			return nil, err
		}
		sum.Checkpoint = path
		if n := t.cfg.Run.CheckpointEvery; n > 0 && t.epoch%n == 0 {
			if _, err := t.save(fmt.Sprintf("epoch-%04d.ckpt", t.epoch)); err != nil {
				return nil, err
			}
		}
	}
	t.prog.finish()
	s := finish()
	if err := writeJSON(filepath.Join(t.dir, "summary.json"), s); err != nil {
		return nil, err
	}
	return s, nil
}

// runEpoch runs the remaining steps of the current epoch. It returns false
// when ctx was cancelled before the epoch ended.
func (t *trainer) runEpoch(ctx context.Context) (done bool, err error) {
	it := t.loader.Epoch(t.epoch)
	defer it.Close()
	defer func() { // the last line too, whatever ends the epoch (a diverged loss: the lines before it)
		if ferr := t.flushStats(); err == nil {
			err = ferr
		}
	}()
	for i := 0; i < t.step; i++ { // resume inside an epoch: the batches are a function of (seed, epoch, position)
		b, ok := it.Next()
		if !ok {
			return false, fmt.Errorf("data loader ended early at step %d of epoch %d", i, t.epoch)
		}
		t.loader.Release(b)
	}
	perm := make([]int, 0, t.spec.B)
	for t.step < it.Steps() {
		select {
		case <-ctx.Done():
			return false, nil
		default:
		}
		stepStart := time.Now()
		b, ok := it.Next()
		dataWait := time.Since(stepStart)
		t.epochWait += dataWait
		if !ok {
			return false, fmt.Errorf("data loader ended early at step %d of epoch %d", t.step, t.epoch)
		}
		lr := t.lr()
		var plan *hardneg.Plan
		if t.model.mixing {
			var err error
			if plan, err = hardneg.NewPlan(t.mixRNG, t.spec.B, t.spec.Mix.N, t.spec.Mix.S, t.spec.Mix.SPrime); err != nil {
				return false, err
			}
		}
		perm = keyPermutation(t.bnRNG, t.spec.B, perm)
		xq, xk, index, labels := b.Query, b.Key, b.Index, b.Label
		if t.sym != nil {
			xq, xk, index, labels = t.sym.views(b)
		}
		loss, err := t.model.step(xq, xk, perm, plan, labels)
		if err != nil {
			return false, err
		}
		if t.sym != nil {
			// the loss is the sum of the two directions, each a mean over B:
			// twice the mean over the 2B rows the graph averages
			loss *= 2
			t.model.scaleGrads(2)
		}
		if !finite(loss) {
			return false, fmt.Errorf("loss is %v at epoch %d step %d: training diverged; the last good checkpoint is %s — lower optim.lr or raise moco.tau and resume from it",
				loss, t.epoch, t.step, filepath.Join(t.dir, "checkpoints", "last.ckpt"))
		}
		t.opt.Step(lr)
		if err := t.model.enqueue(index, labels); err != nil {
			return false, err
		}
		if err := t.be.Sync(); err != nil {
			return false, err
		}
		if err := t.dump.step(t, xq, xk, perm, plan, lr, loss); err != nil {
			return false, err
		}
		t.loader.Release(b)
		elapsed := time.Since(stepStart) // the step itself, statistics excluded
		t.step++
		t.global++
		t.epochLoss += loss
		m := StepMetrics{Epoch: t.epoch, Step: t.global, Loss: loss, LR: lr, Mixing: t.model.mixing,
			ImagesSec: float64(t.spec.B) / elapsed.Seconds(), DataWaitMS: dataWait.Seconds() * 1000}
		if err := t.flushStats(); err != nil {
			return false, err
		}
		if statsDue(t.cfg.Run.StatsEvery, t.global, t.step, it.Steps()) {
			// computed on the host while the next step runs on the device
			in, done := t.model.statsInput(), make(chan *StepStats, 1)
			go func() { done <- in.compute() }()
			t.pending = &pendingStats{m: m, done: done}
			continue
		}
		if err := t.record(m); err != nil {
			return false, err
		}
	}
	return true, nil
}

// pendingStats is a step whose metrics line waits for its statistics.
type pendingStats struct {
	m    StepMetrics
	done chan *StepStats
}

// flushStats waits for the pending step's statistics, if any, and records
// its line: lines stay in step order, and the log is complete whenever a
// step or an epoch ends in a checkpoint.
func (t *trainer) flushStats() error {
	p := t.pending
	if p == nil {
		return nil
	}
	t.pending = nil
	p.m.StepStats = <-p.done
	return t.record(p.m)
}

// record writes a step's metrics line and shows it.
func (t *trainer) record(m StepMetrics) error {
	if err := t.metrics.write(m); err != nil {
		return err
	}
	t.prog.step(m)
	return nil
}

// statsDue reports whether a step computes the similarity and hardness
// statistics (a download of the B×K similarities and a pass over them):
// every run.stats_every global steps, and on the last step of each epoch so
// that every epoch has some; never when every is 0. global counts the steps
// from 1, stepInEpoch from 1 up to the epoch's steps.
func statsDue(every, global, stepInEpoch, steps int) bool {
	return every > 0 && (global%every == 0 || stepInEpoch == steps)
}

// symmetricBatch lays out the symmetric loss's batch: queries [x1; x2] and
// keys [x2; x1], so that row i of the queries meets its positive at row i
// of the keys; the keys [k(x2); k(x1)] are all enqueued.
type symmetricBatch struct {
	q, k          []float32
	index, labels []int
}

func (s *symmetricBatch) views(b *data.Batch) (xq, xk []float32, index, labels []int) {
	s.q = append(append(s.q[:0], b.Query...), b.Key...)
	s.k = append(append(s.k[:0], b.Key...), b.Query...)
	s.index = append(append(s.index[:0], b.Index...), b.Index...)
	s.labels = append(append(s.labels[:0], b.Label...), b.Label...)
	return s.q, s.k, s.index, s.labels
}
