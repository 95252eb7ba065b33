package data

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Spec says which dataset to open and how.
type Spec struct {
	// Kind is one of "mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder".
	Kind string
	// Path is the folder that holds the dataset's files.
	Path string
	// Split is "train" or "test".
	Split string
	// ImageSize is the side every ImageFolder image is resized to; required for
	// "imagefolder", ignored for the fixed-size datasets.
	ImageSize int
	// Limit keeps only the first Limit images; 0 keeps all.
	Limit int
	// SkipCorrupt makes the loaders skip an ImageFolder image that cannot be
	// decoded (counted and reported) instead of failing.
	SkipCorrupt bool
}

// Dataset is a labelled set of images held as uint8 C×H×W arrays.
type Dataset interface {
	// Len is the number of images.
	Len() int
	// Channels is 1 for grayscale, 3 for RGB.
	Channels() int
	// Height is the image height in pixels.
	Height() int
	// Width is the image width in pixels.
	Width() int
	// NumClasses is the number of labels.
	NumClasses() int
	// Label is the class of image i, in [0, NumClasses).
	Label(i int) int
	// Pixels is image i as C×H×W uint8, channel planes one after the other.
	// The slice aliases the dataset's storage: read it, never write it.
	Pixels(i int) []uint8
	// Name names the dataset and split, e.g. "fashion-mnist/train".
	Name() string
}

// Errors returned by Open, wrapped with the file or folder concerned; test with
// errors.Is.
var (
	// ErrMissingFile: an expected file or folder does not exist.
	ErrMissingFile = errors.New("dataset file not found")
	// ErrTruncated: a file ends before the data its header or layout promises.
	ErrTruncated = errors.New("dataset file truncated")
	// ErrBadMagic: an idx file has the wrong magic number or shape.
	ErrBadMagic = errors.New("wrong magic number")
	// ErrCountMismatch: the image and label files hold different counts.
	ErrCountMismatch = errors.New("image and label counts differ")
	// ErrBadLabel: a label is outside the dataset's class range.
	ErrBadLabel = errors.New("label out of range")
	// ErrChecksum: a known file's hash differs from the published one, or
	// the file is another dataset's.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrNoImages: an image folder holds no PNG/JPEG images.
	ErrNoImages = errors.New("no images found")
	// ErrBadImage: an image file cannot be decoded.
	ErrBadImage = errors.New("unreadable image")
	// ErrBadSpec: the Spec itself is invalid (unknown kind, split, size).
	ErrBadSpec = errors.New("invalid dataset spec")
)

// Kinds lists the dataset kinds Open understands.
var Kinds = []string{"mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder"}

// Open opens the dataset described by spec: the small formats (idx, CIFAR)
// are read into memory, an ImageFolder is indexed and read image by image.
func Open(spec Spec) (Dataset, error) {
	if spec.Split != "train" && spec.Split != "test" {
		return nil, fmt.Errorf("%w: split %q: use \"train\" or \"test\"", ErrBadSpec, spec.Split)
	}
	if spec.Limit < 0 {
		return nil, fmt.Errorf("%w: limit %d: use 0 (all images) or a positive count", ErrBadSpec, spec.Limit)
	}
	if spec.Path == "" {
		return nil, fmt.Errorf("%w: empty path: set the dataset folder", ErrBadSpec)
	}
	if _, err := os.Stat(spec.Path); err != nil {
		return nil, fmt.Errorf("%w: dataset folder %s: %v: check the dataset path (Fashion-MNIST: apt-get install dataset-fashion-mnist, files in /usr/share/datasets/fashion-mnist)", ErrMissingFile, spec.Path, err)
	}
	var (
		ds  *memDataset
		err error
	)
	switch spec.Kind {
	case "mnist", "fashion-mnist":
		ds, err = openIdx(spec)
	case "cifar10":
		ds, err = openCIFAR10(spec)
	case "cifar100":
		ds, err = openCIFAR100(spec)
	case "imagefolder":
		return openImageFolder(spec)
	default:
		return nil, fmt.Errorf("%w: unknown dataset kind %q: use one of %s", ErrBadSpec, spec.Kind, strings.Join(Kinds, ", "))
	}
	if err != nil {
		return nil, err
	}
	ds.limit(spec.Limit)
	return ds, nil
}

// memDataset is a dataset held in one contiguous uint8 array of N×C×H×W pixels.
type memDataset struct {
	name     string
	c, h, w  int
	classes  int
	pixels   []uint8 // N×C×H×W
	labels   []int   // N
	itemSize int     // C×H×W
}

func newMemDataset(name string, c, h, w, classes int, pixels []uint8, labels []int) *memDataset {
	return &memDataset{name: name, c: c, h: h, w: w, classes: classes, pixels: pixels, labels: labels, itemSize: c * h * w}
}

// limit keeps the first n images (n = 0 keeps all).
func (d *memDataset) limit(n int) {
	if n > 0 && n < len(d.labels) {
		d.labels = d.labels[:n]
		d.pixels = d.pixels[:n*d.itemSize]
	}
}

func (d *memDataset) Len() int        { return len(d.labels) }
func (d *memDataset) Channels() int   { return d.c }
func (d *memDataset) Height() int     { return d.h }
func (d *memDataset) Width() int      { return d.w }
func (d *memDataset) NumClasses() int { return d.classes }
func (d *memDataset) Label(i int) int { return d.labels[i] }
func (d *memDataset) Name() string    { return d.name }
func (d *memDataset) Pixels(i int) []uint8 {
	return d.pixels[i*d.itemSize : (i+1)*d.itemSize : (i+1)*d.itemSize]
}

// NewInMemory wraps already decoded images as a Dataset: pixels holds
// len(labels) images of C×H×W uint8 each. It is the way to feed synthetic or
// generated data to the loaders.
func NewInMemory(name string, channels, height, width, classes int, pixels []uint8, labels []int) (Dataset, error) {
	if channels != 1 && channels != 3 {
		return nil, fmt.Errorf("%w: %s: %d channels: use 1 or 3", ErrBadSpec, name, channels)
	}
	if height <= 0 || width <= 0 || classes <= 0 {
		return nil, fmt.Errorf("%w: %s: size %d×%d with %d classes: all must be positive", ErrBadSpec, name, height, width, classes)
	}
	if len(pixels) != len(labels)*channels*height*width {
		return nil, fmt.Errorf("%w: %s: %d pixel bytes for %d labels of %d×%d×%d", ErrCountMismatch, name, len(pixels), len(labels), channels, height, width)
	}
	for i, l := range labels {
		if l < 0 || l >= classes {
			return nil, fmt.Errorf("%w: %s: label %d of image %d not in [0,%d)", ErrBadLabel, name, l, i, classes)
		}
	}
	return newMemDataset(name, channels, height, width, classes, pixels, labels), nil
}
