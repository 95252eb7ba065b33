package data

import (
	"slices"
	"strings"
	"testing"
)

// TestDistributedSamplerKeepsTheGlobalOrder: for P = 1, 2, 3 the ranks'
// local batches of each step, in rank order, are the batch of that step
// that one process's TwoViewLoader yields, and the positions name the same
// images.
func TestDistributedSamplerKeepsTheGlobalOrder(t *testing.T) {
	const n, batch, seed = 103, 12, 7 // 8 steps, 7 images dropped
	ds := syntheticDataset(t, n, 1, 8)
	loader, err := NewTwoViewLoader(ds, MoCoV2Augment(1, 8), batch, seed, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for e := range 2 {
		var single []int // one process's order
		it := loader.Epoch(e)
		for b, ok := it.Next(); ok; b, ok = it.Next() {
			single = append(single, b.Index...)
			loader.Release(b)
		}
		it.Close()
		perm := EpochPermutation(seed, e, n)
		for _, p := range []int{1, 2, 3} {
			var union []int
			epochs := make([][]int, p)
			samplers := make([]*DistributedSampler, p)
			for r := range p {
				s, err := NewDistributedSampler(n, batch, r, p)
				if err != nil {
					t.Fatal(err)
				}
				if s.StepsPerEpoch() != n/batch || s.LocalBatch()*p != batch {
					t.Fatalf("P=%d: %d steps of %d images, want %d of %d", p, s.StepsPerEpoch(), s.LocalBatch(), n/batch, batch/p)
				}
				samplers[r], epochs[r] = s, s.Epoch(seed, e)
			}
			for step := range n / batch {
				for r, s := range samplers {
					b := s.LocalBatch()
					local := epochs[r][step*b : (step+1)*b]
					lo, hi := s.Positions(step)
					if !slices.Equal(local, perm[lo:hi]) {
						t.Fatalf("P=%d rank %d step %d: Epoch gives %v, Positions %d:%d give %v", p, r, step, local, lo, hi, perm[lo:hi])
					}
					union = append(union, local...)
				}
			}
			if !slices.Equal(union, single) {
				t.Fatalf("epoch %d, P=%d: the ranks' batches in order are\n%v\nwant one process's order\n%v", e, p, union, single)
			}
		}
	}
}

func TestDistributedSamplerErrors(t *testing.T) {
	for _, tc := range []struct {
		n, batch, rank, size int
		want                 string
	}{
		{100, 10, 0, 3, "batch 10 does not split over 3 processes: use a multiple of 3"},
		{8, 10, 0, 2, "8 images are fewer than one batch of 10"},
		{100, 10, 2, 2, "rank 2 of 2 processes"},
		{100, 0, 0, 1, "batch 0: must be at least 1"},
	} {
		_, err := NewDistributedSampler(tc.n, tc.batch, tc.rank, tc.size)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc, err, tc.want)
		}
	}
}
