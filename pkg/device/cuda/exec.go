//go:build gpu

package cuda

import (
	"fmt"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// Exec lends the backend's buffers to another library that works in GPU
// memory (NCCL, pkg/dist/nccl): it runs f on the backend's CUDA thread,
// where the context is current, after every operation queued before it and
// before any queued after it, with ptrs[i] the device address of bufs[i]
// (live buffers of this backend; a view's address is its first element's).
// Whatever f queues on the GPU must go to the default stream (stream 0),
// where every kernel of the backend runs, so that it is ordered with them;
// f may wait for it. f's error is returned, not kept as the sticky error,
// and a bad buffer is reported without running f.
func (b *Backend) Exec(bufs []device.Buffer, f func(ptrs []uintptr) error) error {
	var err error
	b.call(func() {
		c := b.check("Exec")
		ptrs := make([]uintptr, len(bufs))
		for i, x := range bufs {
			dt := device.Float32
			if bb, ok := x.(*buffer); ok && bb != nil {
				dt = bb.dt
			}
			ptrs[i] = c.buf(fmt.Sprintf("buffer %d", i), x, dt, length(x))
		}
		if err = c.err; err == nil {
			err = f(ptrs)
		}
	})
	return err
}
