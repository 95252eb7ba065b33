package hardneg

import (
	"sync"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// workspace holds an op's scratch buffers on each backend that runs it,
// allocated by the op's first Exec there and kept for the op's lifetime,
// so that a compiled plan's steps allocate nothing. The forward op and its
// gradient ops may share one: a plan runs its kernels one at a time and
// none keeps scratch contents from one Exec to the next.
type workspace struct {
	mu   sync.Mutex
	bufs map[device.Backend][]device.Buffer
}

// get returns the buffers on be, calling alloc the first time.
func (w *workspace) get(be device.Backend, alloc func(be device.Backend) []device.Buffer) []device.Buffer {
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
