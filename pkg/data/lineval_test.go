package data

import (
	"math"
	"slices"
	"testing"
)

func TestLinearEvalAugment(t *testing.T) {
	mean, std := []float32{0.3}, []float32{0.4}
	a := LinearEvalAugment(28, mean, std)
	if err := a.Validate(1); err != nil {
		t.Fatal(err)
	}
	mean[0] = 9 // the config holds its own copy
	want := AugmentConfig{CropSize: 28, ScaleMin: 0.08, ScaleMax: 1, FlipProb: 0.5, Mean: []float32{0.3}, Std: []float32{0.4}}
	if a.CropSize != want.CropSize || a.ScaleMin != want.ScaleMin || a.ScaleMax != want.ScaleMax || a.FlipProb != want.FlipProb ||
		!slices.Equal(a.Mean, want.Mean) || !slices.Equal(a.Std, want.Std) ||
		a.JitterProb != 0 || a.GrayProb != 0 || a.BlurProb != 0 || a.Brightness != 0 || a.Contrast != 0 || a.Saturation != 0 || a.Hue != 0 {
		t.Fatalf("LinearEvalAugment = %+v, want RandomResizedCrop(0.08–1) + flip 0.5 only: %+v", a, want)
	}
}

// augmentedEpoch returns every view and label of one epoch, in order.
func augmentedEpoch(t *testing.T, ds Dataset, aug AugmentConfig, seed uint64, epoch, batch, workers int) ([]float32, []int) {
	t.Helper()
	var x []float32
	var labels []int
	err := AugmentedBatches(ds, aug, seed, epoch, batch, workers, func(b []float32, lab, idx []int) error {
		for i, id := range idx {
			if id != len(labels)+i {
				t.Fatalf("image %d at position %d of the epoch", id, len(labels)+i)
			}
		}
		x = append(x, b...)
		labels = append(labels, lab...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return x, labels
}

func TestAugmentedBatchesDeterministic(t *testing.T) {
	ds := syntheticDataset(t, 37, 3, 10)
	aug := LinearEvalAugment(10, []float32{0.4, 0.5, 0.6}, []float32{0.2, 0.25, 0.3})
	base, labels := augmentedEpoch(t, ds, aug, 5, 0, 8, 1)
	if len(base) != 37*3*10*10 {
		t.Fatalf("%d values, want 37 views of 3×10×10", len(base))
	}
	for i, l := range labels {
		if l != ds.Label(i) {
			t.Fatalf("label %d = %d, want %d", i, l, ds.Label(i))
		}
	}
	// The views depend on (seed, epoch, image) only.
	for _, c := range []struct{ batch, workers int }{{8, 3}, {37, 2}, {5, 16}} {
		if x, _ := augmentedEpoch(t, ds, aug, 5, 0, c.batch, c.workers); !slices.Equal(x, base) {
			t.Errorf("batch %d, %d workers: views differ from batch 8, 1 worker", c.batch, c.workers)
		}
	}
	for _, c := range []struct {
		name        string
		seed        uint64
		epoch       int
		minDistinct int
	}{{"epoch 1", 5, 1, 30}, {"seed 6", 6, 0, 30}} {
		x, _ := augmentedEpoch(t, ds, aug, c.seed, c.epoch, 8, 2)
		view := 3 * 10 * 10
		distinct := 0
		for i := range 37 {
			if !slices.Equal(x[i*view:(i+1)*view], base[i*view:(i+1)*view]) {
				distinct++
			}
		}
		if distinct < c.minDistinct {
			t.Errorf("%s: only %d of 37 views differ from seed 5 epoch 0", c.name, distinct)
		}
	}
}

// TestAugmentedBatchesIdentityAndMirror checks the views against the
// unaugmented pixels: a crop of the whole image (scale 1) is the image
// itself, normalised as EvalBatches does, and with flip probability 1 its
// mirror image.
func TestAugmentedBatchesIdentityAndMirror(t *testing.T) {
	const s = 9
	ds := syntheticDataset(t, 20, 3, s)
	mean, std := []float32{0.4, 0.5, 0.6}, []float32{0.2, 0.25, 0.3}
	for _, flip := range []float64{0, 1} {
		aug := LinearEvalAugment(s, mean, std)
		aug.ScaleMin, aug.FlipProb = 1, flip
		x, _ := augmentedEpoch(t, ds, aug, 3, 2, 6, 2)
		for id := range ds.Len() {
			px := ds.Pixels(id)
			for c := range 3 {
				for r := range s {
					for col := range s {
						src := col
						if flip == 1 {
							src = s - 1 - col
						}
						want := (float64(px[(c*s+r)*s+src])/255 - float64(mean[c])) / float64(std[c])
						got := float64(x[((id*3+c)*s+r)*s+col])
						if math.Abs(got-want) > 1e-5 {
							t.Fatalf("flip %v: image %d channel %d (%d, %d) = %v, want %v", flip, id, c, r, col, got, want)
						}
					}
				}
			}
		}
	}
}

func TestAugmentedBatchesErrors(t *testing.T) {
	ds := syntheticDataset(t, 4, 1, 6)
	aug := LinearEvalAugment(6, []float32{0.5}, []float32{0.5})
	noop := func([]float32, []int, []int) error { return nil }
	if err := AugmentedBatches(ds, aug, 1, 0, 0, 1, noop); err == nil {
		t.Error("batch 0 accepted")
	}
	if err := AugmentedBatches(ds, aug, 1, 0, 2, 0, noop); err == nil {
		t.Error("0 workers accepted")
	}
	three := LinearEvalAugment(6, []float32{0.5, 0.5, 0.5}, []float32{0.5, 0.5, 0.5})
	if err := AugmentedBatches(ds, three, 1, 0, 2, 1, noop); err == nil {
		t.Error("three-channel mean and std accepted for a one-channel dataset")
	}
}
