package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
)

// Known values of the enumerated keys.
var (
	// Backbones are the values of model.backbone.
	Backbones = []string{"resnet18", "resnet34", "resnet50"}
	// Stems are the values of model.stem.
	Stems = []string{"cifar", "imagenet"}
	// ShuffleBNModes are the values of model.shuffle_bn.
	ShuffleBNModes = []string{"ranks", "split"}
	// Schedules are the values of optim.schedule.
	Schedules = []string{"cosine", "step"}
	// DatasetKinds are the values of data.kind.
	DatasetKinds = []string{"mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder"}
	// Devices are the values of run.device.
	Devices = []string{"cpu", "cuda"}
	// CPUConvModes are the values of cpu.conv (package device/cpu's ConvModes).
	CPUConvModes = []string{"auto", "winograd", "direct", "blas"}
	// Splits are the values of data.train_split and data.test_split.
	Splits = []string{"train", "test"}
)

// Problem is one value that breaks a rule.
type Problem struct {
	// Key is the key holding the value.
	Key string
	// Value is the value, as written in YAML.
	Value string
	// Rule says what the value must be, and why where it is not obvious.
	Rule string
}

// String is "key = value: rule".
func (p Problem) String() string {
	return fmt.Sprintf("%s = %s: %s", p.Key, p.Value, p.Rule)
}

// ValidationError lists every value that breaks a rule.
type ValidationError struct {
	Problems []Problem
}

// Error lists the problems, one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid config:\n  " + strings.Join(lines, "\n  ")
}

// Explain lists the problems like Error, each followed by where its value
// came from (default, file and line, env variable or flag).
func (e *ValidationError) Explain(p *Provenance) string {
	lines := make([]string, len(e.Problems))
	for i, pr := range e.Problems {
		lines[i] = fmt.Sprintf("%s (from %s)", pr, p.Of(pr.Key))
	}
	return "invalid config:\n  " + strings.Join(lines, "\n  ")
}

// MissingDataError says the dataset directory is not on this machine.
type MissingDataError struct {
	// Kind is data.kind, Path is data.path.
	Kind, Path string
	// Err is the error from the file system.
	Err error
}

// Error names the key, the path and how to get the data.
func (e *MissingDataError) Error() string {
	return fmt.Sprintf("data.path = %s: %v; %s", e.Path, e.Err, dataHint(e.Kind))
}

// Unwrap returns the file-system error.
func (e *MissingDataError) Unwrap() error { return e.Err }

func dataHint(kind string) string {
	switch kind {
	case "fashion-mnist":
		return "install Debian's dataset-fashion-mnist (scripts/setup.sh does) or point data.path at a folder of the four idx files"
	case "mnist":
		return "point data.path at a folder holding train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz)"
	case "cifar10":
		return "download cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it and point data.path at cifar-10-batches-bin"
	case "cifar100":
		return "download cifar-100-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it and point data.path at cifar-100-binary"
	}
	return "point data.path at a folder with one sub-folder per split, each holding one sub-folder of images per class"
}

// Validate checks every rule: CheckValues, then CheckData. The error lists
// every problem found, each naming its key.
func (c *Config) Validate() error {
	return errors.Join(c.CheckValues(), c.CheckData())
}

// CheckData checks that data.path is a directory on this machine; the error is
// a *MissingDataError.
func (c *Config) CheckData() error {
	st, err := os.Stat(c.Data.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = errors.New("directory not found")
		}
		return &MissingDataError{Kind: c.Data.Kind, Path: c.Data.Path, Err: err}
	}
	if !st.IsDir() {
		return &MissingDataError{Kind: c.Data.Kind, Path: c.Data.Path, Err: errors.New("not a directory")}
	}
	return nil
}

// CheckValues checks every rule that does not need the disk; the error is a
// *ValidationError.
func (c *Config) CheckValues() error {
	var v validator
	c.checkModel(&v)
	c.checkMoCo(&v)
	c.checkOptim(&v)
	c.checkData(&v)
	c.checkAugment(&v)
	c.checkEval(&v)
	c.checkRun(&v)
	v.oneOf("cpu.conv", c.CPU.Conv, CPUConvModes)
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

func (c *Config) checkModel(v *validator) {
	m := c.Model
	v.oneOf("model.backbone", m.Backbone, Backbones)
	v.oneOf("model.stem", m.Stem, Stems)
	v.oneOf("model.shuffle_bn", m.ShuffleBN, ShuffleBNModes)
	v.check(m.Width >= 1, "model.width", m.Width, "must be ≥ 1")
	v.check(m.EmbedDim >= 1, "model.embed_dim", m.EmbedDim, "must be ≥ 1")
	v.check(m.MLPHidden >= 0, "model.mlp_hidden", m.MLPHidden, "must be ≥ 0 (0 = the backbone's feature dimension)")
	if v.check(m.BNSplits >= 1, "model.bn_splits", m.BNSplits, "must be ≥ 1 (1 = plain BatchNorm)") && c.Optim.Batch >= 2 {
		v.check(c.Optim.Batch%m.BNSplits == 0, "model.bn_splits", m.BNSplits,
			fmt.Sprintf("must divide optim.batch (%d): every BatchNorm group has batch/bn_splits images", c.Optim.Batch))
		v.check(c.Optim.Batch/m.BNSplits >= 2, "model.bn_splits", m.BNSplits,
			fmt.Sprintf("must leave ≥ 2 images per BatchNorm group (optim.batch %d / bn_splits %d = %d)", c.Optim.Batch, m.BNSplits, c.Optim.Batch/m.BNSplits))
	}
}

func (c *Config) checkMoCo(v *validator) {
	mo, mi := c.MoCo, c.MoCHi
	if c.Optim.Batch >= 2 {
		rule := fmt.Sprintf("must be ≥ optim.batch (%d), the keys enqueued per step", c.Optim.Batch)
		if mo.Symmetric {
			rule = fmt.Sprintf("must be ≥ 2·optim.batch (%d), the keys enqueued per step with moco.symmetric", c.KeysPerStep())
		}
		v.check(mo.K >= c.KeysPerStep(), "moco.k", mo.K, rule)
	}
	v.check(mo.K >= 1, "moco.k", mo.K, "must be ≥ 1")
	v.check(mo.M >= 0 && mo.M < 1, "moco.m", mo.M, "must be in [0, 1): θ_k ← m·θ_k + (1−m)·θ_q")
	v.check(mo.Tau > 0, "moco.tau", mo.Tau, "must be > 0: logits are divided by τ")

	v.check(mi.S >= 0, "mochi.s", mi.S, "must be ≥ 0 (0 = no negative–negative mixing)")
	v.check(mi.SPrime >= 0, "mochi.s_prime", mi.SPrime, "must be ≥ 0 (0 = no query–negative mixing)")
	v.check(mi.N >= 0, "mochi.n", mi.N, "must be ≥ 0")
	v.check(mi.N <= mo.K, "mochi.n", mi.N, fmt.Sprintf("must be ≤ moco.k (%d): the hard negatives are drawn from the queue", mo.K))
	if c.Mixing() {
		v.check(mi.N >= 1, "mochi.n", mi.N, "must be ≥ 1 when mochi.s or mochi.s_prime is > 0: mixing draws from the N hardest negatives")
		v.check(mi.MixStartEpoch >= 0, "mochi.mix_start_epoch", mi.MixStartEpoch, "must be ≥ 0")
		v.check(mi.MixStartEpoch < c.Optim.Epochs, "mochi.mix_start_epoch", mi.MixStartEpoch,
			fmt.Sprintf("must be < optim.epochs (%d), or mixing never starts; set mochi.s and mochi.s_prime to 0 for plain MoCo-v2", c.Optim.Epochs))
	}
}

func (c *Config) checkOptim(v *validator) {
	o := c.Optim
	v.check(o.LR > 0, "optim.lr", o.LR, "must be > 0")
	v.check(o.Momentum >= 0 && o.Momentum < 1, "optim.momentum", o.Momentum, "must be in [0, 1)")
	v.check(o.WeightDecay >= 0, "optim.weight_decay", o.WeightDecay, "must be ≥ 0")
	v.oneOf("optim.schedule", o.Schedule, Schedules)
	v.increasing("optim.milestones", o.Milestones)
	if o.Schedule == "step" {
		v.check(len(o.Milestones) > 0, "optim.milestones", o.Milestones, "must list at least one epoch with schedule step")
		v.within("optim.milestones", o.Milestones, o.Epochs, "optim.epochs")
	}
	v.check(o.WarmupEpochs >= 0 && o.WarmupEpochs < max(o.Epochs, 1), "optim.warmup_epochs", o.WarmupEpochs,
		fmt.Sprintf("must be in [0, optim.epochs) = [0, %d)", o.Epochs))
	v.check(o.Batch >= 2, "optim.batch", o.Batch, "must be ≥ 2: BatchNorm and the contrastive loss need several images")
	v.check(o.Epochs >= 1, "optim.epochs", o.Epochs, "must be ≥ 1")
}

func (c *Config) checkData(v *validator) {
	d := c.Data
	v.oneOf("data.kind", d.Kind, DatasetKinds)
	v.check(d.Path != "", "data.path", quote(d.Path), "must name the dataset directory")
	v.oneOf("data.train_split", d.TrainSplit, Splits)
	v.oneOf("data.test_split", d.TestSplit, Splits)
	v.check(d.ImageSize >= 0, "data.image_size", d.ImageSize, "must be ≥ 0 (0 = the dataset's own size)")
	if d.Kind == "imagefolder" {
		v.check(d.ImageSize > 0, "data.image_size", d.ImageSize, "must be > 0 for imagefolder: its images have no common size")
	}
	v.check(d.Limit >= 0, "data.limit", d.Limit, "must be ≥ 0 (0 = all images)")
	if d.Limit > 0 {
		v.check(d.Limit >= c.Optim.Batch, "data.limit", d.Limit,
			fmt.Sprintf("must be ≥ optim.batch (%d): the last partial batch is dropped, so fewer images give no step", c.Optim.Batch))
	}
	v.check(d.Workers >= 0, "data.workers", d.Workers, "must be ≥ 0 (0 = one per CPU core)")
	v.check(d.Prefetch >= 1, "data.prefetch", d.Prefetch, "must be ≥ 1")
}

func (c *Config) checkAugment(v *validator) {
	a := c.Augment
	v.check(a.CropScaleMin > 0 && a.CropScaleMin <= a.CropScaleMax, "augment.crop_scale_min", a.CropScaleMin,
		fmt.Sprintf("must be in (0, augment.crop_scale_max] = (0, %v]", a.CropScaleMax))
	v.check(a.CropScaleMax > 0 && a.CropScaleMax <= 1, "augment.crop_scale_max", a.CropScaleMax, "must be in (0, 1]: a fraction of the image area")
	v.check(a.Brightness >= 0, "augment.brightness", a.Brightness, "must be ≥ 0")
	v.check(a.Contrast >= 0, "augment.contrast", a.Contrast, "must be ≥ 0")
	v.check(a.Saturation >= 0, "augment.saturation", a.Saturation, "must be ≥ 0")
	v.check(a.Hue >= 0 && a.Hue <= 0.5, "augment.hue", a.Hue, "must be in [0, 0.5]: a shift of at most half a turn")
	v.probability("augment.jitter_prob", a.JitterProb)
	v.probability("augment.gray_prob", a.GrayProb)
	v.probability("augment.blur_prob", a.BlurProb)
	v.probability("augment.flip_prob", a.FlipProb)
	v.check(a.BlurSigmaMin > 0 && a.BlurSigmaMin <= a.BlurSigmaMax, "augment.blur_sigma_min", a.BlurSigmaMin,
		fmt.Sprintf("must be in (0, augment.blur_sigma_max] = (0, %v]", a.BlurSigmaMax))
}

func (c *Config) checkEval(v *validator) {
	e := c.Eval
	v.check(e.KNNEvery >= 0, "eval.knn_every", e.KNNEvery, "must be ≥ 0 (0 = off)")
	v.check(e.KNNK >= 1, "eval.knn_k", e.KNNK, "must be ≥ 1")
	v.check(e.KNNT > 0, "eval.knn_t", e.KNNT, "must be > 0")
	v.check(e.LinearLR > 0, "eval.linear_lr", e.LinearLR, "must be > 0")
	v.check(e.LinearEpochs >= 1, "eval.linear_epochs", e.LinearEpochs, "must be ≥ 1")
	v.increasing("eval.linear_milestones", e.LinearMilestones)
	v.within("eval.linear_milestones", e.LinearMilestones, e.LinearEpochs, "eval.linear_epochs")
	v.check(e.LinearBatch >= 1, "eval.linear_batch", e.LinearBatch, "must be ≥ 1")
	v.check(e.LinearWeightDecay >= 0, "eval.linear_weight_decay", e.LinearWeightDecay, "must be ≥ 0")
}

func (c *Config) checkRun(v *validator) {
	r := c.Run
	v.oneOf("run.device", r.Device, Devices)
	v.check(r.OutputDir != "", "run.output_dir", quote(r.OutputDir), "must name the run directory")
	v.check(r.CheckpointEvery >= 0, "run.checkpoint_every", r.CheckpointEvery, "must be ≥ 0 (0 = only at the end)")
	v.check(r.StatsEvery >= 0, "run.stats_every", r.StatsEvery, "must be ≥ 0 (0 = never compute the step statistics)")
}

// validator collects problems.
type validator struct {
	problems []Problem
}

// check records a problem with key when ok is false, and returns ok.
func (v *validator) check(ok bool, key string, value any, rule string) bool {
	if !ok {
		text, ok := value.(string)
		if !ok {
			text = formatValue(reflect.ValueOf(value))
		}
		v.problems = append(v.problems, Problem{Key: key, Value: text, Rule: rule})
	}
	return ok
}

func (v *validator) oneOf(key, value string, known []string) {
	for _, k := range known {
		if value == k {
			return
		}
	}
	v.check(false, key, quote(value), "must be one of "+strings.Join(known, ", "))
}

func (v *validator) probability(key string, p float64) {
	v.check(p >= 0 && p <= 1, key, p, "must be a probability in [0, 1]")
}

func (v *validator) increasing(key string, xs []int) {
	for i, x := range xs {
		if !v.check(x >= 1, key, xs, "epochs must be ≥ 1") {
			return
		}
		if i > 0 && !v.check(x > xs[i-1], key, xs, "epochs must increase") {
			return
		}
	}
}

func (v *validator) within(key string, xs []int, epochs int, epochsKey string) {
	for _, x := range xs {
		if !v.check(x < epochs, key, xs, fmt.Sprintf("epochs must be < %s (%d)", epochsKey, epochs)) {
			return
		}
	}
}

func quote(s string) string {
	return fmt.Sprintf("%q", s)
}
