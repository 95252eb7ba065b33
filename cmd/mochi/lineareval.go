package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/data"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/eval"
	"github.com/mochi-ssl/mochi/pkg/train"
)

// checkpointConfigUsage is the help of --config for the commands that read
// checkpoints, whose default is the run's own config rather than the defaults.
const checkpointConfigUsage = "YAML config to evaluate under; its model must be the checkpoint's (default: the run's config saved in the checkpoint)"

func newLinearEvalCmd() *cobra.Command {
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
		RunE: runLinearEval,
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
	f.String("checkpoint", "", "pretraining checkpoint whose backbone is evaluated (e.g. runs/x/checkpoints/last.ckpt)")
	f.String("baseline", "", `"pixels": also (or, without --checkpoint, only) probe the raw normalised pixels`)
	f.Bool("knn", false, "also run the weighted kNN classifier (eval.knn_k, eval.knn_t) on the same features")
	f.Bool("standardize", false, "standardise every backbone feature with the training split's mean and std before the probe (off in MoCo's recipe; try it when lr 30 diverges)")
	f.Bool("augment", false, "train the probe on freshly augmented train images every epoch (RandomResizedCrop + flip, through the frozen backbone); slower: one backbone pass over the train split per probe epoch")
	f.Float64("augment-scale-min", data.LinearEvalScaleMin, "smallest area fraction of --augment's RandomResizedCrop")
	f.String("cache-dir", "", "feature cache folder (default <run dir of the checkpoint>/features)")
	f.String("json", "", "JSON report path (default <checkpoint without .ckpt>.linear-eval.json)")
	f.String("save-features", "", "also write the backbone features and labels as NumPy files to this folder: train.npy, train.labels.npy, test.npy, test.labels.npy")
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

func runLinearEval(cmd *cobra.Command, _ []string) error {
	f := cmd.Flags()
	ckpt, _ := f.GetString("checkpoint")
	baseline, _ := f.GetString("baseline")
	withKNN, _ := f.GetBool("knn")
	linear := cmd.Name() != "knn" // `mochi knn` runs the kNN alone
	withKNN = withKNN || !linear
	cacheDir, _ := f.GetString("cache-dir")
	jsonPath, _ := f.GetString("json")
	standardize, _ := f.GetBool("standardize")
	augment, _ := f.GetBool("augment")
	scaleMin, _ := f.GetFloat64("augment-scale-min")
	switch {
	case augment && !linear:
		return errors.New("--augment trains the linear probe on augmented views; mochi knn has no probe")
	case augment && ckpt == "":
		return errors.New("--augment needs --checkpoint: it augments the images fed to a checkpoint's backbone (the pixel baseline is probed on un-augmented pixels)")
	case !(scaleMin > 0 && scaleMin <= 1):
		return fmt.Errorf("--augment-scale-min %v: must be in (0, 1]; MoCo uses %v", scaleMin, data.LinearEvalScaleMin)
	case baseline != "" && baseline != "pixels":
		return fmt.Errorf("--baseline %s: the only baseline is \"pixels\" (the probe on raw normalised pixels)", baseline)
	case ckpt == "" && baseline == "":
		return fmt.Errorf("%s needs --checkpoint (a file written by mochi pretrain, e.g. runs/x/checkpoints/last.ckpt) or --baseline pixels (with --config)", cmd.Name())
	}
	log := cmd.ErrOrStderr()

	var (
		p   *train.Pretrained
		cfg *config.Config
		err error
	)
	if ckpt != "" {
		if p, cfg, err = loadCheckpointConfig(cmd, ckpt); err != nil {
			return err
		}
	} else {
		var prov *config.Provenance
		if cfg, prov, err = loadConfig(cmd); err != nil {
			return err
		}
		if err := cfg.CheckValues(); err != nil {
			return explain(err, prov)
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
	probe := probeConfig(cfg, trainSet.NumClasses())
	probe.Standardize = standardize
	if linear {
		fmt.Fprintf(log, "linear probe: SGD lr %.4g, momentum %g, weight decay %g, %d epochs, lr ×%g at %v, batch %d; train %s (%d images), test %s (%d images)\n",
			probe.LR, probe.Momentum, probe.WeightDecay, probe.Epochs, probe.Gamma, probe.Milestones, probe.BatchSize,
			trainSet.Name(), trainSet.Len(), testSet.Name(), testSet.Len())
	}

	report := linearEvalReport{ProbeAugment: probeAugment{Enabled: augment}}
	var trainAug data.AugmentConfig
	if augment {
		if trainSet.Height() != trainSet.Width() {
			return fmt.Errorf("--augment: %s has %d×%d images; the augmentation makes square views, so it needs square images", trainSet.Name(), trainSet.Height(), trainSet.Width())
		}
		trainAug = data.LinearEvalAugment(trainSet.Height(), aug.Mean, aug.Std)
		trainAug.ScaleMin = scaleMin
		report.ProbeAugment = probeAugment{
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
		if cacheDir == "" {
			cacheDir = filepath.Join(runDir(p.Path), "features")
		}
		src := &featureSource{p: p, be: be, cfg: cfg, cache: eval.FeatureCache{Dir: cacheDir}, mean: aug.Mean, std: aug.Std, log: log}
		defer src.free()
		trainX, trainY, err := src.features(trainSet, cfg.Data.TrainSplit)
		if err != nil {
			return err
		}
		testX, testY, err := src.features(testSet, cfg.Data.TestSplit)
		if err != nil {
			return err
		}
		if dir, _ := f.GetString("save-features"); dir != "" {
			if err := saveSplitFeatures(dir, trainX, trainY, testX, testY, log); err != nil {
				return err
			}
		}
		name := checkpointName(p)
		var views *augmentedViews
		if augment {
			views = src.augmented(name, trainSet, trainAug, uint64(cfg.Run.Seed), dataWorkers(cfg.Data.Workers), probe.Epochs, cfg.Run.Device)
			report.ProbeAugment.AppliesTo = []string{name}
		}
		r, err := probeAndKNN(name, trainX, trainY, testX, testY, views, probe, cfg, linear, withKNN, log)
		if err != nil {
			return err
		}
		report.Checkpoints = append(report.Checkpoints, r)
	}
	if baseline == "pixels" {
		trainX, trainY, err := pixelFeatures(trainSet, aug.Mean, aug.Std)
		if err != nil {
			return err
		}
		testX, testY, err := pixelFeatures(testSet, aug.Mean, aug.Std)
		if err != nil {
			return err
		}
		noteSkipped(log, trainSet)
		noteSkipped(log, testSet)
		pix := probe
		pix.Standardize = true // lr 30 on raw pixels diverges without it
		r, err := probeAndKNN("pixels", trainX, trainY, testX, testY, nil, pix, cfg, linear, withKNN, log)
		if err != nil {
			return err
		}
		report.Checkpoints = append(report.Checkpoints, r)
	}

	if jsonPath == "" {
		suffix := "." + cmd.Name() + ".json"
		jsonPath = filepath.Join(cfg.Run.OutputDir, "pixels"+suffix)
		if p != nil {
			jsonPath = strings.TrimSuffix(p.Path, filepath.Ext(p.Path)) + suffix
		}
	}
	if err := os.MkdirAll(filepath.Dir(jsonPath), 0o755); err != nil {
		return fmt.Errorf("report folder: %w", err)
	}
	if err := report.writeJSON(jsonPath); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if err := report.Table(out); err != nil {
		return err
	}
	if augment {
		fmt.Fprintf(out, "linear probe of %s trained on augmented views (RandomResizedCrop scale %g–%g + flip p=%g)\n",
			strings.Join(report.ProbeAugment.AppliesTo, ", "), trainAug.ScaleMin, trainAug.ScaleMax, trainAug.FlipProb)
	}
	_, err = fmt.Fprintf(out, "report: %s\n", jsonPath)
	return err
}

// linearEvalReport is linear-eval's JSON report: the rows of eval.Report
// (read back by eval.ReadReport) and how the probe's training images were fed.
type linearEvalReport struct {
	eval.Report
	ProbeAugment probeAugment `json:"probe_augment"`
}

// probeAugment records the linear probe's train augmentation.
type probeAugment struct {
	// Enabled is true with --augment.
	Enabled bool `json:"enabled"`
	// AppliesTo names the rows whose probe saw augmented views (never the
	// pixel baseline).
	AppliesTo []string `json:"applies_to,omitempty"`
	// CropScale and CropRatio are RandomResizedCrop's area-fraction and
	// aspect-ratio ranges, FlipProb the horizontal-flip probability.
	CropScale []float64 `json:"random_resized_crop_scale,omitempty"`
	CropRatio []float64 `json:"random_resized_crop_ratio,omitempty"`
	FlipProb  float64   `json:"flip_prob,omitempty"`
	// Seed is the run.seed the views were drawn from.
	Seed int64 `json:"seed,omitempty"`
}

// writeJSON writes the report to path as indented JSON.
func (r linearEvalReport) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// dataWorkers is data.workers with 0 meaning one per CPU core.
func dataWorkers(n int) int {
	if n == 0 {
		return runtime.NumCPU()
	}
	return n
}

// probeConfig maps the eval section onto MoCo's linear-evaluation recipe.
func probeConfig(cfg *config.Config, classes int) eval.ProbeConfig {
	pc := eval.DefaultProbeConfig()
	e := cfg.Eval
	pc.LR, pc.Epochs, pc.Milestones = e.LinearLR, e.LinearEpochs, e.LinearMilestones
	pc.BatchSize, pc.WeightDecay = e.LinearBatch, e.LinearWeightDecay
	pc.Seed, pc.Classes = uint64(cfg.Run.Seed), classes
	return pc
}

// probeAndKNN trains the linear probe (and, with withKNN, runs the weighted
// kNN) on one set of features and reports both on the test features. With
// views the probe trains on them, a fresh set each epoch, instead of trainX
// (which the kNN still uses).
func probeAndKNN(name string, trainX eval.Matrix, trainY []int, testX eval.Matrix, testY []int, views *augmentedViews,
	pc eval.ProbeConfig, cfg *config.Config, linear, withKNN bool, log io.Writer) (eval.CheckpointReport, error) {
	r := eval.CheckpointReport{Name: name}
	if linear {
		if err := linearProbe(&r, trainX, testX, trainY, testY, views, pc, log); err != nil {
			return r, err
		}
	}
	if withKNN {
		kc := eval.DefaultKNNConfig()
		kc.K, kc.T, kc.Classes = cfg.Eval.KNNK, cfg.Eval.KNNT, pc.Classes
		kr, err := eval.KNN(trainX, trainY, testX, testY, kc)
		if err != nil {
			return r, fmt.Errorf("%s: kNN: %w", name, err)
		}
		r.KNNTop1, r.KNNTop5 = eval.Float(kr.Top1), eval.Float(kr.Top5)
	}
	return r, nil
}

// linearProbe trains the probe and fills r's linear fields.
func linearProbe(r *eval.CheckpointReport, trainX, testX eval.Matrix, trainY, testY []int, views *augmentedViews, pc eval.ProbeConfig, log io.Writer) error {
	name := r.Name
	// A line per epoch for short probes and for augmented ones (each epoch
	// runs the backbone), every 10 epochs for long ones otherwise.
	every := 1
	if pc.Epochs > 20 && views == nil {
		every = 10
	}
	pc.Progress = func(e eval.ProbeEpoch) {
		if (e.Epoch+1)%every == 0 || e.Epoch+1 == pc.Epochs {
			cost := ""
			if views != nil {
				cost = fmt.Sprintf("  (augmented features %.1fs)", views.last.Seconds())
			}
			fmt.Fprintf(log, "%s: probe epoch %d/%d  lr %.4g  loss %.4f%s\n", name, e.Epoch+1, pc.Epochs, e.LR, e.Loss, cost)
		}
	}
	start := time.Now()
	var (
		res eval.ProbeResult
		err error
	)
	if views != nil {
		res, err = eval.LinearProbeEpochs(views.features, testX, testY, pc)
	} else {
		res, err = eval.LinearProbe(trainX, trainY, testX, testY, pc)
	}
	if err != nil {
		return fmt.Errorf("%s: linear probe: %w", name, err)
	}
	fmt.Fprintf(log, "%s: linear probe on %d×%d features in %.1fs: top-1 %.2f%%\n", name, trainX.N, trainX.D, time.Since(start).Seconds(), 100*res.Top1)
	r.LinearTop1, r.LinearTop5, r.LinearLoss = eval.Float(res.Top1), eval.Float(res.Top5), res.LossCurve
	if why := res.Diverged(pc.Classes); why != "" {
		r.LinearDiverged = why
		advice := fmt.Sprintf("lower eval.linear_lr (now %.4g; e.g. --lr %.4g)", pc.LR, pc.LR/10)
		if !pc.Standardize {
			advice = "rerun with --standardize (features on another scale than MoCo's lr 30 expects), or " + advice
		}
		fmt.Fprintf(log, "warning: %s: the linear probe diverged: %s; its accuracy means little: %s\n", name, why, advice)
	}
	return nil
}

// pixelFeatures flattens every normalised image of ds into a row: the input
// the encoder would see, as an n×(C·H·W) matrix.
func pixelFeatures(ds data.Dataset, mean, std []float32) (eval.Matrix, []int, error) {
	d := ds.Channels() * ds.Height() * ds.Width()
	x := make([]float32, 0, ds.Len()*d)
	labels := make([]int, 0, ds.Len())
	err := data.EvalBatches(ds, mean, std, 256, func(b []float32, lab []int, _ []int) error {
		x = append(x, b[:len(lab)*d]...)
		labels = append(labels, lab...)
		return nil
	})
	if err != nil {
		return eval.Matrix{}, nil, err
	}
	m, err := eval.NewMatrix(x, len(labels), d)
	return m, labels, err
}

// loadCheckpointConfig reads a checkpoint and the config it is evaluated
// under: --config when given (its model must be the checkpoint's), the
// run's saved config otherwise, with the environment and override flags on
// top either way.
func loadCheckpointConfig(cmd *cobra.Command, path string) (*train.Pretrained, *config.Config, error) {
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
	if err == nil {
		if err = cfg.CheckValues(); err != nil {
			err = explain(err, prov)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if err := p.CheckModel(cfg); err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s holds another network than %s (with the MOCHI_* variables and flags applied): %w; pass the config the run was trained with, or leave out --config to use the run's own", path, what, err)
	}
	if err := cfg.CheckData(); err != nil {
		return nil, nil, err
	}
	return p, cfg, nil
}

// loadPretrained reads a checkpoint, saying what to do when it is missing.
func loadPretrained(path string) (*train.Pretrained, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("checkpoint %s not found: pass --checkpoint a file written by mochi pretrain (runs/<name>/checkpoints/last.ckpt or epoch-NNNN.ckpt)", path)
	case err != nil:
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	case st.IsDir():
		return nil, fmt.Errorf("checkpoint %s is a folder: pass a checkpoint file, e.g. %s", path, filepath.Join(path, "checkpoints", "last.ckpt"))
	}
	p, err := train.LoadPretrained(path)
	if err != nil {
		return nil, fmt.Errorf("loading checkpoint: %w", err)
	}
	return p, nil
}

// openEvalSplit opens one split of the configured dataset and, given a
// checkpoint, checks that its images are the shape the network was trained on.
func openEvalSplit(cfg *config.Config, split string, p *train.Pretrained) (data.Dataset, error) {
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

// runDir is the run directory of a checkpoint: the folder above
// checkpoints/, or the checkpoint's own folder when it lies elsewhere.
func runDir(ckpt string) string {
	dir := filepath.Dir(ckpt)
	if filepath.Base(dir) == "checkpoints" {
		return filepath.Dir(dir)
	}
	return dir
}

// checkpointName names a checkpoint in tables and plots: its run folder and
// file stem, e.g. "fmnist-mochi/last".
func checkpointName(p *train.Pretrained) string {
	stem := strings.TrimSuffix(filepath.Base(p.Path), filepath.Ext(p.Path))
	return filepath.Base(runDir(p.Path)) + "/" + stem
}

// featureSource extracts a checkpoint's features of whole dataset splits
// through an eval.FeatureCache, building the encoder only when a split is
// not cached.
type featureSource struct {
	p     *train.Pretrained
	be    device.Backend
	cfg   *config.Config
	head  bool // embeddings (normalize(head(·))) instead of backbone features
	cache eval.FeatureCache
	mean  []float32
	std   []float32
	log   io.Writer
	enc   *train.Encoder
	batch int // the encoder's batch
}

// key names everything the features depend on: the checkpoint's bytes, the
// dataset and split, and the output (backbone or embedding).
func (s *featureSource) key(ds data.Dataset, split string) string {
	d := s.cfg.Data
	path, err := filepath.Abs(d.Path)
	if err != nil {
		path = d.Path
	}
	output := "backbone"
	if s.head {
		output = "embedding"
	}
	key := fmt.Sprintf("checkpoint sha256 %s\ndata %s %s split %s limit %d image_size %d %d×%d×%d mean %v std %v\noutput %s",
		s.p.SHA256, d.Kind, path, split, d.Limit, d.ImageSize, ds.Channels(), ds.Height(), ds.Width(), s.mean, s.std, output)
	if f, ok := ds.(*data.ImageFolder); ok { // its images are read through a transform, and files come and go
		key += fmt.Sprintf("\nimagefolder %d images, %s", f.Len(), f.EvalTransform())
	}
	return key
}

// encoder returns the checkpoint's frozen encoder, building it on first use.
func (s *featureSource) encoder(batch int) (*train.Encoder, error) {
	if s.enc == nil {
		enc, err := s.p.Encoder(s.be, batch, s.head)
		if err != nil {
			return nil, fmt.Errorf("building the encoder of %s: %w", s.p.Path, err)
		}
		s.enc, s.batch = enc, batch
	}
	return s.enc, nil
}

// features returns the outputs for every image of ds, from the cache when
// it holds them; otherwise it extracts and caches them.
func (s *featureSource) features(ds data.Dataset, split string) (eval.Matrix, []int, error) {
	key := s.key(ds, split)
	feats, labels, n, d, found, err := s.cache.Load(key)
	if err != nil {
		return eval.Matrix{}, nil, err
	}
	if found {
		fmt.Fprintf(s.log, "%s: cached features %d×%d from %s\n", ds.Name(), n, d, s.cache.Path(key))
		if n < ds.Len() {
			fmt.Fprintf(s.log, "%s: the cache holds %d of %d images: %d corrupt images were left out when it was written (data.skip_corrupt)\n", ds.Name(), n, ds.Len(), ds.Len()-n)
		}
		m, err := eval.NewMatrix(feats, n, d)
		return m, labels, err
	}
	enc, err := s.encoder(min(256, ds.Len()))
	if err != nil {
		return eval.Matrix{}, nil, err
	}
	start := time.Now()
	m, labels, err := enc.Features(ds, s.mean, s.std)
	if err != nil {
		return eval.Matrix{}, nil, fmt.Errorf("extracting features of %s: %w", ds.Name(), err)
	}
	if err := s.cache.Save(key, m.Data, labels, m.N, m.D); err != nil {
		return eval.Matrix{}, nil, err
	}
	fmt.Fprintf(s.log, "%s: extracted features %d×%d in %.1fs, cached in %s\n", ds.Name(), m.N, m.D, time.Since(start).Seconds(), s.cache.Path(key))
	noteSkipped(s.log, ds)
	return m, labels, nil
}

// noteSkipped says how many corrupt images of ds the evaluation reads have
// left out so far (data.skip_corrupt) and which was first: a split is never
// silently smaller.
func noteSkipped(log io.Writer, ds data.Dataset) {
	if n, first := data.SkipSummary(data.EvalSkipped(ds)); n > 0 {
		fmt.Fprintf(log, "%s: left out %d corrupt images (data.skip_corrupt), first %s\n", ds.Name(), n, first)
	}
}

// augmentWarnAfter is the estimated time of the augmented probe's feature
// passes on the CPU above which linear-eval warns.
var augmentWarnAfter = 10 * time.Minute

// augmentedViews feeds the linear probe the backbone features of freshly
// augmented train images, one set per epoch.
type augmentedViews struct {
	features eval.TrainFeatures
	last     time.Duration // what the latest epoch's features took
}

// augmented returns the per-epoch provider for the probe of the
// checkpoint called name: epoch e's features are the backbone's outputs for
// the views of ds that data.AugmentedBatches draws from (seed, e). After the
// first epoch it prints the estimated cost of all epochs, as a warning when
// it is long on the CPU.
func (s *featureSource) augmented(name string, ds data.Dataset, aug data.AugmentConfig, seed uint64, workers, epochs int, device string) *augmentedViews {
	v := &augmentedViews{}
	v.features = func(epoch int) (eval.Matrix, []int, error) {
		enc, err := s.encoder(min(256, ds.Len()))
		if err != nil {
			return eval.Matrix{}, nil, err
		}
		start := time.Now()
		out := make([]float32, 0, ds.Len()*enc.OutputDim())
		labels := make([]int, 0, ds.Len())
		err = data.AugmentedBatches(ds, aug, seed, epoch, s.batch, workers, func(x []float32, lab []int, _ []int) error {
			f, err := enc.Embed(x, len(lab))
			if err != nil {
				return err
			}
			out = append(out, f...)
			labels = append(labels, lab...)
			return nil
		})
		if err != nil {
			return eval.Matrix{}, nil, fmt.Errorf("augmented features of %s, epoch %d: %w", ds.Name(), epoch, err)
		}
		v.last = time.Since(start)
		if epoch == 0 {
			noteSkipped(s.log, ds)
			total := v.last * time.Duration(epochs)
			fmt.Fprintf(s.log, "%s: augmented train features: %d images through the backbone in %.1fs per probe epoch, about %s for %d epochs\n",
				name, ds.Len(), v.last.Seconds(), roughDuration(total), epochs)
			if device == "cpu" && total > augmentWarnAfter {
				fmt.Fprintf(s.log, "warning: --augment on the CPU runs the backbone over all %d train images every probe epoch: about %s in all; use run.device cuda, fewer eval.linear_epochs or a smaller data.limit, or leave out --augment to probe the cached features\n",
					ds.Len(), total.Round(time.Minute))
			}
		}
		m, err := eval.NewMatrix(out, len(labels), enc.OutputDim())
		return m, labels, err
	}
	return v
}

// roughDuration prints d to a tenth of a second below a minute, to the
// second above.
func roughDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// free releases the encoder, if one was built.
func (s *featureSource) free() {
	if s.enc != nil {
		s.enc.Free()
	}
}
