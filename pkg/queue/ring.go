package queue

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Ring is the CPU Queue: keys in one K×D float32 slice.
type Ring struct {
	k, d int
	ptr  int
	keys []float32 // K×D
	meta []Meta    // K
}

// NewRing returns a K×D queue filled with random unit vectors drawn from seed
// (each a normalised standard Gaussian vector, i.e. uniform on the sphere),
// all with metadata Unfilled.
func NewRing(k, d int, seed uint64) (*Ring, error) {
	if k <= 0 || d <= 0 {
		return nil, fmt.Errorf("queue: size K = %d and dimension D = %d must both be positive (check queue_size and the embedding dimension)", k, d)
	}
	r := &Ring{k: k, d: d, keys: make([]float32, k*d), meta: make([]Meta, k)}
	rng := rand.New(rand.NewPCG(seed, 0x6d6f636869717565)) // "mochique"
	for i := range k {
		row := r.keys[i*d : (i+1)*d]
		var norm2 float64
		for j := range row {
			v := rng.NormFloat64()
			row[j] = float32(v)
			norm2 += v * v
		}
		inv := 1 / math.Sqrt(norm2)
		for j := range row {
			row[j] = float32(float64(row[j]) * inv)
		}
		r.meta[i] = Unfilled
	}
	return r, nil
}

// K is the number of entries.
func (r *Ring) K() int { return r.k }

// Dim is the key length D.
func (r *Ring) Dim() int { return r.d }

// Ptr is the row the next Enqueue writes first.
func (r *Ring) Ptr() int { return r.ptr }

// Host returns the queue's own K×D buffer (read-only).
func (r *Ring) Host() []float32 { return r.keys }

// Meta returns the queue's own metadata slice (read-only).
func (r *Ring) Meta() []Meta { return r.meta }

// Enqueue writes keys (B×D) and meta (B) at Ptr, wrapping at K.
func (r *Ring) Enqueue(keys []float32, meta []Meta) error {
	if len(keys)%r.d != 0 {
		return fmt.Errorf("queue: enqueue of %d values is not a whole number of D = %d keys", len(keys), r.d)
	}
	b := len(keys) / r.d
	if len(meta) != b {
		return fmt.Errorf("queue: enqueue of %d keys with %d metadata entries; pass one Meta per key", b, len(meta))
	}
	if b > r.k {
		return fmt.Errorf("queue: batch of %d keys exceeds the queue size K = %d; raise queue_size or lower the batch size", b, r.k)
	}
	// First the rows up to K−1, then the rest from row 0.
	first := min(b, r.k-r.ptr)
	copy(r.keys[r.ptr*r.d:], keys[:first*r.d])
	copy(r.meta[r.ptr:], meta[:first])
	copy(r.keys, keys[first*r.d:])
	copy(r.meta, meta[first:])
	r.ptr = (r.ptr + b) % r.k
	return nil
}

// Snapshot returns a deep copy of the state.
func (r *Ring) Snapshot() State {
	return State{K: r.k, D: r.d, Ptr: r.ptr,
		Keys: append([]float32(nil), r.keys...),
		Meta: append([]Meta(nil), r.meta...)}
}

// Restore replaces the state with a copy of s.
func (r *Ring) Restore(s State) error {
	if err := s.fits(r.k, r.d); err != nil {
		return err
	}
	r.ptr = s.Ptr
	copy(r.keys, s.Keys)
	copy(r.meta, s.Meta)
	return nil
}

var _ Queue = (*Ring)(nil)
