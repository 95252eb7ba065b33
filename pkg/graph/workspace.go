package graph

import (
	"sync"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// workspace holds an op's scratch buffers, allocated once per backend on
// first use and kept for the op's lifetime, so that steps allocate nothing.
type workspace struct {
	mu   sync.Mutex
	bufs map[device.Backend][]device.Buffer
}

// get returns float32 scratch buffers of the given sizes on be.
func (w *workspace) get(be device.Backend, sizes ...int) []device.Buffer {
	w.mu.Lock()
	defer w.mu.Unlock()
	if b, ok := w.bufs[be]; ok {
		return b
	}
	if w.bufs == nil {
		w.bufs = make(map[device.Backend][]device.Buffer)
	}
	b := make([]device.Buffer, len(sizes))
	for i, n := range sizes {
		b[i] = be.Alloc(device.Float32, n)
	}
	w.bufs[be] = b
	return b
}
