package data

import (
	"bytes"
	"encoding/base64"
	"encoding/gob"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/internal/torchpy"
)

// syntheticFolder is a generated ImageFolder split: JPEGs of mixed sizes and
// aspect ratios, a grayscale and a CMYK JPEG, an RGB PNG, a 16-bit PNG, a
// corrupt (truncated) JPEG, a nested folder and a non-image file.
type syntheticFolder struct {
	root    string // the dataset folder, holding train/
	split   string // root/train
	corrupt string // relative to split
	gray16  string // the 16-bit PNG, and the same picture in 8 bits
	gray8   string
}

// syntheticSizes are width×height pairs: landscape, portrait, square,
// panoramas outside RandomResizedCrop's ratio range, small and odd sizes.
var syntheticSizes = [][2]int{{500, 375}, {375, 500}, {300, 300}, {640, 200}, {120, 400}, {64, 48}, {33, 57}, {257, 129}, {90, 91}, {410, 300}}

// picture draws smooth gradients, a few hard edges and noise: enough
// structure that resampling errors show.
func picture(rng *rand.Rand, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fx, fy := 1+rng.Float64()*6, 1+rng.Float64()*6
	edge := rng.IntN(w)
	for y := range h {
		for x := range w {
			u, v := float64(x)/float64(w), float64(y)/float64(h)
			r := 127 + 120*math.Sin(fx*u*math.Pi+fy*v)
			g := 255 * v
			b := 255 * u
			if x > edge {
				b = 255 - b
			}
			n := rng.NormFloat64() * 6
			img.Pix[img.PixOffset(x, y)+0] = uint8(min(max(r+n, 0), 255))
			img.Pix[img.PixOffset(x, y)+1] = uint8(min(max(g+n, 0), 255))
			img.Pix[img.PixOffset(x, y)+2] = uint8(min(max(b+n, 0), 255))
			img.Pix[img.PixOffset(x, y)+3] = 255
		}
	}
	return img
}

func writeJPEG(t *testing.T, path string, img image.Image, quality int) {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	writeBytes(t, path, buf.Bytes())
}

func writeBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// makeSyntheticFolder writes n JPEGs over five classes (class names whose
// byte order differs from a case-insensitive order) plus the special files.
func makeSyntheticFolder(t *testing.T, n int) syntheticFolder {
	t.Helper()
	root := t.TempDir()
	f := syntheticFolder{root: root, split: filepath.Join(root, "train")}
	classes := []string{"Zebra", "apple", "banana", "cat_10", "cat_9"}
	rng := rand.New(rand.NewPCG(16, 1))
	for i := range n {
		sz := syntheticSizes[i%len(syntheticSizes)]
		class := classes[(i*7)%len(classes)]
		name := fmt.Sprintf("img_%03d.jpg", i)
		if i%13 == 0 {
			name = fmt.Sprintf("IMG_%03d.JPEG", i) // upper-case extension
		}
		if i%29 == 0 {
			name = filepath.Join("nested", name)
		}
		writeJPEG(t, filepath.Join(f.split, class, name), picture(rng, sz[0], sz[1]), 90)
	}
	gray := image.NewGray(image.Rect(0, 0, 150, 110))
	pic := picture(rng, 150, 110)
	for i := range gray.Pix {
		gray.Pix[i] = pic.Pix[4*i+1]
	}
	writeJPEG(t, filepath.Join(f.split, "apple", "gray.jpg"), gray, 90)
	cmyk := testenv.ReadFile(t, filepath.Join("testdata", "cmyk.jpg"))
	writeBytes(t, filepath.Join(f.split, "banana", "cmyk.jpg"), cmyk)
	var buf bytes.Buffer
	if err := png.Encode(&buf, picture(rng, 97, 61)); err != nil {
		t.Fatal(err)
	}
	writeBytes(t, filepath.Join(f.split, "cat_9", "photo.png"), buf.Bytes())
	g16, g8 := image.NewGray16(image.Rect(0, 0, 70, 52)), image.NewGray(image.Rect(0, 0, 70, 52))
	for i := range g8.Pix {
		v := uint16(rng.IntN(65536))
		g16.Pix[2*i], g16.Pix[2*i+1] = uint8(v>>8), uint8(v)
		g8.Pix[i] = uint8(v >> 8)
	}
	f.gray16, f.gray8 = filepath.Join("cat_10", "deep16.png"), filepath.Join("cat_10", "deep8.png")
	for _, p := range []struct {
		name string
		img  image.Image
	}{{f.gray16, g16}, {f.gray8, g8}} {
		buf.Reset()
		if err := png.Encode(&buf, p.img); err != nil {
			t.Fatal(err)
		}
		writeBytes(t, filepath.Join(f.split, p.name), buf.Bytes())
	}
	buf.Reset()
	if err := jpeg.Encode(&buf, picture(rng, 200, 150), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	f.corrupt = filepath.Join("Zebra", "broken.jpg")
	writeBytes(t, filepath.Join(f.split, f.corrupt), buf.Bytes()[:buf.Len()/2])
	writeBytes(t, filepath.Join(f.split, "banana", "notes.txt"), []byte("not an image"))
	return f
}

// torchRef is scripts/imagefolder_ref.py's answer.
type torchRef struct {
	Classes  []string          `json:"classes"`
	Samples  [][2]any          `json:"samples"`
	Eval     map[string]string `json:"eval"`
	Crop     map[string]string `json:"crop"`
	Errors   map[string]string `json:"errors"`
	Area     []float64         `json:"area"`
	LogRatio []float64         `json:"log_ratio"`
}

// torchReference runs scripts/imagefolder_ref.py with Debian's python3 and
// torchvision; a missing torchvision fails the test under CI.
func torchReference(t *testing.T, in map[string]any) torchRef {
	t.Helper()
	torchpy.Need(t, "torch", "torchvision", "PIL")
	var ref torchRef
	torchpy.Exchange(t, in, &ref, torchpy.Script("imagefolder_ref.py"))
	return ref
}

func decodeB64(t *testing.T, s string) []uint8 {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pixelDiff is the largest and the mean absolute difference, in 8-bit levels.
func pixelDiff(got []float64, want []uint8) (maxDiff, mean float64) {
	for i, w := range want {
		d := math.Abs(got[i] - float64(w))
		maxDiff = max(maxDiff, d)
		mean += d
	}
	return maxDiff, mean / float64(len(want))
}

// TestImageFolderTorchvision checks a synthetic ImageFolder against
// torchvision on the same files: the class list and the (path, label)
// samples in order; the evaluation transform (Resize + CenterCrop); the
// training crop on the original image with its antialiased resize, using
// RandomResizedCrop at scale (1, 1), which is deterministic (the centre
// crop with the aspect ratio clamped to [3/4, 4/3]) — on the squashed image
// today's code cropped, it would differ by far more than the tolerance.
//
// Tolerance. With libjpeg-turbo both sides decode the same pixels (Pillow
// links the same library with the same defaults), so the differences are the
// resampling's alone: PIL computes its bilinear filter in 22-bit fixed point
// and rounds to 8 bits after the horizontal pass and again at the end; ours
// stays in float32 and rounds once (evaluation) or not at all (training
// views). Each rounding is at most half a level, so at most one level apart
// (1.0 for the uint8 evaluation images, 1.0 plus float noise for the float
// views). Go's decoders (CMYK JPEGs always; every JPEG under the purego tag)
// upsample chroma by replication where libjpeg interpolates: a mean of 3–4
// levels and up to about 50 at the synthetic images' sharp colour edges, so
// those files are held to a mean of 5 levels and a maximum of 64 (the CMYK
// file, with no subsampled chroma, stays within 2). The 16-bit PNG is left out: PIL clips 16-bit samples at 255
// instead of scaling them (TestImageFolderDeepPNG checks it).
func TestImageFolderTorchvision(t *testing.T) {
	const size = 48
	f := makeSyntheticFolder(t, 60)
	ds, err := Open(Spec{Kind: "imagefolder", Path: f.root, Split: "train", ImageSize: size})
	if err != nil {
		t.Fatal(err)
	}
	folder := ds.(*ImageFolder)
	ref := torchReference(t, map[string]any{"root": f.split, "size": size, "resize": EvalResizeSide(size),
		"crop_sizes": [][2]int{}, "draws": 0, "seed": 0})

	if !slices.Equal(folder.Classes(), ref.Classes) {
		t.Fatalf("classes %v, torchvision %v", folder.Classes(), ref.Classes)
	}
	if ds.Len() != len(ref.Samples) {
		t.Fatalf("%d images, torchvision %d", ds.Len(), len(ref.Samples))
	}
	for i, s := range ref.Samples {
		rel, _ := filepath.Rel(f.split, folder.Path(i))
		if rel != s[0].(string) || ds.Label(i) != int(s[1].(float64)) {
			t.Fatalf("sample %d: %s label %d, torchvision %s label %v", i, rel, ds.Label(i), s[0], s[1])
		}
	}
	if _, ok := ref.Errors[f.corrupt]; !ok || len(ref.Errors) != 1 {
		t.Fatalf("torchvision failed on %v, want only the corrupt %s", ref.Errors, f.corrupt)
	}

	goDecoded := func(rel string) bool {
		return !jpegTurbo || rel == filepath.Join("banana", "cmyk.jpg") || strings.HasSuffix(rel, ".png")
	}
	check := func(what, rel string, got []float64, want []uint8, strictMax float64) {
		t.Helper()
		maxD, mean := pixelDiff(got, want)
		limitMax, limitMean := strictMax, 0.5
		if goDecoded(rel) && !strings.HasSuffix(rel, ".png") {
			limitMax, limitMean = 64, 5
		}
		if maxD > limitMax || mean > limitMean {
			t.Errorf("%s of %s: max difference %.2f levels, mean %.3f; want ≤ %v and ≤ %v", what, rel, maxD, mean, limitMax, limitMean)
		}
	}
	var worstEval, worstCrop float64
	var dec imageDecoder
	var rs resampler
	view := make([]float32, 3*size*size)
	for i := range ds.Len() {
		rel, _ := filepath.Rel(f.split, folder.Path(i))
		if rel == f.corrupt || rel == f.gray16 {
			continue
		}
		evalPx := make([]uint8, 3*size*size)
		if err := folder.ReadEval(i, evalPx); err != nil {
			t.Fatal(err)
		}
		got := make([]float64, len(evalPx))
		for k, v := range evalPx {
			got[k] = float64(v)
		}
		check("evaluation transform", rel, got, decodeB64(t, ref.Eval[rel]), 1)
		m, _ := pixelDiff(got, decodeB64(t, ref.Eval[rel]))
		worstEval = max(worstEval, m)

		// The training crop at full resolution (no DCT reduction).
		if err := dec.open(folder.Path(i)); err != nil {
			t.Fatal(err)
		}
		b := centreCrop(dec.h, dec.w, CropRatioMin, CropRatioMax)
		img, err := dec.decode(1)
		if err != nil {
			t.Fatal(err)
		}
		rs.crop(view, img, box{left: float64(b.Left), top: float64(b.Top), width: float64(b.Width), height: float64(b.Height)}, size, size)
		for k, v := range view {
			got[k] = float64(v) * 255
		}
		check("training crop", rel, got, decodeB64(t, ref.Crop[rel]), 1.01)
		m, _ = pixelDiff(got, decodeB64(t, ref.Crop[rel]))
		worstCrop = max(worstCrop, m)
	}
	t.Logf("largest difference from torchvision: evaluation %.2f, training crop %.2f levels (%s)", worstEval, worstCrop, JPEGDecoder)
}

// ksStatistic is the two-sample Kolmogorov–Smirnov statistic: the largest
// distance between the empirical distribution functions of a and b.
func ksStatistic(a, b []float64) float64 {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	var d float64
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		x := min(a[i], b[j])
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
		d = max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	return d
}

// TestRandomResizedCropStatistics draws RandomResizedCrop boxes (scale
// 0.2–1, ratio 3/4–4/3) on the original sizes of the synthetic folder's
// images — panoramas and small images included, where the fallback matters
// — and compares the distributions of the area fraction and of log(w/h)
// with torchvision's RandomResizedCrop.get_params on the same sizes: the
// two-sample Kolmogorov–Smirnov statistic must stay below its 0.1% critical
// value, 1.95·√(2/n).
func TestRandomResizedCropStatistics(t *testing.T) {
	const draws = 2000
	f := makeSyntheticFolder(t, 20)
	ds, err := Open(Spec{Kind: "imagefolder", Path: f.root, Split: "train", ImageSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	folder := ds.(*ImageFolder)
	var sizes [][2]int // h, w as the decoder reads them
	var dec imageDecoder
	for i := range ds.Len() {
		if err := dec.open(folder.Path(i)); err != nil {
			continue // the corrupt file
		}
		if s := [2]int{dec.h, dec.w}; !slices.Contains(sizes, s) {
			sizes = append(sizes, s)
		}
	}
	ref := torchReference(t, map[string]any{"root": f.split, "size": 8, "resize": 9,
		"crop_sizes": sizes, "draws": draws, "seed": 1})
	rng := rand.New(rand.NewPCG(5, 6))
	var area, logRatio []float64
	for _, s := range sizes {
		for range draws {
			b := SampleCrop(rng, s[0], s[1], 0.2, 1, CropRatioMin, CropRatioMax)
			area = append(area, float64(b.Width*b.Height)/float64(s[0]*s[1]))
			logRatio = append(logRatio, math.Log(float64(b.Width)/float64(b.Height)))
		}
	}
	if len(ref.Area) != len(area) {
		t.Fatalf("torchvision drew %d boxes, we %d", len(ref.Area), len(area))
	}
	critical := 1.95 * math.Sqrt(2/float64(len(area)))
	for _, c := range []struct {
		name      string
		ours, ref []float64
	}{{"area fraction", area, ref.Area}, {"log aspect ratio", logRatio, ref.LogRatio}} {
		d := ksStatistic(c.ours, c.ref)
		t.Logf("%s: KS statistic %.4f (critical %.4f) over %d sizes × %d draws", c.name, d, critical, len(sizes), draws)
		if d > critical {
			t.Errorf("%s distribution differs from torchvision's: KS statistic %.4f > %.4f", c.name, d, critical)
		}
	}
}

// TestImageFolderLoaderViews runs the two-view loader with every
// photometric step off and RandomResizedCrop at scale (1, 1): each view is
// then torchvision's deterministic centre crop, taken from the original
// image, here through libjpeg-turbo's DCT-domain reduction when the crop is
// at least twice the output (the reduced image is mapped back with
// fractional crop boxes). DCT reduction (down to 1/8: the 8×8 block means)
// is another low-pass filter than PIL's triangle, so the tolerance is a mean
// of 3 levels and a maximum of 48 (measured with libjpeg-turbo 2.1: up to
// 2.4 and 35 on these noisy images); a crop box not mapped to the reduced
// image, or a squashed image, is off by far more.
func TestImageFolderLoaderViews(t *testing.T) {
	const size = 40
	f := makeSyntheticFolder(t, 30)
	ds, err := Open(Spec{Kind: "imagefolder", Path: f.root, Split: "train", ImageSize: size, SkipCorrupt: true})
	if err != nil {
		t.Fatal(err)
	}
	folder := ds.(*ImageFolder)
	ref := torchReference(t, map[string]any{"root": f.split, "size": size, "resize": EvalResizeSide(size),
		"crop_sizes": [][2]int{}, "draws": 0, "seed": 0})
	aug := AugmentConfig{CropSize: size, ScaleMin: 1, ScaleMax: 1, Mean: []float32{0, 0, 0}, Std: []float32{1, 1, 1}}
	loader, err := NewTwoViewLoader(ds, aug, 1, 3, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	it := loader.Epoch(0)
	defer it.Close()
	got := make([]float64, 3*size*size)
	reduced := 0
	for {
		b, ok := it.Next()
		if !ok {
			break
		}
		rel, _ := filepath.Rel(f.split, folder.Path(b.Index[0]))
		want, ok := ref.Crop[rel]
		if rel == f.gray16 || !ok {
			loader.Release(b)
			continue
		}
		for _, v := range [][]float32{b.Query, b.Key} {
			for k, x := range v {
				got[k] = float64(x) * 255
			}
			maxD, mean := pixelDiff(got, decodeB64(t, want))
			limitMax, limitMean := 48.0, 3.0
			if !jpegTurbo && !strings.HasSuffix(rel, ".png") {
				limitMax, limitMean = 64, 5 // Go's decoder, as in TestImageFolderTorchvision
			}
			if maxD > limitMax || mean > limitMean {
				t.Errorf("loader view of %s: max difference %.1f levels, mean %.2f; want ≤ %v and ≤ %v", rel, maxD, mean, limitMax, limitMean)
			}
		}
		var dec imageDecoder
		if dec.open(folder.Path(b.Index[0])) == nil && dec.dctDenom(min(dec.w, dec.h), size) > 1 {
			reduced++
		}
		loader.Release(b)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if jpegTurbo && reduced == 0 {
		t.Error("no image went through DCT-domain reduction: the test does not cover it")
	}

	// The linear evaluation's augmented batches crop the same way; without
	// skip_corrupt they stop at a corrupt file, naming it (checkEvalSkips
	// checks them with it).
	strict, err := Open(Spec{Kind: "imagefolder", Path: f.root, Split: "train", ImageSize: size})
	if err != nil {
		t.Fatal(err)
	}
	err = AugmentedBatches(strict, aug, 1, 0, 8, 2, func([]float32, []int, []int) error { return nil })
	if err == nil || !strings.Contains(err.Error(), f.corrupt) {
		t.Errorf("AugmentedBatches error %v, want one naming %s", err, f.corrupt)
	}
	if err := os.Remove(filepath.Join(f.split, f.corrupt)); err != nil {
		t.Fatal(err)
	}
	if ds, err = Open(Spec{Kind: "imagefolder", Path: f.root, Split: "train", ImageSize: size}); err != nil {
		t.Fatal(err)
	}
	folder = ds.(*ImageFolder)
	checked := 0
	err = AugmentedBatches(ds, aug, 1, 0, 8, 2, func(x []float32, _ []int, idx []int) error {
		for j, i := range idx {
			rel, _ := filepath.Rel(f.split, folder.Path(i))
			if rel == f.gray16 {
				continue
			}
			for k, v := range x[j*3*size*size : (j+1)*3*size*size] {
				got[k] = float64(v) * 255
			}
			maxD, mean := pixelDiff(got, decodeB64(t, ref.Crop[rel]))
			limitMax, limitMean := 48.0, 3.0
			if !jpegTurbo && !strings.HasSuffix(rel, ".png") {
				limitMax, limitMean = 64, 5
			}
			if maxD > limitMax || mean > limitMean {
				t.Errorf("augmented batch view of %s: max difference %.1f levels, mean %.2f; want ≤ %v and ≤ %v", rel, maxD, mean, limitMax, limitMean)
			}
			checked++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked != ds.Len()-1 {
		t.Errorf("AugmentedBatches checked %d views of %d images", checked, ds.Len()-1)
	}
}

// TestImageFolderCorrupt: a corrupt file stops the loader and the
// evaluation batches with an error naming it; with SkipCorrupt the loader
// steps over it (the next image stands in) and reports it.
func TestImageFolderCorrupt(t *testing.T) {
	f := makeSyntheticFolder(t, 10)
	aug := MoCoV2Augment(3, 16)
	corrupt := filepath.Join(f.split, f.corrupt)
	for _, skip := range []bool{false, true} {
		ds, err := Open(Spec{Kind: "imagefolder", Path: f.root, Split: "train", ImageSize: 16, SkipCorrupt: skip})
		if err != nil {
			t.Fatal(err)
		}
		loader, err := NewTwoViewLoader(ds, aug, 3, 1, 2, 1)
		if err != nil {
			t.Fatal(err)
		}
		it := loader.Epoch(0)
		steps, seen := 0, map[int]bool{}
		for {
			b, ok := it.Next()
			if !ok {
				break
			}
			for _, i := range b.Index {
				seen[i] = true
			}
			steps++
			loader.Release(b)
		}
		it.Close()
		corruptIdx := -1
		for i := range ds.Len() {
			if ds.(*ImageFolder).Path(i) == corrupt {
				corruptIdx = i
			}
		}
		if !skip {
			if err := it.Err(); err == nil || !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), corrupt) || !strings.Contains(err.Error(), "data.skip_corrupt") {
				t.Errorf("without skip_corrupt: epoch error %v, want one naming %s and data.skip_corrupt", err, corrupt)
			}
			err := EvalBatches(ds, ImageNetMean, ImageNetStd, 4, func([]float32, []int, []int) error { return nil })
			if err == nil || !strings.Contains(err.Error(), corrupt) {
				t.Errorf("EvalBatches error %v, want one naming %s", err, corrupt)
			}
			continue
		}
		if err := it.Err(); err != nil || steps != it.Steps() {
			t.Fatalf("with skip_corrupt: %d of %d steps, error %v", steps, it.Steps(), err)
		}
		skipped := it.Skipped()
		if len(skipped) != 1 || !strings.Contains(skipped[0].Error(), corrupt) {
			t.Errorf("skipped %v, want the one corrupt file %s", skipped, corrupt)
		}
		if seen[corruptIdx] {
			t.Errorf("the corrupt image (index %d) was delivered", corruptIdx)
		}
		checkEvalSkips(t, ds.(*ImageFolder), corruptIdx)
	}
}

// checkEvalSkips: with SkipCorrupt, EvalBatches and AugmentedBatches leave
// the corrupt image out of their batches — every other image once, in order,
// each row its own image's (the evaluation transform; the augmented view of
// a batch of one) — and EvalSkipped names it.
func checkEvalSkips(t *testing.T, d *ImageFolder, corruptIdx int) {
	t.Helper()
	path := d.Path(corruptIdx)
	if s := EvalSkipped(d); len(s) != 0 {
		t.Errorf("EvalSkipped before any evaluation read: %v", s)
	}
	var got []int
	item := 3 * 16 * 16
	want := make([]uint8, item)
	err := EvalBatches(d, ImageNetMean, ImageNetStd, 4, func(x []float32, labels []int, idx []int) error {
		for r, i := range idx {
			got = append(got, i)
			if labels[r] != d.Label(i) {
				t.Errorf("EvalBatches: row of image %d has label %d, want %d", i, labels[r], d.Label(i))
			}
			if err := d.ReadEval(i, want); err != nil {
				return err
			}
			for p, v := range want {
				c := p / (16 * 16)
				if w := (float32(v)/255 - ImageNetMean[c]) / ImageNetStd[c]; math.Abs(float64(x[r*item+p]-w)) > 1e-5 {
					t.Fatalf("EvalBatches: row %d (image %d) value %d is %v, want %v", r, i, p, x[r*item+p], w)
				}
			}
		}
		return nil
	})
	var wantIdx []int
	for i := range d.Len() {
		if i != corruptIdx {
			wantIdx = append(wantIdx, i)
		}
	}
	if err != nil || !slices.Equal(got, wantIdx) {
		t.Errorf("EvalBatches with skip_corrupt: images %v, error %v; want %v", got, err, wantIdx)
	}
	if s := EvalSkipped(d); len(s) != 1 || !strings.Contains(s[0].Error(), path) {
		t.Errorf("EvalSkipped %v, want the one corrupt file %s", s, path)
	}
	if n, first := SkipSummary(EvalSkipped(d)); n != 1 || !strings.HasPrefix(first, path+" (") {
		t.Errorf("SkipSummary = %d, %q; want 1 and %s (why)", n, first, path)
	}

	aug := LinearEvalAugment(16, ImageNetMean, ImageNetStd)
	alone := map[int][]float32{} // each image's view, in a batch of its own
	if err := AugmentedBatches(d, aug, 7, 0, 1, 1, func(x []float32, _ []int, idx []int) error {
		alone[idx[0]] = slices.Clone(x)
		return nil
	}); err != nil {
		t.Fatalf("AugmentedBatches with skip_corrupt, batch 1: %v", err)
	}
	got = got[:0]
	err = AugmentedBatches(d, aug, 7, 0, 4, 2, func(x []float32, labels []int, idx []int) error {
		for r, i := range idx {
			got = append(got, i)
			if labels[r] != d.Label(i) || !slices.Equal(x[r*item:(r+1)*item], alone[i]) {
				t.Errorf("AugmentedBatches: row %d (image %d) differs from the image's view, or its label %d is not %d", r, i, labels[r], d.Label(i))
			}
		}
		return nil
	})
	if err != nil || !slices.Equal(got, wantIdx) {
		t.Errorf("AugmentedBatches with skip_corrupt: images %v, error %v; want %v", got, err, wantIdx)
	}
}

// TestImageFolderIndexCache: the index is cached beside the data and reused
// while the listing is unchanged; adding an image rebuilds it.
func TestImageFolderIndexCache(t *testing.T) {
	f := makeSyntheticFolder(t, 6)
	spec := Spec{Kind: "imagefolder", Path: f.root, Split: "train", ImageSize: 16}
	ds, err := Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	n := ds.Len()
	cache := filepath.Join(f.split, ".mochi-index")
	raw := testenv.ReadFile(t, cache)
	// Mark the cached index: a reopen that shows the mark read the cache.
	var idx folderIndex
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&idx); err != nil {
		t.Fatal(err)
	}
	idx.Files[0] = "marked.jpg"
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&idx); err != nil {
		t.Fatal(err)
	}
	writeBytes(t, cache, buf.Bytes())
	ds, err = Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.(*ImageFolder).Path(0); filepath.Base(got) != "marked.jpg" {
		t.Errorf("reopened index starts with %s: the cache was not used", got)
	}
	// A new image changes its class folder's listing: the index is rebuilt.
	writeJPEG(t, filepath.Join(f.split, "apple", "new.jpg"), picture(rand.New(rand.NewPCG(1, 1)), 20, 20), 90)
	ds, err = Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != n+1 || filepath.Base(ds.(*ImageFolder).Path(0)) == "marked.jpg" {
		t.Errorf("after adding an image: %d images (want %d), first %s", ds.Len(), n+1, ds.(*ImageFolder).Path(0))
	}
}

// TestImageFolderDeepPNG: a 16-bit PNG reads as its high bytes, the same as
// the 8-bit PNG of those bytes.
func TestImageFolderDeepPNG(t *testing.T) {
	f := makeSyntheticFolder(t, 1)
	ds, err := Open(Spec{Kind: "imagefolder", Path: f.root, Split: "train", ImageSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	folder := ds.(*ImageFolder)
	var i16, i8 = -1, -1
	for i := range ds.Len() {
		switch folder.Path(i) {
		case filepath.Join(f.split, f.gray16):
			i16 = i
		case filepath.Join(f.split, f.gray8):
			i8 = i
		}
	}
	if !slices.Equal(ds.Pixels(i16), ds.Pixels(i8)) {
		t.Error("the 16-bit PNG does not read as its high bytes")
	}
	if px := ds.Pixels(i16); !slices.Equal(px[:576], px[576:1152]) {
		t.Error("the grayscale PNG's channels differ")
	}
}

// TestImageFolderWorkersInvariant: streamed batches depend only on (seed,
// epoch, step) and the files, not on the number of workers.
func TestImageFolderWorkersInvariant(t *testing.T) {
	f := makeSyntheticFolder(t, 12)
	ds, err := Open(Spec{Kind: "imagefolder", Path: f.root, Split: "train", ImageSize: 24, SkipCorrupt: true})
	if err != nil {
		t.Fatal(err)
	}
	epoch := func(workers int) (views []float32, index []int) {
		l, err := NewTwoViewLoader(ds, MoCoV2Augment(3, 24), 4, 9, workers, 1)
		if err != nil {
			t.Fatal(err)
		}
		it := l.Epoch(1)
		defer it.Close()
		for b, ok := it.Next(); ok; b, ok = it.Next() {
			views = append(append(views, b.Query...), b.Key...)
			index = append(index, b.Index...)
			l.Release(b)
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return views, index
	}
	v1, i1 := epoch(1)
	v3, i3 := epoch(3)
	if !slices.Equal(i1, i3) || !slices.Equal(v1, v3) {
		t.Error("one worker and three workers made different batches")
	}
}
