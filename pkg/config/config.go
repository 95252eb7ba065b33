package config

// Config is the whole configuration of a mochi run. Each field carries its key
// (the `key` tag, joined to the section's key with a dot) and the one-line help
// shown by `mochi config --reference` and in the README (the `help` tag).
type Config struct {
	// Model is the encoder: backbone, stem, width and projection head.
	Model Model `key:"model"`
	// MoCo holds the MoCo-v2 contrastive settings: queue, momentum, temperature.
	MoCo MoCo `key:"moco"`
	// MoCHi holds the hard negative mixing settings MoCHi(N, s, s′).
	MoCHi MoCHi `key:"mochi"`
	// Optim holds the SGD optimiser, the learning-rate schedule, batch and epochs.
	Optim Optim `key:"optim"`
	// Data names the dataset and how it is read.
	Data Data `key:"data"`
	// Augment holds the MoCo-v2 augmentation parameters.
	Augment Augment `key:"augment"`
	// Eval holds the kNN monitor and the linear evaluation settings.
	Eval Eval `key:"eval"`
	// Run holds the seed, the device and the output directory.
	Run Run `key:"run"`
	// CPU holds settings of the CPU backend.
	CPU CPU `key:"cpu"`
}

// Model configures the encoder f: a ResNet backbone followed by the MoCo-v2 MLP
// projection head (feature → hidden → ReLU → embedding).
type Model struct {
	// Backbone is the ResNet depth: resnet18, resnet34 or resnet50.
	Backbone string `key:"backbone" help:"ResNet backbone: resnet18, resnet34 or resnet50"`
	// Stem is the first layer: cifar (3×3 stride 1, no max-pool) or imagenet (7×7 stride 2 + max-pool).
	Stem string `key:"stem" help:"first layer: cifar (3×3 conv stride 1, no max-pool; for 28×28/32×32) or imagenet (7×7 stride 2 + max-pool)"`
	// Width is the channel count of the first stage; 64 is the standard ResNet.
	Width int `key:"width" help:"channels of the first stage (64 = standard ResNet; smaller is a narrow ResNet for the CPU)"`
	// EmbedDim is D, the dimension of the L2-normalised embeddings q, k and the queue.
	EmbedDim int `key:"embed_dim" help:"D, dimension of the normalised embeddings q, k and of the queue entries"`
	// MLPHidden is the hidden width of the projection head; 0 means the backbone's feature dimension.
	MLPHidden int `key:"mlp_hidden" help:"hidden width of the MLP head; 0 = the backbone's feature dimension (MoCo-v2: 2048 for ResNet-50)"`
	// BNSplits is the number of split-BatchNorm groups the batch is cut into.
	BNSplits int `key:"bn_splits" help:"split-BN groups: BatchNorm statistics per group of batch/bn_splits images, the one-device stand-in for ShuffleBN (1 = plain BN)"`
	// ShuffleBN says which keys a run on several processes normalises together.
	ShuffleBN string `key:"shuffle_bn" help:"ShuffleBN on several processes: ranks = the key batch shuffled across all processes (MoCo's distributed code), split = each process shuffles its own slice; one process: the same"`
}

// MoCo configures the MoCo-v2 contrastive task: a queue of K negatives, a key
// encoder updated as θ_k ← m·θ_k + (1−m)·θ_q, and InfoNCE at temperature τ.
type MoCo struct {
	// K is the queue size, the number of negatives per query.
	K int `key:"k" help:"K, queue size (negatives per query); the batch's keys are written at the pointer, wrapping around the end when K is not a multiple of the batch"`
	// M is the key-encoder momentum m.
	M float64 `key:"m" help:"m, key encoder momentum: θ_k ← m·θ_k + (1−m)·θ_q (0.999 ImageNet, 0.99 small data)"`
	// Tau is the InfoNCE temperature τ.
	Tau float64 `key:"tau" help:"τ, InfoNCE temperature: logits are q·k/τ (0.2 MoCo-v2)"`
	// Symmetric turns on the symmetrised loss: both views serve as query and key.
	Symmetric bool `key:"symmetric" help:"symmetric loss: each view is query once and key once (2·batch keys enqueued per step)"`
}

// MoCHi configures hard negative mixing. With s = s′ = 0 training is plain MoCo-v2.
type MoCHi struct {
	// N is the number of hardest queue entries per query that mixing draws from.
	N int `key:"n" help:"N, the hardest queue entries per query (highest q·n) that mixing draws from"`
	// S is the number of negative–negative mixes h per query.
	S int `key:"s" help:"s, synthetic negatives per query mixed from two hard negatives: h = normalize(α·n_i + (1−α)·n_j), α ~ U(0,1); 0 = off"`
	// SPrime is the number of query–negative mixes h′ per query.
	SPrime int `key:"s_prime" help:"s′, synthetic negatives per query mixed with the query: h′ = normalize(β·q + (1−β)·n_j), β ~ U(0,0.5); 0 = off"`
	// MixStartEpoch is the first epoch (counted from 0) with mixing; earlier epochs are plain MoCo-v2.
	MixStartEpoch int `key:"mix_start_epoch" help:"first epoch (counted from 0) that mixes; earlier epochs are plain MoCo-v2 (paper: 10 on ImageNet-100, 15 on ImageNet-1K)"`
	// GradThroughHPrime lets the gradient reach q through the copy of q inside h′.
	GradThroughHPrime bool `key:"grad_through_hprime" help:"let the gradient flow through the copy of q inside h′ (paper: off, h and h′ are constants)"`
	// ClassOracle removes queue entries of the query's class before mixing (analysis only).
	ClassOracle bool `key:"class_oracle" help:"analysis: drop queue entries of the query's own class (uses labels; upper bound on false-negative removal)"`
}

// Optim configures SGD and the learning-rate schedule.
type Optim struct {
	// LR is the base learning rate for a batch of 256; see Config.EffectiveLR.
	LR float64 `key:"lr" help:"base learning rate for batch 256; the run uses lr·batch/256 (MoCo-v2: 0.03)"`
	// Momentum is the SGD momentum.
	Momentum float64 `key:"momentum" help:"SGD momentum"`
	// WeightDecay is the L2 weight decay applied to the weights (not the velocity).
	WeightDecay float64 `key:"weight_decay" help:"weight decay (1e-4 ImageNet, 5e-4 CIFAR)"`
	// Nesterov selects Nesterov momentum.
	Nesterov bool `key:"nesterov" help:"Nesterov momentum"`
	// Schedule is the learning-rate schedule: cosine or step.
	Schedule string `key:"schedule" help:"learning-rate schedule: cosine (to 0 at the last epoch) or step (×0.1 at each milestone)"`
	// Milestones are the epochs where the step schedule multiplies the rate by 0.1.
	Milestones []int `key:"milestones" help:"epochs where the step schedule multiplies lr by 0.1 (ignored by cosine)"`
	// WarmupEpochs is the number of epochs of linear warm-up from 0 to the rate.
	WarmupEpochs int `key:"warmup_epochs" help:"epochs of linear lr warm-up before the schedule (0 = none)"`
	// Batch is the number of images per step; each image gives two views.
	Batch int `key:"batch" help:"images per step (each gives two views); the last partial batch of an epoch is dropped"`
	// Epochs is the number of passes over the training set.
	Epochs int `key:"epochs" help:"passes over the training set"`
}

// Data names the dataset. Paths are relative to the working directory.
type Data struct {
	// Kind is the dataset format: mnist, fashion-mnist, cifar10, cifar100 or imagefolder.
	Kind string `key:"kind" help:"dataset format: mnist, fashion-mnist (idx files), cifar10, cifar100 (binary batches), imagefolder (class sub-folders of PNG/JPEG)"`
	// Path is the directory holding the dataset files.
	Path string `key:"path" help:"directory holding the dataset (relative paths start at the working directory)"`
	// TrainSplit names the split used for pretraining and for fitting the linear probe.
	TrainSplit string `key:"train_split" help:"split used for pretraining, the kNN bank and linear-probe training: train or test (an imagefolder's sub-folder of that name)"`
	// TestSplit names the split used for the kNN monitor and the linear evaluation.
	TestSplit string `key:"test_split" help:"split used to report kNN and linear accuracy: train or test"`
	// ImageSize is the side of the square images fed to the network; 0 keeps the dataset's size.
	ImageSize int `key:"image_size" help:"side of the square crops fed to the network; 0 = the dataset's own size (required for imagefolder)"`
	// Limit keeps only the first Limit images of each split; 0 keeps all.
	Limit int `key:"limit" help:"use only the first n images of each split (0 = all)"`
	// Workers is the number of augmentation goroutines; 0 means one per CPU core.
	Workers int `key:"workers" help:"augmentation goroutines (0 = one per CPU core); results do not depend on it"`
	// Prefetch is the number of batches prepared ahead of the trainer.
	Prefetch int `key:"prefetch" help:"batches prepared ahead of the trainer"`
	// SkipCorrupt skips ImageFolder images that cannot be decoded.
	SkipCorrupt bool `key:"skip_corrupt" help:"imagefolder: skip images that cannot be decoded (counted and reported at each epoch's end; evaluation and the kNN monitor leave them out) instead of stopping"`
}

// Augment holds the MoCo-v2 augmentation parameters, applied independently to
// each of the two views. RandomResizedCrop's aspect ratio is torchvision's
// fixed 3/4–4/3.
type Augment struct {
	// CropScaleMin is the smallest crop area as a fraction of the image.
	CropScaleMin float64 `key:"crop_scale_min" help:"RandomResizedCrop: smallest crop area as a fraction of the image"`
	// CropScaleMax is the largest crop area as a fraction of the image.
	CropScaleMax float64 `key:"crop_scale_max" help:"RandomResizedCrop: largest crop area as a fraction of the image"`
	// Brightness is the ColorJitter brightness strength.
	Brightness float64 `key:"brightness" help:"ColorJitter brightness: factor drawn from [1−b, 1+b]"`
	// Contrast is the ColorJitter contrast strength.
	Contrast float64 `key:"contrast" help:"ColorJitter contrast: factor drawn from [1−c, 1+c]"`
	// Saturation is the ColorJitter saturation strength.
	Saturation float64 `key:"saturation" help:"ColorJitter saturation: factor drawn from [1−s, 1+s] (no effect on grayscale)"`
	// Hue is the ColorJitter hue shift, at most 0.5.
	Hue float64 `key:"hue" help:"ColorJitter hue: shift drawn from [−h, h] of a full turn, h ≤ 0.5 (no effect on grayscale)"`
	// JitterProb is the probability of applying ColorJitter.
	JitterProb float64 `key:"jitter_prob" help:"probability of ColorJitter"`
	// GrayProb is the probability of converting the view to grayscale.
	GrayProb float64 `key:"gray_prob" help:"probability of RandomGrayscale"`
	// BlurProb is the probability of applying Gaussian blur.
	BlurProb float64 `key:"blur_prob" help:"probability of GaussianBlur"`
	// BlurSigmaMin is the smallest blur σ in pixels.
	BlurSigmaMin float64 `key:"blur_sigma_min" help:"GaussianBlur: smallest σ (pixels)"`
	// BlurSigmaMax is the largest blur σ in pixels.
	BlurSigmaMax float64 `key:"blur_sigma_max" help:"GaussianBlur: largest σ (pixels)"`
	// FlipProb is the probability of a horizontal flip.
	FlipProb float64 `key:"flip_prob" help:"probability of a horizontal flip"`
}

// Eval configures the kNN monitor during pretraining and the linear evaluation.
type Eval struct {
	// KNNEvery runs the kNN monitor every KNNEvery epochs; 0 turns it off.
	KNNEvery int `key:"knn_every" help:"run the weighted kNN monitor every n epochs (0 = off)"`
	// KNNK is the number of neighbours k of the weighted kNN classifier.
	KNNK int `key:"knn_k" help:"neighbours of the weighted kNN classifier"`
	// KNNT is the temperature t of the kNN weights exp(sim/t).
	KNNT float64 `key:"knn_t" help:"temperature t of the kNN weights exp(similarity/t)"`
	// LinearLR is the linear-probe learning rate, used as given (not scaled by batch).
	LinearLR float64 `key:"linear_lr" help:"linear probe learning rate, used as given (MoCo: 30)"`
	// LinearEpochs is the number of linear-probe epochs.
	LinearEpochs int `key:"linear_epochs" help:"linear probe epochs"`
	// LinearMilestones are the epochs where the linear-probe rate is multiplied by 0.1.
	LinearMilestones []int `key:"linear_milestones" help:"epochs where the linear probe lr is multiplied by 0.1"`
	// LinearBatch is the linear-probe batch size.
	LinearBatch int `key:"linear_batch" help:"linear probe batch size"`
	// LinearWeightDecay is the linear-probe weight decay.
	LinearWeightDecay float64 `key:"linear_weight_decay" help:"linear probe weight decay (MoCo: 0)"`
}

// Run holds what is not a hyper-parameter of the method: seed, device, outputs.
type Run struct {
	// Seed seeds every random choice: initialisation, shuffling, augmentation and mixing.
	Seed int64 `key:"seed" help:"seed of every random choice (weights, shuffling, augmentation, mixing): same seed, same run"`
	// Device is where the model runs: cpu or cuda.
	Device string `key:"device" help:"cpu, or cuda (needs the GPU build of mochi)"`
	// OutputDir is the run directory for checkpoints, logs and metrics.
	OutputDir string `key:"output_dir" help:"run directory: checkpoints, logs, metrics"`
	// CheckpointEvery writes a checkpoint every CheckpointEvery epochs; 0 writes only the last.
	CheckpointEvery int `key:"checkpoint_every" help:"write a checkpoint every n epochs (0 = only at the end)"`
	// StatsEvery computes the per-step similarity and hardness statistics
	// every StatsEvery global steps and on each epoch's last step; 0 never.
	// They read all B×K similarities on the host, a cost comparable to a
	// whole step at ImageNet scale.
	StatsEvery int `key:"stats_every" help:"similarity/hardness statistics in metrics.jsonl every n steps and on each epoch's last step (0 = never; they read all batch×K similarities on the host)"`
	// TF32 runs the convolutions on TensorFloat-32 tensor cores (cuda only).
	TF32 bool `key:"tf32" help:"cuda: convolutions on TensorFloat-32 tensor cores (10-bit mantissa inputs, fp32 sums; PyTorch's default for convolutions); false = fp32 throughout"`
}

// CPU configures the CPU backend (run.device cpu).
type CPU struct {
	// Conv selects the convolution kernels: oneDNN's (auto, winograd,
	// direct) or im2col + BLAS (package device/cpu's ConvMode).
	Conv string `key:"conv" help:"CPU convolution kernels: auto (the default: the fastest kernels measured against PyTorch, mochi's Winograd F(4×4, 3×3) for 3×3 stride 1 from 64 channels and oneDNN's direct kernels elsewhere; blas in the purego build), direct (oneDNN's direct kernels), winograd (Winograd F(4×4, 3×3) for 3×3 stride 1: oneDNN's on AVX-512 CPUs, else mochi's own from 64 channels; direct elsewhere) or blas (im2col + BLAS, the reference); the purego build has only auto and blas"`
}

// Default returns the documented defaults: the MoCo-v2 recipe at small-data
// scale (ResNet-18 with the CIFAR stem, K = 4096, m = 0.99) on Fashion-MNIST
// from Debian's dataset-fashion-mnist package, with MoCHi(1024, 1024, 128) from
// epoch 10, the paper's ImageNet-100 setting.
func Default() Config {
	return Config{
		Model: Model{
			Backbone:  "resnet18",
			Stem:      "cifar",
			Width:     64,
			EmbedDim:  128,
			MLPHidden: 0,
			BNSplits:  8,
			ShuffleBN: "ranks",
		},
		MoCo: MoCo{
			K:         4096,
			M:         0.99,
			Tau:       0.2,
			Symmetric: false,
		},
		MoCHi: MoCHi{
			N:                 1024,
			S:                 1024,
			SPrime:            128,
			MixStartEpoch:     10,
			GradThroughHPrime: false,
			ClassOracle:       false,
		},
		Optim: Optim{
			LR:           0.03,
			Momentum:     0.9,
			WeightDecay:  1e-4,
			Nesterov:     false,
			Schedule:     "cosine",
			Milestones:   []int{120, 160},
			WarmupEpochs: 0,
			Batch:        256,
			Epochs:       200,
		},
		Data: Data{
			Kind:       "fashion-mnist",
			Path:       "/usr/share/datasets/fashion-mnist",
			TrainSplit: "train",
			TestSplit:  "test",
			ImageSize:  0,
			Limit:      0,
			Workers:    0,
			Prefetch:   4,
		},
		Augment: Augment{
			CropScaleMin: 0.2,
			CropScaleMax: 1.0,
			Brightness:   0.4,
			Contrast:     0.4,
			Saturation:   0.4,
			Hue:          0.1,
			JitterProb:   0.8,
			GrayProb:     0.2,
			BlurProb:     0.5,
			BlurSigmaMin: 0.1,
			BlurSigmaMax: 2.0,
			FlipProb:     0.5,
		},
		Eval: Eval{
			KNNEvery:          10,
			KNNK:              200,
			KNNT:              0.1,
			LinearLR:          30,
			LinearEpochs:      100,
			LinearMilestones:  []int{60, 80},
			LinearBatch:       256,
			LinearWeightDecay: 0,
		},
		Run: Run{
			Seed:            1,
			Device:          "cpu",
			OutputDir:       "runs/mochi",
			CheckpointEvery: 10,
			StatsEvery:      1,
		},
		CPU: CPU{
			Conv: "auto",
		},
	}
}

// EffectiveLR is the learning rate the run uses: the base rate Optim.LR, given
// for a batch of 256, scaled linearly with the batch, lr·batch/256 (the MoCo-v2
// rule 0.03·batch/256; Goyal et al., arXiv 1706.02677).
func (c *Config) EffectiveLR() float64 {
	return c.Optim.LR * float64(c.Optim.Batch) / 256
}

// Mixing reports whether the config asks for MoCHi mixing at all (s + s′ > 0);
// otherwise training is plain MoCo-v2.
func (c *Config) Mixing() bool {
	return c.MoCHi.S+c.MoCHi.SPrime > 0
}

// KeysPerStep is the number of keys enqueued per step: the batch, twice the
// batch with the symmetric loss.
func (c *Config) KeysPerStep() int {
	if c.MoCo.Symmetric {
		return 2 * c.Optim.Batch
	}
	return c.Optim.Batch
}
