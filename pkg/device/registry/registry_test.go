package registry

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/testenv"
	"github.com/mochi-ssl/mochi/pkg/device"
)

func TestAvailableListsCPUFirst(t *testing.T) {
	got := Available()
	if len(got) == 0 || got[0] != "cpu" {
		t.Fatalf("Available() = %v, want cpu first", got)
	}
	if !slices.IsSorted(got[1:]) {
		t.Errorf("Available() = %v: the names after cpu are not sorted", got)
	}
}

// TestOpenCPU opens the CPU backend and runs a kernel on it against a
// float64 sum written here.
func TestOpenCPU(t *testing.T) {
	be, err := Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	if be.Name() != "cpu" {
		t.Errorf("Open(cpu).Name() = %q", be.Name())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := make([]float32, 100), make([]float32, 100)
	for i := range a {
		a[i], b[i] = float32(rng.Float64()+0.5), float32(rng.Float64()-1.5)
	}
	x, y := be.Alloc(device.Float32, len(a)), be.Alloc(device.Float32, len(b))
	be.Upload(x, a)
	be.Upload(y, b)
	be.Add(x, y, y)
	got := make([]float32, len(a))
	be.Download(got, y)
	if err := be.Sync(); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if want := float64(a[i]) + float64(b[i]); float64(got[i]) != float64(float32(want)) {
			t.Fatalf("element %d: %v, want %v", i, got[i], want)
		}
	}
}

// TestOpenErrors: a GPU backend missing from this binary names the way to
// the GPU build; an unknown name lists the backends there are.
func TestOpenErrors(t *testing.T) {
	if !slices.Contains(Available(), "cuda") {
		_, err := Open("cuda")
		if err == nil {
			t.Fatal(`Open("cuda") in the CPU build succeeded`)
		}
		testenv.Contains(t, "Open(cuda) error", err.Error(), "scripts/build-gpu.sh", "bin/mochi-gpu", "Dockerfile.cuda")
	}
	_, err := Open("tpu")
	if err == nil || !strings.Contains(err.Error(), "unknown backend") || !strings.Contains(err.Error(), "cpu") {
		t.Errorf(`Open("tpu") = %v, want an unknown-backend error listing cpu`, err)
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("registering cpu a second time did not panic")
		}
	}()
	register("cpu", nil)
}

// TestGPUIndex: a process alone takes GPU 0; under mpirun, the GPU of its
// rank on its machine.
func TestGPUIndex(t *testing.T) {
	for _, tc := range []struct {
		local   string
		want    int
		wantErr bool
	}{{"", 0, false}, {"0", 0, false}, {"3", 3, false}, {"x", 0, true}, {"-1", 0, true}} {
		got, err := gpuIndex(func(k string) string {
			if k == "OMPI_COMM_WORLD_LOCAL_RANK" {
				return tc.local
			}
			return ""
		})
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("local rank %q: GPU %d, error %v; want %d, error %v", tc.local, got, err, tc.want, tc.wantErr)
		}
	}
}
