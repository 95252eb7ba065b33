package queue

import (
	"fmt"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// Device is a Queue whose keys live in a backend buffer — GPU memory on a
// GPU — so the loss reads them where they are and the keys of a step are
// enqueued by a device-to-device copy. The metadata and the pointer stay on
// the host; Host and Snapshot copy the keys out.
type Device struct {
	be   device.Core
	keys device.Buffer // K×D
	k, d int
	ptr  int
	meta []Meta
	host []float32 // Host's copy
}

// NewDevice makes a K×D queue in keys (a Float32 buffer of at least K·D
// elements on be), initialised exactly as NewRing(k, d, seed).
func NewDevice(be device.Core, keys device.Buffer, k, d int, seed uint64) (*Device, error) {
	r, err := NewRing(k, d, seed)
	if err != nil {
		return nil, err
	}
	if keys.Len() < k*d || keys.DType() != device.Float32 {
		return nil, fmt.Errorf("queue: device buffer of %d %v elements for a %d×%d queue", keys.Len(), keys.DType(), k, d)
	}
	q := &Device{be: be, keys: keys, k: k, d: d, meta: make([]Meta, k)}
	if err := q.Restore(r.Snapshot()); err != nil {
		return nil, err
	}
	return q, nil
}

// K is the number of entries.
func (q *Device) K() int { return q.k }

// Dim is the key length D.
func (q *Device) Dim() int { return q.d }

// Ptr is the row the next Enqueue writes first.
func (q *Device) Ptr() int { return q.ptr }

// Buffer is the K×D keys in device memory.
func (q *Device) Buffer() device.Buffer { return q.keys }

// Meta returns the queue's own metadata slice (read-only).
func (q *Device) Meta() []Meta { return q.meta }

// Host copies the keys to host memory.
func (q *Device) Host() []float32 {
	if q.host == nil {
		q.host = make([]float32, q.k*q.d)
	}
	q.be.Download(q.host, q.be.View(q.keys, 0, q.k*q.d))
	return q.host
}

// Enqueue uploads keys (B×D, host) and meta (B) at Ptr, wrapping at K.
func (q *Device) Enqueue(keys []float32, meta []Meta) error {
	return q.write(len(keys), meta, func(off, n, row int) {
		q.be.Upload(q.be.View(q.keys, row*q.d, n*q.d), keys[off*q.d:(off+n)*q.d])
	})
}

// EnqueueBuffer copies keys (B×D, a buffer on the same backend) and meta
// (B) at Ptr, wrapping at K, without leaving the device. The copy is a
// CopyCols of one row, offsets in elements, rather than a Copy between
// views: a view is a new Buffer value, and the training step allocates
// nothing (TestMoCoStepAllocatesNothing in pkg/bench).
func (q *Device) EnqueueBuffer(keys device.Buffer, meta []Meta) error {
	return q.write(keys.Len(), meta, func(off, n, row int) {
		q.be.CopyCols(1, keys.Len(), off*q.d, q.k*q.d, row*q.d, n*q.d, keys, q.keys)
	})
}

// write checks an enqueue of values/D keys, then copies them with put(off,
// n, row) — n keys from key off to row row — in at most two pieces.
func (q *Device) write(values int, meta []Meta, put func(off, n, row int)) error {
	if values%q.d != 0 {
		return fmt.Errorf("queue: enqueue of %d values is not a whole number of D = %d keys", values, q.d)
	}
	b := values / q.d
	if len(meta) != b {
		return fmt.Errorf("queue: enqueue of %d keys with %d metadata entries; pass one Meta per key", b, len(meta))
	}
	if b > q.k {
		return fmt.Errorf("queue: batch of %d keys exceeds the queue size K = %d; raise queue_size or lower the batch size", b, q.k)
	}
	first := min(b, q.k-q.ptr)
	put(0, first, q.ptr)
	copy(q.meta[q.ptr:], meta[:first])
	if first < b {
		put(first, b-first, 0)
		copy(q.meta, meta[first:])
	}
	q.ptr = (q.ptr + b) % q.k
	return nil
}

// Snapshot returns a deep copy of the state, keys copied from the device.
func (q *Device) Snapshot() State {
	return State{K: q.k, D: q.d, Ptr: q.ptr,
		Keys: append([]float32(nil), q.Host()...),
		Meta: append([]Meta(nil), q.meta...)}
}

// Restore replaces the state with s, uploading its keys.
func (q *Device) Restore(s State) error {
	if err := s.fits(q.k, q.d); err != nil {
		return err
	}
	q.ptr = s.Ptr
	q.be.Upload(q.be.View(q.keys, 0, q.k*q.d), s.Keys)
	copy(q.meta, s.Meta)
	return nil
}

var _ Queue = (*Device)(nil)
