package moco

import (
	"fmt"
	"slices"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
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
	return m.Queue.EnqueueBuffer(m.gathered, m.queueMeta(index, labels))
}

// StepExchanged is Step with ShuffleBN across data-parallel ranks: the key
// encoder runs on this rank's B rows of the shuffled global key batch (row
// j is image rows[j] of xkAll, the batch of every rank), and exchange turns
// their keys (B×D, on the host) into this rank's keys in batch order (B×D),
// which the loss then uses.
func (m *Model) StepExchanged(xq, xkAll []float32, rows []int, exchange func(shuffled []float32) ([]float32, error), draw *hardneg.MixDraw, qLabels []int) (float64, error) {
	s, be := m.Spec, m.be
	m.momentumUpdate()
	img := s.C * s.H * s.W
	for j, i := range rows {
		copy(m.host.xShuffled[j*img:(j+1)*img], xkAll[i*img:(i+1)*img])
	}
	be.Upload(m.keyPlan.Buffer(m.xk), m.host.xShuffled)
	if err := m.keyPlan.Run(); err != nil {
		return 0, fmt.Errorf("key encoder: %w", err)
	}
	m.host.keys = slices.Grow(m.host.keys[:0], s.B*s.Net.EmbedDim)[:s.B*s.Net.EmbedDim]
	be.Download(m.host.keys, m.keyPlan.Buffer(m.EncoderK.Embedding))
	k, err := exchange(m.host.keys)
	if err != nil {
		return 0, err
	}
	be.Upload(m.train.Plan.Buffer(m.k), k)
	return m.lossStep(xq, draw, qLabels)
}
