package moco

import (
	"fmt"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// ReduceGradsDevice is ReduceGrads where the gradients live: reduce gets
// every gradient buffer of f_q at once (data-parallel training: NCCL sums
// them over the ranks in place, dist.DeviceComm), then each is scaled by a
// on the device.
func (m *Model) ReduceGradsDevice(reduce func(bufs ...device.Buffer) error, a float32) error {
	bufs := make([]device.Buffer, len(m.train.Grads))
	for i, g := range m.train.Grads {
		bufs[i] = m.train.Plan.Buffer(g)
	}
	if err := reduce(bufs...); err != nil {
		return err
	}
	if a != 1 {
		for _, b := range bufs {
			m.be.Scale(a, b)
		}
	}
	return nil
}

// EnqueueGathered is EnqueueKeys without leaving the device: gather puts
// the step's keys of each of the ranks (B×D each, in rank order) into one
// buffer (dist.DeviceComm's AllGatherDevice), which is then copied into
// the queue with the gathered image indices and labels.
func (m *Model) EnqueueGathered(gather func(send, recv device.Buffer) error, ranks int, index, labels []int) error {
	n := ranks * m.Spec.B * m.Spec.Net.EmbedDim
	if m.gathered != nil && m.gathered.Len() != n {
		m.be.Free(m.gathered)
		m.gathered = nil
	}
	if m.gathered == nil {
		m.gathered = m.be.Alloc(device.Float32, n)
	}
	if err := gather(m.train.Plan.Buffer(m.k), m.gathered); err != nil {
		return fmt.Errorf("key all-gather: %w", err)
	}
	return m.Queue.EnqueueBuffer(m.gathered, queueMeta(index, labels))
}
