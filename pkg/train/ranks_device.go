package train

import (
	"github.com/mochi-ssl/mochi/pkg/dist"
	"github.com/mochi-ssl/mochi/pkg/moco"
)

// onDevice reports whether c's collectives also run on the device's
// buffers (dist.DeviceComm: NCCL on the GPU, package dist/nccl). The
// trainer then all-reduces the gradients and all-gathers the keys where
// they live, on one rank too (a copy there: how scripts/gpu-check.sh's
// nccl step runs them on one GPU); otherwise they travel through host
// memory.
func onDevice(c dist.Comm) bool {
	_, ok := c.(dist.DeviceComm)
	return ok
}

// reduceGrads sums the gradients of m over c's ranks and scales them by a:
// on the device when c can, else through one host buffer.
func reduceGrads(c dist.Comm, m *moco.Model, a float32) error {
	if dc, ok := c.(dist.DeviceComm); ok {
		return m.ReduceGradsDevice(dc.AllReduceSumDevice, a)
	}
	return m.ReduceGrads(c.AllReduceSum, a)
}
