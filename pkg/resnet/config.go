package resnet

import (
	"fmt"

	"github.com/mochi-ssl/mochi/internal/enum"
)

// Stem selects the layers in front of the residual stages.
type Stem int

const (
	// ImageNetStem is 7×7 stride-2 convolution, BatchNorm, ReLU and a 3×3
	// stride-2 max-pool: a 224×224 input leaves the stem at 56×56.
	ImageNetStem Stem = iota
	// SmallStem is a 3×3 stride-1 convolution, BatchNorm and ReLU without
	// max-pool, for 32×32 and 28×28 images (MoCo's CIFAR demo).
	SmallStem
)

// String returns the stem's configuration name, "imagenet" or "small".
func (s Stem) String() string { return enum.Name(s, "imagenet", "small") }

// Config describes one network. The zero values of Width, InChannels,
// BNGroups, BNMomentum and BNEps mean torchvision's defaults (see
// WithDefaults).
type Config struct {
	Depth      int  // 18, 34 or 50
	Stem       Stem // ImageNetStem or SmallStem
	Width      int  // channels of the stem and the first stage; 64 in torchvision
	InChannels int  // 1 (grey) or 3 (RGB)
	BNGroups   int  // split-BN: the batch is normalised in this many groups

	// BNMomentum and BNEps are PyTorch's BatchNorm arguments (0.1, 1e-5).
	BNMomentum, BNEps float64

	// EmbedDim is D, the output of MoCo-v2's head (128); 0 builds the
	// backbone only (linear evaluation, feature extraction).
	EmbedDim int

	// Seed seeds the weight initialisation.
	Seed uint64

	// Prefix is put in front of every parameter's node name in the graph,
	// so that a second network in the same graph (MoCo's key encoder) gets
	// distinct nodes; Gorgonia merges input nodes with equal names and shapes.
	// Exported names (Params, Weights) never carry it.
	Prefix string
}

// WithDefaults returns c with torchvision's values in place of zeros.
func (c Config) WithDefaults() Config {
	if c.Width == 0 {
		c.Width = 64
	}
	if c.InChannels == 0 {
		c.InChannels = 3
	}
	if c.BNGroups == 0 {
		c.BNGroups = 1
	}
	if c.BNMomentum == 0 {
		c.BNMomentum = 0.1
	}
	if c.BNEps == 0 {
		c.BNEps = 1e-5
	}
	return c
}

// Validate reports the first setting the package cannot build.
func (c Config) Validate() error {
	if _, ok := stages[c.Depth]; !ok {
		return fmt.Errorf("resnet: depth %d is not supported; use 18, 34 or 50", c.Depth)
	}
	switch {
	case c.Stem != ImageNetStem && c.Stem != SmallStem:
		return fmt.Errorf("resnet: unknown stem %v; use imagenet or small", c.Stem)
	case c.Width <= 0:
		return fmt.Errorf("resnet: width %d must be positive (64 is torchvision's)", c.Width)
	case c.InChannels != 1 && c.InChannels != 3:
		return fmt.Errorf("resnet: %d input channels; use 1 (grey) or 3 (RGB)", c.InChannels)
	case c.BNGroups <= 0:
		return fmt.Errorf("resnet: %d BatchNorm groups must be ≥ 1", c.BNGroups)
	case c.EmbedDim < 0:
		return fmt.Errorf("resnet: embedding dimension %d must be ≥ 0", c.EmbedDim)
	}
	return nil
}

// stages lists, per depth, the number of blocks in each of the four stages
// and whether the blocks are bottlenecks (torchvision's resnet.py).
var stages = map[int]struct {
	blocks     [4]int
	bottleneck bool
}{
	18: {[4]int{2, 2, 2, 2}, false},
	34: {[4]int{3, 4, 6, 3}, false},
	50: {[4]int{3, 4, 6, 3}, true},
}

// expansion is the ratio of a block's output channels to its planes.
func expansion(bottleneck bool) int {
	if bottleneck {
		return 4
	}
	return 1
}

// FeatureDim is the width of the backbone's output: 8·Width·expansion
// (512 for ResNet-18/34, 2048 for ResNet-50 at Width 64).
func (c Config) FeatureDim() int {
	c = c.WithDefaults()
	return 8 * c.Width * expansion(stages[c.Depth].bottleneck)
}
