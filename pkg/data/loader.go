package data

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
)

// Batch is one step's input: two augmented views of the same B images.
type Batch struct {
	// Query and Key are the two views, B×C×H×W each, normalised.
	Query, Key []float32
	// Index is the dataset index of each image, Label its class; B each.
	Index, Label []int
	// B, C, H, W are the batch shape (H = W = CropSize).
	B, C, H, W int
}

// TwoViewLoader turns a Dataset into an epoch-by-epoch stream of two-view
// batches. Epoch e visits a permutation drawn from (seed, e) in
// len/batch full batches (the remainder is dropped, as MoCo's drop_last).
type TwoViewLoader struct {
	ds       Dataset
	aug      AugmentConfig
	batch    int
	seed     uint64
	workers  int
	prefetch int
	free     chan *Batch         // recycled batches
	sampler  *DistributedSampler // nil: one process reads the whole batch
}

// NewTwoViewLoader makes a loader of batch-sized two-view batches; workers
// goroutines (0: one per core) build batches and up to prefetch finished
// ones wait ahead of the consumer.
func NewTwoViewLoader(ds Dataset, aug AugmentConfig, batch int, seed uint64, workers, prefetch int) (*TwoViewLoader, error) {
	if err := aug.Validate(ds.Channels()); err != nil {
		return nil, fmt.Errorf("%s: %w", ds.Name(), err)
	}
	switch {
	case batch < 1:
		return nil, fmt.Errorf("two-view loader: batch %d: must be at least 1", batch)
	case ds.Len() < batch:
		return nil, fmt.Errorf("two-view loader: %s has %d images, fewer than one batch of %d: lower the batch or use more images", ds.Name(), ds.Len(), batch)
	case workers < 0:
		return nil, fmt.Errorf("two-view loader: workers %d: must be ≥ 0 (0: one per core)", workers)
	case prefetch < 0:
		return nil, fmt.Errorf("two-view loader: prefetch %d: must be ≥ 0", prefetch)
	}
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &TwoViewLoader{
		ds: ds, aug: aug, batch: batch, seed: seed, workers: workers, prefetch: prefetch,
		free: make(chan *Batch, workers+prefetch+1),
	}, nil
}

// NewDistributedTwoViewLoader is NewTwoViewLoader for one of several
// data-parallel processes: each step yields this rank's slice of the global
// batch (s.LocalBatch images, at s.Positions), each image augmented as a
// single process reading the global batch would augment it.
func NewDistributedTwoViewLoader(ds Dataset, aug AugmentConfig, s *DistributedSampler, seed uint64, workers, prefetch int) (*TwoViewLoader, error) {
	l, err := NewTwoViewLoader(ds, aug, s.LocalBatch(), seed, workers, prefetch)
	if err != nil {
		return nil, err
	}
	l.sampler = s
	return l, nil
}

// StepsPerEpoch is the number of full (global) batches in an epoch.
func (l *TwoViewLoader) StepsPerEpoch() int {
	if l.sampler != nil {
		return l.sampler.StepsPerEpoch()
	}
	return l.ds.Len() / l.batch
}

// Release hands a batch the consumer is done with back to the loader for reuse.
// The batch must not be used afterwards.
func (l *TwoViewLoader) Release(b *Batch) {
	if b == nil {
		return
	}
	select {
	case l.free <- b:
	default:
	}
}

// newBatch returns a recycled batch or allocates one.
func (l *TwoViewLoader) newBatch() *Batch {
	select {
	case b := <-l.free:
		return b
	default:
	}
	c, s := l.ds.Channels(), l.aug.CropSize
	n := l.batch * c * s * s
	return &Batch{
		Query: make([]float32, n), Key: make([]float32, n),
		Index: make([]int, l.batch), Label: make([]int, l.batch),
		B: l.batch, C: c, H: s, W: s,
	}
}

// splitmix64 is one step of SplitMix64, used to decorrelate seeds.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// EpochPermutation is the order in which epoch e visits the n images, drawn
// from (seed, e) alone.
func EpochPermutation(seed uint64, epoch, n int) []int {
	rng := rand.New(rand.NewPCG(splitmix64(seed), splitmix64(uint64(epoch)^0x5eed5eed5eed5eed)))
	return rng.Perm(n)
}

// sampleSeeds are the two PCG seeds of the sample at position pos of epoch e.
func sampleSeeds(seed uint64, epoch, pos int) (uint64, uint64) {
	return splitmix64(seed ^ splitmix64(uint64(epoch))), splitmix64(uint64(pos) ^ 0xa0761d6478bd642f)
}

// EpochIter yields the batches of one epoch in order. Call Close when done,
// also when stopping early.
type EpochIter struct {
	loader  *TwoViewLoader
	steps   int
	next    int
	slots   []chan *Batch // batch t arrives in slots[t % len(slots)]
	tokens  chan struct{} // one per batch in flight or waiting
	done    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Once

	mu      sync.Mutex
	err     error         // the first worker error; Next then ends the epoch
	failed  chan struct{} // closed with err set
	skipped map[int]error // corrupt images stepped over (data.skip_corrupt)
}

// Epoch starts producing the batches of epoch e.
func (l *TwoViewLoader) Epoch(e int) *EpochIter {
	perm := EpochPermutation(l.seed, e, l.ds.Len())
	inFlight := l.workers + l.prefetch
	it := &EpochIter{
		loader: l,
		steps:  l.StepsPerEpoch(),
		slots:  make([]chan *Batch, inFlight),
		tokens: make(chan struct{}, inFlight),
		done:   make(chan struct{}),
		failed: make(chan struct{}),
	}
	for i := range it.slots {
		it.slots[i] = make(chan *Batch, 1)
	}
	jobs := make(chan int)
	it.wg.Add(1 + l.workers)
	go func() { // dispatcher: issues steps in order while tokens last
		defer it.wg.Done()
		defer close(jobs)
		for t := range it.steps {
			select {
			case it.tokens <- struct{}{}:
			case <-it.done:
				return
			}
			select {
			case jobs <- t:
			case <-it.done:
				return
			}
		}
	}()
	for range l.workers {
		go func() {
			defer it.wg.Done()
			w := newBatchWorker(l)
			defer it.addSkipped(w)
			for t := range jobs {
				b := l.newBatch()
				if err := w.fill(b, perm, e, t); err != nil {
					l.Release(b)
					it.fail(err)
					return
				}
				it.slots[t%len(it.slots)] <- b // never blocks: the token reserved the slot
			}
		}()
	}
	return it
}

// Steps is the number of batches the epoch yields.
func (it *EpochIter) Steps() int { return it.steps }

// Next returns the next batch, or false after the last one or when a batch
// could not be made (Err says why).
func (it *EpochIter) Next() (*Batch, bool) {
	if it.next >= it.steps {
		return nil, false
	}
	select {
	case b := <-it.slots[it.next%len(it.slots)]:
		<-it.tokens
		it.next++
		return b, true
	case <-it.failed:
		return nil, false
	}
}

// Err is the error that ended the epoch early (an unreadable image), or nil.
func (it *EpochIter) Err() error {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.err
}

func (it *EpochIter) fail(err error) {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.err == nil {
		it.err = err
		close(it.failed)
	}
}

// Skipped lists the corrupt images the epoch stepped over so far (with
// data.skip_corrupt), one error naming each file, in index order. Read it
// after Close for the whole epoch.
func (it *EpochIter) Skipped() []error {
	it.mu.Lock()
	defer it.mu.Unlock()
	return sortedErrors(it.skipped)
}

func (it *EpochIter) addSkipped(w *batchWorker) {
	if w.src == nil || len(w.src.skipped) == 0 {
		return
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.skipped == nil {
		it.skipped = map[int]error{}
	}
	for i, err := range w.src.skipped {
		it.skipped[i] = err
	}
}

// Close stops the workers and waits for them; batches not yet taken are
// recycled.
func (it *EpochIter) Close() {
	it.closeMu.Do(func() {
		close(it.done)
		it.wg.Wait()
		for _, s := range it.slots {
			select {
			case b := <-s:
				it.loader.Release(b)
			default:
			}
		}
	})
}

// batchWorker owns one goroutine's augmenter, RNG and (ImageFolder) decoder.
type batchWorker struct {
	loader *TwoViewLoader
	aug    *Augmenter
	pcg    *rand.PCG
	rng    *rand.Rand
	src    *viewSource // nil for in-memory datasets
}

func newBatchWorker(l *TwoViewLoader) *batchWorker {
	// The config was validated by NewTwoViewLoader, so this cannot fail.
	aug, err := NewAugmenter(l.aug, l.ds.Channels(), l.ds.Height(), l.ds.Width())
	if err != nil {
		panic(err)
	}
	pcg := rand.NewPCG(0, 0)
	w := &batchWorker{loader: l, aug: aug, pcg: pcg, rng: rand.New(pcg)}
	if d, ok := l.ds.(*ImageFolder); ok {
		w.src = &viewSource{d: d}
	}
	return w
}

// fill builds step t of epoch e: images perm[t·B : (t+1)·B] (with a
// sampler, this rank's slice of the global batch), each with its own RNG
// stream seeded from (seed, e, position in the epoch), query view first. An
// ImageFolder image is decoded here and cropped at full resolution.
func (w *batchWorker) fill(b *Batch, perm []int, e, t int) error {
	l := w.loader
	n := w.aug.OutputLen()
	first := t * l.batch
	if l.sampler != nil {
		first, _ = l.sampler.Positions(t)
	}
	for i := range l.batch {
		pos := first + i
		idx := perm[pos]
		w.pcg.Seed(sampleSeeds(l.seed, e, pos))
		q, k := b.Query[i*n:(i+1)*n], b.Key[i*n:(i+1)*n]
		if w.src != nil {
			var err error
			if idx, err = w.src.twoViews(q, k, idx, w.aug, w.rng); err != nil {
				return err
			}
		} else {
			px := l.ds.Pixels(idx)
			w.aug.Apply(q, px, w.rng)
			w.aug.Apply(k, px, w.rng)
		}
		b.Index[i] = idx
		b.Label[i] = l.ds.Label(idx)
	}
	return nil
}

// EvalBatches calls fn on every image of ds in order, batch at a time (the last
// batch may be smaller), with no augmentation: x is n×C×H×W, (pixel/255 −
// mean[c]) / std[c]. The slices are reused between calls; copy what you keep.
// An ImageFolder opened with SkipCorrupt leaves its corrupt images out (a
// batch is then smaller, idx says which images it holds) and records them
// for EvalSkipped.
func EvalBatches(ds Dataset, mean, std []float32, batch int, fn func(x []float32, labels []int, idx []int) error) error {
	c, h, w := ds.Channels(), ds.Height(), ds.Width()
	if len(mean) != c || len(std) != c {
		return fmt.Errorf("eval batches: %s has %d channels but mean/std have %d/%d values: give one per channel", ds.Name(), c, len(mean), len(std))
	}
	if batch < 1 {
		return fmt.Errorf("eval batches: batch %d: must be at least 1", batch)
	}
	plane := h * w
	scale, offset := make([]float32, c), make([]float32, c)
	for ch := range c {
		if !(std[ch] > 0) {
			return fmt.Errorf("eval batches: std[%d] = %v: must be > 0", ch, std[ch])
		}
		// (p/255 − m)/s = p·(1/(255 s)) − m/s
		scale[ch] = 1 / (255 * std[ch])
		offset[ch] = mean[ch] / std[ch]
	}
	x := make([]float32, batch*c*plane)
	labels, idx := make([]int, batch), make([]int, batch)
	folder, _ := ds.(*ImageFolder)
	var decoded []uint8 // an ImageFolder batch, decoded in parallel
	skip := make([]bool, batch)
	if folder != nil {
		decoded = make([]uint8, batch*c*plane)
	}
	for start := 0; start < ds.Len(); start += batch {
		n := min(batch, ds.Len()-start)
		if folder != nil {
			if err := folder.readEvalBatch(decoded, skip, start, n); err != nil {
				return err
			}
		}
		kept := 0
		for i := range n {
			if skip[i] {
				continue
			}
			var px []uint8
			if folder != nil {
				px = decoded[i*c*plane : (i+1)*c*plane]
			} else {
				px = ds.Pixels(start + i)
			}
			out := x[kept*c*plane : (kept+1)*c*plane]
			for ch := range c {
				sc, of := scale[ch], offset[ch]
				for p, v := range px[ch*plane : (ch+1)*plane] {
					out[ch*plane+p] = float32(v)*sc - of
				}
			}
			labels[kept] = ds.Label(start + i)
			idx[kept] = start + i
			kept++
		}
		if kept == 0 {
			continue
		}
		if err := fn(x[:kept*c*plane], labels[:kept], idx[:kept]); err != nil {
			return err
		}
	}
	return nil
}
