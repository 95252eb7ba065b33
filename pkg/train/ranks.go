package train

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/mochi-ssl/mochi/pkg/config"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/dist"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/moco"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// checkRanks refuses what a run on opts.Comm's ranks cannot do: a global
// batch or split-BN groups that do not split evenly over the ranks, and
// what this version does on one process only.
func checkRanks(cfg *config.Config, opts Options) error {
	p := opts.Comm.Size()
	if opts.ShuffleBlocks > 1 && cfg.KeysPerStep()%opts.ShuffleBlocks != 0 {
		return fmt.Errorf("ShuffleBN in %d slices: the batch of %d does not split into them", opts.ShuffleBlocks, cfg.KeysPerStep())
	}
	if p == 1 {
		return nil
	}
	switch o := cfg.Optim; {
	case o.Batch%p != 0:
		return fmt.Errorf("optim.batch = %d is the global batch, and it does not split over %d processes: use a multiple of %d", o.Batch, p, p)
	case cfg.Model.BNSplits%p != 0:
		return fmt.Errorf("model.bn_splits = %d counts the split-BN groups of the global batch, and each of %d processes normalises its share of them: use a multiple of %d", cfg.Model.BNSplits, p, p)
	case cfg.MoCo.Symmetric:
		return fmt.Errorf("moco.symmetric runs on one process only in this version: set moco.symmetric false or start one process")
	case opts.DumpSteps > 0:
		return fmt.Errorf("--dump-steps runs on one process only: start it without mpirun")
	case opts.ShuffleBlocks > 1 && cfg.Model.ShuffleBN == "ranks":
		return fmt.Errorf("ShuffleBN in %d slices: model.shuffle_bn ranks shuffles the batch across the %d processes; set model.shuffle_bn split", opts.ShuffleBlocks, p)
	case opts.ShuffleBlocks > 1 && opts.ShuffleBlocks != p:
		return fmt.Errorf("ShuffleBN in %d slices: %d processes shuffle in %d", opts.ShuffleBlocks, p, p)
	}
	return nil
}

// rankSpec is the model of this rank: its slice of the global batch, in
// its share of the split-BN groups (t.spec is the global batch's, as
// checkpoints store it).
func (t *trainer) rankSpec() moco.Spec {
	s, p := t.spec, t.comm.Size()
	s.B /= p
	s.Net.BNGroups = s.Net.WithDefaults().BNGroups / p
	return s
}

// rankRows is the range of rows of the global batch this rank trains on.
func (t *trainer) rankRows() (lo, hi int) {
	b := t.spec.B / t.comm.Size()
	return t.comm.Rank() * b, (t.comm.Rank() + 1) * b
}

// rankScratch is the host memory of the collectives of a step, reused
// from step to step.
type rankScratch struct {
	blocked, local []int
	loss           []float32
	keys, allKeys  []float32
	index, labels  []int

	// ShuffleBN across the ranks
	perm0       []int     // rank 0's permutation
	xkAll       []float32 // the global key batch
	rows        []int     // the images of this rank's rows of the shuffled batch
	shuffledAll []float32 // the keys of the shuffled global batch
	haveKeys    bool      // allKeys holds this step's keys of every rank
}

// stepAcross runs a step with ShuffleBN across the ranks, as MoCo's
// distributed code does: the key images of the global batch are
// all-gathered, each rank runs the key encoder on its slice of them in
// the order of the global permutation perm (image i at row perm[i]),
// the keys are all-gathered and put back in batch order, and each rank's
// loss takes its own rows. One process runs the same steps with bn_splits
// groups over the whole shuffled batch.
func (r *rankScratch) stepAcross(c dist.Comm, m *moco.Model, xq, xk []float32, perm []int, draw *hardneg.MixDraw, labels []int) (float64, error) {
	n := len(perm)
	b := n / c.Size()
	lo := c.Rank() * b
	// every rank drew perm from the same seeded stream; rank 0's is the
	// one used, and a rank whose stream diverged is stopped
	r.perm0 = append(r.perm0[:0], perm...)
	if err := dist.Broadcast(c, r.perm0, 0); err != nil {
		return 0, fmt.Errorf("ShuffleBN permutation broadcast: %w", err)
	}
	if !slices.Equal(r.perm0, perm) {
		return 0, fmt.Errorf("ShuffleBN: this rank's permutation differs from rank 0's: the ranks' random streams diverged (a bug: please report it)")
	}
	r.xkAll = resize(r.xkAll, c.Size()*len(xk))
	if err := dist.AllGather(c, xk, r.xkAll); err != nil {
		return 0, fmt.Errorf("key image all-gather: %w", err)
	}
	r.rows = resize(r.rows, b)
	for i, j := range perm {
		if j >= lo && j < lo+b {
			r.rows[j-lo] = i
		}
	}
	exchange := func(shuffled []float32) ([]float32, error) {
		d := len(shuffled) / b
		r.shuffledAll = resize(r.shuffledAll, n*d)
		if err := dist.AllGather(c, shuffled, r.shuffledAll); err != nil {
			return nil, fmt.Errorf("key all-gather: %w", err)
		}
		r.allKeys = resize(r.allKeys, n*d)
		for i, j := range perm {
			copy(r.allKeys[i*d:(i+1)*d], r.shuffledAll[j*d:(j+1)*d])
		}
		r.haveKeys = true
		return r.allKeys[lo*d : (lo+b)*d], nil
	}
	return m.StepExchanged(xq, r.xkAll, r.rows, exchange, draw, labels)
}

// resize returns s with length n, reusing its memory when it is enough.
func resize[T any](s []T, n int) []T { return slices.Grow(s[:0], n)[:n] }

// keyPerm is ShuffleBN's permutation as the ranks apply it: perm (of the
// global batch) kept within each of blocks slices (blockShuffle); on
// several ranks, this rank's slice of it.
func (r *rankScratch) keyPerm(perm []int, blocks int, c dist.Comm) []int {
	r.blocked = blockShuffle(perm, blocks, r.blocked)
	if c.Size() == 1 {
		return r.blocked
	}
	n := len(perm) / c.Size()
	lo := c.Rank() * n
	r.local = r.local[:0]
	for _, row := range r.blocked[lo : lo+n] {
		r.local = append(r.local, row-lo)
	}
	return r.local
}

// blockShuffle keeps the permutation perm (image i to row perm[i]) within
// each of blocks consecutive slices of the batch: image i of a slice goes
// to the slice's row whose rank among the slice's rows equals perm[i]'s
// rank among the slice's perm values. With one block it is perm.
func blockShuffle(perm []int, blocks int, dst []int) []int {
	n := len(perm) / blocks
	dst = dst[:0]
	for i, v := range perm {
		lo := i / n * n
		row := lo
		for _, w := range perm[lo : lo+n] {
			if w < v {
				row++
			}
		}
		dst = append(dst, row)
	}
	return dst
}

// reduce makes this rank's loss and gradients (means over its slice) the
// global batch's: the mean over the ranks of both, the gradients summed in
// one all-reduce then scaled by 1/ranks.
func (r *rankScratch) reduce(c dist.Comm, m *moco.Model, loss float64) (float64, error) {
	p := float32(c.Size())
	r.loss = append(r.loss[:0], float32(loss))
	if err := c.AllReduceSum(r.loss); err != nil {
		return 0, fmt.Errorf("loss all-reduce: %w", err)
	}
	if err := reduceGrads(c, m, 1/p); err != nil {
		return 0, fmt.Errorf("gradient all-reduce: %w", err)
	}
	return float64(r.loss[0] / p), nil
}

// enqueue puts the step's keys in the queue: on one process straight from
// the device; on several, every rank's keys (with their image indices and
// labels) gathered in rank order (the keys by stepAcross already, else on
// the device where the Comm can), so that every rank's queue is the one
// process's queue.
func (r *rankScratch) enqueue(c dist.Comm, m *moco.Model, index, labels []int) error {
	p := c.Size()
	if p == 1 && !onDevice(c) {
		return m.Enqueue(index, labels)
	}
	r.index = resize(r.index, p*len(index))
	r.labels = resize(r.labels, p*len(labels))
	if err := dist.AllGather(c, index, r.index); err != nil {
		return fmt.Errorf("key index all-gather: %w", err)
	}
	if err := dist.AllGather(c, labels, r.labels); err != nil {
		return fmt.Errorf("key label all-gather: %w", err)
	}
	if r.haveKeys { // ShuffleBN across the ranks gathered them already
		r.haveKeys = false
		return m.EnqueueKeys(r.allKeys, r.index, r.labels)
	}
	if dc, ok := c.(dist.DeviceComm); ok {
		return m.EnqueueGathered(dc.AllGatherDevice, p, r.index, r.labels)
	}
	r.keys = m.Keys(r.keys)
	r.allKeys = resize(r.allKeys, p*len(r.keys))
	if err := dist.AllGather(c, r.keys, r.allKeys); err != nil {
		return fmt.Errorf("key all-gather: %w", err)
	}
	return m.EnqueueKeys(r.allKeys, r.index, r.labels)
}

// averageRunningStats makes every rank's BatchNorm running statistics
// their mean over the ranks. A running statistic moves by
// r ← (1−μ)·r + μ·(mean over the groups' batch statistics), linear in both,
// so the mean over ranks of their values is one process's value over all
// the groups, whenever it is taken (up to float rounding).
func (t *trainer) averageRunningStats() error {
	c := t.comm
	if c.Size() == 1 {
		return nil
	}
	for _, enc := range []*resnet.Model{t.model.EncoderQ, t.model.EncoderK} {
		stats := enc.RunningStats()
		names := slices.Sorted(maps.Keys(stats))
		var flat []float32
		for _, n := range names {
			flat = append(flat, stats[n]...)
		}
		if err := c.AllReduceSum(flat); err != nil {
			return fmt.Errorf("BatchNorm statistics all-reduce: %w", err)
		}
		off := 0
		for _, n := range names {
			v := stats[n]
			for i := range v {
				v[i] = flat[off+i] / float32(c.Size())
			}
			off += len(v)
		}
		if err := enc.LoadRunningStats(stats); err != nil {
			return err
		}
	}
	return nil
}

// meteredComm is a Comm that counts the time and payload of its
// collectives, for the step metrics of a run on several processes.
type meteredComm struct {
	dist.Comm
	took  time.Duration
	bytes int64
}

// meter wraps c in a meteredComm, keeping its device collectives, if any
// (which then count too), and returns the wrapped Comm and its meter.
func meter(c dist.Comm) (dist.Comm, *meteredComm) {
	m := &meteredComm{Comm: c}
	if dc, ok := c.(dist.DeviceComm); ok {
		return meteredDeviceComm{m, dc}, m
	}
	return m, m
}

// meteredDeviceComm is a meteredComm of a dist.DeviceComm.
type meteredDeviceComm struct {
	*meteredComm
	dev dist.DeviceComm
}

// AllReduceSumDevice counts 4 bytes a value: the buffers are Float32.
func (m meteredDeviceComm) AllReduceSumDevice(bufs ...device.Buffer) error {
	n := 0
	for _, b := range bufs {
		n += 4 * b.Len()
	}
	defer m.count(time.Now(), n)
	return m.dev.AllReduceSumDevice(bufs...)
}

// AllGatherDevice counts 4 bytes a value (Float32 or Int32 buffers).
func (m meteredDeviceComm) AllGatherDevice(send, recv device.Buffer) error {
	defer m.count(time.Now(), 4*recv.Len())
	return m.dev.AllGatherDevice(send, recv)
}

func (m *meteredComm) count(start time.Time, bytes int) {
	m.took += time.Since(start)
	m.bytes += int64(bytes)
}

// reset starts a step's count.
func (m *meteredComm) reset() { m.took, m.bytes = 0, 0 }

func (m *meteredComm) AllReduceSum(buf []float32) error {
	defer m.count(time.Now(), 4*len(buf))
	return m.Comm.AllReduceSum(buf)
}

func (m *meteredComm) AllGatherBytes(send, recv []byte) error {
	defer m.count(time.Now(), len(recv))
	return m.Comm.AllGatherBytes(send, recv)
}

func (m *meteredComm) BroadcastBytes(buf []byte, root int) error {
	defer m.count(time.Now(), len(buf))
	return m.Comm.BroadcastBytes(buf, root)
}

func (m *meteredComm) Barrier() error {
	defer m.count(time.Now(), 0)
	return m.Comm.Barrier()
}

// resumeHint names the checkpoint to resume from, or says there is none.
func resumeHint(ckpt string) string {
	if ckpt == "" {
		return "none was written yet: start the run again"
	}
	return "--resume " + ckpt
}
