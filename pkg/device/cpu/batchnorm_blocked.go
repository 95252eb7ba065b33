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

// bnBlockedTask is a bnTask on channel-blocked activations, run over
// groups of 8 channels: the statistics of each channel are summed in
// float64 in an order independent of the thread count.
type bnBlockedTask bnTask

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
			C.mochi_bnb_train(shape, fp(t.x), fp(t.r), fp(t.y), fp(t.gamma), fp(t.beta), fp(t.mean), fp(t.invStd),
				fp(t.runMean), fp(t.runVar), C.double(t.momentum), C.double(t.eps), relu)
		case bnInfer:
			C.mochi_bnb_infer(shape, fp(t.x), fp(t.r), fp(t.y), fp(t.gamma), fp(t.beta), fp(t.runMean), fp(t.runVar), C.double(t.eps), relu)
		case bnBackward:
			dz := t.dx // the ReLU's gradient: dr, else dx until dx overwrites it
			if t.dr != nil {
				dz = t.dr
			}
			C.mochi_bnb_backward(shape, fp(t.x), fp(t.y), fp(t.dy), fp(dz), fp(t.dx), fp(t.gamma), fp(t.mean), fp(t.invStd),
				fp(t.dgamma), fp(t.dbeta), relu)
		}
	}
}

// bnBlocked runs t, whose activations are channel-blocked, over groups of
// 8 channels. Called with b.mu held and t in b.tasks.bn.
func (b *Backend) bnBlocked() {
	t := (*bnBlockedTask)(&b.tasks.bn)
	b.workers.parallel(t.s.C/8, max(1, elemGrain/(8*t.s.N*t.s.HW)), t)
}
