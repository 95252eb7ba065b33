package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
)

func TestFashionMNISTReal(t *testing.T) {
	fashionDir := testenv.FashionMNIST(t)
	for _, tc := range []struct {
		split    string
		n, per   int
		wantMean float64
	}{
		{"train", 60000, 6000, 0.2860},
		{"test", 10000, 1000, 0.2868},
	} {
		if testing.Short() && tc.split == "train" {
			continue // the 60k split takes seconds to decompress and hash
		}
		ds, err := Open(Spec{Kind: "fashion-mnist", Path: fashionDir, Split: tc.split})
		if err != nil {
			t.Fatal(err)
		}
		if ds.Len() != tc.n || ds.Channels() != 1 || ds.Height() != 28 || ds.Width() != 28 || ds.NumClasses() != 10 {
			t.Fatalf("%s: got %d images %d×%d×%d, %d classes; want %d of 1×28×28, 10 classes", tc.split, ds.Len(), ds.Channels(), ds.Height(), ds.Width(), ds.NumClasses(), tc.n)
		}
		if ds.Name() != "fashion-mnist/"+tc.split {
			t.Errorf("name %q", ds.Name())
		}
		counts := make([]int, 10)
		var sum, sumSq float64
		for i := range ds.Len() {
			counts[ds.Label(i)]++
			for _, p := range ds.Pixels(i) {
				v := float64(p) / 255
				sum += v
				sumSq += v * v
			}
		}
		for c, n := range counts {
			if n != tc.per {
				t.Errorf("%s: class %d has %d images, want %d", tc.split, c, n, tc.per)
			}
		}
		m := sum / float64(tc.n*784)
		sd := math.Sqrt(sumSq/float64(tc.n*784) - m*m)
		if math.Abs(m-tc.wantMean) > 5e-4 {
			t.Errorf("%s: mean pixel %.4f, want %.4f", tc.split, m, tc.wantMean)
		}
		if tc.split == "train" {
			mean, std, _ := DatasetStats("fashion-mnist")
			if math.Abs(m-float64(mean[0])) > 5e-4 || math.Abs(sd-float64(std[0])) > 5e-4 {
				t.Errorf("DatasetStats(fashion-mnist) = %v, %v; computed %.4f, %.4f", mean, std, m, sd)
			}
		}
	}
	// Limit keeps the first images and their labels.
	full, err := Open(Spec{Kind: "fashion-mnist", Path: fashionDir, Split: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := Open(Spec{Kind: "fashion-mnist", Path: fashionDir, Split: "test", Limit: 300})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 300 {
		t.Fatalf("limit 300: got %d images", ds.Len())
	}
	for _, i := range []int{0, 123, 299} {
		if ds.Label(i) != full.Label(i) || !bytes.Equal(ds.Pixels(i), full.Pixels(i)) {
			t.Errorf("limited image %d differs from the full dataset's", i)
		}
	}
}

// writeIdx writes an idx file with the given magic and dimensions.
func writeIdx(t *testing.T, path string, magic uint32, dims []int, data []uint8, gz bool) {
	t.Helper()
	var raw bytes.Buffer
	binary.Write(&raw, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(&raw, binary.BigEndian, uint32(d))
	}
	raw.Write(data)
	out := raw.Bytes()
	if gz {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		w.Write(out)
		w.Close()
		out = z.Bytes()
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(rng *rand.Rand, n int) []uint8 {
	b := make([]uint8, n)
	for i := range b {
		b[i] = uint8(rng.IntN(256))
	}
	return b
}

// writeMNIST writes a small MNIST-layout split of n h×w images into dir and
// returns the pixels and labels.
func writeMNIST(t *testing.T, dir, prefix string, n, h, w int, gz bool) ([]uint8, []uint8) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	pixels := randomBytes(rng, n*h*w)
	labels := make([]uint8, n)
	for i := range labels {
		labels[i] = uint8(rng.IntN(10))
	}
	ext := ""
	if gz {
		ext = ".gz"
	}
	writeIdx(t, filepath.Join(dir, prefix+"-images-idx3-ubyte"+ext), idxImageMagic, []int{n, h, w}, pixels, gz)
	writeIdx(t, filepath.Join(dir, prefix+"-labels-idx1-ubyte"+ext), idxLabelMagic, []int{n}, labels, gz)
	return pixels, labels
}

func TestMNISTLayout(t *testing.T) {
	withPublishedMNIST(t, nil)
	for _, gz := range []bool{true, false} {
		dir := t.TempDir()
		pixels, labels := writeMNIST(t, dir, "t10k", 37, 5, 6, gz)
		ds, err := Open(Spec{Kind: "mnist", Path: dir, Split: "test"})
		if err != nil {
			t.Fatalf("gzip=%v: %v", gz, err)
		}
		if ds.Len() != 37 || ds.Height() != 5 || ds.Width() != 6 || ds.Channels() != 1 {
			t.Fatalf("gzip=%v: shape %d×%d×%d×%d", gz, ds.Len(), ds.Channels(), ds.Height(), ds.Width())
		}
		for i := range 37 {
			if ds.Label(i) != int(labels[i]) || !bytes.Equal(ds.Pixels(i), pixels[i*30:(i+1)*30]) {
				t.Fatalf("gzip=%v: image %d differs from what was written", gz, i)
			}
		}
	}
}

// writeCIFAR writes n records with labelBytes label bytes and returns the
// expected pixels and class labels (the last label byte).
func writeCIFAR(t *testing.T, path string, n, labelBytes, classes int, rng *rand.Rand) ([]uint8, []int) {
	t.Helper()
	var buf bytes.Buffer
	var pixels []uint8
	var labels []int
	for range n {
		if labelBytes == 2 {
			buf.WriteByte(uint8(rng.IntN(20)))
		}
		l := rng.IntN(classes)
		buf.WriteByte(uint8(l))
		img := randomBytes(rng, 3072)
		buf.Write(img)
		pixels = append(pixels, img...)
		labels = append(labels, l)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return pixels, labels
}

func TestCIFAR(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// CIFAR-10 train: five batches inside the archive's folder.
	root := t.TempDir()
	sub := filepath.Join(root, "cifar-10-batches-bin")
	os.Mkdir(sub, 0o755)
	var wantPix []uint8
	var wantLbl []int
	for b := 1; b <= 5; b++ {
		p, l := writeCIFAR(t, filepath.Join(sub, "data_batch_"+string(rune('0'+b))+".bin"), 3+b, 1, 10, rng)
		wantPix, wantLbl = append(wantPix, p...), append(wantLbl, l...)
	}
	testPix, testLbl := writeCIFAR(t, filepath.Join(sub, "test_batch.bin"), 4, 1, 10, rng)
	// CIFAR-100 directly in the folder.
	root100 := t.TempDir()
	trainPix100, trainLbl100 := writeCIFAR(t, filepath.Join(root100, "train.bin"), 9, 2, 100, rng)

	for _, tc := range []struct {
		spec    Spec
		pixels  []uint8
		labels  []int
		classes int
	}{
		{Spec{Kind: "cifar10", Path: root, Split: "train"}, wantPix, wantLbl, 10},
		{Spec{Kind: "cifar10", Path: sub, Split: "test"}, testPix, testLbl, 10},
		{Spec{Kind: "cifar100", Path: root100, Split: "train"}, trainPix100, trainLbl100, 100},
	} {
		ds, err := Open(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if ds.Len() != len(tc.labels) || ds.Channels() != 3 || ds.Height() != 32 || ds.Width() != 32 || ds.NumClasses() != tc.classes {
			t.Fatalf("%+v: got %d images %d×%d×%d, %d classes", tc.spec, ds.Len(), ds.Channels(), ds.Height(), ds.Width(), ds.NumClasses())
		}
		for i := range ds.Len() {
			if ds.Label(i) != tc.labels[i] || !bytes.Equal(ds.Pixels(i), tc.pixels[i*3072:(i+1)*3072]) {
				t.Fatalf("%+v: record %d differs from what was written", tc.spec, i)
			}
		}
	}
}

// solid returns a w×h image of one colour.
func solid(w, h int, c color.Color, gray bool) image.Image {
	if gray {
		img := image.NewGray(image.Rect(0, 0, w, h))
		draw := color.GrayModel.Convert(c).(color.Gray)
		for i := range img.Pix {
			img.Pix[i] = draw.Y
		}
		return img
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	return img
}

func writeImage(t *testing.T, path string, img image.Image) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if strings.HasSuffix(path, ".png") {
		err = png.Encode(f, img)
	} else {
		err = jpeg.Encode(f, img, &jpeg.Options{Quality: 95})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestImageFolder(t *testing.T) {
	root := t.TempDir()
	train := filepath.Join(root, "train")
	red := color.RGBA{200, 30, 60, 255}
	writeImage(t, filepath.Join(train, "bird", "a.png"), solid(20, 30, color.Gray{90}, true))
	writeImage(t, filepath.Join(train, "bird", "b.JPG"), solid(50, 40, red, false))
	writeImage(t, filepath.Join(train, "cat", "c.jpeg"), solid(7, 9, color.Gray{160}, true))
	writeImage(t, filepath.Join(train, "cat", "d.png"), solid(16, 16, red, false))
	os.WriteFile(filepath.Join(train, "cat", "notes.txt"), []byte("not an image"), 0o644)
	// Left half black, right half white: resizing must keep the edge in the middle.
	edge := image.NewGray(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := 32; x < 64; x++ {
			edge.Pix[y*64+x] = 255
		}
	}
	writeImage(t, filepath.Join(train, "dog", "e.png"), edge)

	ds, err := Open(Spec{Kind: "imagefolder", Path: root, Split: "train", ImageSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 5 || ds.Channels() != 3 || ds.Height() != 24 || ds.Width() != 24 || ds.NumClasses() != 3 {
		t.Fatalf("got %d images %d×%d×%d, %d classes; want 5 of 3×24×24, 3 classes", ds.Len(), ds.Channels(), ds.Height(), ds.Width(), ds.NumClasses())
	}
	wantLabels := []int{0, 0, 1, 1, 2}
	wantRGB := [][3]int{{90, 90, 90}, {200, 30, 60}, {160, 160, 160}, {200, 30, 60}}
	for i := range 5 {
		if ds.Label(i) != wantLabels[i] {
			t.Errorf("image %d: label %d, want %d", i, ds.Label(i), wantLabels[i])
		}
	}
	for i, want := range wantRGB {
		px := ds.Pixels(i)
		for c := range 3 {
			for p := range 24 * 24 {
				if d := int(px[c*576+p]) - want[c]; d < -4 || d > 4 { // JPEG: a few levels of error
					t.Fatalf("image %d channel %d pixel %d = %d, want %d±4", i, c, p, px[c*576+p], want[c])
				}
			}
		}
	}
	px := ds.Pixels(4)
	for y := range 24 {
		for c := range 3 {
			row := px[c*576+y*24 : c*576+(y+1)*24]
			if row[0] != 0 || row[10] > 5 || row[13] < 250 || row[23] != 255 {
				t.Fatalf("edge image row %d channel %d = %v: the edge moved", y, c, row)
			}
		}
	}

	// All-gray folder: RGB with three equal channels, as torchvision's loader
	// converts every image.
	grayRoot := t.TempDir()
	writeImage(t, filepath.Join(grayRoot, "test", "x", "1.png"), solid(10, 12, color.Gray{33}, true))
	writeImage(t, filepath.Join(grayRoot, "test", "y", "2.jpg"), solid(30, 12, color.Gray{222}, true))
	ds, err = Open(Spec{Kind: "imagefolder", Path: grayRoot, Split: "test", ImageSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Channels() != 3 || ds.Len() != 2 || len(ds.Pixels(1)) != 3*64 {
		t.Fatalf("gray folder: %d channels, %d images, %d bytes per image", ds.Channels(), ds.Len(), len(ds.Pixels(1)))
	}
	for c := range 3 {
		if p := ds.Pixels(0)[c*64+20]; p != 33 {
			t.Errorf("gray pixel channel %d = %d, want 33", c, p)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	withPublishedMNIST(t, nil) // synthetic MNIST-layout files
	rng := rand.New(rand.NewPCG(3, 4))
	mk := func(setup func(dir string)) string {
		dir := t.TempDir()
		setup(dir)
		return dir
	}
	good := func(dir string) { writeMNIST(t, dir, "train", 20, 4, 4, true) }
	imgPath := func(dir string) string { return filepath.Join(dir, "train-images-idx3-ubyte.gz") }
	lblPath := func(dir string) string { return filepath.Join(dir, "train-labels-idx1-ubyte.gz") }
	cut := func(path string, keep int) {
		b, _ := os.ReadFile(path)
		os.WriteFile(path, b[:keep], 0o644)
	}

	type errCase struct {
		name     string
		spec     Spec
		want     error
		mentions string // the file or folder the message must name
	}
	var cases []errCase
	add := func(name string, spec Spec, want error, mentions string) {
		cases = append(cases, errCase{name, spec, want, mentions})
	}

	d := mk(func(string) {})
	add("missing dataset folder", Spec{Kind: "mnist", Path: filepath.Join(d, "nope"), Split: "train"}, ErrMissingFile, filepath.Join(d, "nope"))
	d = mk(func(dir string) { good(dir); os.Remove(lblPath(dir)) })
	add("missing label file", Spec{Kind: "mnist", Path: d, Split: "train"}, ErrMissingFile, lblPath(d))
	d = mk(func(dir string) { good(dir); b, _ := os.ReadFile(imgPath(dir)); cut(imgPath(dir), len(b)-30) })
	add("truncated gzip idx", Spec{Kind: "mnist", Path: d, Split: "train"}, ErrTruncated, imgPath(d))
	d = mk(func(dir string) {
		writeIdx(t, filepath.Join(dir, "train-images-idx3-ubyte"), idxImageMagic, []int{20, 4, 4}, randomBytes(rng, 20*16-5), false)
		writeIdx(t, filepath.Join(dir, "train-labels-idx1-ubyte"), idxLabelMagic, []int{20}, make([]uint8, 20), false)
	})
	add("truncated raw idx", Spec{Kind: "mnist", Path: d, Split: "train"}, ErrTruncated, filepath.Join(d, "train-images-idx3-ubyte"))
	d = mk(func(dir string) {
		writeIdx(t, filepath.Join(dir, "train-images-idx3-ubyte"), idxImageMagic, []int{20, 4, 4}, nil, false)
		cut(filepath.Join(dir, "train-images-idx3-ubyte"), 6)
		writeIdx(t, filepath.Join(dir, "train-labels-idx1-ubyte"), idxLabelMagic, []int{20}, make([]uint8, 20), false)
	})
	add("truncated idx header", Spec{Kind: "mnist", Path: d, Split: "train"}, ErrTruncated, filepath.Join(d, "train-images-idx3-ubyte"))
	d = mk(func(dir string) {
		writeIdx(t, imgPath(dir), 0x00000801, []int{320}, randomBytes(rng, 320), true) // a label file in the image slot
		writeIdx(t, lblPath(dir), idxLabelMagic, []int{20}, make([]uint8, 20), true)
	})
	add("label magic in image file", Spec{Kind: "mnist", Path: d, Split: "train"}, ErrBadMagic, imgPath(d))
	d = mk(func(dir string) {
		writeIdx(t, imgPath(dir), 0x12345678, []int{20, 4, 4}, randomBytes(rng, 320), true)
		writeIdx(t, lblPath(dir), idxLabelMagic, []int{20}, make([]uint8, 20), true)
	})
	add("garbage magic", Spec{Kind: "mnist", Path: d, Split: "train"}, ErrBadMagic, imgPath(d))
	d = mk(func(dir string) {
		writeIdx(t, imgPath(dir), idxImageMagic, []int{20, 4, 4}, randomBytes(rng, 320), true)
		writeIdx(t, lblPath(dir), idxLabelMagic, []int{19}, make([]uint8, 19), true)
	})
	add("count mismatch", Spec{Kind: "mnist", Path: d, Split: "train"}, ErrCountMismatch, lblPath(d))
	d = mk(func(dir string) {
		writeIdx(t, imgPath(dir), idxImageMagic, []int{2, 4, 4}, randomBytes(rng, 32), true)
		writeIdx(t, lblPath(dir), idxLabelMagic, []int{2}, []uint8{3, 10}, true)
	})
	add("idx label out of range", Spec{Kind: "mnist", Path: d, Split: "train"}, ErrBadLabel, lblPath(d))
	d = mk(good)
	add("fashion-mnist checksum", Spec{Kind: "fashion-mnist", Path: d, Split: "train"}, ErrChecksum, imgPath(d))

	d = mk(func(dir string) {
		for b := 1; b <= 4; b++ {
			writeCIFAR(t, filepath.Join(dir, "data_batch_"+string(rune('0'+b))+".bin"), 2, 1, 10, rng)
		}
	})
	add("missing CIFAR-10 batch", Spec{Kind: "cifar10", Path: d, Split: "train"}, ErrMissingFile, filepath.Join(d, "data_batch_5.bin"))
	d = mk(func(dir string) {
		writeCIFAR(t, filepath.Join(dir, "test_batch.bin"), 3, 1, 10, rng)
		cut(filepath.Join(dir, "test_batch.bin"), 3*3073-100)
	})
	add("truncated CIFAR-10", Spec{Kind: "cifar10", Path: d, Split: "test"}, ErrTruncated, filepath.Join(d, "test_batch.bin"))
	d = mk(func(dir string) { writeCIFAR(t, filepath.Join(dir, "test_batch.bin"), 3, 1, 100, rng) })
	add("CIFAR-10 label out of range", Spec{Kind: "cifar10", Path: d, Split: "test"}, ErrBadLabel, filepath.Join(d, "test_batch.bin"))
	d = mk(func(dir string) {
		writeCIFAR(t, filepath.Join(dir, "test.bin"), 2, 2, 100, rng)
		cut(filepath.Join(dir, "test.bin"), 3074+3073)
	})
	add("truncated CIFAR-100", Spec{Kind: "cifar100", Path: d, Split: "test"}, ErrTruncated, filepath.Join(d, "test.bin"))
	d = mk(func(dir string) {}) // exists but empty
	add("missing CIFAR-100 file", Spec{Kind: "cifar100", Path: d, Split: "train"}, ErrMissingFile, filepath.Join(d, "train.bin"))

	d = mk(func(dir string) { os.MkdirAll(filepath.Join(dir, "train"), 0o755) })
	add("image folder without classes", Spec{Kind: "imagefolder", Path: d, Split: "train", ImageSize: 8}, ErrNoImages, filepath.Join(d, "train"))
	d = mk(func(dir string) {
		writeImage(t, filepath.Join(dir, "train", "a", "1.png"), solid(4, 4, color.Gray{1}, true))
		os.MkdirAll(filepath.Join(dir, "train", "b"), 0o755)
		os.WriteFile(filepath.Join(dir, "train", "b", "readme.txt"), []byte("x"), 0o644)
	})
	add("class folder without images", Spec{Kind: "imagefolder", Path: d, Split: "train", ImageSize: 8}, ErrNoImages, filepath.Join(d, "train", "b"))
	// Class folders straight under the root: both splits would be the same
	// images, so each split names its missing folder.
	d = mk(func(dir string) { writeImage(t, filepath.Join(dir, "a", "1.png"), solid(4, 4, color.Gray{1}, true)) })
	add("image folder without split folders", Spec{Kind: "imagefolder", Path: d, Split: "train", ImageSize: 8}, ErrMissingFile, "no train/ folder")
	add("image folder without split folders (test)", Spec{Kind: "imagefolder", Path: d, Split: "test", ImageSize: 8}, ErrMissingFile, "no test/ folder")
	d = mk(func(dir string) {
		writeImage(t, filepath.Join(dir, "train", "a", "1.png"), solid(4, 4, color.Gray{1}, true))
	})
	add("image folder without test/", Spec{Kind: "imagefolder", Path: d, Split: "test", ImageSize: 8}, ErrMissingFile, "set data.test_split: train to evaluate on the training images")
	add("image folder without size", Spec{Kind: "imagefolder", Path: d, Split: "train"}, ErrBadSpec, d)
	add("unknown kind", Spec{Kind: "svhn", Path: d, Split: "train"}, ErrBadSpec, "svhn")
	add("bad split", Spec{Kind: "mnist", Path: d, Split: "val"}, ErrBadSpec, "val")

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := Open(tc.spec)
			if err == nil {
				t.Fatalf("Open(%+v) = %s, want an error", tc.spec, ds.Name())
			}
			t.Log(err)
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q is not %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mentions) {
				t.Errorf("error %q does not name %s", err, tc.mentions)
			}
		})
	}
}

// TestImageFolderRealJPEG reads the two photographs Debian's python3-sklearn
// ships and checks that each channel's mean over the centre crop survives
// the evaluation transform.
func TestImageFolderRealJPEG(t *testing.T) {
	const sklearnImages = "/usr/lib/python3/dist-packages/sklearn/datasets/images"
	root := t.TempDir()
	var want [][3]float64
	for _, name := range []string{"china.jpg", "flower.jpg"} {
		raw, err := os.ReadFile(filepath.Join(sklearnImages, name))
		if err != nil {
			testenv.Missing(t, "the sample JPEGs of python3-sklearn are not installed (apt-get install python3-sklearn, or MOCHI_SETUP_TORCH=1 scripts/setup.sh): %v", err)
		}
		img, err := jpeg.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		// The evaluation transform keeps the centre square of side
		// shorter·size/EvalResizeSide(size).
		var m [3]float64
		b := img.Bounds()
		side := int(float64(min(b.Dx(), b.Dy())) * 64 / float64(EvalResizeSide(64)))
		b = image.Rect((b.Dx()-side)/2, (b.Dy()-side)/2, (b.Dx()+side)/2, (b.Dy()+side)/2)
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bl, _ := img.At(x, y).RGBA()
				m[0], m[1], m[2] = m[0]+float64(r>>8), m[1]+float64(g>>8), m[2]+float64(bl>>8)
			}
		}
		for c := range m {
			m[c] /= float64(b.Dx() * b.Dy())
		}
		want = append(want, m)
		os.MkdirAll(filepath.Join(root, "train", name[:len(name)-4]), 0o755)
		os.WriteFile(filepath.Join(root, "train", name[:len(name)-4], name), raw, 0o644)
	}
	ds, err := Open(Spec{Kind: "imagefolder", Path: root, Split: "train", ImageSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 2 || ds.Channels() != 3 {
		t.Fatalf("%d images of %d channels, want 2 of 3", ds.Len(), ds.Channels())
	}
	for i, m := range want {
		px := ds.Pixels(i)
		for c := range 3 {
			var sum float64
			for _, v := range px[c*4096 : (c+1)*4096] {
				sum += float64(v)
			}
			if got := sum / 4096; math.Abs(got-m[c]) > 3 {
				t.Errorf("image %d channel %d: mean %.1f after resize, %.1f before", i, c, got, m[c])
			}
		}
	}
}
