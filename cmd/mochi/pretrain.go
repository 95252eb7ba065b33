package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/data"
	"github.com/mochi-ssl/mochi/pkg/dist"
	"github.com/mochi-ssl/mochi/pkg/dist/nccl"
	"github.com/mochi-ssl/mochi/pkg/train"
)

// openDataset opens a dataset split; tests replace it to plan runs on
// synthetic datasets of any size.
var openDataset = data.Open

func newPretrainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pretrain",
		Short: "MoCo-v2 / MoCHi pretraining of an encoder",
		Long: `Pretrain a ResNet encoder with MoCo-v2, mixing hard negatives with MoCHi(N, s, s′)
from mochi.mix_start_epoch on (s = s′ = 0 is plain MoCo-v2).

--dry-run loads and validates the config, opens the dataset and prints the plan
(images, steps per epoch, queue, mixing, learning rate, augmentation) without
training.

The run directory (run.output_dir) is locked while a run uses it: a second
process on it fails at once. A new run never replaces a run already there: it
stops, naming the run found; --resume DIR/checkpoints/last.ckpt continues that
run, another --output-dir starts elsewhere, and --force replaces it (deleting
its files). A resume takes the config the run started with: a key that differs
(in the file, a MOCHI_* variable or a flag) is refused with its source, unless
it changes neither the model nor the data and --allow-change names it; the
change is recorded in config.yaml and metrics.jsonl.

Ctrl-C (SIGINT) or SIGTERM writes checkpoints/last.ckpt at the current step
and exits with status 130 or 143.`,
		Example: `  mochi pretrain --config configs/fashion-mnist.yaml --dry-run
  mochi pretrain --config configs/fashion-mnist.yaml --epochs 1 --s 0 --s-prime 0`,
		Args: cobra.NoArgs,
		RunE: runPretrain,
	}
	addConfigFlags(cmd)
	cmd.Flags().Bool("dry-run", false, "validate the config, open the dataset and print the plan; train nothing")
	cmd.Flags().String("resume", "", "continue the run from this checkpoint (e.g. runs/x/checkpoints/last.ckpt) with the config it started with")
	cmd.Flags().Int("stop-after-epochs", 0, "stop (checkpointed) once this many epochs are done; --resume continues exactly as if never stopped")
	cmd.Flags().StringSlice("allow-change", nil, "with --resume: let KEY differ from the checkpoint's config from here on, recorded in config.yaml and metrics.jsonl (repeatable; "+train.AllowableKeys+")")
	cmd.Flags().Bool("force", false, "replace the run already in the output directory, deleting its files first")
	cmd.Flags().Int("dump-steps", 0, "debug: write the first n steps' inputs, random draws, lr and loss, and the state before the first step and after each, to --dump-dir for scripts/torch_moco.py to replay")
	cmd.Flags().String("dump-dir", "", "directory of the --dump-steps dump (default <run.output_dir>/dump); must not hold a dump already")
	return cmd
}

func runPretrain(cmd *cobra.Command, _ []string) error {
	cfg, prov, err := checked(loadConfig(cmd))
	if err != nil {
		return err
	}
	if err := cfg.CheckData(); err != nil {
		return err
	}
	if !hasBackend(cfg.Run.Device) {
		return fmt.Errorf("run.device = %s (from %s): this binary has the backends %s; pass --device cpu, or build the GPU binary bin/mochi-gpu with scripts/build-gpu.sh (or Dockerfile.cuda)",
			cfg.Run.Device, prov.Of("run.device"), strings.Join(backends, ", "))
	}
	p, err := makePlan(cfg)
	if err != nil {
		return err
	}
	if dry, _ := cmd.Flags().GetBool("dry-run"); dry {
		if cfg.Run.TF32 {
			// the notes a run prints about run.tf32 on this device
			be, err := openDevice(cfg.Run.Device, true, cfg.CPU.Conv, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			closeBackend(be)
		}
		if err := p.write(cmd.OutOrStdout(), cfg, prov); err != nil {
			return err
		}
		return writeLoaderPlan(cmd.OutOrStdout(), cfg, p)
	}
	// alone: dist.Single; under mpirun: this process's rank of the job
	comm, err := dist.Open(dist.Options{})
	if err != nil {
		return err
	}
	if comm, err = pretrain(cmd, cfg, prov, comm); err != nil {
		if comm.Size() > 1 { // exit non-zero without Close: mpirun ends the other ranks
			return fmt.Errorf("rank %d of %d: %w", comm.Rank(), comm.Size(), err)
		}
		return err
	}
	return comm.Close()
}

// pretrain runs the pretraining of cfg as one rank of comm's job; rank 0
// alone writes the run directory and prints the summary. It returns the
// Comm the job used, comm itself or comm with NCCL's device collectives
// on the GPU (nccl.Open), for the caller to close.
func pretrain(cmd *cobra.Command, cfg *config.Config, prov *config.Provenance, comm dist.Comm) (dist.Comm, error) {
	be, err := openDevice(cfg.Run.Device, cfg.Run.TF32, cfg.CPU.Conv, cmd.ErrOrStderr())
	if err != nil {
		return comm, err
	}
	// under mpirun with the GPU, the gradients and keys move by NCCL
	withNCCL, err := nccl.Open(comm, be, dist.Options{}, cmd.ErrOrStderr())
	if err != nil {
		return comm, err
	}
	comm = withNCCL
	resume, _ := cmd.Flags().GetString("resume")
	stopAfter, _ := cmd.Flags().GetInt("stop-after-epochs")
	allow, _ := cmd.Flags().GetStringSlice("allow-change")
	force, _ := cmd.Flags().GetBool("force")
	dumpSteps, _ := cmd.Flags().GetInt("dump-steps")
	dumpDir, _ := cmd.Flags().GetString("dump-dir")
	if dumpDir == "" {
		dumpDir = filepath.Join(cfg.Run.OutputDir, "dump")
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	signals, caught := make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	go func() {
		select {
		case s := <-signals:
			caught <- s
			cancel()
		case <-ctx.Done():
		}
	}()
	sum, err := train.Pretrain(ctx, cfg, train.Options{Backend: be, Progress: cmd.ErrOrStderr(), Resume: resume, StopAfter: stopAfter,
		Provenance: prov, AllowChange: allow, Force: force, DumpSteps: dumpSteps, DumpDir: dumpDir, Comm: comm})
	if err != nil {
		select {
		case s := <-caught: // the checkpoint is written: exit as shells expect of a signal
			return comm, &exitError{err: err, code: 128 + int(s.(syscall.Signal))}
		default:
			return comm, err
		}
	}
	if comm.Rank() != 0 {
		return comm, nil
	}
	if sum.AlreadyFinished {
		fmt.Fprintf(cmd.OutOrStdout(), "the run of %s is already finished (%d epochs, %d steps): nothing to do, nothing changed; raise optim.epochs to train it further\n",
			resume, sum.Epochs, sum.Steps)
		return comm, nil
	}
	knn := "off"
	if sum.KNNTop1 != nil {
		knn = fmt.Sprintf("%.2f%%", 100**sum.KNNTop1)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "pretrained %d epochs (%d steps) in %.0fs, %.0f images/s: final loss %.4f, kNN top-1 %s\ncheckpoint: %s\n",
		sum.Epochs, sum.Steps, sum.Seconds, sum.ImagesPerSec, sum.FinalLoss, knn, sum.Checkpoint)
	return comm, nil
}

// exitError is an error that asks for a particular exit status.
type exitError struct {
	err  error
	code int
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode is the process's exit status for err: the one it asks for, else 1.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// plan is what a pretraining run will do, worked out from the config and the
// dataset.
type plan struct {
	train, test       data.Dataset // test is nil when the kNN monitor is off
	cropSize          int
	stepsPerEpoch     int
	dropped           int // images left out of each epoch by drop-last batching
	featureDim        int // backbone output width
	hiddenDim         int // MLP head hidden width
	augment           data.AugmentConfig
	queueWraps        bool // K is not a multiple of the keys enqueued per step
	stepsToFillQueue  int
	firstMixStep      int
	logitsPerQuery    int // 1 + K (+ s + s′ once mixing)
	extraMultiplyAdds int // B·(s+s′)·D per step for the synthetic logits
}

// makePlan opens the dataset and derives the run's figures.
func makePlan(cfg *config.Config) (*plan, error) {
	d := cfg.Data
	trainSet, err := openDataset(data.Spec{Kind: d.Kind, Path: d.Path, Split: d.TrainSplit, ImageSize: d.ImageSize, Limit: d.Limit, SkipCorrupt: d.SkipCorrupt})
	if err != nil {
		return nil, fmt.Errorf("data (data.kind %s, data.path %s, data.train_split %s): %w", d.Kind, d.Path, d.TrainSplit, err)
	}
	p := &plan{train: trainSet}
	if cfg.Eval.KNNEvery > 0 {
		p.test, err = openDataset(data.Spec{Kind: d.Kind, Path: d.Path, Split: d.TestSplit, ImageSize: d.ImageSize, Limit: d.Limit, SkipCorrupt: d.SkipCorrupt})
		if err != nil {
			return nil, fmt.Errorf("kNN monitor data (data.test_split %s; set eval.knn_every 0 to turn the monitor off): %w", d.TestSplit, err)
		}
	}
	n, b := trainSet.Len(), cfg.Optim.Batch
	p.stepsPerEpoch, p.dropped = n/b, n%b
	if p.stepsPerEpoch == 0 {
		return nil, fmt.Errorf("%s has %d images, fewer than optim.batch %d: no full batch (the last partial batch is dropped); lower optim.batch or raise data.limit", trainSet.Name(), n, b)
	}
	p.cropSize = d.ImageSize
	if p.cropSize == 0 {
		if trainSet.Height() != trainSet.Width() {
			return nil, fmt.Errorf("%s has %d×%d images: set data.image_size to crop them square", trainSet.Name(), trainSet.Height(), trainSet.Width())
		}
		p.cropSize = trainSet.Height()
	}
	p.augment = train.AugmentConfig(cfg, trainSet.Channels(), p.cropSize)
	if err := p.augment.Validate(trainSet.Channels()); err != nil {
		return nil, fmt.Errorf("augment: %w", err)
	}

	m := cfg.Model
	p.featureDim = 8 * m.Width // the last stage of ResNet-18/34 has 8× the first stage's channels
	if m.Backbone == "resnet50" {
		p.featureDim = 32 * m.Width // bottleneck blocks expand the last stage 4× more
	}
	p.hiddenDim = m.MLPHidden
	if p.hiddenDim == 0 {
		p.hiddenDim = p.featureDim
	}

	keys := cfg.KeysPerStep()
	p.queueWraps = cfg.MoCo.K%keys != 0
	p.stepsToFillQueue = (cfg.MoCo.K + keys - 1) / keys
	p.firstMixStep = cfg.MoCHi.MixStartEpoch * p.stepsPerEpoch
	p.logitsPerQuery = 1 + cfg.MoCo.K
	if cfg.Mixing() {
		p.logitsPerQuery += cfg.MoCHi.S + cfg.MoCHi.SPrime
		p.extraMultiplyAdds = b * (cfg.MoCHi.S + cfg.MoCHi.SPrime) * m.EmbedDim
	}
	return p, nil
}

// write prints the plan, one aspect per line.
func (p *plan) write(w io.Writer, cfg *config.Config, prov *config.Provenance) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-10s %s\n", label, fmt.Sprintf(format, args...))
	}
	src := prov.File()
	if src == "" {
		src = "built-in defaults"
	}
	fmt.Fprintf(&b, "mochi pretrain plan (dry run: nothing is trained)\n")
	line("config", "%s: valid", src)

	tr := p.train
	line("data", "%s: %d images, %d×%d×%d, %d classes%s", tr.Name(), tr.Len(), tr.Channels(), tr.Height(), tr.Width(), tr.NumClasses(), limitNote(cfg.Data.Limit))
	if p.test != nil {
		line("", "%s: %d images for the kNN monitor", p.test.Name(), p.test.Len())
	}
	o := cfg.Optim
	line("steps", "%d per epoch (batch %d, drop-last leaves out %d images), %d epochs = %d steps",
		p.stepsPerEpoch, o.Batch, p.dropped, o.Epochs, p.stepsPerEpoch*o.Epochs)

	m := cfg.Model
	line("model", "%s, %s stem, width %d: feature %d → MLP %d → ReLU → D = %d; split-BN %d groups of %d",
		m.Backbone, m.Stem, m.Width, p.featureDim, p.hiddenDim, m.EmbedDim, m.BNSplits, o.Batch/m.BNSplits)

	mo := cfg.MoCo
	wrap := fmt.Sprintf("K is a multiple of the %d keys per step", cfg.KeysPerStep())
	if p.queueWraps {
		wrap = fmt.Sprintf("K is not a multiple of the %d keys per step: writes wrap around the end", cfg.KeysPerStep())
	}
	line("queue", "K = %d keys × D = %d, %d keys enqueued per step (%s), refilled every %d steps",
		mo.K, m.EmbedDim, cfg.KeysPerStep(), wrap, p.stepsToFillQueue)
	loss := "asymmetric"
	if mo.Symmetric {
		loss = "symmetric"
	}
	line("loss", "InfoNCE (%s), τ = %g, key encoder momentum m = %g", loss, mo.Tau, mo.M)

	mi := cfg.MoCHi
	if cfg.Mixing() {
		grad := "h and h′ detached (paper)"
		if mi.GradThroughHPrime {
			grad = "gradient flows through q inside h′"
		}
		line("mixing", "MoCHi(N = %d, s = %d, s′ = %d) from epoch %d (step %d); %s; class oracle %s",
			mi.N, mi.S, mi.SPrime, mi.MixStartEpoch, p.firstMixStep, grad, onOff(mi.ClassOracle))
		line("", "logits per query 1 + K + s + s′ = %d (1 + K = %d before epoch %d); synthetic logits B·(s+s′)·D = %d multiply-adds per step",
			p.logitsPerQuery, 1+mo.K, mi.MixStartEpoch, p.extraMultiplyAdds)
	} else {
		line("mixing", "off (s = s′ = 0): plain MoCo-v2; logits per query 1 + K = %d", p.logitsPerQuery)
	}

	sched := o.Schedule
	if o.Schedule == "step" {
		sched = fmt.Sprintf("step ×0.1 at epochs %v", o.Milestones)
	}
	line("optimizer", "SGD lr %g·%d/256 = %g, momentum %g%s, weight decay %g, %s schedule, %d warm-up epochs",
		o.LR, o.Batch, cfg.EffectiveLR(), o.Momentum, nesterov(o.Nesterov), o.WeightDecay, sched, o.WarmupEpochs)

	a := p.augment
	line("augment", "two views of %d×%d: RandomResizedCrop scale %g–%g, ColorJitter(%g, %g, %g, %g) p=%g, Grayscale p=%g, GaussianBlur σ %g–%g p=%g, HorizontalFlip p=%g",
		p.cropSize, p.cropSize, a.ScaleMin, a.ScaleMax, a.Brightness, a.Contrast, a.Saturation, a.Hue, a.JitterProb,
		a.GrayProb, a.BlurSigmaMin, a.BlurSigmaMax, a.BlurProb, a.FlipProb)
	line("", "normalised with mean %v, std %v%s", a.Mean, a.Std, grayNote(tr.Channels()))

	e := cfg.Eval
	if e.KNNEvery > 0 {
		line("eval", "weighted kNN (k = %d, t = %g) every %d epochs on %s", e.KNNK, e.KNNT, e.KNNEvery, cfg.Data.TestSplit)
	} else {
		line("eval", "kNN monitor off")
	}
	r := cfg.Run
	line("run", "seed %d, device %s, output %s, checkpoint every %d epochs", r.Seed, r.Device, r.OutputDir, r.CheckpointEvery)
	_, err := io.WriteString(w, b.String())
	return err
}

func limitNote(limit int) string {
	if limit > 0 {
		return fmt.Sprintf(" (data.limit %d)", limit)
	}
	return ""
}

func grayNote(channels int) string {
	if channels == 1 {
		return " (grayscale images: saturation, hue and grayscale do nothing)"
	}
	return ""
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func nesterov(b bool) string {
	if b {
		return " (Nesterov)"
	}
	return ""
}
