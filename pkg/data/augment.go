package data

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// AugmentConfig holds the parameters of the MoCo-v2 augmentation chain. The
// defaults are MoCoV2Augment's.
type AugmentConfig struct {
	// CropSize is the side of the square output view.
	CropSize int
	// ScaleMin, ScaleMax bound the area fraction of RandomResizedCrop.
	ScaleMin, ScaleMax float64
	// Brightness, Contrast, Saturation are ColorJitter strengths: the factor is
	// drawn from [max(0, 1−x), 1+x]. Hue shifts by [−Hue, Hue] of a turn
	// (Hue ≤ 0.5). JitterProb is the probability the jitter applies.
	Brightness, Contrast, Saturation, Hue, JitterProb float64
	// GrayProb is the probability of RandomGrayscale (RGB only).
	GrayProb float64
	// BlurProb is the probability of GaussianBlur, with σ drawn uniformly from
	// [BlurSigmaMin, BlurSigmaMax] pixels.
	BlurProb, BlurSigmaMin, BlurSigmaMax float64
	// FlipProb is the probability of a horizontal flip.
	FlipProb float64
	// Mean and Std normalise each channel after the augmentations:
	// x ← (x − Mean[c]) / Std[c], with x in [0, 1] before.
	Mean, Std []float32
}

// RandomResizedCrop's aspect-ratio range (width / height), torchvision's default.
const (
	CropRatioMin = 3.0 / 4.0
	CropRatioMax = 4.0 / 3.0
)

// Per-channel statistics of ImageNet, the normalisation MoCo-v2 uses.
var (
	ImageNetMean = []float32{0.485, 0.456, 0.406}
	ImageNetStd  = []float32{0.229, 0.224, 0.225}
)

// MoCoV2Augment returns the MoCo-v2 augmentation (moco/main_moco.py, --aug-plus)
// for images of the given channel count cropped to size×size: RandomResizedCrop
// scale 0.2–1, ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8, RandomGrayscale p=0.2,
// GaussianBlur σ∈[0.1, 2] p=0.5, horizontal flip p=0.5, ImageNet normalisation
// (for one channel, the average of ImageNet's three channels, 0.449 and 0.226).
// Use DatasetStats to normalise with a dataset's own statistics instead.
func MoCoV2Augment(channels, size int) AugmentConfig {
	mean, std := ImageNetMean, ImageNetStd
	if channels == 1 {
		mean, std = []float32{0.449}, []float32{0.226}
	}
	return AugmentConfig{
		CropSize: size,
		ScaleMin: 0.2, ScaleMax: 1,
		Brightness: 0.4, Contrast: 0.4, Saturation: 0.4, Hue: 0.1, JitterProb: 0.8,
		GrayProb: 0.2,
		BlurProb: 0.5, BlurSigmaMin: 0.1, BlurSigmaMax: 2,
		FlipProb: 0.5,
		Mean:     append([]float32(nil), mean...),
		Std:      append([]float32(nil), std...),
	}
}

// DatasetStats returns the usual per-channel mean and standard deviation of a
// dataset kind's training images (pixel values in [0, 1]); ok is false for kinds
// without fixed statistics (imagefolder).
func DatasetStats(kind string) (mean, std []float32, ok bool) {
	switch kind {
	case "mnist":
		return []float32{0.1307}, []float32{0.3081}, true
	case "fashion-mnist":
		return []float32{0.2860}, []float32{0.3530}, true
	case "cifar10":
		return []float32{0.4914, 0.4822, 0.4465}, []float32{0.2470, 0.2435, 0.2616}, true
	case "cifar100":
		return []float32{0.5071, 0.4865, 0.4409}, []float32{0.2673, 0.2564, 0.2762}, true
	}
	return nil, nil, false
}

// Validate checks the configuration for images with the given channel count.
func (c AugmentConfig) Validate(channels int) error {
	prob := func(name string, p float64) error {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("augmentation %s = %v: must be in [0, 1]", name, p)
		}
		return nil
	}
	switch {
	case c.CropSize < 2:
		return fmt.Errorf("augmentation crop size %d: must be at least 2", c.CropSize)
	case !(c.ScaleMin > 0 && c.ScaleMin <= c.ScaleMax && c.ScaleMax <= 1):
		return fmt.Errorf("augmentation crop scale [%v, %v]: need 0 < min ≤ max ≤ 1", c.ScaleMin, c.ScaleMax)
	case c.Brightness < 0 || c.Contrast < 0 || c.Saturation < 0:
		return fmt.Errorf("augmentation color jitter (%v, %v, %v): strengths must be ≥ 0", c.Brightness, c.Contrast, c.Saturation)
	case !(c.Hue >= 0 && c.Hue <= 0.5):
		return fmt.Errorf("augmentation hue %v: must be in [0, 0.5]", c.Hue)
	case c.BlurProb > 0 && !(c.BlurSigmaMin > 0 && c.BlurSigmaMin <= c.BlurSigmaMax):
		return fmt.Errorf("augmentation blur sigma [%v, %v]: need 0 < min ≤ max", c.BlurSigmaMin, c.BlurSigmaMax)
	case len(c.Mean) != channels || len(c.Std) != channels:
		return fmt.Errorf("augmentation mean/std have %d/%d values for %d-channel images: give one per channel", len(c.Mean), len(c.Std), channels)
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"jitter probability", c.JitterProb}, {"grayscale probability", c.GrayProb}, {"blur probability", c.BlurProb}, {"flip probability", c.FlipProb}} {
		if err := prob(p.name, p.v); err != nil {
			return err
		}
	}
	for i, s := range c.Std {
		if !(s > 0) {
			return fmt.Errorf("augmentation std[%d] = %v: must be > 0", i, s)
		}
	}
	return nil
}

// CropBox is a rectangle of the source image, in pixels.
type CropBox struct {
	Top, Left, Height, Width int
}

// SampleCrop draws RandomResizedCrop's box for a height×width image with
// torchvision's algorithm: up to 10 tries of an area fraction uniform in
// [scaleMin, scaleMax] and a log-uniform aspect ratio (width/height) in
// [ratioMin, ratioMax], sides rounded half-to-even; if no try fits, the
// largest centred box whose ratio is within bounds.
func SampleCrop(rng *rand.Rand, height, width int, scaleMin, scaleMax, ratioMin, ratioMax float64) CropBox {
	area := float64(height * width)
	logMin, logMax := math.Log(ratioMin), math.Log(ratioMax)
	for range 10 {
		target := area * (scaleMin + (scaleMax-scaleMin)*rng.Float64())
		aspect := math.Exp(logMin + (logMax-logMin)*rng.Float64())
		w := int(math.RoundToEven(math.Sqrt(target * aspect)))
		h := int(math.RoundToEven(math.Sqrt(target / aspect)))
		if w > 0 && w <= width && h > 0 && h <= height {
			top := rng.IntN(height - h + 1)
			left := rng.IntN(width - w + 1)
			return CropBox{Top: top, Left: left, Height: h, Width: w}
		}
	}
	return centreCrop(height, width, ratioMin, ratioMax)
}

// centreCrop is RandomResizedCrop's fallback: the largest centred box whose
// aspect ratio is within [ratioMin, ratioMax].
func centreCrop(height, width int, ratioMin, ratioMax float64) CropBox {
	w, h := width, height
	switch inRatio := float64(width) / float64(height); {
	case inRatio < ratioMin:
		h = int(math.RoundToEven(float64(w) / ratioMin))
	case inRatio > ratioMax:
		w = int(math.RoundToEven(float64(h) * ratioMax))
	}
	return CropBox{Top: (height - h) / 2, Left: (width - w) / 2, Height: h, Width: w}
}

// Augmenter applies an AugmentConfig to C×H×W uint8 images of one size. It
// keeps its scratch buffers between calls: one Augmenter per goroutine.
type Augmenter struct {
	cfg         AugmentConfig
	c, h, w     int // source image
	s           int // output side (CropSize)
	invStd      []float32
	x0, x1, y0  []int32   // bilinear source columns / rows, S each
	y1          []int32   // S
	fx, fy      []float32 // bilinear weights, S each
	kernel      []float32 // blur taps, up to blurTaps(BlurSigmaMax, S)
	padded      []float32 // one reflect-padded row, S + taps − 1
	blurTmp     []float32 // S×S
	order       [4]int    // ColorJitter permutation
	grayScratch []float32 // S×S, per-pixel luma for saturation
}

// NewAugmenter makes an Augmenter for channels×height×width images; cfg must
// pass Validate(channels).
func NewAugmenter(cfg AugmentConfig, channels, height, width int) (*Augmenter, error) {
	if err := cfg.Validate(channels); err != nil {
		return nil, err
	}
	if height <= 0 || width <= 0 {
		return nil, fmt.Errorf("augmenter: image size %d×%d must be positive", height, width)
	}
	s := cfg.CropSize
	taps := 1
	if cfg.BlurProb > 0 {
		taps = blurTaps(cfg.BlurSigmaMax, s)
	}
	a := &Augmenter{
		cfg: cfg, c: channels, h: height, w: width, s: s,
		invStd: make([]float32, channels),
		x0:     make([]int32, s), x1: make([]int32, s), y0: make([]int32, s), y1: make([]int32, s),
		fx: make([]float32, s), fy: make([]float32, s),
		kernel:      make([]float32, taps),
		padded:      make([]float32, s+taps-1),
		blurTmp:     make([]float32, s*s),
		grayScratch: make([]float32, s*s),
	}
	for i, sd := range cfg.Std {
		a.invStd[i] = 1 / sd
	}
	return a, nil
}

// OutputLen is the number of float32 values one view takes: C×S×S.
func (a *Augmenter) OutputLen() int { return a.c * a.s * a.s }

// Apply writes one augmented, normalised view of src (C×H×W uint8) into dst
// (C×S×S float32), drawing every random number from rng, in a fixed order.
func (a *Augmenter) Apply(dst []float32, src []uint8, rng *rand.Rand) {
	cfg := &a.cfg
	dst = dst[:a.OutputLen()]
	box := SampleCrop(rng, a.h, a.w, cfg.ScaleMin, cfg.ScaleMax, CropRatioMin, CropRatioMax)
	a.resizedCrop(dst, src, box)
	a.photometric(dst, rng)
}

// photometric applies everything after the crop to the S×S view in dst:
// colour jitter, grayscale, blur, flip and normalisation.
func (a *Augmenter) photometric(dst []float32, rng *rand.Rand) {
	cfg := &a.cfg
	if rng.Float64() < cfg.JitterProb {
		a.colorJitter(dst, rng)
	}
	if rng.Float64() < cfg.GrayProb && a.c == 3 {
		toGrayscale(dst, a.s*a.s)
	}
	if rng.Float64() < cfg.BlurProb {
		sigma := cfg.BlurSigmaMin + (cfg.BlurSigmaMax-cfg.BlurSigmaMin)*rng.Float64()
		a.blur(dst, sigma)
	}
	if rng.Float64() < cfg.FlipProb {
		flipHorizontal(dst, a.c, a.s)
	}
	a.normalize(dst)
}

// resizedCrop resamples box of src to S×S with bilinear interpolation
// (half-pixel centres, edges clamped to the box, as torch's
// interpolate(align_corners=False)), scaling to [0, 1].
func (a *Augmenter) resizedCrop(dst []float32, src []uint8, box CropBox) {
	s := a.s
	bilinearTable(a.x0, a.x1, a.fx, box.Left, box.Width, s)
	bilinearTable(a.y0, a.y1, a.fy, box.Top, box.Height, s)
	const inv255 = 1.0 / 255
	plane := a.h * a.w
	for c := range a.c {
		in := src[c*plane : (c+1)*plane]
		out := dst[c*s*s : (c+1)*s*s]
		for oy := range s {
			r0 := in[int(a.y0[oy])*a.w : int(a.y0[oy]+1)*a.w]
			r1 := in[int(a.y1[oy])*a.w : int(a.y1[oy]+1)*a.w]
			fy := a.fy[oy]
			row := out[oy*s : (oy+1)*s]
			for ox := range row {
				x0, x1, fx := a.x0[ox], a.x1[ox], a.fx[ox]
				top := float32(r0[x0]) + (float32(r0[x1])-float32(r0[x0]))*fx
				bot := float32(r1[x0]) + (float32(r1[x1])-float32(r1[x0]))*fx
				row[ox] = (top + (bot-top)*fy) * inv255
			}
		}
	}
}

// bilinearTable fills, for each of the n outputs, the two source indices and the
// weight of the second, for a span of length size starting at offset.
func bilinearTable(i0, i1 []int32, f []float32, offset, size, n int) {
	scale := float64(size) / float64(n)
	for o := range n {
		x := (float64(o)+0.5)*scale - 0.5
		if x < 0 {
			x = 0
		}
		lo := int(x)
		frac := x - float64(lo)
		hi := lo + 1
		if lo >= size-1 {
			lo, hi, frac = size-1, size-1, 0
		}
		i0[o], i1[o], f[o] = int32(offset+lo), int32(offset+hi), float32(frac)
	}
}

// colorJitter applies brightness, contrast, saturation and hue in a random
// order with factors drawn first, as torchvision's ColorJitter. Saturation and
// hue are the identity on one-channel images.
func (a *Augmenter) colorJitter(x []float32, rng *rand.Rand) {
	cfg := &a.cfg
	factor := func(strength float64) float64 {
		return max(0, 1-strength) + (1+strength-max(0, 1-strength))*rng.Float64()
	}
	a.order = [4]int{0, 1, 2, 3}
	for i := 3; i > 0; i-- {
		j := rng.IntN(i + 1)
		a.order[i], a.order[j] = a.order[j], a.order[i]
	}
	b, c, s := factor(cfg.Brightness), factor(cfg.Contrast), factor(cfg.Saturation)
	h := (2*rng.Float64() - 1) * cfg.Hue
	plane := a.s * a.s
	for _, op := range a.order {
		switch {
		case op == 0 && cfg.Brightness > 0:
			adjustBrightness(x, float32(b))
		case op == 1 && cfg.Contrast > 0:
			adjustContrast(x, a.c, plane, float32(c))
		case op == 2 && cfg.Saturation > 0 && a.c == 3:
			adjustSaturation(x, plane, float32(s), a.grayScratch)
		case op == 3 && cfg.Hue > 0 && a.c == 3:
			adjustHue(x, plane, float32(h))
		}
	}
}

// Luma weights of torchvision's rgb_to_grayscale (ITU-R 601-2).
const (
	lumaR = 0.2989
	lumaG = 0.587
	lumaB = 0.114
)

func clamp01(v float32) float32 { return min(max(v, 0), 1) }

// adjustBrightness: x ← clamp(b·x).
func adjustBrightness(x []float32, b float32) {
	for i, v := range x {
		x[i] = clamp01(v * b)
	}
}

// adjustContrast blends with the mean luma of the whole image:
// x ← clamp(c·x + (1−c)·mean(gray(x))).
func adjustContrast(x []float32, channels, plane int, c float32) {
	var sum float64
	if channels == 1 {
		for _, v := range x[:plane] {
			sum += float64(v)
		}
	} else {
		r, g, b := x[:plane], x[plane:2*plane], x[2*plane:3*plane]
		for p := range plane {
			sum += float64(lumaR*r[p] + lumaG*g[p] + lumaB*b[p])
		}
	}
	offset := (1 - c) * float32(sum/float64(plane))
	for i, v := range x {
		x[i] = clamp01(c*v + offset)
	}
}

// adjustSaturation blends every pixel with its own luma:
// x ← clamp(s·x + (1−s)·gray(x)). gray is a plane-sized scratch buffer.
func adjustSaturation(x []float32, plane int, s float32, gray []float32) {
	r, g, b := x[:plane], x[plane:2*plane], x[2*plane:3*plane]
	for p := range plane {
		gray[p] = (1 - s) * (lumaR*r[p] + lumaG*g[p] + lumaB*b[p])
	}
	for c := range 3 {
		ch := x[c*plane : (c+1)*plane]
		for p, v := range ch {
			ch[p] = clamp01(s*v + gray[p])
		}
	}
}

// adjustHue rotates the hue of every pixel by shift turns through HSV.
func adjustHue(x []float32, plane int, shift float32) {
	r, g, b := x[:plane], x[plane:2*plane], x[2*plane:3*plane]
	for p := range plane {
		h, s, v := rgbToHSV(r[p], g[p], b[p])
		h += shift // shift ∈ [−0.5, 0.5], so one wrap is enough
		if h < 0 {
			h++
		} else if h >= 1 {
			h--
		}
		r[p], g[p], b[p] = hsvToRGB(h, s, v)
	}
}

// rgbToHSV converts to hue in [0, 1), saturation and value, as torchvision's
// _rgb2hsv.
func rgbToHSV(r, g, b float32) (h, s, v float32) {
	maxc := max(r, g, b)
	minc := min(r, g, b)
	v = maxc
	chroma := maxc - minc
	if chroma == 0 {
		return 0, 0, v
	}
	s = chroma / maxc
	switch {
	case maxc == r:
		h = (g - b) / chroma
	case maxc == g:
		h = 2 + (b-r)/chroma
	default:
		h = 4 + (r-g)/chroma
	}
	h /= 6
	if h < 0 {
		h++
	}
	return h, s, v
}

// hsvToRGB is the inverse of rgbToHSV, as torchvision's _hsv2rgb.
func hsvToRGB(h, s, v float32) (r, g, b float32) {
	h6 := h * 6
	i := int(h6) // h ≥ 0, so truncation is floor
	f := h6 - float32(i)
	p := clamp01(v * (1 - s))
	q := clamp01(v * (1 - s*f))
	t := clamp01(v * (1 - s*(1-f)))
	switch i % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	default:
		return v, p, q
	}
}

// toGrayscale replaces the three channels by their luma.
func toGrayscale(x []float32, plane int) {
	r, g, b := x[:plane], x[plane:2*plane], x[2*plane:3*plane]
	for p := range plane {
		l := lumaR*r[p] + lumaG*g[p] + lumaB*b[p]
		r[p], g[p], b[p] = l, l, l
	}
}

// blurTaps is the Gaussian kernel size for standard deviation sigma on an
// s×s view: 2·⌈3σ⌉+1, the whole Gaussian to 3σ (the kernel follows σ, not
// the image: 3 taps at σ 0.1, 13 at σ 2), capped at 2s−1 so that the
// reflect padding stays inside the view.
func blurTaps(sigma float64, s int) int {
	return min(2*int(math.Ceil(3*sigma))+1, 2*s-1)
}

// blur applies a separable Gaussian of standard deviation sigma with reflect
// padding (torchvision's gaussian_blur), in place.
func (a *Augmenter) blur(x []float32, sigma float64) {
	taps := blurTaps(sigma, a.s)
	if taps > cap(a.kernel) { // σ above BlurSigmaMax: only tests call that
		a.kernel, a.padded = make([]float32, taps), make([]float32, a.s+taps-1)
	}
	a.kernel = a.kernel[:taps]
	r := taps / 2
	var sum float64
	for t := range taps {
		d := float64(t-r) / sigma
		w := math.Exp(-0.5 * d * d)
		a.kernel[t] = float32(w)
		sum += w
	}
	for t := range a.kernel {
		a.kernel[t] = float32(float64(a.kernel[t]) / sum)
	}
	s := a.s
	k := a.kernel
	for c := range a.c {
		img := x[c*s*s : (c+1)*s*s]
		// Horizontal pass: img → blurTmp, one padded row at a time.
		for y := range s {
			row := img[y*s : (y+1)*s]
			copy(a.padded[r:], row)
			for i := 1; i <= r; i++ {
				a.padded[r-i] = row[reflect(-i, s)]
				a.padded[r+s-1+i] = row[reflect(s-1+i, s)]
			}
			// tap by tap over the whole row, as the vertical pass: the
			// sums of neighbouring pixels are independent and overlap, where
			// one pixel's taps would be a chain of dependent additions
			// (same order per pixel, so the same sums)
			out := a.blurTmp[y*s : (y+1)*s]
			clear(out)
			for t, kt := range k {
				in := a.padded[t:][:s]
				for ox, v := range in {
					out[ox] += kt * v
				}
			}
		}
		// Vertical pass: blurTmp → img, whole rows at a time.
		for y := range s {
			out := img[y*s : (y+1)*s]
			clear(out)
			for t, kt := range k {
				in := a.blurTmp[reflect(y+t-r, s)*s:][:s]
				for ox, v := range in {
					out[ox] += kt * v
				}
			}
		}
	}
}

// reflect maps an index outside [0, n) back inside without repeating the edge
// (numpy/torch "reflect" padding): −1 → 1, n → n−2.
func reflect(i, n int) int {
	for i < 0 || i >= n {
		if i < 0 {
			i = -i
		}
		if i >= n {
			i = 2*(n-1) - i
		}
	}
	return i
}

// flipHorizontal mirrors every row of every channel.
func flipHorizontal(x []float32, channels, s int) {
	for row := range channels * s {
		r := x[row*s : (row+1)*s]
		for i, j := 0, s-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
	}
}

// normalize maps x ← (x − mean[c]) / std[c] per channel.
func (a *Augmenter) normalize(x []float32) {
	plane := a.s * a.s
	for c := range a.c {
		m, inv := a.cfg.Mean[c], a.invStd[c]
		ch := x[c*plane : (c+1)*plane]
		for i, v := range ch {
			ch[i] = (v - m) * inv
		}
	}
}
