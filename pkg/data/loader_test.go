package data

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// syntheticDataset is n random c×s×s images with random labels.
func syntheticDataset(t testing.TB, n, c, s int) Dataset {
	rng := rand.New(rand.NewPCG(uint64(n*c), uint64(s)))
	labels := make([]int, n)
	for i := range labels {
		labels[i] = rng.IntN(10)
	}
	ds, err := NewInMemory("synthetic", c, s, s, 10, randomBytes(rng, n*c*s*s), labels)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// collect runs one epoch and copies out every batch (releasing them for reuse).
func collect(t *testing.T, ds Dataset, seed uint64, epoch, workers, prefetch int) []Batch {
	t.Helper()
	l, err := NewTwoViewLoader(ds, MoCoV2Augment(ds.Channels(), 12), 8, seed, workers, prefetch)
	if err != nil {
		t.Fatal(err)
	}
	it := l.Epoch(epoch)
	defer it.Close()
	var out []Batch
	for b, ok := it.Next(); ok; b, ok = it.Next() {
		out = append(out, Batch{
			Query: slices.Clone(b.Query), Key: slices.Clone(b.Key),
			Index: slices.Clone(b.Index), Label: slices.Clone(b.Label),
			B: b.B, C: b.C, H: b.H, W: b.W,
		})
		l.Release(b)
	}
	return out
}

func sameBatches(a, b []Batch) bool {
	return slices.EqualFunc(a, b, func(x, y Batch) bool {
		return slices.Equal(x.Query, y.Query) && slices.Equal(x.Key, y.Key) && slices.Equal(x.Index, y.Index)
	})
}

func TestTwoViewLoader(t *testing.T) {
	for _, c := range []int{1, 3} {
		ds := syntheticDataset(t, 53, c, 14)
		ref := collect(t, ds, 42, 0, 1, 0)
		if len(ref) != 6 { // 53 / 8, drop-last
			t.Fatalf("c=%d: %d batches, want 6", c, len(ref))
		}
		seen := map[int]bool{}
		for _, b := range ref {
			if b.B != 8 || b.C != c || b.H != 12 || b.W != 12 || len(b.Query) != 8*c*144 || len(b.Key) != len(b.Query) {
				t.Fatalf("c=%d: batch shape %d×%d×%d×%d with %d values", c, b.B, b.C, b.H, b.W, len(b.Query))
			}
			for i, idx := range b.Index {
				if seen[idx] {
					t.Fatalf("c=%d: image %d twice in one epoch", c, idx)
				}
				seen[idx] = true
				if b.Label[i] != ds.Label(idx) {
					t.Fatalf("c=%d: label %d for image %d, want %d", c, b.Label[i], idx, ds.Label(idx))
				}
			}
			if slices.Equal(b.Query, b.Key) {
				t.Fatalf("c=%d: query and key views are identical", c)
			}
		}
		for _, wp := range [][2]int{{4, 0}, {4, 3}, {2, 1}, {3, 7}, {0, 2}} { // 0 workers: one per core
			if got := collect(t, ds, 42, 0, wp[0], wp[1]); !sameBatches(ref, got) {
				t.Errorf("c=%d: workers=%d prefetch=%d gives other batches than workers=1", c, wp[0], wp[1])
			}
		}
		if got := collect(t, ds, 42, 0, 2, 2); !sameBatches(ref, got) {
			t.Errorf("c=%d: same seed, second run differs", c)
		}
		if got := collect(t, ds, 43, 0, 2, 2); sameBatches(ref, got) || slices.Equal(ref[0].Query, got[0].Query) {
			t.Errorf("c=%d: seed 43 gives the same batches as seed 42", c)
		}
		next := collect(t, ds, 42, 1, 2, 2)
		if slices.Equal(ref[0].Index, next[0].Index) {
			t.Errorf("c=%d: epochs 0 and 1 visit images in the same order", c)
		}
	}
}

func TestEpochPermutation(t *testing.T) {
	p0, p1 := EpochPermutation(7, 0, 100), EpochPermutation(7, 1, 100)
	if !slices.Equal(p0, EpochPermutation(7, 0, 100)) {
		t.Fatal("the permutation of epoch 0 is not reproducible")
	}
	if slices.Equal(p0, p1) || slices.Equal(p0, EpochPermutation(8, 0, 100)) {
		t.Fatal("epochs or seeds share a permutation")
	}
	sorted := slices.Sorted(slices.Values(p1))
	for i, v := range sorted {
		if v != i {
			t.Fatalf("epoch 1 order is not a permutation of 0..99: %v", sorted)
		}
	}
}

func TestEpochIterCloseEarly(t *testing.T) {
	ds := syntheticDataset(t, 200, 3, 16)
	l, err := NewTwoViewLoader(ds, MoCoV2Augment(3, 16), 4, 1, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if l.StepsPerEpoch() != 50 {
		t.Fatalf("StepsPerEpoch %d, want 50", l.StepsPerEpoch())
	}
	it := l.Epoch(0)
	if _, ok := it.Next(); !ok {
		t.Fatal("no first batch")
	}
	it.Close() // must return although 49 steps were never taken
	it.Close()
}

func TestNewTwoViewLoaderErrors(t *testing.T) {
	ds := syntheticDataset(t, 10, 1, 8)
	bad := MoCoV2Augment(3, 8) // three means for a gray dataset
	for _, tc := range []struct {
		name                     string
		aug                      AugmentConfig
		batch, workers, prefetch int
	}{
		{"batch larger than dataset", MoCoV2Augment(1, 8), 11, 1, 1},
		{"zero batch", MoCoV2Augment(1, 8), 0, 1, 1},
		{"negative workers", MoCoV2Augment(1, 8), 2, -1, 1},
		{"negative prefetch", MoCoV2Augment(1, 8), 2, 1, -1},
		{"channel mismatch", bad, 2, 1, 1},
	} {
		if _, err := NewTwoViewLoader(ds, tc.aug, tc.batch, 1, tc.workers, tc.prefetch); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestEvalBatches(t *testing.T) {
	ds := syntheticDataset(t, 50, 3, 5)
	mean, std := []float32{0.4, 0.5, 0.6}, []float32{0.2, 0.25, 0.3}
	var sizes, seen []int
	err := EvalBatches(ds, mean, std, 16, func(x []float32, labels, idx []int) error {
		sizes = append(sizes, len(idx))
		if len(x) != len(idx)*75 || len(labels) != len(idx) {
			t.Fatalf("batch of %d: %d values, %d labels", len(idx), len(x), len(labels))
		}
		for i, id := range idx {
			seen = append(seen, id)
			if labels[i] != ds.Label(id) {
				t.Fatalf("label of %d: %d, want %d", id, labels[i], ds.Label(id))
			}
			for j, p := range ds.Pixels(id) {
				c := j / 25
				want := (float64(p)/255 - float64(mean[c])) / float64(std[c])
				if math.Abs(float64(x[i*75+j])-want) > 1e-5 {
					t.Fatalf("image %d value %d = %v, want %v", id, j, x[i*75+j], want)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sizes, []int{16, 16, 16, 2}) {
		t.Errorf("batch sizes %v, want [16 16 16 2]", sizes)
	}
	for i, id := range seen {
		if id != i {
			t.Fatalf("images visited out of order: %v", seen)
		}
	}
	if err := EvalBatches(ds, mean[:1], std, 16, func([]float32, []int, []int) error { return nil }); err == nil {
		t.Error("EvalBatches accepted one mean for three channels")
	}
}
