package cpu

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// float32Buffer is a Float32 device.Buffer: the slice itself.
type float32Buffer []float32

func (b float32Buffer) Len() int            { return len(b) }
func (b float32Buffer) DType() device.DType { return device.Float32 }

// int32Buffer is an Int32 device.Buffer.
type int32Buffer []int32

func (b int32Buffer) Len() int            { return len(b) }
func (b int32Buffer) DType() device.DType { return device.Int32 }

// Wrap returns a Float32 buffer that shares f's memory.
func Wrap(f []float32) device.Buffer { return float32Buffer(f) }

// WrapInt32 returns an Int32 buffer that shares x's memory.
func WrapInt32(x []int32) device.Buffer { return int32Buffer(x) }

// Float32s returns the memory of a Float32 buffer made by this package.
func Float32s(b device.Buffer) []float32 {
	f, ok := b.(float32Buffer)
	if !ok {
		panic(fmt.Sprintf("cpu: buffer of type %T (%v) is not a cpu Float32 buffer", b, b.DType()))
	}
	return f
}

// Int32s returns the memory of an Int32 buffer made by this package.
func Int32s(b device.Buffer) []int32 {
	x, ok := b.(int32Buffer)
	if !ok {
		panic(fmt.Sprintf("cpu: buffer of type %T (%v) is not a cpu Int32 buffer", b, b.DType()))
	}
	return x
}

// Backend is the CPU device.Backend. Use New; the zero value is not usable.
type Backend struct {
	mu      sync.Mutex // serialises kernels: tasks and workspaces are shared
	workers *workers

	errMu sync.Mutex
	err   error // first failure since the last Sync

	// One task value per parallel kernel, reused so that handing it to the
	// workers allocates nothing.
	tasks struct {
		elem  elementwiseTask
		gemm  gemmTask
		conv  convTask
		bn    bnTask
		pool  poolTask
		rows  rowTask
		sum   sumTask
		top   topTask
		mix   mixTask
		norms normTask
	}
	ws     workspace
	partOf []float64 // per-block partial sums of Sum
	dnnl   dnnlState // convolution mode and oneDNN primitives (dnnl*.go)
}

var (
	_ device.Backend          = (*Backend)(nil)
	_ device.BatchNormReLU    = (*Backend)(nil)
	_ device.BatchNormAddReLU = (*Backend)(nil)
	_ device.Blocked          = (*Backend)(nil)
)

// New returns a CPU backend that runs kernels on threads goroutines
// (threads ≤ 0: runtime.GOMAXPROCS(0)). It sets OpenBLAS to one thread: the
// backend parallelises GEMMs itself.
func New(threads int) *Backend {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	setBLASThreads(1)
	b := &Backend{workers: newWorkers(threads), ws: newWorkspace(threads)}
	runtime.AddCleanup(b, func(w *workers) { w.stop() }, b.workers)
	return b
}

// Threads is the number of goroutines the backend splits work across.
func (b *Backend) Threads() int { return b.workers.n }

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

// fail records the first error for Sync.
func (b *Backend) fail(format string, args ...any) {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	if b.err == nil {
		b.err = fmt.Errorf("cpu: "+format, args...)
	}
}

// need records an error unless buf holds at least n elements.
func (b *Backend) need(kernel, name string, buf device.Buffer, n int) bool {
	if buf.Len() < n {
		b.fail("%s: %s has %d elements, its shape needs %d", kernel, name, buf.Len(), n)
		return false
	}
	return true
}

// Sync returns the first error recorded since the previous Sync; kernels run
// synchronously, so there is nothing to wait for.
func (b *Backend) Sync() error {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	err := b.err
	b.err = nil
	return err
}

// Alloc returns a zero-filled buffer of n elements.
func (b *Backend) Alloc(dt device.DType, n int) device.Buffer {
	switch dt {
	case device.Float32:
		return make(float32Buffer, n)
	case device.Int32:
		return make(int32Buffer, n)
	}
	panic(fmt.Sprintf("cpu: Alloc of unknown %v", dt))
}

// Free does nothing: the garbage collector reclaims the slice.
func (b *Backend) Free(device.Buffer) {}

// View returns elements [off, off+n) of buf, sharing its memory.
func (b *Backend) View(buf device.Buffer, off, n int) device.Buffer {
	switch x := buf.(type) {
	case float32Buffer:
		return x[off : off+n : off+n]
	case int32Buffer:
		return x[off : off+n : off+n]
	}
	panic(fmt.Sprintf("cpu: View of a buffer of type %T", buf))
}

// Upload copies src into dst.
func (b *Backend) Upload(dst device.Buffer, src []float32) {
	if b.need("Upload", "dst", dst, len(src)) {
		copy(Float32s(dst), src)
	}
}

// UploadInt32 copies src into dst.
func (b *Backend) UploadInt32(dst device.Buffer, src []int32) {
	if b.need("UploadInt32", "dst", dst, len(src)) {
		copy(Int32s(dst), src)
	}
}

// Download copies src into dst.
func (b *Backend) Download(dst []float32, src device.Buffer) {
	if b.need("Download", "src", src, len(dst)) {
		copy(dst, Float32s(src))
	}
}

// DownloadInt32 copies src into dst.
func (b *Backend) DownloadInt32(dst []int32, src device.Buffer) {
	if b.need("DownloadInt32", "src", src, len(dst)) {
		copy(dst, Int32s(src))
	}
}
