//go:build !purego

package cpu

// Batch normalisation on channel-blocked activations (device.Blocked), in
// C with 8-lane vectors (batchnorm_blocked.c): the 8 channels of a block
// that sit side by side at every pixel are normalised together, as the
// plain kernels normalise one channel's plane.

// #cgo CFLAGS: -O2 -Wno-psabi
// #cgo LDFLAGS: -lm
// #include "batchnorm_blocked.h"
import "C"

import "unsafe"

// bnBlockedTask is a bnTask on channel-blocked activations, run over
// groups of 8 channels: the statistics of each channel are summed in
// float64 in an order independent of the thread count.
type bnBlockedTask bnTask

// f32 is the C pointer to x's memory, nil for an empty slice.
func f32(x []float32) *C.float {
	if len(x) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&x[0]))
}

func (t *bnBlockedTask) run(_, lo, hi int) {
	s := t.s
	relu := C.int(0)
	if t.relu {
		relu = 1
	}
	for g := lo; g < hi; g++ {
		shape := C.mochi_bnb{n: C.long(s.N), c: C.long(s.C), hw: C.long(s.HW), groups: C.long(s.Groups), block: C.long(s.Block), c0: C.long(8 * g)}
		switch t.op {
		case bnTrain:
			C.mochi_bnb_train(shape, f32(t.x), f32(t.r), f32(t.y), f32(t.gamma), f32(t.beta), f32(t.mean), f32(t.invStd),
				f32(t.runMean), f32(t.runVar), C.double(t.momentum), C.double(t.eps), relu)
		case bnInfer:
			C.mochi_bnb_infer(shape, f32(t.x), f32(t.r), f32(t.y), f32(t.gamma), f32(t.beta), f32(t.runMean), f32(t.runVar), C.double(t.eps), relu)
		case bnBackward:
			dz := t.dx // the ReLU's gradient: dr, else dx until dx overwrites it
			if t.dr != nil {
				dz = t.dr
			}
			C.mochi_bnb_backward(shape, f32(t.x), f32(t.y), f32(t.dy), f32(dz), f32(t.dx), f32(t.gamma), f32(t.mean), f32(t.invStd),
				f32(t.dgamma), f32(t.dbeta), relu)
		}
	}
}

// bnBlocked runs t, whose activations are channel-blocked, over groups of
// 8 channels. Called with b.mu held and t in b.tasks.bn.
func (b *Backend) bnBlocked() {
	t := (*bnBlockedTask)(&b.tasks.bn)
	b.workers.parallel(t.s.C/8, max(1, elemGrain/(8*t.s.N*t.s.HW)), t)
}
