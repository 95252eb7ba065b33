package data

import "fmt"

// DistributedSampler is the part of every epoch that one of Size
// data-parallel processes reads (PyTorch's DistributedSampler semantics with
// the single-process order kept): the epoch's permutation
// (EpochPermutation) is cut into global batches of GlobalBatch images, as one
// process would, and rank r takes the r-th contiguous slice of
// GlobalBatch/Size images of each. Concatenated in rank order, the slices of
// step t are the single-process batch t, so keys all-gathered in rank order
// enter the queue in the single-process order, and a fixed seed gives the
// same global order for any number of processes. Per-image augmentation
// seeds come from the global position (Positions), not the rank's.
type DistributedSampler struct {
	n, globalBatch, rank, size int
}

// NewDistributedSampler returns rank's sampler of a dataset of n images read
// in global batches of globalBatch images by size processes.
func NewDistributedSampler(n, globalBatch, rank, size int) (*DistributedSampler, error) {
	switch {
	case size < 1 || rank < 0 || rank >= size:
		return nil, fmt.Errorf("distributed sampler: rank %d of %d processes: want 0 ≤ rank < processes", rank, size)
	case globalBatch < 1:
		return nil, fmt.Errorf("distributed sampler: batch %d: must be at least 1", globalBatch)
	case globalBatch%size != 0:
		return nil, fmt.Errorf("distributed sampler: batch %d does not split over %d processes: use a multiple of %d (each process takes batch/%d images per step)",
			globalBatch, size, size, size)
	case n < globalBatch:
		return nil, fmt.Errorf("distributed sampler: %d images are fewer than one batch of %d: lower the batch or use more images", n, globalBatch)
	}
	return &DistributedSampler{n: n, globalBatch: globalBatch, rank: rank, size: size}, nil
}

// LocalBatch is the number of images this rank reads per step.
func (s *DistributedSampler) LocalBatch() int { return s.globalBatch / s.size }

// StepsPerEpoch is the number of full global batches in an epoch, as for one
// process with the global batch (the remainder is dropped).
func (s *DistributedSampler) StepsPerEpoch() int { return s.n / s.globalBatch }

// Positions is the range [lo, hi) of positions in the epoch's permutation
// that this rank reads at step t.
func (s *DistributedSampler) Positions(t int) (lo, hi int) {
	lo = t*s.globalBatch + s.rank*s.LocalBatch()
	return lo, lo + s.LocalBatch()
}

// Epoch returns the dataset indices this rank reads in epoch e, step after
// step: step t's local batch is the t-th run of LocalBatch indices.
func (s *DistributedSampler) Epoch(seed uint64, e int) []int {
	perm := EpochPermutation(seed, e, s.n)
	b := s.LocalBatch()
	out := make([]int, 0, s.StepsPerEpoch()*b)
	for t := range s.StepsPerEpoch() {
		lo, hi := s.Positions(t)
		out = append(out, perm[lo:hi]...)
	}
	return out
}
