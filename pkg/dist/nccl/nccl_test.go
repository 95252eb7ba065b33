package nccl

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/dist"
)

// group is an in-process job for the tests: its ranks' Comms meet in
// exchange, where each rank hands in its bytes and gets every rank's.
type group struct {
	mu           sync.Mutex
	cond         *sync.Cond
	size         int
	slots        [][]byte
	arrived, gen int
}

func newGroup(size int) *group {
	g := &group{size: size, slots: make([][]byte, size)}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// barrier waits, holding g.mu, until every rank has reached it.
func (g *group) barrier() {
	gen := g.gen
	if g.arrived++; g.arrived == g.size {
		g.arrived, g.gen = 0, g.gen+1
		g.cond.Broadcast()
		return
	}
	for gen == g.gen {
		g.cond.Wait()
	}
}

func (g *group) exchange(rank int, data []byte) [][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.slots[rank] = data
	g.barrier()
	all := make([][]byte, g.size)
	for r, s := range g.slots {
		all[r] = slices.Clone(s)
	}
	g.barrier()
	return all
}

// rankComm is rank r of a group as a dist.Comm.
type rankComm struct {
	g      *group
	r      int
	closed bool
}

func (c *rankComm) Rank() int { return c.r }
func (c *rankComm) Size() int { return c.g.size }

func (c *rankComm) AllReduceSum(buf []float32) error {
	all := c.g.exchange(c.r, floatBytes(buf))
	clear(buf)
	for _, b := range all {
		for i, v := range bytesFloats(b) {
			buf[i] += v
		}
	}
	return nil
}

func (c *rankComm) AllGatherBytes(send, recv []byte) error {
	copy(recv, bytes.Join(c.g.exchange(c.r, send), nil))
	return nil
}

func (c *rankComm) BroadcastBytes(buf []byte, root int) error {
	copy(buf, c.g.exchange(c.r, buf)[root])
	return nil
}

func (c *rankComm) Barrier() error { c.g.exchange(c.r, nil); return nil }
func (c *rankComm) Close() error   { c.closed = true; return nil }

func floatBytes(v []float32) []byte {
	return slices.Clone(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v)))
}

func bytesFloats(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
	}
	return v
}

// fakeNCCL is a rank's library: version 0 means not found. Its
// collectives sum and gather the CPU backend's buffers through the group,
// as NCCL would on the GPU.
type fakeNCCL struct {
	version int
	idErr   error // uniqueID's failure
	g       *group
	rank    int
	loaded  bool
	joined  *[idBytes]byte // the id join got
	coll    *fakeColl
}

func (f *fakeNCCL) serves(be device.Backend) bool { return be.Name() == "cpu" }

func (f *fakeNCCL) load() (int, error) {
	f.loaded = true
	if f.version == 0 {
		return 0, errors.New("libnccl.so.2: cannot open shared object file")
	}
	return f.version, nil
}

func (f *fakeNCCL) uniqueID() ([idBytes]byte, error) {
	var id [idBytes]byte
	for i := range id {
		id[i] = byte(7*i + 3)
	}
	return id, f.idErr
}

func (f *fakeNCCL) join(be device.Backend, id [idBytes]byte, rank, size int, _ time.Duration) (collectives, error) {
	if rank != f.rank || size != f.g.size {
		return nil, fmt.Errorf("join as rank %d of %d, want %d of %d", rank, size, f.rank, f.g.size)
	}
	f.joined = &id
	f.coll = &fakeColl{be: be, c: &rankComm{g: f.g, r: rank}}
	return f.coll, nil
}

type fakeColl struct {
	be     device.Backend
	c      *rankComm
	fail   error // returned by the next collective
	calls  []string
	closed bool
}

func (f *fakeColl) allReduceSum(bufs []device.Buffer) error {
	f.calls = append(f.calls, "allReduceSum")
	if f.fail != nil {
		return f.fail
	}
	for _, b := range bufs {
		host := make([]float32, b.Len())
		f.be.Download(host, b)
		if err := f.c.AllReduceSum(host); err != nil {
			return err
		}
		f.be.Upload(b, host)
	}
	return nil
}

func (f *fakeColl) allGather(send, recv device.Buffer) error {
	f.calls = append(f.calls, "allGather")
	host := make([]float32, send.Len())
	f.be.Download(host, send)
	all := make([]float32, recv.Len())
	if err := dist.AllGather(f.c, host, all); err != nil {
		return err
	}
	f.be.Upload(recv, all)
	return nil
}

func (f *fakeColl) close() error { f.closed = true; return nil }

// result is what Open gave one rank.
type result struct {
	comm dist.Comm
	err  error
	log  string
}

// openAll runs open on every rank of a group of len(libs), rank r with
// libs[r], on the CPU backend.
func openAll(t *testing.T, libs []*fakeNCCL) []result {
	t.Helper()
	g := newGroup(len(libs))
	res := make([]result, len(libs))
	var wg sync.WaitGroup
	for r, lib := range libs {
		lib.g, lib.rank = g, r
		wg.Add(1)
		go func() {
			defer wg.Done()
			var log strings.Builder
			res[r].comm, res[r].err = open(&rankComm{g: g, r: r}, cpu.New(1), lib, time.Minute, &log)
			res[r].log = log.String()
		}()
	}
	wg.Wait()
	return res
}

// TestOpenChoosesNCCL: when every rank has the same NCCL, each gets a
// DeviceComm joined with rank 0's id, and rank 0 alone says so.
func TestOpenChoosesNCCL(t *testing.T) {
	libs := []*fakeNCCL{{version: 21905}, {version: 21905}, {version: 21905}}
	res := openAll(t, libs)
	id, _ := libs[0].uniqueID()
	for r, got := range res {
		if got.err != nil {
			t.Fatalf("rank %d: %v", r, got.err)
		}
		if _, ok := got.comm.(dist.DeviceComm); !ok {
			t.Errorf("rank %d got a %T, want a dist.DeviceComm", r, got.comm)
		}
		if libs[r].joined == nil || *libs[r].joined != id {
			t.Errorf("rank %d joined with id %v, want rank 0's %v", r, libs[r].joined, id)
		}
	}
	if want := "NCCL 2.19.5: gradients are all-reduced and keys all-gathered on the GPU, 3 rank(s)\n"; res[0].log != want {
		t.Errorf("rank 0 wrote %q, want %q", res[0].log, want)
	}
	if res[1].log+res[2].log != "" {
		t.Errorf("ranks 1 and 2 wrote %q and %q, want nothing", res[1].log, res[2].log)
	}
}

// TestOpenFallsBack: one rank without NCCL makes every rank keep the host
// path (else they would call different collectives), and rank 0's note
// names it.
func TestOpenFallsBack(t *testing.T) {
	for _, missing := range []int{0, 1} {
		libs := []*fakeNCCL{{version: 21905}, {version: 21905}}
		libs[missing].version = 0
		res := openAll(t, libs)
		for r, got := range res {
			if got.err != nil {
				t.Fatalf("rank %d: %v", r, got.err)
			}
			if _, ok := got.comm.(dist.DeviceComm); ok || libs[r].joined != nil {
				t.Errorf("NCCL missing on rank %d: rank %d got a %T (joined: %v), want its host Comm", missing, r, got.comm, libs[r].joined != nil)
			}
		}
		want := fmt.Sprintf("note: NCCL (libnccl.so.2) not found on rank %d", missing)
		if missing == 0 {
			want += " (rank 0: libnccl.so.2: cannot open shared object file)"
		}
		want += ": gradients and keys travel through host memory over MPI;"
		if !strings.HasPrefix(res[0].log, want) || strings.Count(res[0].log, "\n") != 1 {
			t.Errorf("NCCL missing on rank %d: rank 0 wrote %q, want one line starting %q", missing, res[0].log, want)
		}
		if res[1].log != "" {
			t.Errorf("rank 1 wrote %q, want nothing", res[1].log)
		}
	}
}

// TestOpenRefuses: differing NCCL versions, and rank 0 failing to make the
// id, stop every rank with an error that says why.
func TestOpenRefuses(t *testing.T) {
	res := openAll(t, []*fakeNCCL{{version: 21905}, {version: 2708}})
	for r, got := range res {
		want := "the ranks load different NCCL versions (rank 0 has 2.19.5, rank 1 has 2.7.8)"
		if got.err == nil || !strings.Contains(got.err.Error(), want) {
			t.Errorf("versions 2.19.5 and 2.7.8: rank %d: %v, want an error containing %q", r, got.err, want)
		}
	}
	res = openAll(t, []*fakeNCCL{{version: 21905, idErr: errors.New("bootstrap: no socket interface found")}, {version: 21905}})
	for r, want := range []string{"ncclGetUniqueId: bootstrap: no socket interface found", "rank 0 could not make NCCL's unique id"} {
		if err := res[r].err; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("rank 0 without an id: rank %d: %v, want an error containing %q", r, err, want)
		}
	}
}

// TestOpenLeavesAlone: a process alone and a backend NCCL does not serve
// keep their Comm, without loading NCCL or saying anything.
func TestOpenLeavesAlone(t *testing.T) {
	var log strings.Builder
	lib := &fakeNCCL{version: 21905}
	if c, err := open(dist.Single{}, cpu.New(1), lib, time.Minute, &log); err != nil || c != (dist.Single{}) || lib.loaded {
		t.Errorf("alone: %T, %v, NCCL loaded %v; want dist.Single, not loaded", c, err, lib.loaded)
	}
	lib.g = newGroup(1)
	c := &rankComm{g: lib.g}
	if got, err := open(c, otherBackend{cpu.New(1)}, lib, time.Minute, &log); err != nil || got != c || lib.loaded {
		t.Errorf("a backend NCCL does not serve: %T, %v, NCCL loaded %v; want the Comm as it was", got, err, lib.loaded)
	}
	if got, err := Open(c, cpu.New(1), dist.Options{}, &log); err != nil || got != c {
		t.Errorf("Open in a build without NCCL: %T, %v; want the Comm as it was", got, err)
	}
	if log.Len() > 0 {
		t.Errorf("wrote %q, want nothing", log.String())
	}
}

// TestOpenMixedBackends: ranks started on different backends (a config
// mismatch) all take part in Open's all-gather and keep their host Comm,
// with nothing said, so that they meet next in the config check, which
// names the difference, instead of in mismatched collectives.
func TestOpenMixedBackends(t *testing.T) {
	g := newGroup(2)
	res := make([]result, 2)
	var wg sync.WaitGroup
	for r, be := range []device.Backend{cpu.New(1), otherBackend{cpu.New(1)}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var log strings.Builder
			c := &rankComm{g: g, r: r}
			res[r].comm, res[r].err = open(c, be, &fakeNCCL{version: 21905, g: g, rank: r}, time.Minute, &log)
			if res[r].comm != c || res[r].err != nil || log.Len() > 0 {
				t.Errorf("rank %d: %T, %v, wrote %q; want its host Comm, nothing written", r, res[r].comm, res[r].err, log.String())
				return
			}
			if err := c.Barrier(); err != nil { // the next collective meets the other rank's
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// otherBackend is a backend that is not the CPU's, for fakeNCCL.serves.
type otherBackend struct{ device.Backend }

func (otherBackend) Name() string { return "other" }

// TestDeviceCollectives: through the Comm, two ranks' device buffers are
// summed and gathered; bad arguments are refused before any call; a failed
// collective breaks the Comm; Close closes NCCL, then the host Comm.
func TestDeviceCollectives(t *testing.T) {
	libs := []*fakeNCCL{{version: 22703}, {version: 22703}}
	res := openAll(t, libs)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for r := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = twoRankCollectives(res[r].comm.(*Comm), libs[r].coll)
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

func twoRankCollectives(c *Comm, coll *fakeColl) error {
	be, r := coll.be, c.Rank()
	a, b := be.Alloc(device.Float32, 3), be.Alloc(device.Float32, 2)
	be.Upload(a, []float32{1, 2, float32(r)})
	be.Upload(b, []float32{10 * float32(r), 0.5})
	if err := c.AllReduceSumDevice(a, b); err != nil {
		return err
	}
	gotA, gotB := make([]float32, 3), make([]float32, 2)
	be.Download(gotA, a)
	be.Download(gotB, b)
	if !slices.Equal(gotA, []float32{2, 4, 1}) || !slices.Equal(gotB, []float32{10, 1}) {
		return fmt.Errorf("all-reduce gave %v %v, want [2 4 1] [10 1]", gotA, gotB)
	}
	all := be.Alloc(device.Float32, 6)
	if err := c.AllGatherDevice(a, all); err != nil {
		return err
	}
	gotAll := make([]float32, 6)
	be.Download(gotAll, all)
	if !slices.Equal(gotAll, []float32{2, 4, 1, 2, 4, 1}) {
		return fmt.Errorf("all-gather gave %v", gotAll)
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{c.AllGatherDevice(a, b), "needs a receive buffer of 6, not 2"},
		{c.AllGatherDevice(a, be.Alloc(device.Int32, 6)), "the types differ"},
		{c.AllReduceSumDevice(a, be.Alloc(device.Int32, 1)), "buffer 1 is a int32 buffer of 1, not a Float32 buffer"},
		{c.AllReduceSumDevice(nil), "buffer 0 is nil"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			return fmt.Errorf("error %v, want one containing %q", tc.err, tc.want)
		}
	}
	if n := len(coll.calls); n != 2 {
		return fmt.Errorf("%d calls reached NCCL (%v), want 2: bad arguments must stop before it", n, coll.calls)
	}
	coll.fail = errors.New("ncclAllReduce: remote process exited or there was a network error (NCCL error 6)")
	err := c.AllReduceSumDevice(a)
	want := fmt.Sprintf("nccl: rank %d of 2: AllReduceSum (device collective 3): ncclAllReduce: remote process exited", r)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		return fmt.Errorf("failed collective: %v, want an error starting %q", err, want)
	}
	coll.fail = nil
	if again := c.AllGatherDevice(a, all); again != err || len(coll.calls) != 3 {
		return fmt.Errorf("after a failure: %v and %d calls, want the same error and no new call", again, len(coll.calls))
	}
	if cerr := c.Close(); cerr != err || coll.closed || c.Comm.(*rankComm).closed {
		return fmt.Errorf("Close after a failure: %v; want the failure, nothing closed", cerr)
	}
	return nil
}

// TestClose: Close destroys the NCCL communicator, then closes the host
// Comm, and the Comm is unusable afterwards.
func TestClose(t *testing.T) {
	res := openAll(t, []*fakeNCCL{{version: 21905}})
	c := res[0].comm.(*Comm)
	host := c.Comm.(*rankComm)
	if err := c.Close(); err != nil || !c.coll.(*fakeColl).closed || !host.closed {
		t.Fatalf("Close: %v; NCCL closed %v, host Comm closed %v", err, c.coll.(*fakeColl).closed, host.closed)
	}
	if err := c.AllReduceSumDevice(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("a collective after Close: %v, want an error saying the Comm is closed", err)
	}
}

func TestVersionString(t *testing.T) {
	for code, want := range map[int]string{2708: "2.7.8", 2804: "2.8.4", 20903: "2.9.3", 21905: "2.19.5", 22703: "2.27.3"} {
		if got := versionString(code); got != want {
			t.Errorf("versionString(%d) = %q, want %q", code, got, want)
		}
	}
}
