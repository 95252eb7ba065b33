//go:build gpu

package cuda

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// TestExec: f gets the device address of each buffer, a view's included
// (read back here with a plain cuMemcpyDtoH, as another library would
// read it), and runs in order with the queued kernels; a bad buffer is
// refused without running f, and f's error comes back.
func TestExec(t *testing.T) {
	b := gpu(t)
	x := b.Alloc(device.Float32, 8)
	defer b.Free(x)
	b.Upload(x, []float32{0, 1, 2, 3, 4, 5, 6, 7})
	b.Scale(2, x) // queued before Exec: f must see it done
	v := b.View(x, 3, 4)
	got := make([]float32, 4)
	err := b.Exec([]device.Buffer{x, v}, func(ptrs []uintptr) error {
		if ptrs[1] != ptrs[0]+3*elemSize {
			t.Errorf("the view's address is %#x, want its parent's %#x + 12 bytes", ptrs[1], ptrs[0])
		}
		return cu.MemcpyDtoH(unsafe.Pointer(&got[0]), cu.DevicePtr(ptrs[1]), int64(len(got))*elemSize)
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{6, 8, 10, 12}; !slices.Equal(got, want) {
		t.Errorf("read through Exec's address: %v, want %v", got, want)
	}
	ran := false
	err = b.Exec([]device.Buffer{x, nil}, func([]uintptr) error { ran = true; return nil })
	if err == nil || ran || !strings.Contains(err.Error(), "buffer 1") {
		t.Errorf("Exec with a nil buffer: error %v, f ran %v; want an error naming buffer 1 and f not run", err, ran)
	}
	boom := errors.New("boom")
	if err := b.Exec(nil, func([]uintptr) error { return boom }); err != boom {
		t.Errorf("Exec returned %v, want f's error", err)
	}
	if err := b.Sync(); err != nil {
		t.Errorf("Exec's errors leaked into the sticky error: %v", err)
	}
}
