package cpu

import (
	"math"

	"github.com/mochi-ssl/mochi/internal/vec"
	"github.com/mochi-ssl/mochi/pkg/device"
)

// elemGrain is the fewest elements worth a part of their own: below it the
// cost of waking a worker exceeds the work.
const elemGrain = 1 << 15

// elemOp names an elementwise kernel.
type elemOp int

const (
	opCopy elemOp = iota
	opFill
	opScale
	opAxpy
	opAdd
	opReLU
	opReLUBackward
	opSGD
	opMomentum
)

// elementwiseTask runs one elementwise kernel over a range of elements.
type elementwiseTask struct {
	op      elemOp
	x, y, z []float32 // operands; which are read and written depends on op
	alpha   float32
	sgd     device.SGDParams
}

// positiveMask is all ones when v > 0 (NaN with the sign bit clear
// included), else 0: ReLU's backward as a bitwise AND, without the branch
// that half the activations mispredict (3.5× faster).
func positiveMask(v float32) uint32 {
	b := int32(math.Float32bits(v))
	return uint32(^((b - 1) >> 31) & ^(b >> 31)) // b ≥ 1: not 0, not negative, not −0
}

// add is z = x + y over z (z may be x or y); BatchNormAddReLU runs it too.
func add(x, y, z []float32) {
	x, y = x[:len(z)], y[:len(z)]
	for i := vec.Add(x, y, z); i < len(z); i++ {
		z[i] = x[i] + y[i]
	}
}

// relu is y = max(x, 0) over x (y may be x); BatchNormReLU runs it too.
func relu(x, y []float32) {
	y = y[:len(x)]
	for i := vec.ReLU(x, y); i < len(x); i++ {
		y[i] = max(x[i], 0)
	}
}

// reluBackward is dx = dy where y > 0, else +0, over dx.
func reluBackward(y, dy, dx []float32) {
	y, dy = y[:len(dx)], dy[:len(dx)]
	for i := vec.ReLUBackward(y, dy, dx); i < len(dx); i++ {
		dx[i] = math.Float32frombits(math.Float32bits(dy[i]) & positiveMask(y[i]))
	}
}

func (t *elementwiseTask) run(_, lo, hi int) {
	switch t.op {
	case opCopy: // y = x
		copy(t.y[lo:hi], t.x[lo:hi])
	case opFill: // x = alpha
		x := t.x[lo:hi]
		for i := range x {
			x[i] = t.alpha
		}
	case opScale: // x = alpha·x
		x := t.x[lo:hi]
		for i := range x {
			x[i] *= t.alpha
		}
	case opAxpy: // y = alpha·x + y
		x, y := t.x[lo:hi], t.y[lo:hi]
		y = y[:len(x)]
		for i, v := range x {
			y[i] += t.alpha * v
		}
	case opAdd: // z = x + y
		add(t.x[lo:hi], t.y[lo:hi], t.z[lo:hi])
	case opReLU: // y = max(x, 0)
		relu(t.x[lo:hi], t.y[lo:hi])
	case opReLUBackward: // z = y where x > 0 (x is the forward output)
		reluBackward(t.x[lo:hi], t.y[lo:hi], t.z[lo:hi])
	case opSGD: // x param, y grad, z velocity
		p, g, v := t.x[lo:hi], t.y[lo:hi], t.z[lo:hi]
		g, v = g[:len(p)], v[:len(p)]
		lr, mom, wd := t.sgd.LR, t.sgd.Momentum, t.sgd.WeightDecay
		if t.sgd.Nesterov {
			for i := range p {
				gi := g[i] + wd*p[i]
				v[i] = mom*v[i] + gi
				p[i] -= lr * (gi + mom*v[i])
			}
		} else {
			for i := range p {
				v[i] = mom*v[i] + g[i] + wd*p[i]
				p[i] -= lr * v[i]
			}
		}
	case opMomentum: // y = alpha·y + (1−alpha)·x
		x, y := t.x[lo:hi], t.y[lo:hi]
		y = y[:len(x)]
		m, m1 := t.alpha, 1-t.alpha
		for i, v := range x {
			y[i] = m*y[i] + m1*v
		}
	}
}

// elementwise runs op over n elements.
func (b *Backend) elementwise(op elemOp, n int, x, y, z []float32, alpha float32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tasks.elem = elementwiseTask{op: op, x: x, y: y, z: z, alpha: alpha}
	b.workers.parallel(n, elemGrain, &b.tasks.elem)
	b.tasks.elem = elementwiseTask{}
}

// Copy: dst = src over src.Len() elements.
func (b *Backend) Copy(dst, src device.Buffer) {
	if b.need("Copy", "dst", dst, src.Len()) {
		b.elementwise(opCopy, src.Len(), Float32s(src), Float32s(dst), nil, 0)
	}
}

// Fill sets every element of x to v.
func (b *Backend) Fill(x device.Buffer, v float32) {
	b.elementwise(opFill, x.Len(), Float32s(x), nil, nil, v)
}

// Scale: x = alpha·x.
func (b *Backend) Scale(alpha float32, x device.Buffer) {
	b.elementwise(opScale, x.Len(), Float32s(x), nil, nil, alpha)
}

// Axpy: y = alpha·x + y over x.Len() elements.
func (b *Backend) Axpy(alpha float32, x, y device.Buffer) {
	if b.need("Axpy", "y", y, x.Len()) {
		b.elementwise(opAxpy, x.Len(), Float32s(x), Float32s(y), nil, alpha)
	}
}

// Add: out = a + b over out.Len() elements.
func (b *Backend) Add(a, c, out device.Buffer) {
	if b.need("Add", "a", a, out.Len()) && b.need("Add", "b", c, out.Len()) {
		b.elementwise(opAdd, out.Len(), Float32s(a), Float32s(c), Float32s(out), 0)
	}
}

// ReLU: y = max(x, 0).
func (b *Backend) ReLU(x, y device.Buffer) {
	if b.need("ReLU", "y", y, x.Len()) {
		b.elementwise(opReLU, x.Len(), Float32s(x), Float32s(y), nil, 0)
	}
}

// ReLUBackward: dx = dy where y > 0, else 0, over dx.Len() elements.
func (b *Backend) ReLUBackward(y, dy, dx device.Buffer) {
	if b.need("ReLUBackward", "y", y, dx.Len()) && b.need("ReLUBackward", "dy", dy, dx.Len()) {
		b.elementwise(opReLUBackward, dx.Len(), Float32s(y), Float32s(dy), Float32s(dx), 0)
	}
}

// SGDStep is torch.optim.SGD with dampening 0 over param.Len() elements:
// g = grad + wd·p; v = m·v + g; p −= lr·(g + m·v) (Nesterov) or lr·v.
func (b *Backend) SGDStep(p device.SGDParams, param, grad, velocity device.Buffer) {
	n := param.Len()
	if !b.need("SGDStep", "grad", grad, n) || !b.need("SGDStep", "velocity", velocity, n) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tasks.elem = elementwiseTask{op: opSGD, x: Float32s(param), y: Float32s(grad), z: Float32s(velocity), sgd: p}
	b.workers.parallel(n, elemGrain, &b.tasks.elem)
	b.tasks.elem = elementwiseTask{}
}

// MomentumUpdate: dst = m·dst + (1−m)·src over src.Len() elements.
func (b *Backend) MomentumUpdate(m float32, src, dst device.Buffer) {
	if b.need("MomentumUpdate", "dst", dst, src.Len()) {
		b.elementwise(opMomentum, src.Len(), Float32s(src), Float32s(dst), nil, m)
	}
}

// sumBlock is the block size of Sum's partial sums: fixed, so the result
// does not depend on the thread count.
const sumBlock = 1 << 12

// sumTask adds each block of x in float64 into partial[block].
type sumTask struct {
	x       []float32
	partial []float64
}

func (t *sumTask) run(_, lo, hi int) {
	for blk := lo; blk < hi; blk++ {
		var s float64
		for _, v := range t.x[blk*sumBlock : min((blk+1)*sumBlock, len(t.x))] {
			s += float64(v)
		}
		t.partial[blk] = s
	}
}

// Sum: out[0] = Σ x, accumulated in float64.
func (b *Backend) Sum(x, out device.Buffer) {
	if !b.need("Sum", "out", out, 1) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	xs := Float32s(x)
	blocks := (len(xs) + sumBlock - 1) / sumBlock
	if cap(b.partOf) < blocks {
		b.partOf = make([]float64, blocks)
	}
	b.tasks.sum = sumTask{x: xs, partial: b.partOf[:blocks]}
	b.workers.parallel(blocks, elemGrain/sumBlock, &b.tasks.sum)
	var s float64
	for _, p := range b.tasks.sum.partial {
		s += p
	}
	Float32s(out)[0] = float32(s)
	b.tasks.sum = sumTask{}
}
