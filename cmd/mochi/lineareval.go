package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/data"
	"github.com/mochi-ssl/mochi/pkg/eval"
	"github.com/mochi-ssl/mochi/pkg/frozen"
	"github.com/mochi-ssl/mochi/pkg/train"
)

// checkpointConfigUsage is the help of --config for the commands that read
// checkpoints, whose default is the run's own config rather than the defaults.
const checkpointConfigUsage = "YAML config to evaluate under; its model must be the checkpoint's (default: the run's config saved in the checkpoint)"

// linearEvalOptions holds the flags of linear-eval and knn.
type linearEvalOptions struct {
	checkpoint, baseline, cacheDir, json, saveFeatures string
	knn, standardize, augment                          bool
	augmentScaleMin                                    float64
}

func newLinearEvalCmd() *cobra.Command {
	var o linearEvalOptions
	cmd := &cobra.Command{
		Use:   "linear-eval",
		Short: "Linear probe (and kNN) on the frozen backbone of a checkpoint",
		Long: `Measure a pretrained encoder the way MoCo does: the backbone of --checkpoint is
frozen, with BatchNorm in evaluation mode (running statistics); its features of
data.train_split and data.test_split are extracted once and cached on disk
(--cache-dir, default <run dir>/features; keyed by the checkpoint's SHA-256 and
the data); a linear classifier is trained on them with SGD (lr eval.linear_lr,
momentum 0.9, weight decay eval.linear_weight_decay, eval.linear_epochs epochs,
lr ×0.1 at eval.linear_milestones, batch eval.linear_batch, fc init N(0, 0.01))
and top-1 / top-5 are reported on data.test_split (--standardize rescales each
feature to zero mean and unit variance first). --knn adds the weighted kNN
classifier (k = eval.knn_k, t = eval.knn_t) on the same features.

--augment trains the probe as MoCo's main_lincls.py does, on augmented train
images: every probe epoch runs the frozen backbone on a fresh view of each
train image (RandomResizedCrop with scale --augment-scale-min–1 and ratio
3/4–4/3, horizontal flip p = 0.5, then normalisation), drawn from run.seed, the
epoch and the image alone. The test split stays un-augmented and cached; kNN and
the pixel baseline use the un-augmented features. Each probe epoch then costs a
pass of the backbone over the train split: after the first epoch the estimated
total goes to stderr (a warning when it is long on the CPU).

Without --config the run's own config (saved in the checkpoint) is used; with
it, its model section must describe the checkpoint's network and its data and
eval sections are used. Override flags (--set eval.linear_epochs=50, …) apply
either way; --epochs, --lr and --batch set the probe's eval.linear_epochs,
eval.linear_lr and eval.linear_batch.

--baseline pixels runs the same probe (and kNN) on the raw normalised pixels,
standardised per pixel, so you see what pretraining bought; it needs no
checkpoint (only --config), and with one the report has both rows.

The table goes to stdout, progress to stderr, and the JSON report next to the
checkpoint (<checkpoint>.linear-eval.json) or to --json.`,
		Example: `  mochi linear-eval --checkpoint runs/fmnist-mochi/checkpoints/last.ckpt --knn
  mochi linear-eval --checkpoint runs/fmnist-mochi/checkpoints/last.ckpt --baseline pixels
  mochi linear-eval --config configs/fashion-mnist.yaml --baseline pixels --knn
  mochi linear-eval --checkpoint runs/fmnist-mochi/checkpoints/last.ckpt --augment`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runLinearEval(cmd, o) },
	}
	addConfigFlags(cmd)
	f := cmd.Flags()
	f.Lookup("config").Usage = checkpointConfigUsage + "; for --baseline pixels alone, the built-in defaults"
	// The training shortcuts set the probe's training here.
	for flag, key := range map[string]string{"epochs": "eval.linear_epochs", "lr": "eval.linear_lr", "batch": "eval.linear_batch"} {
		if err := config.RebindFlag(f, flag, key); err != nil {
			panic(err)
		}
	}
	markUnused(cmd, "k", "n", "s", "s-prime", "mix-start-epoch")
	f.StringVar(&o.checkpoint, "checkpoint", "", "pretraining checkpoint whose backbone is evaluated (e.g. runs/x/checkpoints/last.ckpt)")
	f.StringVar(&o.baseline, "baseline", "", `"pixels": also (or, without --checkpoint, only) probe the raw normalised pixels`)
	f.BoolVar(&o.knn, "knn", false, "also run the weighted kNN classifier (eval.knn_k, eval.knn_t) on the same features")
	f.BoolVar(&o.standardize, "standardize", false, "standardise every backbone feature with the training split's mean and std before the probe (off in MoCo's recipe; try it when lr 30 diverges)")
	f.BoolVar(&o.augment, "augment", false, "train the probe on freshly augmented train images every epoch (RandomResizedCrop + flip, through the frozen backbone); slower: one backbone pass over the train split per probe epoch")
	f.Float64Var(&o.augmentScaleMin, "augment-scale-min", data.LinearEvalScaleMin, "smallest area fraction of --augment's RandomResizedCrop")
	f.StringVar(&o.cacheDir, "cache-dir", "", "feature cache folder (default <run dir of the checkpoint>/features)")
	f.StringVar(&o.json, "json", "", "JSON report path (default <checkpoint without .ckpt>.linear-eval.json)")
	f.StringVar(&o.saveFeatures, "save-features", "", "also write the backbone features and labels as NumPy files to this folder: train.npy, train.labels.npy, test.npy, test.labels.npy")
	return cmd
}

// newKNNCmd is the weighted kNN alone: linear-eval's features (and cache)
// without the probe.
func newKNNCmd() *cobra.Command {
	cmd := newLinearEvalCmd()
	cmd.Use = "knn"
	cmd.Short = "Weighted kNN accuracy of a checkpoint's frozen backbone (shares linear-eval's feature cache)"
	cmd.Long = `Classify the test split with the weighted kNN of MoCo's monitor (k = eval.knn_k,
t = eval.knn_t: the k most similar train features vote with weights
exp(similarity/t)) on the frozen backbone's features, BatchNorm in eval mode.
The features come from — and go to — the same cache as linear-eval's, so
running both extracts them once. --baseline pixels scores raw normalised pixels.
The JSON report goes to <checkpoint>.knn.json or --json.`
	cmd.Example = `  mochi knn --checkpoint runs/fm-mochi/checkpoints/last.ckpt
  mochi knn --checkpoint runs/fm-mochi/checkpoints/last.ckpt --baseline pixels --set eval.knn_k=20`
	cmd.Flags().Lookup("json").Usage = "JSON report path (default <checkpoint without .ckpt>.knn.json)"
	markUnused(cmd, "knn", "standardize", "augment-scale-min", "epochs", "lr", "batch")
	cmd.Flags().MarkHidden("augment") // refused with its own reason in runLinearEval
	return cmd
}

func runLinearEval(cmd *cobra.Command, o linearEvalOptions) error {
	linear := cmd.Name() != "knn" // `mochi knn` runs the kNN alone
	withKNN := o.knn || !linear
	switch {
	case o.augment && !linear:
		return errors.New("--augment trains the linear probe on augmented views; mochi knn has no probe")
	case o.augment && o.checkpoint == "":
		return errors.New("--augment needs --checkpoint: it augments the images fed to a checkpoint's backbone (the pixel baseline is probed on un-augmented pixels)")
	case !(o.augmentScaleMin > 0 && o.augmentScaleMin <= 1):
		return fmt.Errorf("--augment-scale-min %v: must be in (0, 1]; MoCo uses %v", o.augmentScaleMin, data.LinearEvalScaleMin)
	case o.baseline != "" && o.baseline != "pixels":
		return fmt.Errorf("--baseline %s: the only baseline is \"pixels\" (the probe on raw normalised pixels)", o.baseline)
	case o.checkpoint == "" && o.baseline == "":
		return fmt.Errorf("%s needs --checkpoint (a file written by mochi pretrain, e.g. runs/x/checkpoints/last.ckpt) or --baseline pixels (with --config)", cmd.Name())
	}
	log := cmd.ErrOrStderr()

	var (
		p   *frozen.Pretrained
		cfg *config.Config
		err error
	)
	if o.checkpoint != "" {
		if p, cfg, err = loadCheckpointConfig(cmd, o.checkpoint); err != nil {
			return err
		}
	} else {
		if cfg, _, err = checked(loadConfig(cmd)); err != nil {
			return err
		}
		if err := cfg.CheckData(); err != nil {
			return err
		}
	}
	trainSet, err := openEvalSplit(cfg, cfg.Data.TrainSplit, p)
	if err != nil {
		return err
	}
	testSet, err := openEvalSplit(cfg, cfg.Data.TestSplit, p)
	if err != nil {
		return err
	}
	aug := train.AugmentConfig(cfg, trainSet.Channels(), trainSet.Height())
	probe := frozen.ProbeConfig(cfg, trainSet.NumClasses())
	ev := frozen.Evaluation{Linear: linear, KNN: withKNN, KNNCfg: frozen.KNNConfig(cfg, trainSet.NumClasses()), Log: log}
	probe.Standardize = o.standardize
	if linear {
		fmt.Fprintf(log, "linear probe: SGD lr %.4g, momentum %g, weight decay %g, %d epochs, lr ×%g at %v, batch %d; train %s (%d images), test %s (%d images)\n",
			probe.LR, probe.Momentum, probe.WeightDecay, probe.Epochs, probe.Gamma, probe.Milestones, probe.BatchSize,
			trainSet.Name(), trainSet.Len(), testSet.Name(), testSet.Len())
	}

	report := eval.Report{ProbeAugment: &eval.ProbeAugment{Enabled: o.augment}}
	var trainAug data.AugmentConfig
	if o.augment {
		if trainSet.Height() != trainSet.Width() {
			return fmt.Errorf("--augment: %s has %d×%d images; the augmentation makes square views, so it needs square images", trainSet.Name(), trainSet.Height(), trainSet.Width())
		}
		trainAug = data.LinearEvalAugment(trainSet.Height(), aug.Mean, aug.Std)
		trainAug.ScaleMin = o.augmentScaleMin
		report.ProbeAugment = &eval.ProbeAugment{
			Enabled: true, CropScale: []float64{trainAug.ScaleMin, trainAug.ScaleMax},
			CropRatio: []float64{data.CropRatioMin, data.CropRatioMax}, FlipProb: trainAug.FlipProb, Seed: cfg.Run.Seed,
		}
		fmt.Fprintf(log, "probe train augmentation: RandomResizedCrop(scale %g–%g, ratio 3/4–4/3) + horizontal flip p=%g, a fresh view of every train image each epoch\n",
			trainAug.ScaleMin, trainAug.ScaleMax, trainAug.FlipProb)
	}
	if p != nil {
		be, err := openDevice(cfg.Run.Device, cfg.Run.TF32, cfg.CPU.Conv, log)
		if err != nil {
			return err
		}
		if o.cacheDir == "" {
			o.cacheDir = filepath.Join(frozen.RunDir(p.Path), "features")
		}
		src := &frozen.Source{P: p, Backend: be, Config: cfg, Cache: eval.FeatureCache{Dir: o.cacheDir}, Mean: aug.Mean, Std: aug.Std, Log: log, WarnAfter: augmentWarnAfter}
		defer src.Free()
		trainX, trainY, err := src.Features(trainSet, cfg.Data.TrainSplit)
		if err != nil {
			return err
		}
		testX, testY, err := src.Features(testSet, cfg.Data.TestSplit)
		if err != nil {
			return err
		}
		if o.saveFeatures != "" {
			if err := saveSplitFeatures(o.saveFeatures, trainX, trainY, testX, testY, log); err != nil {
				return err
			}
		}
		ck := ev
		ck.Name, ck.Probe = p.Name(), probe
		if o.augment {
			ck.Views = src.Augmented(ck.Name, trainSet, trainAug, uint64(cfg.Run.Seed), dataWorkers(cfg.Data.Workers), probe.Epochs, cfg.Run.Device)
			report.ProbeAugment.AppliesTo = []string{ck.Name}
		}
		r, err := ck.Run(trainX, trainY, testX, testY)
		if err != nil {
			return err
		}
		report.Checkpoints = append(report.Checkpoints, r)
	}
	if o.baseline == "pixels" {
		trainX, trainY, err := frozen.PixelFeatures(trainSet, aug.Mean, aug.Std)
		if err != nil {
			return err
		}
		testX, testY, err := frozen.PixelFeatures(testSet, aug.Mean, aug.Std)
		if err != nil {
			return err
		}
		frozen.NoteSkipped(log, trainSet)
		frozen.NoteSkipped(log, testSet)
		pix := ev
		pix.Name, pix.Probe = "pixels", probe
		pix.Probe.Standardize = true // lr 30 on raw pixels diverges without it
		r, err := pix.Run(trainX, trainY, testX, testY)
		if err != nil {
			return err
		}
		report.Checkpoints = append(report.Checkpoints, r)
	}

	if o.json == "" {
		suffix := "." + cmd.Name() + ".json"
		o.json = filepath.Join(cfg.Run.OutputDir, "pixels"+suffix)
		if p != nil {
			o.json = strings.TrimSuffix(p.Path, filepath.Ext(p.Path)) + suffix
		}
	}
	if err := os.MkdirAll(filepath.Dir(o.json), 0o755); err != nil {
		return fmt.Errorf("report folder: %w", err)
	}
	if err := report.WriteJSON(o.json); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if err := report.Table(out); err != nil {
		return err
	}
	if o.augment {
		fmt.Fprintf(out, "linear probe of %s trained on augmented views (RandomResizedCrop scale %g–%g + flip p=%g)\n",
			strings.Join(report.ProbeAugment.AppliesTo, ", "), trainAug.ScaleMin, trainAug.ScaleMax, trainAug.FlipProb)
	}
	_, err = fmt.Fprintf(out, "report: %s\n", o.json)
	return err
}

// augmentWarnAfter is the estimated time of the augmented probe's feature
// passes on the CPU above which linear-eval warns.
var augmentWarnAfter = 10 * time.Minute

// dataWorkers is data.workers with 0 meaning one per CPU core.
func dataWorkers(n int) int {
	if n == 0 {
		return runtime.NumCPU()
	}
	return n
}

// loadCheckpointConfig reads a checkpoint and the config it is evaluated
// under: --config when given (its model must be the checkpoint's), the
// run's saved config otherwise, with the environment and override flags on
// top either way.
func loadCheckpointConfig(cmd *cobra.Command, path string) (*frozen.Pretrained, *config.Config, error) {
	p, err := loadPretrained(path)
	if err != nil {
		return nil, nil, err
	}
	file, _ := cmd.Flags().GetString("config")
	what := "--config " + file
	var (
		cfg  *config.Config
		prov *config.Provenance
	)
	if file == "" {
		// The saved config is parsed like a file, so that MOCHI_* variables
		// and --set flags override it.
		what = "the config saved in " + path
		var b strings.Builder
		if err := p.Config.WriteYAML(&b, nil); err != nil {
			return nil, nil, err
		}
		cfg, prov, err = config.Parse(what, []byte(b.String()), cmd.Flags())
	} else {
		cfg, prov, err = config.Load(file, cmd.Flags())
	}
	if cfg, _, err = checked(cfg, prov, err); err != nil {
		return nil, nil, err
	}
	rc, err := train.ResNetConfig(cfg, p.C)
	if err == nil {
		err = p.CheckModel(rc)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s holds another network than %s (with the MOCHI_* variables and flags applied): %w; pass the config the run was trained with, or leave out --config to use the run's own", path, what, err)
	}
	if err := cfg.CheckData(); err != nil {
		return nil, nil, err
	}
	return p, cfg, nil
}

// loadPretrained reads a checkpoint, saying what to do when it is missing.
func loadPretrained(path string) (*frozen.Pretrained, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("checkpoint %s not found: pass --checkpoint a file written by mochi pretrain (runs/<name>/checkpoints/last.ckpt or epoch-NNNN.ckpt)", path)
	case err != nil:
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	case st.IsDir():
		return nil, fmt.Errorf("checkpoint %s is a folder: pass a checkpoint file, e.g. %s", path, filepath.Join(path, "checkpoints", "last.ckpt"))
	}
	p, err := frozen.LoadPretrained(path)
	if err != nil {
		return nil, fmt.Errorf("loading checkpoint: %w", err)
	}
	return p, nil
}

// openEvalSplit opens one split of the configured dataset and, given a
// checkpoint, checks that its images are the shape the network was trained on.
func openEvalSplit(cfg *config.Config, split string, p *frozen.Pretrained) (data.Dataset, error) {
	d := cfg.Data
	ds, err := openDataset(data.Spec{Kind: d.Kind, Path: d.Path, Split: split, ImageSize: d.ImageSize, Limit: d.Limit, SkipCorrupt: d.SkipCorrupt})
	if err != nil {
		return nil, fmt.Errorf("data (data.kind %s, data.path %s, split %s): %w", d.Kind, d.Path, split, err)
	}
	if p != nil && (ds.Channels() != p.C || ds.Height() != p.H || ds.Width() != p.W) {
		return nil, fmt.Errorf("dataset mismatch: %s (data.kind %s, data.path %s) has %d×%d×%d images, the network of %s was trained on %d×%d×%d; evaluate on the dataset the run was trained on (leave out --config to use the run's own, or fix data.kind, data.path and data.image_size)",
			ds.Name(), d.Kind, d.Path, ds.Channels(), ds.Height(), ds.Width(), p.Path, p.C, p.H, p.W)
	}
	return ds, nil
}
