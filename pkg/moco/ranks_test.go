package moco

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// grads downloads every gradient of f_q, end to end.
func grads(m *Model) []float32 {
	var all []float32
	for _, g := range m.train.Grads {
		part := make([]float32, g.Shape().TotalSize())
		m.be.Download(part, m.train.Plan.Buffer(g))
		all = append(all, part...)
	}
	return all
}

// setGrads uploads all (laid out as grads returns it) into the gradients.
func setGrads(m *Model, all []float32) {
	off := 0
	for _, g := range m.train.Grads {
		n := g.Shape().TotalSize()
		m.be.Upload(m.train.Plan.Buffer(g), all[off:off+n])
		off += n
	}
}

// TestReduceGradsDeviceMatchesHost: two ranks' gradients averaged on the
// device (each buffer summed with the other rank's in place, as NCCL does,
// then scaled) equal, bit for bit, the host path's average of the same
// gradients laid end to end.
func TestReduceGradsDeviceMatchesHost(t *testing.T) {
	m, xq, xk := tinyModel(t)
	if _, err := m.Step(xq, xk, []int{0, 1, 2, 3}, nil, nil); err != nil {
		t.Fatal(err)
	}
	own := grads(m)
	rng := rand.New(rand.NewPCG(3, 4))
	other := make([]float32, len(own))
	for i := range other {
		other[i] = float32(rng.NormFloat64())
	}
	err := m.ReduceGrads(func(all []float32) error {
		for i := range all {
			all[i] += other[i]
		}
		return nil
	}, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	host := grads(m)

	setGrads(m, own)
	calls := 0
	err = m.ReduceGradsDevice(func(bufs ...device.Buffer) error {
		calls++
		off := 0
		for _, b := range bufs {
			tmp := m.be.Alloc(device.Float32, b.Len())
			m.be.Upload(tmp, other[off:off+b.Len()])
			m.be.Add(b, tmp, b)
			m.be.Free(tmp)
			off += b.Len()
		}
		if off != len(own) {
			t.Errorf("the buffers hold %d values, the gradients %d", off, len(own))
		}
		return nil
	}, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	dev := grads(m)
	if calls != 1 {
		t.Errorf("reduce called %d times, want once with every buffer", calls)
	}
	if slices.Equal(host, own) {
		t.Fatal("the host path left the gradients unchanged: the check would pass for anything")
	}
	for i := range host {
		if dev[i] != host[i] {
			t.Fatalf("gradient value %d: %v on the device, %v on the host", i, dev[i], host[i])
		}
	}
}

// TestEnqueueGathered: keys gathered on the device enter the queue as
// EnqueueKeys puts the same keys there from the host.
func TestEnqueueGathered(t *testing.T) {
	m, xq, xk := tinyModel(t)
	if _, err := m.Step(xq, xk, []int{0, 1, 2, 3}, nil, nil); err != nil {
		t.Fatal(err)
	}
	own := m.Keys(nil)
	other := make([]float32, len(own))
	for i := range other {
		other[i] = float32(i) / 64
	}
	index, labels := []int{0, 1, 2, 3, 4, 5, 6, 7}, []int{9, 8, 7, 6, 5, 4, 3, 2}
	start := m.Queue.Snapshot()
	if err := m.EnqueueKeys(append(slices.Clone(own), other...), index, labels); err != nil {
		t.Fatal(err)
	}
	want := m.Queue.Snapshot()
	if err := m.Queue.Restore(start); err != nil {
		t.Fatal(err)
	}
	err := m.EnqueueGathered(func(send, recv device.Buffer) error {
		if recv.Len() != 2*send.Len() {
			t.Fatalf("gather of %d values into %d, want 2 ranks' worth", send.Len(), recv.Len())
		}
		m.be.Copy(m.be.View(recv, 0, send.Len()), send)
		m.be.Upload(m.be.View(recv, send.Len(), send.Len()), other)
		return nil
	}, 2, index, labels)
	if err != nil {
		t.Fatal(err)
	}
	got := m.Queue.Snapshot()
	if !slices.Equal(got.Keys, want.Keys) || !slices.Equal(got.Meta, want.Meta) || got.Ptr != want.Ptr {
		t.Errorf("the queue after EnqueueGathered differs from EnqueueKeys' (pointer %d, want %d)", got.Ptr, want.Ptr)
	}
}
