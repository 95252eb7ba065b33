package train

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"unsafe"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/dist"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"github.com/mochi-ssl/mochi/pkg/moco"
	"github.com/mochi-ssl/mochi/pkg/optim"
	"github.com/mochi-ssl/mochi/pkg/resnet"
)

// localComms are n ranks of one job as goroutines of this process, for
// tests of what the ranks compute together without mpirun. Every
// collective is a deposit of each rank's buffer, a barrier, a read of the
// others' and a second barrier before a buffer may be reused.
func localComms(n int) []dist.Comm {
	j := &localJob{n: n, slots: make([][]byte, n)}
	j.cond = sync.NewCond(&j.mu)
	cs := make([]dist.Comm, n)
	for r := range cs {
		cs[r] = &localComm{job: j, rank: r}
	}
	return cs
}

type localJob struct {
	n          int
	mu         sync.Mutex
	cond       *sync.Cond
	arrived    int
	generation int
	slots      [][]byte
}

func (j *localJob) barrier() {
	j.mu.Lock()
	defer j.mu.Unlock()
	g := j.generation
	if j.arrived++; j.arrived == j.n {
		j.arrived, j.generation = 0, g+1
		j.cond.Broadcast()
		return
	}
	for g == j.generation {
		j.cond.Wait()
	}
}

type localComm struct {
	job  *localJob
	rank int
}

func (c *localComm) Rank() int { return c.rank }
func (c *localComm) Size() int { return c.job.n }

func (c *localComm) AllReduceSum(buf []float32) error {
	sum := make([]float32, len(buf))
	c.job.slots[c.rank] = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(buf))), 4*len(buf))
	c.job.barrier()
	for r := range c.job.n { // in rank order, as MPI's reduction on one node
		b := c.job.slots[r]
		for i := range sum {
			sum[i] += *(*float32)(unsafe.Pointer(&b[4*i]))
		}
	}
	c.job.barrier()
	copy(buf, sum)
	return nil
}

func (c *localComm) AllGatherBytes(send, recv []byte) error {
	c.job.slots[c.rank] = send
	c.job.barrier()
	for r := range c.job.n {
		copy(recv[r*len(send):], c.job.slots[r])
	}
	c.job.barrier()
	return nil
}

func (c *localComm) BroadcastBytes(buf []byte, root int) error {
	if c.rank == root {
		c.job.slots[root] = buf
	}
	c.job.barrier()
	if c.rank != root {
		copy(buf, c.job.slots[root])
	}
	c.job.barrier()
	return nil
}

func (c *localComm) Barrier() error { c.job.barrier(); return nil }
func (c *localComm) Close() error   { return nil }

// onRanks runs f on every rank of comms at once and returns the first error.
func onRanks(comms []dist.Comm, f func(c dist.Comm) error) error {
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[r] = f(c); errs[r] != nil {
				errs[r] = fmt.Errorf("rank %d: %w", r, errs[r])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestShuffleBNAcrossRanks observes which key images BatchNorm normalises
// together under ShuffleBN across two ranks (stepAcross, 16 images, 4
// split-BN groups of 4, 2 per rank): the key of image i changes when key
// image j changes iff i and j share a BN group (the encoder's rows meet
// only in BatchNorm). Every key's group must differ from its query's (the
// images of its group in batch order, on its own rank), and some must
// hold images of both ranks, which ShuffleBN within each rank never does.
// With f_k = f_q (m = 0, no SGD step) the keys are a pure function of the
// key batch, so an unchanged key is bit-identical.
func TestShuffleBNAcrossRanks(t *testing.T) {
	const p, n, groups, img = 2, 16, 4, 8 * 8
	b, size := n/p, n/groups
	spec := moco.Spec{Net: resnet.Config{Depth: 18, Stem: resnet.SmallStem, Width: 4, InChannels: 1, EmbedDim: 8, Seed: 3, BNGroups: groups / p},
		B: b, C: 1, H: 8, W: 8, K: 32, M: 0, Mix: hardneg.Config{N: 4, Tau: 0.2}, QueueSeed: 5}
	comms := localComms(p)
	models := make([]*moco.Model, p)
	scratch := make([]rankScratch, p)
	for r := range models {
		m, err := moco.New(cpu.New(1), spec, false, optim.SGDConfig{Momentum: 0.9})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Free)
		models[r] = m
	}
	rng := rand.New(rand.NewPCG(1, 2))
	xq, xk := make([]float32, n*img), make([]float32, n*img)
	for i := range xq {
		xq[i], xk[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
	}
	perm := moco.Shuffle(rng, n, nil)
	labels := make([]int, n)
	// keys runs one step on both ranks and returns the keys of the global
	// batch in batch order, checked equal on both ranks
	keys := func() []float32 {
		t.Helper()
		if err := onRanks(comms, func(c dist.Comm) error {
			lo, hi := c.Rank()*b, (c.Rank()+1)*b
			_, err := scratch[c.Rank()].stepAcross(c, models[c.Rank()], xq[lo*img:hi*img], xk[lo*img:hi*img], perm, nil, labels[lo:hi])
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(scratch[0].allKeys, scratch[1].allKeys) {
			t.Fatal("the ranks hold different keys of the global batch")
		}
		return slices.Clone(scratch[0].allKeys)
	}
	k0 := keys()
	d := len(k0) / n
	mixed := false
	for j := range n {
		saved := slices.Clone(xk[j*img : (j+1)*img])
		for i := j * img; i < (j+1)*img; i++ {
			xk[i] += 3
		}
		k1 := keys()
		copy(xk[j*img:], saved)
		var group []int // the images normalised with key image j
		for i := range n {
			if !slices.Equal(k0[i*d:(i+1)*d], k1[i*d:(i+1)*d]) {
				group = append(group, i)
			}
		}
		queryGroup := []int{}
		for i := j / size * size; i < (j/size+1)*size; i++ {
			queryGroup = append(queryGroup, i)
		}
		if len(group) != size || !slices.Contains(group, j) {
			t.Fatalf("changing key image %d changed the keys of %v: want its BN group of %d images, itself included", j, group, size)
		}
		if slices.Equal(group, queryGroup) {
			t.Errorf("image %d: its key is normalised with images %v, the very group of its query", j, group)
		}
		mixed = mixed || group[0] < b && group[len(group)-1] >= b
	}
	if !mixed {
		t.Error("no key BN group holds images of both ranks: ShuffleBN stayed within each rank's slice")
	}
}

// deviceComm is a Comm with device collectives that only count calls.
type deviceComm struct {
	dist.Comm
	calls int
}

func (d *deviceComm) AllReduceSumDevice(...device.Buffer) error { d.calls++; return nil }
func (d *deviceComm) AllGatherDevice(_, _ device.Buffer) error  { d.calls++; return nil }

// TestMeterKeepsDeviceCollectives: the step metrics' meter counts every
// collective's payload and keeps a Comm's device collectives (NCCL's),
// which the trainer finds by a type assertion; a host Comm stays one.
func TestMeterKeepsDeviceCollectives(t *testing.T) {
	if c, _ := meter(localComms(1)[0]); onDevice(c) {
		t.Error("a host Comm gained device collectives")
	}
	inner := &deviceComm{Comm: localComms(1)[0]}
	c, m := meter(inner)
	dc, ok := c.(dist.DeviceComm)
	if !ok {
		t.Fatal("the meter hid the Comm's device collectives")
	}
	be := cpu.New(1)
	if err := dc.AllReduceSumDevice(be.Alloc(device.Float32, 10), be.Alloc(device.Float32, 6)); err != nil {
		t.Fatal(err)
	}
	if err := dc.AllGatherDevice(be.Alloc(device.Float32, 3), be.Alloc(device.Float32, 3)); err != nil {
		t.Fatal(err)
	}
	if err := c.AllReduceSum(make([]float32, 5)); err != nil {
		t.Fatal(err)
	}
	if inner.calls != 2 || m.bytes != 4*(10+6+3+5) {
		t.Errorf("%d device collectives reached the Comm, %d bytes counted; want 2 and %d", inner.calls, m.bytes, 4*(10+6+3+5))
	}
}
