package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/mochi-ssl/mochi/internal/testenv"
)

// writeFile writes a config file into a fresh temporary directory.
func writeFile(t *testing.T, text string) string {
	t.Helper()
	return testenv.TempFile(t, "run.yaml", []byte(text))
}

// flags returns a FlagSet with AddFlags registered, parsed from args.
func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

// validData returns a config whose dataset directory exists, so Validate
// checks only the rule under test.
func validData(t *testing.T) Config {
	c := Default()
	c.Data.Path = t.TempDir()
	return c
}

func TestDefaultsValid(t *testing.T) {
	c := validData(t)
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	d := Default()
	if err := d.CheckValues(); err != nil {
		t.Fatalf("default values do not validate: %v", err)
	}
	// Default must match the Key table the reference and the env names come from.
	for _, k := range Keys() {
		if got := formatValue(d.field(k)); got != k.Default {
			t.Errorf("%s: Default() gives %s, key table says %s", k.Name, got, k.Default)
		}
	}
}

func TestLoadNoFileIsDefaults(t *testing.T) {
	c, p, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := Default(); !reflect.DeepEqual(*c, want) {
		t.Fatalf("Load(\"\") = %+v, want the defaults %+v", *c, want)
	}
	for _, k := range Keys() {
		if o := p.Of(k.Name); o.Source != FromDefault {
			t.Errorf("%s: origin %v, want default", k.Name, o)
		}
	}
}

func TestLoadLayers(t *testing.T) {
	file := writeFile(t, `# test config
moco:
  k: 8192
  tau: 0.1
optim:
  lr: 0.06
  milestones: [30, 40]
data:
  kind: cifar10
`)
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		check  func(c *Config) bool
		key    string
		origin Origin
	}{
		{name: "file overrides default", key: "moco.k",
			check:  func(c *Config) bool { return c.MoCo.K == 8192 },
			origin: Origin{FromFile, file + ":3"}},
		{name: "file list", key: "optim.milestones",
			check:  func(c *Config) bool { return reflect.DeepEqual(c.Optim.Milestones, []int{30, 40}) },
			origin: Origin{FromFile, file + ":7"}},
		{name: "untouched key stays default", key: "moco.m",
			check:  func(c *Config) bool { return c.MoCo.M == 0.99 },
			origin: Origin{Source: FromDefault}},
		{name: "env overrides file", key: "moco.k",
			env:    map[string]string{"MOCHI_MOCO_K": "1024"},
			check:  func(c *Config) bool { return c.MoCo.K == 1024 },
			origin: Origin{FromEnv, "MOCHI_MOCO_K"}},
		{name: "env overrides default", key: "mochi.grad_through_hprime",
			env:    map[string]string{"MOCHI_MOCHI_GRAD_THROUGH_HPRIME": "true"},
			check:  func(c *Config) bool { return c.MoCHi.GradThroughHPrime },
			origin: Origin{FromEnv, "MOCHI_MOCHI_GRAD_THROUGH_HPRIME"}},
		{name: "env list", key: "eval.linear_milestones",
			env:    map[string]string{"MOCHI_EVAL_LINEAR_MILESTONES": "10, 20"},
			check:  func(c *Config) bool { return reflect.DeepEqual(c.Eval.LinearMilestones, []int{10, 20}) },
			origin: Origin{FromEnv, "MOCHI_EVAL_LINEAR_MILESTONES"}},
		{name: "empty env is unset", key: "optim.lr",
			env:    map[string]string{"MOCHI_OPTIM_LR": ""},
			check:  func(c *Config) bool { return c.Optim.LR == 0.06 },
			origin: Origin{FromFile, file + ":6"}},
		{name: "flag overrides env", key: "optim.lr",
			env:    map[string]string{"MOCHI_OPTIM_LR": "0.5"},
			args:   []string{"--lr", "0.12"},
			check:  func(c *Config) bool { return c.Optim.LR == 0.12 },
			origin: Origin{FromFlag, "--lr"}},
		{name: "set flag overrides env", key: "moco.tau",
			env:    map[string]string{"MOCHI_MOCO_TAU": "0.3"},
			args:   []string{"--set", "moco.tau=0.07"},
			check:  func(c *Config) bool { return c.MoCo.Tau == 0.07 },
			origin: Origin{FromFlag, "--set moco.tau"}},
		{name: "later set wins", key: "mochi.s",
			args:   []string{"--set", "mochi.s=5", "--set", "mochi.s=7"},
			check:  func(c *Config) bool { return c.MoCHi.S == 7 },
			origin: Origin{FromFlag, "--set mochi.s"}},
		{name: "string flag", key: "data.kind",
			args:   []string{"--set", "data.kind=mnist"},
			check:  func(c *Config) bool { return c.Data.Kind == "mnist" },
			origin: Origin{FromFlag, "--set data.kind"}},
		{name: "unset flag leaves file", key: "moco.k",
			args:   []string{"--lr", "0.1"},
			check:  func(c *Config) bool { return c.MoCo.K == 8192 },
			origin: Origin{FromFile, file + ":3"}},
		{name: "int64 seed from flag", key: "run.seed",
			args:   []string{"--seed", "-9000000000"},
			check:  func(c *Config) bool { return c.Run.Seed == -9000000000 },
			origin: Origin{FromFlag, "--seed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, p, err := Load(file, flags(t, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("value of %s wrong: config %+v", tt.key, *c)
			}
			if got := p.Of(tt.key); got != tt.origin {
				t.Errorf("origin of %s = %v, want %v", tt.key, got, tt.origin)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		file string // "" loads no file
		env  map[string]string
		args []string
		want []string // substrings of the error
	}{
		{name: "unknown key", file: "moco:\n  kk: 5\n",
			want: []string{"run.yaml:2", "unknown key moco.kk", "did you mean moco.k?"}},
		{name: "key in wrong section", file: "model:\n  tau: 0.1\n",
			want: []string{"unknown key model.tau", "did you mean moco.tau?"}},
		{name: "key at top level", file: "lr: 0.1\n",
			want: []string{"run.yaml:1", "unknown key lr", "did you mean optim.lr?"}},
		{name: "misspelt key", file: "mochi:\n  mix_start_epoc: 3\n",
			want: []string{"unknown key mochi.mix_start_epoc", "did you mean mochi.mix_start_epoch?"}},
		{name: "upper case key", file: "moco:\n  K: 5\n",
			want: []string{"unknown key moco.K", "did you mean moco.k?"}},
		{name: "unknown section", file: "optimizer:\n  lr: 1\n",
			want: []string{"unknown key optimizer"}},
		{name: "section given a value", file: "moco: 5\n",
			want: []string{"run.yaml:1", "moco is a section"}},
		{name: "key given a mapping", file: "moco:\n  k:\n    a: 1\n",
			want: []string{"run.yaml:2", "moco.k takes a value (integer)"}},
		{name: "key without value", file: "moco:\n  k:\n",
			want: []string{"run.yaml:2", "moco.k has no value", "default 4096"}},
		{name: "duplicate key", file: "moco:\n  k: 1\n  k: 2\n",
			want: []string{"run.yaml:3", "moco.k appears twice (first at line 2)"}},
		{name: "duplicate section", file: "moco:\n  k: 1\nmoco:\n  m: 0.5\n",
			want: []string{"run.yaml:3", "section moco appears twice"}},
		{name: "top level list", file: "- 1\n- 2\n",
			want: []string{"top level must be a mapping"}},
		{name: "bad yaml", file: "moco:\n  k: [1\n",
			want: []string{"run.yaml is not valid YAML"}},
		{name: "int from word", file: "moco:\n  k: abc\n",
			want: []string{"moco.k", "run.yaml:2", `"abc" is not an integer`}},
		{name: "int from fraction", file: "moco:\n  k: 0.5\n",
			want: []string{"moco.k", "0.5 is not an integer"}},
		{name: "int from bool", file: "optim:\n  batch: true\n",
			want: []string{"optim.batch", "is not an integer"}},
		{name: "number from word", env: map[string]string{"MOCHI_OPTIM_LR": "fast"},
			want: []string{"optim.lr (from env MOCHI_OPTIM_LR)", `"fast" is not a number`}},
		{name: "bool from word", file: "mochi:\n  class_oracle: maybe\n",
			want: []string{"mochi.class_oracle", "is not a bool"}},
		{name: "list from word", args: []string{"--set", "optim.milestones=a,b"},
			want: []string{"optim.milestones (from flag --set optim.milestones)", "item 0", `"a" is not an integer`}},
		{name: "list from scalar", file: "optim:\n  milestones: 5\n",
			want: []string{"optim.milestones", "not a list of integers"}},
		{name: "int flag from word", args: []string{"--batch", "many"},
			want: []string{"optim.batch (from flag --batch)", `"many" is not an integer`}},
		{name: "unknown env key", env: map[string]string{"MOCHI_MOCO_KK": "5"},
			want: []string{"MOCHI_MOCO_KK names no config key", "did you mean MOCHI_MOCO_K?"}},
		{name: "unknown set key", args: []string{"--set", "moco.kk=5"},
			want: []string{"--set: unknown key moco.kk", "did you mean moco.k?"}},
		{name: "set without value", args: []string{"--set", "moco.k"},
			want: []string{`--set "moco.k": write key=value`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			path := ""
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			_, _, err := Load(path, flags(t, tt.args...))
			if err == nil {
				t.Fatalf("Load succeeded, want an error containing %q", tt.want)
			}
			testenv.Contains(t, "error", err.Error(), tt.want...)
		})
	}
}

func TestLoadIgnoresOtherMochiEnv(t *testing.T) {
	t.Setenv("MOCHI_SETUP_TORCH", "1")
	if _, _, err := Load("", nil); err != nil {
		t.Fatalf("MOCHI_SETUP_TORCH is not a config variable and must not fail Load: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, _, err := Load(path, nil)
	if err == nil || !strings.Contains(err.Error(), "config file "+path+" does not exist") {
		t.Fatalf("Load(missing) error = %v, want one naming %s", err, path)
	}
}

func TestLoadEmptyFile(t *testing.T) {
	c, p, err := Load(writeFile(t, "# nothing but a comment\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*c, Default()) || p.Of("moco.k").Source != FromDefault {
		t.Fatalf("an empty file must give the defaults, got %+v", *c)
	}
}

func TestValidateRules(t *testing.T) {
	tests := []struct {
		key    string
		mutate func(c *Config)
		rule   string // substring of the rule
	}{
		{"model.backbone", func(c *Config) { c.Model.Backbone = "vgg16" }, "one of resnet18, resnet34, resnet50"},
		{"model.stem", func(c *Config) { c.Model.Stem = "tiny" }, "one of cifar, imagenet"},
		{"model.width", func(c *Config) { c.Model.Width = 0 }, "≥ 1"},
		{"model.embed_dim", func(c *Config) { c.Model.EmbedDim = 0 }, "≥ 1"},
		{"model.mlp_hidden", func(c *Config) { c.Model.MLPHidden = -1 }, "≥ 0"},
		{"model.bn_splits", func(c *Config) { c.Model.BNSplits = 0 }, "≥ 1"},
		{"model.bn_splits", func(c *Config) { c.Model.BNSplits = 6 }, "must divide optim.batch (256)"},
		{"model.bn_splits", func(c *Config) { c.Model.BNSplits = 256 }, "≥ 2 images per BatchNorm group"},
		{"model.shuffle_bn", func(c *Config) { c.Model.ShuffleBN = "global" }, "one of ranks, split"},
		{"moco.k", func(c *Config) { c.MoCo.K = 128; c.MoCHi.N = 64 }, "≥ optim.batch (256)"},
		{"moco.k", func(c *Config) { c.MoCo.Symmetric = true; c.MoCo.K = 300; c.MoCHi.N = 64 }, "≥ 2·optim.batch (512)"},
		{"moco.m", func(c *Config) { c.MoCo.M = 1 }, "[0, 1)"},
		{"moco.m", func(c *Config) { c.MoCo.M = -0.1 }, "[0, 1)"},
		{"moco.tau", func(c *Config) { c.MoCo.Tau = 0 }, "> 0"},
		{"mochi.n", func(c *Config) { c.MoCHi.N = 4097 }, "≤ moco.k (4096)"},
		{"mochi.n", func(c *Config) { c.MoCHi.N = 0 }, "≥ 1 when mochi.s or mochi.s_prime"},
		{"mochi.n", func(c *Config) { c.MoCHi.N = -1; c.MoCHi.S, c.MoCHi.SPrime = 0, 0 }, "≥ 0"},
		{"mochi.s", func(c *Config) { c.MoCHi.S = -1 }, "≥ 0"},
		{"mochi.s_prime", func(c *Config) { c.MoCHi.SPrime = -1 }, "≥ 0"},
		{"mochi.mix_start_epoch", func(c *Config) { c.MoCHi.MixStartEpoch = -1 }, "≥ 0"},
		{"mochi.mix_start_epoch", func(c *Config) { c.MoCHi.MixStartEpoch = 200 }, "< optim.epochs (200)"},
		{"optim.lr", func(c *Config) { c.Optim.LR = 0 }, "> 0"},
		{"optim.momentum", func(c *Config) { c.Optim.Momentum = 1 }, "[0, 1)"},
		{"optim.weight_decay", func(c *Config) { c.Optim.WeightDecay = -1e-4 }, "≥ 0"},
		{"optim.schedule", func(c *Config) { c.Optim.Schedule = "linear" }, "one of cosine, step"},
		{"optim.milestones", func(c *Config) { c.Optim.Milestones = []int{160, 120} }, "increase"},
		{"optim.milestones", func(c *Config) { c.Optim.Milestones = []int{0, 120} }, "≥ 1"},
		{"optim.milestones", func(c *Config) { c.Optim.Schedule = "step"; c.Optim.Milestones = []int{120, 200} }, "< optim.epochs (200)"},
		{"optim.milestones", func(c *Config) { c.Optim.Schedule = "step"; c.Optim.Milestones = nil }, "at least one epoch"},
		{"optim.warmup_epochs", func(c *Config) { c.Optim.WarmupEpochs = 200 }, "[0, optim.epochs)"},
		{"optim.warmup_epochs", func(c *Config) { c.Optim.WarmupEpochs = -1 }, "[0, optim.epochs)"},
		{"optim.batch", func(c *Config) { c.Optim.Batch = 1; c.Model.BNSplits = 1 }, "≥ 2"},
		{"optim.epochs", func(c *Config) { c.Optim.Epochs = 0; c.MoCHi.S, c.MoCHi.SPrime = 0, 0 }, "≥ 1"},
		{"data.kind", func(c *Config) { c.Data.Kind = "svhn" }, "one of mnist, fashion-mnist, cifar10, cifar100, imagefolder"},
		{"data.path", func(c *Config) { c.Data.Path = "" }, "must name the dataset directory"},
		{"data.train_split", func(c *Config) { c.Data.TrainSplit = "" }, "one of train, test"},
		{"data.test_split", func(c *Config) { c.Data.TestSplit = "val" }, "one of train, test"},
		{"data.image_size", func(c *Config) { c.Data.ImageSize = -1 }, "≥ 0"},
		{"data.image_size", func(c *Config) { c.Data.Kind = "imagefolder" }, "> 0 for imagefolder"},
		{"data.limit", func(c *Config) { c.Data.Limit = -1 }, "≥ 0"},
		{"data.limit", func(c *Config) { c.Data.Limit = 100 }, "≥ optim.batch (256)"},
		{"data.workers", func(c *Config) { c.Data.Workers = -1 }, "≥ 0"},
		{"data.prefetch", func(c *Config) { c.Data.Prefetch = 0 }, "≥ 1"},
		{"augment.crop_scale_min", func(c *Config) { c.Augment.CropScaleMin = 0 }, "(0, augment.crop_scale_max]"},
		{"augment.crop_scale_min", func(c *Config) { c.Augment.CropScaleMin = 0.9; c.Augment.CropScaleMax = 0.5 }, "(0, augment.crop_scale_max] = (0, 0.5]"},
		{"augment.crop_scale_max", func(c *Config) { c.Augment.CropScaleMax = 1.5 }, "(0, 1]"},
		{"augment.brightness", func(c *Config) { c.Augment.Brightness = -0.1 }, "≥ 0"},
		{"augment.contrast", func(c *Config) { c.Augment.Contrast = -0.1 }, "≥ 0"},
		{"augment.saturation", func(c *Config) { c.Augment.Saturation = -0.1 }, "≥ 0"},
		{"augment.hue", func(c *Config) { c.Augment.Hue = 0.6 }, "[0, 0.5]"},
		{"augment.jitter_prob", func(c *Config) { c.Augment.JitterProb = 1.2 }, "probability in [0, 1]"},
		{"augment.gray_prob", func(c *Config) { c.Augment.GrayProb = -0.2 }, "probability"},
		{"augment.blur_prob", func(c *Config) { c.Augment.BlurProb = 2 }, "probability"},
		{"augment.flip_prob", func(c *Config) { c.Augment.FlipProb = -1 }, "probability"},
		{"augment.blur_sigma_min", func(c *Config) { c.Augment.BlurSigmaMin = 0 }, "(0, augment.blur_sigma_max]"},
		{"augment.blur_sigma_min", func(c *Config) { c.Augment.BlurSigmaMin = 3 }, "(0, augment.blur_sigma_max] = (0, 2]"},
		{"eval.knn_every", func(c *Config) { c.Eval.KNNEvery = -1 }, "≥ 0"},
		{"eval.knn_k", func(c *Config) { c.Eval.KNNK = 0 }, "≥ 1"},
		{"eval.knn_t", func(c *Config) { c.Eval.KNNT = 0 }, "> 0"},
		{"eval.linear_lr", func(c *Config) { c.Eval.LinearLR = -30 }, "> 0"},
		{"eval.linear_epochs", func(c *Config) { c.Eval.LinearEpochs = 0; c.Eval.LinearMilestones = nil }, "≥ 1"},
		{"eval.linear_milestones", func(c *Config) { c.Eval.LinearMilestones = []int{60, 100} }, "< eval.linear_epochs (100)"},
		{"eval.linear_batch", func(c *Config) { c.Eval.LinearBatch = 0 }, "≥ 1"},
		{"eval.linear_weight_decay", func(c *Config) { c.Eval.LinearWeightDecay = -1 }, "≥ 0"},
		{"run.device", func(c *Config) { c.Run.Device = "tpu" }, "one of cpu, cuda"},
		{"run.output_dir", func(c *Config) { c.Run.OutputDir = "" }, "run directory"},
		{"run.checkpoint_every", func(c *Config) { c.Run.CheckpointEvery = -1 }, "≥ 0"},
		{"run.stats_every", func(c *Config) { c.Run.StatsEvery = -2 }, "≥ 0"},
		{"cpu.conv", func(c *Config) { c.CPU.Conv = "fft" }, "one of auto, winograd, direct, blas"},
	}
	for _, tt := range tests {
		t.Run(tt.key+" "+tt.rule, func(t *testing.T) {
			c := validData(t)
			tt.mutate(&c)
			err := c.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want a *ValidationError on %s", err, tt.key)
			}
			for _, p := range ve.Problems {
				if p.Key == tt.key && strings.Contains(p.Rule, tt.rule) {
					if !strings.Contains(err.Error(), tt.key+" = ") {
						t.Errorf("error text %q does not name %s", err, tt.key)
					}
					return
				}
			}
			t.Errorf("no problem on %s with rule %q; got %v", tt.key, tt.rule, ve.Problems)
		})
	}
}

func TestValidateAllowsWrapAroundQueue(t *testing.T) {
	c := validData(t)
	c.MoCo.K, c.MoCHi.N = 1000, 512 // K not a multiple of the batch 256: the queue write wraps
	if err := c.Validate(); err != nil {
		t.Fatalf("K not a multiple of the batch must be allowed (wrap-around writes): %v", err)
	}
}

func TestValidatePlainMoCo(t *testing.T) {
	c := validData(t)
	c.MoCHi.S, c.MoCHi.SPrime, c.MoCHi.N = 0, 0, 0
	c.MoCHi.MixStartEpoch = 1000
	if err := c.Validate(); err != nil {
		t.Fatalf("s = s′ = 0 is plain MoCo-v2 and ignores N and mix_start_epoch: %v", err)
	}
}

func TestCheckData(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want string // "" = no error
	}{
		{dir, ""},
		{filepath.Join(dir, "absent"), "directory not found"},
		{file, "not a directory"},
	}
	for _, tt := range tests {
		c := Default()
		c.Data.Path = tt.path
		err := c.CheckData()
		if tt.want == "" {
			if err != nil {
				t.Errorf("CheckData(%s) = %v, want nil", tt.path, err)
			}
			continue
		}
		var md *MissingDataError
		if !errors.As(err, &md) || !strings.Contains(err.Error(), "data.path = "+tt.path) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckData(%s) = %v, want a *MissingDataError naming data.path and %q", tt.path, err, tt.want)
		}
		if verr := c.Validate(); !errors.As(verr, &md) {
			t.Errorf("Validate() = %v, want it to include the missing data", verr)
		}
	}
}

func TestWriteYAMLRoundTrip(t *testing.T) {
	t.Setenv("MOCHI_MOCO_TAU", "0.15")
	file := writeFile(t, "moco:\n  k: 1000\ndata:\n  path: \"a path #with: odd chars\"\n  kind: \"cifar10\"\n")
	c, p, err := Load(file, flags(t, "--set", "optim.milestones=5,9", "--seed", "7", "--set", "run.output_dir=123"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.WriteYAML(&buf, p); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"k: 1000", "# file " + file + ":2",
		"tau: 0.15", "# env MOCHI_MOCO_TAU",
		"milestones: [5, 9]", "# flag --set optim.milestones",
		"seed: 7", "# flag --seed",
		"m: 0.99", "# default",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("printed config lacks %q:\n%s", want, out)
		}
	}
	// The printed file must load back to the same config.
	back, _, err := Load(writeFile(t, out), nil)
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", *back, *c)
	}
}

func TestWriteReference(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteReference(&buf); err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		row := "| `" + k.Name + "` | `" + k.Env + "` |"
		if !strings.Contains(buf.String(), row) {
			t.Errorf("reference lacks the row of %s", k.Name)
		}
		if k.Help == "" {
			t.Errorf("%s has no help text", k.Name)
		}
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct{ in, want string }{
		{"moco.kk", "moco.k"},
		{"k", "moco.k"},
		{"mochi.sprime", "mochi.s_prime"},
		{"optim.weightdecay", "optim.weight_decay"},
		{"moco.taus", "moco.tau"},
		{"completely.unrelated_thing", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("mochi.s_prime"); got != "MOCHI_MOCHI_S_PRIME" {
		t.Fatalf("EnvName(mochi.s_prime) = %s", got)
	}
}

func TestDerivedValues(t *testing.T) {
	c := Default()
	c.Optim.LR, c.Optim.Batch = 0.03, 512
	if got := c.EffectiveLR(); got != 0.06 {
		t.Errorf("EffectiveLR() = %v, want 0.03·512/256 = 0.06", got)
	}
	if c.KeysPerStep() != 512 {
		t.Errorf("KeysPerStep() = %d, want the batch 512", c.KeysPerStep())
	}
	c.MoCo.Symmetric = true
	if c.KeysPerStep() != 1024 {
		t.Errorf("KeysPerStep() with symmetric = %d, want 1024", c.KeysPerStep())
	}
	if !c.Mixing() {
		t.Error("default MoCHi(1024, 1024, 128) must mix")
	}
	c.MoCHi.S, c.MoCHi.SPrime = 0, 0
	if c.Mixing() {
		t.Error("s = s′ = 0 must not mix")
	}
}

// TestConfigFiles loads and validates every file in configs/. A dataset that is
// not on this machine is reported, not failed: every other rule is still checked.
func TestConfigFiles(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found %d config files in configs/, want at least 5", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, p, err := Load(f, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.CheckValues(); err != nil {
				t.Fatal(err)
			}
			if p.Of("data.kind").Source != FromFile {
				t.Errorf("%s does not set data.kind", f)
			}
			src := testenv.ReadFile(t, f)
			if !strings.HasPrefix(string(src), "#") {
				t.Errorf("%s does not start with a comment saying what it is for", f)
			}
			if err := c.CheckData(); err != nil {
				var md *MissingDataError
				if !errors.As(err, &md) {
					t.Fatal(err)
				}
				if c.Data.Kind == "fashion-mnist" && dirExists("/usr/share/datasets/fashion-mnist") {
					t.Fatalf("Fashion-MNIST is installed but %s does not find it: %v", f, err)
				}
				t.Logf("dataset not on this machine (values checked): %v", err)
			}
		})
	}
}

func dirExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// TestParseSavedIgnoresEnv checks that a config saved by a run reads back
// as saved: a MOCHI_* variable set for the new invocation must not leak
// into it, or a resume check would compare the new value with itself.
func TestParseSavedIgnoresEnv(t *testing.T) {
	t.Setenv("MOCHI_OPTIM_LR", "0.5")
	t.Setenv("MOCHI_MODEL_WIDTH", "16")
	cfg, err := ParseSaved("saved", []byte("optim:\n  lr: 0.03\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Optim.LR != 0.03 || cfg.Model.Width != Default().Model.Width {
		t.Errorf("ParseSaved with MOCHI_OPTIM_LR=0.5, MOCHI_MODEL_WIDTH=16: lr %v, width %d; want the saved 0.03 and the default %d",
			cfg.Optim.LR, cfg.Model.Width, Default().Model.Width)
	}
}
