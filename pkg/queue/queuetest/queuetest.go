// Package queuetest is the conformance suite every queue.Queue
// implementation runs (in the style of gonum's blas/testblas): an
// implementation's test is a one-line call to Run.
package queuetest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/queue"
)

// New makes a K×D queue initialised from seed.
type New func(k, d int, seed uint64) (queue.Queue, error)

// Run runs the conformance suite on the implementation that newQueue makes.
func Run(t *testing.T, newQueue New) {
	mk := func(t *testing.T, k, d int, seed uint64) queue.Queue {
		t.Helper()
		q, err := newQueue(k, d, seed)
		if err != nil {
			t.Fatalf("new queue %d×%d: %v", k, d, err)
		}
		return q
	}
	t.Run("InitialRandomUnitKeys", func(t *testing.T) { testInit(t, mk) })
	t.Run("SameSeedSameKeys", func(t *testing.T) { testSeed(t, mk) })
	t.Run("EnqueueWraps", func(t *testing.T) { testWrap(t, mk) })
	t.Run("EnqueueErrors", func(t *testing.T) { testEnqueueErrors(t, mk) })
	t.Run("SnapshotRestore", func(t *testing.T) { testSnapshot(t, mk) })
	t.Run("RestoreErrors", func(t *testing.T) { testRestoreErrors(t, mk) })
}

type maker func(t *testing.T, k, d int, seed uint64) queue.Queue

func testInit(t *testing.T, mk maker) {
	const k, d = 37, 16
	q := mk(t, k, d, 1)
	if q.K() != k || q.Dim() != d || q.Ptr() != 0 {
		t.Fatalf("K, D, Ptr = %d, %d, %d; want %d, %d, 0", q.K(), q.Dim(), q.Ptr(), k, d)
	}
	keys := q.Host()
	if len(keys) != k*d {
		t.Fatalf("Host has %d values, want %d", len(keys), k*d)
	}
	var mean float64 // of all components: near 0 for directions uniform on the sphere
	for i := range k {
		var n2 float64
		for _, v := range keys[i*d : (i+1)*d] {
			n2 += float64(v) * float64(v)
			mean += float64(v)
		}
		if math.Abs(n2-1) > 1e-5 {
			t.Errorf("initial key %d has squared norm %v, want 1", i, n2)
		}
	}
	if mean /= k * d; math.Abs(mean) > 0.05 {
		t.Errorf("mean component %v of the random keys, want ≈ 0", mean)
	}
	for i, m := range q.Meta() {
		if m != queue.Unfilled || m.Real() {
			t.Fatalf("initial meta[%d] = %+v, want %+v (not a real key)", i, m, queue.Unfilled)
		}
	}
}

func testSeed(t *testing.T, mk maker) {
	a, b, c := mk(t, 8, 4, 7), mk(t, 8, 4, 7), mk(t, 8, 4, 8)
	if !slices.Equal(a.Host(), b.Host()) {
		t.Error("two queues from seed 7 differ")
	}
	if slices.Equal(a.Host(), c.Host()) {
		t.Error("queues from seeds 7 and 8 are equal")
	}
}

// batch returns B×D distinct keys (values tagged by step) and their metadata.
func batch(rng *rand.Rand, step, b, d int) ([]float32, []queue.Meta) {
	keys := make([]float32, b*d)
	for i := range keys {
		keys[i] = float32(step) + rng.Float32()
	}
	meta := make([]queue.Meta, b)
	for i := range meta {
		meta[i] = queue.Meta{Index: int64(step*b + i), Label: int32(rng.IntN(10))}
	}
	return keys, meta
}

func testWrap(t *testing.T, mk maker) {
	for _, tc := range []struct{ k, b, steps int }{
		{k: 10, b: 4, steps: 7}, // K not a multiple of B: writes straddle row K−1
		{k: 12, b: 4, steps: 5}, // K a multiple of B
		{k: 5, b: 5, steps: 3},  // B = K
		{k: 7, b: 1, steps: 9},  // B = 1
	} {
		const d = 3
		q := mk(t, tc.k, d, 2)
		// Model: a plain array written row by row at position w mod K.
		want := append([]float32(nil), q.Host()...)
		wantMeta := append([]queue.Meta(nil), q.Meta()...)
		rng := rand.New(rand.NewPCG(3, 4))
		w := 0
		for step := range tc.steps {
			keys, meta := batch(rng, step+1, tc.b, d)
			if err := q.Enqueue(keys, meta); err != nil {
				t.Fatalf("K=%d B=%d step %d: %v", tc.k, tc.b, step, err)
			}
			for r := range tc.b {
				row := (w + r) % tc.k
				copy(want[row*d:(row+1)*d], keys[r*d:(r+1)*d])
				wantMeta[row] = meta[r]
			}
			w += tc.b
			if q.Ptr() != w%tc.k {
				t.Fatalf("K=%d B=%d step %d: Ptr = %d, want %d", tc.k, tc.b, step, q.Ptr(), w%tc.k)
			}
			if !slices.Equal(q.Host(), want) || !slices.Equal(q.Meta(), wantMeta) {
				t.Fatalf("K=%d B=%d step %d: contents differ from the circular-buffer model", tc.k, tc.b, step)
			}
		}
	}
}

func testEnqueueErrors(t *testing.T, mk maker) {
	q := mk(t, 4, 3, 1)
	before := q.Snapshot()
	for name, tc := range map[string]struct {
		keys []float32
		meta []queue.Meta
	}{
		"partial key":     {keys: make([]float32, 5), meta: make([]queue.Meta, 2)},
		"meta length":     {keys: make([]float32, 6), meta: make([]queue.Meta, 1)},
		"batch exceeds K": {keys: make([]float32, 15), meta: make([]queue.Meta, 5)},
	} {
		if err := q.Enqueue(tc.keys, tc.meta); err == nil {
			t.Errorf("%s: Enqueue returned no error", name)
		}
	}
	after := q.Snapshot()
	if after.Ptr != before.Ptr || !slices.Equal(after.Keys, before.Keys) || !slices.Equal(after.Meta, before.Meta) {
		t.Error("a failed Enqueue changed the queue")
	}
}

func testSnapshot(t *testing.T, mk maker) {
	const k, d, b = 10, 4, 3
	q := mk(t, k, d, 5)
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 2 {
		keys, meta := batch(rng, step+1, b, d)
		if err := q.Enqueue(keys, meta); err != nil {
			t.Fatal(err)
		}
	}
	snap := q.Snapshot()
	data, err := snap.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for step := range 3 { // move on, past the wrap
		keys, meta := batch(rng, step+3, b, d)
		if err := q.Enqueue(keys, meta); err != nil {
			t.Fatal(err)
		}
	}
	if snap.Ptr != 2*b || snap.Keys[0] == q.Host()[0] {
		t.Fatalf("snapshot (ptr %d) changed with the queue or was not a deep copy", snap.Ptr)
	}
	var decoded queue.State
	if err := decoded.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if err := q.Restore(decoded); err != nil {
		t.Fatal(err)
	}
	if q.Ptr() != snap.Ptr || !slices.Equal(q.Host(), snap.Keys) || !slices.Equal(q.Meta(), snap.Meta) {
		t.Fatal("queue after Restore(Unmarshal(Marshal(Snapshot))) differs from the snapshot")
	}
	// A restored queue continues exactly like the original.
	keys, meta := batch(rng, 9, b, d)
	twin := mk(t, k, d, 99)
	if err := twin.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(keys, meta); err != nil {
		t.Fatal(err)
	}
	if err := twin.Enqueue(keys, meta); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(q.Host(), twin.Host()) || q.Ptr() != twin.Ptr() {
		t.Fatal("two queues restored from one snapshot diverge after the same Enqueue")
	}
}

func testRestoreErrors(t *testing.T, mk maker) {
	q := mk(t, 6, 2, 1)
	good := q.Snapshot()
	other := mk(t, 7, 2, 1).Snapshot()
	bad := good
	bad.Ptr = 6
	for name, s := range map[string]queue.State{"other K": other, "pointer past K": bad} {
		if err := q.Restore(s); err == nil {
			t.Errorf("Restore(%s) returned no error", name)
		}
	}
	data, err := good.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	corrupt := func(i int, b byte) []byte {
		c := append([]byte(nil), data...)
		c[i] ^= b
		return c
	}
	for name, d := range map[string][]byte{
		"flipped key bit": corrupt(30, 1),
		"bad magic":       corrupt(0, 0xff),
		"future version":  corrupt(4, 2),
		"truncated":       data[:len(data)-1],
		"empty":           nil,
	} {
		var s queue.State
		if err := s.UnmarshalBinary(d); err == nil {
			t.Errorf("UnmarshalBinary(%s) returned no error", name)
		}
	}
}
