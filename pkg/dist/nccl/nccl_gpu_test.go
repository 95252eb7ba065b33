//go:build gpu && cgo

package nccl

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cuda"
)

// TestNCCLOneRank needs an NVIDIA GPU and libnccl.so.2 (scripts/gpu-check.sh
// nccl runs it there, with CI=true so that a missing NCCL fails): the real
// library as rank 0 of a job of one on GPU 0, through Open's path. A sum
// and a gather over one rank are copies, so what it checks is the binding:
// the addresses, counts and data types reach NCCL as meant (views are
// used, with sentinels around them that a wrong count or element size
// would overwrite), the calls complete on the backend's stream in order
// with its kernels, and the communicator closes.
func TestNCCLOneRank(t *testing.T) {
	lib := system()
	if _, err := lib.load(); err != nil {
		testenv.Missing(t, "NCCL cannot be loaded (%v): put the folder of libnccl.so.2 (NVIDIA's CUDA images, PyTorch's nvidia-nccl wheel) on LD_LIBRARY_PATH, as scripts/gpu-env.sh does", err)
	}
	be, err := cuda.New(0)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	var log strings.Builder
	c, err := open(&rankComm{g: newGroup(1)}, be, lib, 30*time.Second, &log)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(log.String()))
	comm, ok := c.(*Comm)
	if !ok || !strings.HasPrefix(log.String(), "NCCL ") {
		t.Fatalf("Open gave a %T and said %q, want the NCCL Comm", c, log.String())
	}

	x := be.Alloc(device.Float32, 10)
	want := []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	be.Upload(x, want)
	be.Scale(-1.5, x) // queued before the collective, which must see it done
	for i := range want {
		want[i] *= -1.5
	}
	if err := comm.AllReduceSumDevice(be.View(x, 2, 5), be.View(x, 8, 1)); err != nil {
		t.Fatal(err)
	}
	if got := download(t, be, x, 10); !slices.Equal(got, want) {
		t.Errorf("all-reduce over one rank changed the buffer: %v, want %v", got, want)
	}

	dst := be.Alloc(device.Float32, 6)
	be.Fill(dst, -1)
	if err := comm.AllGatherDevice(be.View(x, 1, 4), be.View(dst, 1, 4)); err != nil {
		t.Fatal(err)
	}
	if got, w := download(t, be, dst, 6), []float32{-1, want[1], want[2], want[3], want[4], -1}; !slices.Equal(got, w) {
		t.Errorf("all-gather over one rank: %v, want %v", got, w)
	}
	n := be.Alloc(device.Int32, 3)
	m := be.Alloc(device.Int32, 5)
	be.UploadInt32(n, []int32{-7, 1 << 30, 42})
	be.UploadInt32(m, []int32{9, 9, 9, 9, 9})
	if err := comm.AllGatherDevice(n, be.View(m, 1, 3)); err != nil {
		t.Fatal(err)
	}
	gotN := make([]int32, 5)
	be.DownloadInt32(gotN, m)
	if err := be.Sync(); err != nil {
		t.Fatal(err)
	}
	if w := []int32{9, -7, 1 << 30, 42, 9}; !slices.Equal(gotN, w) {
		t.Errorf("int32 all-gather over one rank: %v, want %v", gotN, w)
	}
	if err := comm.Close(); err != nil {
		t.Fatal(err)
	}
}

func download(t *testing.T, be *cuda.Backend, x device.Buffer, n int) []float32 {
	t.Helper()
	got := make([]float32, n)
	be.Download(got, x)
	if err := be.Sync(); err != nil {
		t.Fatal(err)
	}
	return got
}
