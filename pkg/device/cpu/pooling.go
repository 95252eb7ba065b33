package cpu

import (
	"math"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// poolTask runs max pooling (forward, or backward when backward is set) over
// a range of N·C planes. In a channel-blocked layout (s.Block = B) plane
// q = n·C + c starts at (q/B)·H·W·B + q mod B and its elements are B
// apart; plain NCHW is B = 1.
type poolTask struct {
	s        device.PoolShape
	backward bool
	x, y     []float32 // y is dy for the backward
	dx       []float32
}

// argmax returns the index h·W + w in plane (H×W elements, step apart) of
// the first maximal element of output (i, j)'s window in row-major order,
// or −1 for an all-padding window.
func argmax(s device.PoolShape, plane []float32, step, i, j int) int {
	best, at := float32(math.Inf(-1)), -1
	h0, w0 := i*s.Stride-s.Pad, j*s.Stride-s.Pad
	for h := max(h0, 0); h < min(h0+s.Size, s.H); h++ {
		for w := max(w0, 0); w < min(w0+s.Size, s.W); w++ {
			if v := plane[(h*s.W+w)*step]; v > best || at < 0 {
				best, at = v, h*s.W+w
			}
		}
	}
	return at
}

func (t *poolTask) run(_, lo, hi int) {
	s := t.s
	hw, oh, ow := s.H*s.W, s.OutH(), s.OutW()
	step := max(s.Block, 1)
	for q := lo; q < hi; q++ {
		in, out := q/step*hw*step+q%step, q/step*oh*ow*step+q%step
		x, y := t.x[in:], t.y[out:]
		if !t.backward {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					if a := argmax(s, x, step, i, j); a >= 0 {
						y[(i*ow+j)*step] = x[a*step]
					} else {
						y[(i*ow+j)*step] = float32(math.Inf(-1))
					}
				}
			}
			continue
		}
		dx := t.dx[in:]
		for i := 0; i < hw; i++ {
			dx[i*step] = 0
		}
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				if a := argmax(s, x, step, i, j); a >= 0 {
					dx[a*step] += y[(i*ow+j)*step]
				}
			}
		}
	}
}

func (b *Backend) maxPool(kernel string, s device.PoolShape, x, y, dx device.Buffer) {
	if s.N < 0 || s.C <= 0 || s.Size <= 0 || s.Stride <= 0 || s.OutH() <= 0 || s.OutW() <= 0 {
		b.fail("%s: invalid shape %+v", kernel, s)
		return
	}
	if !validBlock(s.Block, s.C) {
		b.fail(badBlock, kernel, s)
		return
	}
	planes := s.N * s.C
	if !b.need(kernel, "x", x, planes*s.H*s.W) || !b.need(kernel, "y/dy", y, planes*s.OutH()*s.OutW()) {
		return
	}
	t := poolTask{s: s, x: Float32s(x), y: Float32s(y)}
	if dx != nil {
		if !b.need(kernel, "dx", dx, planes*s.H*s.W) {
			return
		}
		t.backward, t.dx = true, Float32s(dx)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tasks.pool = t
	b.workers.parallel(planes, max(1, elemGrain/(s.H*s.W*s.Size)), &b.tasks.pool)
	b.tasks.pool = poolTask{}
}

// MaxPoolForward: y = the maximum of each window (padding is −∞).
func (b *Backend) MaxPoolForward(s device.PoolShape, x, y device.Buffer) {
	b.maxPool("MaxPoolForward", s, x, y, nil)
}

// MaxPoolBackward routes each dy to the first maximal input of its window.
func (b *Backend) MaxPoolBackward(s device.PoolShape, x, dy, dx device.Buffer) {
	b.maxPool("MaxPoolBackward", s, x, dy, dx)
}
