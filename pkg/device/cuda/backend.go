//go:build gpu

package cuda

import (
	"fmt"
	"runtime"
	"unsafe"

	"gorgonia.org/cu"
	cublas "gorgonia.org/cu/blas"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// Backend is the CUDA device.Backend. Use New; the zero value is not usable.
type Backend struct {
	calls chan func() // work for the worker goroutine, in call order
	name  string      // the GPU's name, read once by New
	dev   cu.Device   // the GPU, whose primary context ctx is

	// Fields below are used only on the worker's locked OS thread.
	ctx   cu.CUContext
	blas  *cublas.Standard
	bblas *batchedBLAS // strided-batched GEMMs (convolutions)
	sms   int          // multiprocessors, for the split-K of conv filters
	mods  []cu.Module
	fns   [numKernels]cu.Function
	pool  *pool
	err   error // first failure since the last Sync
	convW int   // im2col workspace budget in floats (convWorkspaceFloats)
}

var (
	_ device.Backend  = (*Backend)(nil)
	_ device.ConvTF32 = (*Backend)(nil)
)

// driverMemory is the pool's allocator: plain cuMemAlloc, never managed memory.
type driverMemory struct{}

func (driverMemory) alloc(bytes int64) (uintptr, error) {
	p, err := cu.MemAlloc(bytes)
	return uintptr(p), err
}

func (driverMemory) free(ptr uintptr) error { return cu.MemFree(cu.DevicePtr(ptr)) }

// New creates a context on GPU deviceID, the cuBLAS handle and the kernel
// modules, all on a dedicated OS thread that runs every later CUDA call.
func New(deviceID int) (*Backend, error) {
	b := &Backend{calls: make(chan func(), 1024), convW: convWorkspaceFloats}
	ready := make(chan error, 1)
	go b.worker(deviceID, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return b, nil
}

// worker makes the context current on its locked OS thread, creates cuBLAS
// there (a handle created on another thread would use another context),
// loads the kernels and then runs the queued calls until Close.
func (b *Backend) worker(deviceID int, ready chan<- error) {
	runtime.LockOSThread() // ctx.Lock does it too; kept explicit: the whole worker needs it
	if err := b.init(deviceID); err != nil {
		b.release()
		runtime.UnlockOSThread()
		ready <- err
		return
	}
	ready <- nil
	for f := range b.calls {
		b.run(f)
	}
}

func (b *Backend) init(deviceID int) (err error) {
	n, err := cu.NumDevices()
	if err != nil {
		return fmt.Errorf("cuda: counting GPUs: %w", err)
	}
	if deviceID < 0 || deviceID >= n {
		return fmt.Errorf("cuda: GPU %d does not exist: this machine has %d (CUDA_VISIBLE_DEVICES chooses which)", deviceID, n)
	}
	dev, err := cu.GetDevice(deviceID)
	if err != nil {
		return fmt.Errorf("cuda: opening GPU %d: %w", deviceID, err)
	}
	if b.name, err = dev.Name(); err != nil {
		return fmt.Errorf("cuda: reading the name of GPU %d: %w", deviceID, err)
	}
	if b.sms, err = dev.Attribute(cu.MultiprocessorCount); err != nil {
		return fmt.Errorf("cuda: reading the multiprocessor count of GPU %d: %w", deviceID, err)
	}
	// The device's primary context, which the CUDA runtime also uses:
	// NCCL (pkg/dist/nccl) runs its kernels in the context current on this
	// thread but allocates from its own threads in the primary context, so
	// a context of our own (cuCtxCreate) would put the two apart.
	if b.ctx, err = dev.RetainPrimaryCtx(); err != nil {
		return fmt.Errorf("cuda: retaining the primary context of GPU %d (%s): %w", deviceID, b.name, err)
	}
	b.dev = dev
	if err := b.ctx.Lock(); err != nil {
		return fmt.Errorf("cuda: making the context of GPU %d current: %w", deviceID, err)
	}
	defer func() { // cublas.New panics when cublasCreate fails
		if r := recover(); r != nil {
			err = fmt.Errorf("cuda: creating the cuBLAS handle on GPU %d: %v (%s)", deviceID, r, cublasHint(cublasFile()))
		}
	}()
	b.blas = cublas.New()
	if b.bblas, err = newBatchedBLAS(); err != nil {
		return fmt.Errorf("cuda: creating the second cuBLAS handle on GPU %d: %w", deviceID, err)
	}
	for _, m := range modules() {
		ptx, err := modulePTX(m)
		if err != nil {
			return fmt.Errorf("cuda: %w", err)
		}
		mod, err := cu.LoadData(ptx)
		if err != nil {
			return fmt.Errorf("cuda: loading kernels/%s.ptx on %s (the driver JIT-compiles PTX for compute_80; a driver older than CUDA 11.8 rejects it): %w", m, b.name, err)
		}
		b.mods = append(b.mods, mod)
		for id, k := range kernelTable {
			if k.module != m {
				continue
			}
			if b.fns[id], err = mod.Function(k.name); err != nil {
				return fmt.Errorf("cuda: kernel %s not found in kernels/%s.ptx: %w", k.name, m, err)
			}
		}
	}
	b.pool = newPool(driverMemory{})
	return nil
}

// release frees what init or the backend created; safe on a partial init.
func (b *Backend) release() {
	if b.pool != nil {
		b.record(b.pool.trim())
	}
	for _, m := range b.mods {
		b.record(m.Unload())
	}
	b.mods = nil
	if b.bblas != nil {
		b.record(b.bblas.close())
		b.bblas = nil
	}
	if b.blas != nil {
		b.record(b.blas.Close())
		b.blas = nil
	}
	if b.ctx != (cu.CUContext{}) {
		b.record(b.dev.ReleasePrimaryCtx())
		b.ctx = cu.CUContext{}
	}
}

// run executes one queued call and turns a panic into the sticky error, so
// that one bad call cannot kill the worker.
func (b *Backend) run(f func()) {
	defer func() {
		if r := recover(); r != nil {
			b.record(fmt.Errorf("cuda: %v", r))
		}
	}()
	f()
}

// SetConvTF32 implements device.ConvTF32: the convolutions' GEMMs (their
// own cuBLAS handle) use TensorFloat-32 tensor cores when on; Gemm — the
// linear layers, q·Qᵀ and MoCHi's logits — stays fp32.
func (b *Backend) SetConvTF32(on bool) error {
	b.do(func() { b.record(b.bblas.setTF32(on)) })
	return b.Sync()
}

// do queues f on the worker without waiting.
func (b *Backend) do(f func()) { b.calls <- f }

// call runs f on the worker and waits for it.
func (b *Backend) call(f func()) {
	done := make(chan struct{})
	b.calls <- func() {
		defer close(done)
		f()
	}
	<-done
}

// record keeps err if it is the first failure since the last Sync.
func (b *Backend) record(err error) {
	if err != nil && b.err == nil {
		b.err = err
	}
}

// check starts the argument check of one operation.
func (b *Backend) check(op string) *argCheck { return &argCheck{op: op, owner: b.pool} }

// ok records c's problem, if any, and says whether the operation may run.
func (b *Backend) ok(c *argCheck) bool {
	b.record(c.err)
	return c.err == nil
}

// launch runs kernel id with lc and args on the default stream. An empty
// grid (no elements) launches nothing.
func (b *Backend) launch(id kernelID, lc launchConfig, args ...kernelArg) {
	if lc.gridX == 0 {
		return
	}
	if len(args) != kernelParams[id] {
		b.record(fmt.Errorf("cuda: kernel %s launched with %d arguments, it takes %d", kernelTable[id].name, len(args), kernelParams[id]))
		return
	}
	by := max(lc.blockY, 1)
	if err := b.fns[id].Launch(lc.gridX, 1, 1, lc.blockX, by, 1, lc.shared, cu.NoStream, packArgs(args)); err != nil {
		b.record(fmt.Errorf("cuda: launching %s (grid %d, block %d×%d, shared %d B): %w", kernelTable[id].name, lc.gridX, lc.blockX, by, lc.shared, err))
	}
}

// Name is "cuda".
func (b *Backend) Name() string { return "cuda" }

// Device is the GPU's name as the driver reports it.
func (b *Backend) Device() string { return b.name }

// PoolStats returns the device memory pool's counters.
func (b *Backend) PoolStats() PoolStats {
	var s PoolStats
	b.call(func() { s = b.pool.stats })
	return s
}

// Close waits for queued work, frees all device memory and the context.
// The backend must not be used afterwards.
func (b *Backend) Close() error {
	var err error
	b.call(func() {
		b.record(cu.Synchronize())
		b.release()
		err = b.err
	})
	close(b.calls)
	return err
}

// Alloc returns a zero-filled buffer of n elements from the pool.
func (b *Backend) Alloc(dt device.DType, n int) device.Buffer {
	if dt != device.Float32 && dt != device.Int32 {
		panic(fmt.Sprintf("cuda: Alloc of unsupported type %v", dt))
	}
	if n < 0 {
		panic(fmt.Sprintf("cuda: Alloc of %d elements", n))
	}
	buf := &buffer{n: n, dt: dt}
	b.call(func() {
		buf.mem = &allocation{owner: b.pool}
		if n == 0 {
			return
		}
		ptr, class, err := b.pool.get(int64(n) * elemSize)
		if err != nil {
			b.record(fmt.Errorf("cuda: Alloc(%v, %d): %w", dt, n, err))
			buf.mem.freed = true // every later use reports the failure too
			return
		}
		buf.mem.ptr, buf.mem.class, buf.ptr = ptr, class, ptr
		b.record(cu.MemsetD32(cu.DevicePtr(ptr), 0, int64(n)))
	})
	return buf
}

// Free returns a buffer's memory to the pool. A view owns no memory: Free
// of a view does nothing (as on the CPU backend); Free of its parent
// releases it.
func (b *Backend) Free(x device.Buffer) {
	bb, ok := x.(*buffer)
	if !ok || bb == nil {
		panic(fmt.Sprintf("cuda: Free of a %T, not a buffer of the cuda backend", x))
	}
	if bb.view {
		return
	}
	b.do(func() {
		switch {
		case bb.mem.owner != b.pool:
			b.record(fmt.Errorf("cuda: Free of a buffer of another cuda backend"))
		case bb.mem.freed:
			b.record(fmt.Errorf("cuda: Free of a buffer already freed (or whose Alloc failed)"))
		default:
			bb.mem.freed = true
			if bb.mem.class > 0 {
				b.pool.put(bb.mem.ptr, bb.mem.class)
			}
		}
	})
}

// View returns elements [off, off+n) of x, sharing its memory.
func (b *Backend) View(x device.Buffer, off, n int) device.Buffer {
	bb, ok := x.(*buffer)
	if !ok || bb == nil {
		panic(fmt.Sprintf("cuda: View of a %T, not a buffer of the cuda backend", x))
	}
	v, err := viewOf(bb, off, n)
	if err != nil {
		panic("cuda: " + err.Error())
	}
	return v
}

// Upload copies host data into dst.
func (b *Backend) Upload(dst device.Buffer, src []float32) {
	upload(b, "Upload", dst, device.Float32, src)
}

// UploadInt32 copies host data into an Int32 buffer.
func (b *Backend) UploadInt32(dst device.Buffer, src []int32) {
	upload(b, "UploadInt32", dst, device.Int32, src)
}

// Download copies src into host memory.
func (b *Backend) Download(dst []float32, src device.Buffer) {
	download(b, "Download", dst, device.Float32, src)
}

// DownloadInt32 copies an Int32 buffer into host memory.
func (b *Backend) DownloadInt32(dst []int32, src device.Buffer) {
	download(b, "DownloadInt32", dst, device.Int32, src)
}

// upload is Upload for either element type, both of elemSize bytes.
func upload[T float32 | int32](b *Backend, op string, dst device.Buffer, dt device.DType, src []T) {
	b.call(func() {
		c := b.check(op)
		p := c.buf("dst", dst, dt, len(src))
		if b.ok(c) && len(src) > 0 {
			b.record(cu.MemcpyHtoD(cu.DevicePtr(p), unsafe.Pointer(&src[0]), int64(len(src))*elemSize))
		}
	})
}

// download is Download for either element type, both of elemSize bytes.
func download[T float32 | int32](b *Backend, op string, dst []T, dt device.DType, src device.Buffer) {
	b.call(func() {
		c := b.check(op)
		p := c.buf("src", src, dt, len(dst))
		if b.ok(c) && len(dst) > 0 {
			b.record(cu.MemcpyDtoH(unsafe.Pointer(&dst[0]), cu.DevicePtr(p), int64(len(dst))*elemSize))
		}
	})
}

// Sync waits for queued work and returns the first error since the
// previous Sync.
func (b *Backend) Sync() error {
	var err error
	b.call(func() {
		b.record(cu.Synchronize())
		err, b.err = b.err, nil
	})
	return err
}

// workspace takes n floats of scratch from the pool for the current
// operation; give it back with b.pool.put(ptr, class) after the launches
// that use it (they run in stream order before any later reuse).
func (b *Backend) workspace(op string, n int) (ptr uintptr, class int64, ok bool) {
	ptr, class, err := b.pool.get(int64(n) * elemSize)
	if err != nil {
		b.record(fmt.Errorf("cuda: %s workspace: %w", op, err))
		return 0, 0, false
	}
	return ptr, class, true
}
