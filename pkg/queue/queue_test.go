package queue_test

import (
	"slices"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"

	"github.com/mochi-ssl/mochi/pkg/queue"
	"github.com/mochi-ssl/mochi/pkg/queue/queuetest"
)

func TestRing(t *testing.T) {
	queuetest.Run(t, func(k, d int, seed uint64) (queue.Queue, error) { return queue.NewRing(k, d, seed) })
}

func TestNewRingRejectsEmptyShape(t *testing.T) {
	for _, kd := range [][2]int{{0, 4}, {4, 0}, {-1, 3}} {
		if _, err := queue.NewRing(kd[0], kd[1], 1); err == nil {
			t.Errorf("NewRing(%d, %d) returned no error", kd[0], kd[1])
		}
	}
}

func TestDevice(t *testing.T) {
	be := cpu.New(1)
	queuetest.Run(t, func(k, d int, seed uint64) (queue.Queue, error) {
		return queue.NewDevice(be, be.Alloc(device.Float32, k*d), k, d, seed)
	})
}

// TestDeviceEnqueueBuffer checks the device-to-device enqueue against the
// host one, across the wrap at K.
func TestDeviceEnqueueBuffer(t *testing.T) {
	const k, d, b = 7, 3, 4
	be := cpu.New(1)
	viaHost, _ := queue.NewDevice(be, be.Alloc(device.Float32, k*d), k, d, 1)
	viaBuffer, _ := queue.NewDevice(be, be.Alloc(device.Float32, k*d), k, d, 1)
	keys := be.Alloc(device.Float32, b*d)
	host := make([]float32, b*d)
	for step := range 3 {
		meta := make([]queue.Meta, b)
		for i := range host {
			host[i] = float32(step*100 + i)
		}
		for i := range meta {
			meta[i] = queue.Meta{Index: int64(step*b + i), Label: int32(i)}
		}
		be.Upload(keys, host)
		if err := viaHost.Enqueue(host, meta); err != nil {
			t.Fatal(err)
		}
		if err := viaBuffer.EnqueueBuffer(keys, meta); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(viaHost.Host(), viaBuffer.Host()) || !slices.Equal(viaHost.Meta(), viaBuffer.Meta()) || viaHost.Ptr() != viaBuffer.Ptr() {
			t.Fatalf("step %d: EnqueueBuffer and Enqueue disagree", step)
		}
	}
}
