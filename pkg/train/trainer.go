package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/mochi-ssl/mochi/internal/atomicfile"
	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/data"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/dist"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/moco"
	"github.com/mochi-ssl/mochi/pkg/optim"
	"github.com/mochi-ssl/mochi/pkg/resnet"
	"github.com/mochi-ssl/mochi/pkg/runstate"
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
	// Provenance says where each value of the config came from; it is
	// written into config.yaml and names the source of a key a resume
	// refuses. nil reports every value as a default.
	Provenance *config.Provenance
	// AllowChange lists the keys a resume may change (ChangeableOnResume);
	// each change is recorded in config.yaml and metrics.jsonl.
	AllowChange []string
	// Force lets a new run replace the run already in its directory,
	// deleting that run's files first.
	Force bool
	// DumpSteps > 0 writes the inputs, random draws, lr and loss of the
	// run's first DumpSteps steps, and the state before and after them, to
	// DumpDir, for a reference implementation to replay (see stepDump).
	DumpSteps int
	DumpDir   string
	// Comm is the data-parallel job this process is a rank of (dist.Open);
	// nil means a process alone (dist.Single). Every rank trains on its
	// slice of each global batch of optim.batch images; rank 0 alone
	// writes the run directory.
	Comm dist.Comm
	// ShuffleBlocks > 1 keeps ShuffleBN's permutation inside each of that
	// many consecutive slices of the batch, as a run on that many ranks
	// with model.shuffle_bn split does (each rank shuffles its own slice):
	// one process then trains as those ranks do. 0 or 1: the whole batch;
	// on P ranks with split it is P, with ranks it must stay 0 or 1.
	ShuffleBlocks int
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
	// AlreadyFinished is set when a resume found the run finished: nothing
	// was trained or written, and the other fields are the run's own.
	AlreadyFinished bool `json:"-"`
}

// ErrInterrupted is returned (wrapped) when the context is cancelled: the
// run saved a checkpoint and can be resumed.
var ErrInterrupted = errors.New("training interrupted")

// trainer is one pretraining run.
type trainer struct {
	cfg    *config.Config
	prov   *config.Provenance
	be     device.Backend
	dir    string
	train  data.Dataset
	test   data.Dataset // nil without the kNN monitor
	loader *data.TwoViewLoader
	spec   moco.Spec
	sym    *symmetricBatch // nil unless moco.symmetric
	model  *moco.Model
	sched  optim.Schedule
	mixSrc *rand.PCG // mixing draws: i, j, α, β
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
	pending             *pendingStats           // the last step, its statistics still being computed
	dataSHA256          string                  // the training images' fingerprint
	skipped             []error                 // the corrupt images the last epoch's loader stepped over
	changes             []runstate.ConfigChange // keys changed on resume since the run began
	lastCkpt            string                  // the newest checkpoint of the run, "" before the first
	dump                *stepDump               // nil unless Options.DumpSteps

	comm          dist.Comm
	lead          bool // rank 0: the rank that writes
	acrossRanks   bool // ShuffleBN shuffles the key batch of every rank (model.shuffle_bn ranks)
	shuffleBlocks int  // otherwise it shuffles within this many slices of the batch
	ranks         rankScratch
	meter         *meteredComm // t.comm on several processes; nil on one
}

// Pretrain runs (or resumes) MoCo-v2/MoCHi pretraining as cfg says and
// returns its summary. When ctx is cancelled it saves a checkpoint and
// returns an error wrapping ErrInterrupted with the summary.
//
// The run directory (run.output_dir) is locked for the run: a second
// process on it fails at once. A new run refuses a directory that holds a
// run unless opts.Force; a resume refuses one that holds another run. A
// resume of a finished run changes nothing and reports it.
func Pretrain(ctx context.Context, cfg *config.Config, opts Options) (*Summary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Comm == nil {
		opts.Comm = dist.Single{}
	}
	if err := checkRanks(cfg, opts); err != nil {
		return nil, err
	}
	// before anything is read or written: every rank must train the same run
	if err := dist.CheckConfig(opts.Comm, configBytes(cfg, nil)); err != nil {
		return nil, err
	}
	lead := opts.Comm.Rank() == 0
	if len(opts.AllowChange) > 0 && opts.Resume == "" {
		return nil, fmt.Errorf("--allow-change applies to a resumed run: add --resume with the checkpoint to continue")
	}
	for _, k := range opts.AllowChange {
		if cfg.Value(k) == nil {
			return nil, fmt.Errorf("--allow-change %s: no such config key (`mochi config --reference` lists them)", k)
		}
		if !ChangeableOnResume(k) && !resumeFree[k] {
			return nil, fmt.Errorf("--allow-change %s: a resumed run cannot change it (it changes the model or the data); the keys that may change are %s", k, AllowableKeys)
		}
	}
	dir := cfg.Run.OutputDir
	if lead {
		lock, err := lockRunDir(dir)
		if err != nil {
			return nil, err
		}
		defer lock.unlock()
	}
	var st *runstate.State
	var err error
	var replace *foundRun // the run --force replaces
	var changes []runstate.ConfigChange
	if opts.Resume != "" {
		if st, err = readState(opts.Resume); err != nil {
			return nil, err
		}
		if st.Progress.Epoch >= cfg.Optim.Epochs {
			return finishedSummary(opts.Resume, st), nil
		}
		if changes, err = resumeChanges(st, cfg, opts.Provenance, opts.AllowChange); err != nil {
			return nil, fmt.Errorf("resuming %s: %w", opts.Resume, err)
		}
		if run := findRun(dir); lead && run != nil && !sameDir(checkpointRunDir(opts.Resume), dir) {
			if !opts.Force {
				return nil, fmt.Errorf("%s, not the run of %s: nothing was changed; resume into that run's directory or an empty one (--output-dir), or pass --force to replace the run here, deleting its files",
					run, opts.Resume)
			}
			replace = run
		}
	} else if run := findRun(dir); lead && run != nil {
		if !opts.Force {
			return nil, run.refuse()
		}
		replace = run
	}
	t, err := newTrainer(cfg, opts, st, changes, replace)
	if err != nil {
		return nil, err
	}
	defer func() { t.model.Free() }() // the model of the end: build replaces it when mixing starts
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
	ds, err := data.Open(data.Spec{Kind: d.Kind, Path: d.Path, Split: split, ImageSize: d.ImageSize, Limit: d.Limit, SkipCorrupt: d.SkipCorrupt})
	if err != nil {
		return nil, fmt.Errorf("data (data.kind %s, data.path %s, split %s): %w", d.Kind, d.Path, split, err)
	}
	return ds, nil
}

// newTrainer sets up the run of cfg in its (locked, checked) directory,
// from the state st of a checkpoint when resuming, with the config changes
// the resume allowed. Once everything is checked and built, before it
// writes, it deletes the run it replaces (--force; nil for none) and the
// temporary files a killed run left: a run that fails to start destroys
// nothing.
func newTrainer(cfg *config.Config, opts Options, st *runstate.State, changes []runstate.ConfigChange, replace *foundRun) (*trainer, error) {
	t := &trainer{cfg: cfg, prov: opts.Provenance, be: opts.Backend, dir: cfg.Run.OutputDir, stopAfter: opts.StopAfter,
		comm: opts.Comm, lead: opts.Comm.Rank() == 0, shuffleBlocks: max(opts.ShuffleBlocks, opts.Comm.Size(), 1)}
	t.acrossRanks = t.comm.Size() > 1 && cfg.Model.ShuffleBN == "ranks"
	if t.comm.Size() > 1 {
		t.comm, t.meter = meter(t.comm)
	}
	if t.be == nil {
		t.be = cpu.New(0)
	}
	var err error
	if t.train, err = OpenSplit(cfg, cfg.Data.TrainSplit); err != nil {
		return nil, err
	}
	t.dataSHA256 = dataFingerprint(t.train)
	if st != nil && st.DataSHA256 != "" && st.DataSHA256 != t.dataSHA256 {
		return nil, fmt.Errorf("resuming %s: data.path %s holds other training images than the run's (content SHA-256 %.12s…, the run's %.12s…): point data.path at the run's dataset (a copy anywhere will do)",
			opts.Resume, cfg.Data.Path, t.dataSHA256, st.DataSHA256)
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
	if p := t.comm.Size(); p == 1 {
		t.loader, err = data.NewTwoViewLoader(t.train, aug, cfg.Optim.Batch, uint64(cfg.Run.Seed), cfg.Data.Workers, cfg.Data.Prefetch)
	} else {
		var s *data.DistributedSampler
		if s, err = data.NewDistributedSampler(t.train.Len(), cfg.Optim.Batch, t.comm.Rank(), p); err == nil {
			t.loader, err = data.NewDistributedTwoViewLoader(t.train, aug, s, uint64(cfg.Run.Seed), cfg.Data.Workers, cfg.Data.Prefetch)
		}
	}
	if err != nil {
		return nil, err
	}
	rc, err := ResNetConfig(cfg, t.train.Channels())
	if err != nil {
		return nil, err
	}
	// The symmetric loss (MoCo's CIFAR demo: ctr(q1, k2) + ctr(q2, k1)) runs
	// both views as queries in one batch of 2B, [x1; x2] against keys
	// [k2; k1]: with split-BN each group holds one view, as two passes would.
	t.spec = moco.Spec{Net: rc, B: cfg.KeysPerStep(), C: t.train.Channels(), H: size, W: size,
		K: cfg.MoCo.K, M: cfg.MoCo.M, QueueSeed: uint64(cfg.Run.Seed) + 1,
		Mix: hardneg.Config{N: cfg.MoCHi.N, S: cfg.MoCHi.S, SPrime: cfg.MoCHi.SPrime, Tau: cfg.MoCo.Tau,
			GradThroughHPrime: cfg.MoCHi.GradThroughHPrime, ClassOracle: cfg.MoCHi.ClassOracle,
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

	if st != nil {
		t.epoch, t.step, t.global = st.Progress.Epoch, st.Progress.Step, st.Progress.Global
		t.epochLoss, t.lastKNN = st.Progress.EpochLoss, st.Progress.KNNTop1
		t.changes = append(append([]runstate.ConfigChange(nil), st.Progress.Changes...), changes...)
		t.lastCkpt = opts.Resume
	}
	if err := t.build(); err != nil {
		return nil, err
	}
	offset := int64(-1) // a new log
	if st != nil {
		if err := t.restore(st); err != nil {
			return nil, fmt.Errorf("resuming from %s: %w", opts.Resume, err)
		}
		offset = st.Progress.MetricsOffset
	}
	if t.dump, err = openDump(t, opts); err != nil {
		return nil, err
	}
	if t.lead {
		if err := t.openRunDir(st, opts.Resume, changes, replace, offset); err != nil {
			return nil, err
		}
	}
	w := opts.Progress
	if w == nil {
		w = os.Stderr
	}
	if !t.lead {
		w = io.Discard
	}
	logEvery := opts.LogEvery
	if logEvery <= 0 {
		logEvery = 50
	}
	t.prog = newProgress(w, cfg.Optim.Epochs*t.loader.StepsPerEpoch(), logEvery)
	return t, nil
}

// openRunDir prepares the run directory for writing (rank 0 alone): it
// deletes the run that --force replaces (nil: none) and the temporary files
// of a killed run, opens the metrics log at offset (< 0: a new log) and
// writes config.yaml.
func (t *trainer) openRunDir(st *runstate.State, from string, changes []runstate.ConfigChange, replace *foundRun, offset int64) error {
	if replace != nil {
		if err := replace.clear(); err != nil {
			return err
		}
	}
	if err := removeStaleTemps(t.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(t.dir, ckptDir), 0o755); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	var continued bool
	var err error
	if t.metrics, continued, err = openMetrics(filepath.Join(t.dir, metricsName), offset); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(t.dir, configName), t.configYAML()); err != nil {
		t.metrics.close()
		return err
	}
	if st != nil && (!continued || len(changes) > 0) {
		// A log begun here says which run it continues; a change says
		// where it took effect.
		r := &ResumeRecord{From: from, Epoch: t.epoch, InEpoch: t.step, Step: t.global, Changes: changes}
		if err := t.metrics.write(kindResume, r); err != nil {
			return err
		}
	}
	return nil
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
	var carry *runstate.State
	if t.model != nil {
		carry = t.snapshot()
		t.model.Free()
	}
	o := t.cfg.Optim
	m, err := moco.New(t.be, t.rankSpec(), t.mixingAt(t.epoch), optim.SGDConfig{Momentum: o.Momentum, WeightDecay: o.WeightDecay, Nesterov: o.Nesterov})
	if err != nil {
		return err
	}
	t.model = m
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
		if t.mixingAt(t.epoch) != t.model.Mixing {
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
		if !done && t.comm.Size() > 1 {
			// the ranks stop at different steps: no collective is safe, and
			// the running statistics could not be averaged
			t.prog.finish()
			sum.Interrupted, sum.Checkpoint = true, t.lastCkpt
			return finish(), fmt.Errorf("%w at epoch %d step %d: a run on several processes resumes from its last epoch checkpoint (%s)", ErrInterrupted, t.epoch, t.step, resumeHint(t.lastCkpt))
		}
		if !done {
			path, err := t.save("")
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
		em.Skipped, em.FirstSkipped = data.SkipSummary(t.skipped)
		sum.FinalLoss = em.Loss
		// the running statistics of the whole global batch, for the kNN
		// monitor and the checkpoint
		if err := t.averageRunningStats(); err != nil {
			return nil, err
		}
		var knnErr error // reported once the epoch's checkpoint is written
		if k := t.cfg.Eval.KNNEvery; k > 0 && ((t.epoch+1)%k == 0 || t.epoch+1 == t.cfg.Optim.Epochs) {
			if t.lead { // the other ranks wait at the barrier below
				if acc, err := t.knn(); err != nil {
					knnErr = err
				} else {
					t.lastKNN, em.KNNTop1 = &acc, &acc
				}
				em.KNNSkipped, em.KNNFirstSkipped = data.SkipSummary(append(data.EvalSkipped(t.train), data.EvalSkipped(t.test)...))
			}
			if err := t.comm.Barrier(); err != nil {
				return nil, err
			}
		}
		t.prog.epoch(em)
		if err := t.metrics.write(kindEpoch, &em); err != nil {
			return nil, err
		}
		if em.KNNTop1 != nil {
			if err := t.metrics.write(kindEval, &EvalMetrics{Epoch: t.epoch, Step: t.global, KNNTop1: *em.KNNTop1, Skipped: em.KNNSkipped, FirstSkipped: em.KNNFirstSkipped}); err != nil {
				return nil, err
			}
		}
		knnEpoch := t.epoch
		epochFile := ""
		if n := t.cfg.Run.CheckpointEvery; n > 0 && (t.epoch+1)%n == 0 {
			epochFile = epochName(t.epoch)
		}
		t.epoch, t.step, t.epochLoss, t.epochWait = t.epoch+1, 0, 0, 0
		if t.lead {
			path, err := t.save(epochFile)
			if err != nil {
				return nil, err
			}
			sum.Checkpoint = path
		}
		if knnErr != nil {
			return nil, fmt.Errorf("kNN monitor after epoch %d: %w (the epoch is saved in %s: resume with --resume %s once this is fixed, or set eval.knn_every 0)", knnEpoch, knnErr, sum.Checkpoint, sum.Checkpoint)
		}
	}
	t.prog.finish()
	s := finish()
	if t.lead {
		if err := writeJSON(filepath.Join(t.dir, summaryName), s); err != nil {
			return nil, err
		}
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
			return false, fmt.Errorf("data loader ended early at step %d of epoch %d: %w", i, t.epoch, it.Err())
		}
		t.loader.Release(b)
	}
	perm := make([]int, 0, t.spec.B)
	var mix *hardneg.MixDraw // the steps' mixing draws, redrawn in place
	for t.step < it.Steps() {
		select {
		case <-ctx.Done():
			return false, nil
		default:
		}
		stepStart := time.Now()
		if t.meter != nil {
			t.meter.reset()
		}
		b, ok := it.Next()
		dataWait := time.Since(stepStart)
		t.epochWait += dataWait
		if !ok {
			return false, fmt.Errorf("data loader ended early at step %d of epoch %d: %w", t.step, t.epoch, it.Err())
		}
		lr := t.lr()
		var draw *hardneg.MixDraw
		if t.model.Mixing {
			if mix, err = hardneg.NextMixDraw(mix, t.mixRNG, t.spec.B, t.spec.Mix.N, t.spec.Mix.S, t.spec.Mix.SPrime); err != nil {
				return false, err
			}
			draw = mix
		}
		perm = moco.Shuffle(t.bnRNG, t.spec.B, perm)
		if draw != nil && t.comm.Size() > 1 {
			lo, hi := t.rankRows()
			draw = draw.Rows(lo, hi)
		}
		xq, xk, index, labels := b.Query, b.Key, b.Index, b.Label
		if t.sym != nil {
			xq, xk, index, labels = t.sym.views(b)
		}
		var loss float64
		var err error
		if t.acrossRanks {
			loss, err = t.ranks.stepAcross(t.comm, t.model, xq, xk, perm, draw, labels)
		} else {
			keyPerm := perm
			if t.shuffleBlocks > 1 {
				keyPerm = t.ranks.keyPerm(perm, t.shuffleBlocks, t.comm)
			}
			loss, err = t.model.Step(xq, xk, keyPerm, draw, labels)
		}
		if err != nil {
			return false, err
		}
		if t.comm.Size() > 1 || onDevice(t.comm) {
			if loss, err = t.ranks.reduce(t.comm, t.model, loss); err != nil {
				return false, err
			}
		}
		if t.sym != nil {
			// the loss is the sum of the two directions, each a mean over B:
			// twice the mean over the 2B rows the graph averages
			loss *= 2
			t.model.ScaleGrads(2)
		}
		if !finite(loss) {
			return false, t.diverged(loss)
		}
		t.model.Opt.Step(lr)
		if err := t.ranks.enqueue(t.comm, t.model, index, labels); err != nil {
			return false, err
		}
		if err := t.be.Sync(); err != nil {
			return false, err
		}
		if err := t.dump.step(t, xq, xk, perm, draw, lr, loss); err != nil {
			return false, err
		}
		t.loader.Release(b)
		elapsed := time.Since(stepStart) // the step itself, statistics excluded
		t.step++
		t.global++
		t.epochLoss += loss
		m := StepMetrics{Epoch: t.epoch, Step: t.global, Loss: loss, LR: lr, Mixing: t.model.Mixing,
			ImagesSec: float64(t.spec.B) / elapsed.Seconds(), DataWaitMS: dataWait.Seconds() * 1000}
		if t.meter != nil {
			m.CommMS, m.CommBytes = t.meter.took.Seconds()*1000, t.meter.bytes
		}
		if err := t.flushStats(); err != nil {
			return false, err
		}
		if statsDue(t.cfg.Run.StatsEvery, t.global, t.step, it.Steps()) {
			// computed on the host while the next step runs on the device
			logits, done := t.model.Logits(), make(chan *StepStats, 1)
			go func() { done <- stepStats(logits) }()
			t.pending = &pendingStats{m: m, done: done}
			continue
		}
		if err := t.record(m); err != nil {
			return false, err
		}
	}
	it.Close() // the workers are done: the list of skipped images is complete
	t.skipped = it.Skipped()
	return true, nil
}

// diverged is the error of a loss that is not finite: it names the last
// good checkpoint and how to go on from it, or says that none exists.
func (t *trainer) diverged(loss float64) error {
	msg := fmt.Sprintf("loss is %v at epoch %d step %d: training diverged", loss, t.epoch, t.step)
	if t.lastCkpt == "" {
		return fmt.Errorf("%s before the run wrote any checkpoint (none exists): start it again with a lower optim.lr or a higher moco.tau, with --force to replace this run directory", msg)
	}
	return fmt.Errorf("%s; the last good checkpoint is %s: resume from it with a lower optim.lr or a higher moco.tau, e.g. --resume %s --lr <lower> --allow-change optim.lr",
		msg, t.lastCkpt, t.lastCkpt)
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
	if err := t.metrics.write(kindStep, &m); err != nil {
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

// finite reports whether x is neither NaN nor ±Inf.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

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
