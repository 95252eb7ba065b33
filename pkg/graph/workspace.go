package graph

import (
	"sync"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// Workspace holds an op's scratch buffers on each backend that runs it,
// allocated by the op's first Exec there and kept for the op's lifetime,
// so that a compiled plan's steps allocate nothing. A forward op and its
// gradient ops may share one: a plan runs its kernels one at a time and
// none keeps scratch contents from one Exec to the next.
type Workspace struct {
	mu   sync.Mutex
	bufs map[device.Backend][]device.Buffer
}

// Get returns the buffers on be, calling alloc the first time.
func (w *Workspace) Get(be device.Backend, alloc func(be device.Backend) []device.Buffer) []device.Buffer {
	w.mu.Lock()
	defer w.mu.Unlock()
	if b, ok := w.bufs[be]; ok {
		return b
	}
	if w.bufs == nil {
		w.bufs = make(map[device.Backend][]device.Buffer)
	}
	b := alloc(be)
	w.bufs[be] = b
	return b
}

// Float32s returns float32 buffers of the given sizes on be.
func (w *Workspace) Float32s(be device.Backend, sizes ...int) []device.Buffer {
	return w.Get(be, func(be device.Backend) []device.Buffer {
		b := make([]device.Buffer, len(sizes))
		for i, n := range sizes {
			b[i] = be.Alloc(device.Float32, n)
		}
		return b
	})
}
