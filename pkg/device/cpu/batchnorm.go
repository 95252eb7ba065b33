package cpu

import (
	"math"

	"github.com/mochi-ssl/mochi/internal/vec"
	"github.com/mochi-ssl/mochi/pkg/device"
)

// bnOp names a batch-norm kernel.
type bnOp int

const (
	bnTrain bnOp = iota
	bnInfer
	bnBackward
)

// bnTask runs a batch-norm kernel over a range of channels; every channel's
// statistics are summed in float64 in a fixed order. With relu the ReLU
// that follows runs on each plane while it is in cache: the forward's
// y = max(y, 0) and the backward's dy·[y > 0], written into dx (or dr)
// and read back as dy, the same float32 operations as the separate
// kernels; with r also the residual sum before it, y += r.
type bnTask struct {
	op              bnOp
	relu            bool
	s               device.BNShape
	x, y, dy, dx    []float32
	r, dr           []float32 // the residual added before the ReLU, its gradient; nil without
	gamma, beta     []float32
	mean, invStd    []float32 // Groups×C
	runMean, runVar []float32
	dgamma, dbeta   []float32
	momentum, eps   float32
}

func (t *bnTask) run(_, lo, hi int) {
	s := t.s
	per := s.N / s.Groups
	m := float64(per * s.HW)
	for c := lo; c < hi; c++ {
		// plane returns x[n, c, ·] of a buffer laid out N×C×HW.
		plane := func(buf []float32, n int) []float32 { return buf[(n*s.C+c)*s.HW : (n*s.C+c+1)*s.HW] }
		switch t.op {
		case bnTrain:
			var muSum, varSum float64
			for g := 0; g < s.Groups; g++ {
				var sum float64
				for n := g * per; n < (g+1)*per; n++ {
					sum += sumOf(plane(t.x, n))
				}
				mu := sum / m
				var sq float64
				for n := g * per; n < (g+1)*per; n++ {
					sq += sumSquaredDev(plane(t.x, n), mu)
				}
				variance := sq / m // biased: normalises the batch
				inv := 1 / math.Sqrt(variance+float64(t.eps))
				t.mean[g*s.C+c], t.invStd[g*s.C+c] = float32(mu), float32(inv)
				muSum += mu
				varSum += sq / (m - 1) // unbiased: PyTorch's running_var
				// y = γ·(x − μ)·invStd + β = a·x + (β − a·μ)
				a := float64(t.gamma[c]) * inv
				a32, b32 := float32(a), float32(float64(t.beta[c])-a*mu)
				for n := g * per; n < (g+1)*per; n++ {
					t.affine(plane(t.x, n), t.residual(plane, n), plane(t.y, n), a32, b32)
				}
			}
			mom := float64(t.momentum)
			g := float64(s.Groups)
			t.runMean[c] = float32((1-mom)*float64(t.runMean[c]) + mom*muSum/g)
			t.runVar[c] = float32((1-mom)*float64(t.runVar[c]) + mom*varSum/g)
		case bnInfer:
			a := float64(t.gamma[c]) / math.Sqrt(float64(t.runVar[c])+float64(t.eps))
			a32, b32 := float32(a), float32(float64(t.beta[c])-a*float64(t.runMean[c]))
			for n := 0; n < s.N; n++ {
				t.affine(plane(t.x, n), t.residual(plane, n), plane(t.y, n), a32, b32)
			}
		case bnBackward:
			// dx = γ·invStd·(dy − Σdy/M − x̂·Σ(dy·x̂)/M), x̂ = (x − μ)·invStd
			var dgamma, dbeta float64
			dyOf := t.dy
			switch {
			case t.dr != nil:
				dyOf = t.dr // dz = dy·[y > 0], written by the sums' pass
			case t.relu:
				dyOf = t.dx // the same, kept only until dx overwrites it
			}
			for g := 0; g < s.Groups; g++ {
				mu, inv := t.mean[g*s.C+c], t.invStd[g*s.C+c]
				var sdy, sdyx float64
				for n := g * per; n < (g+1)*per; n++ {
					if t.relu {
						reluBackward(plane(t.y, n), plane(t.dy, n), plane(dyOf, n))
					}
					a, b := sumsDyAndDyXhat(plane(t.x, n), plane(dyOf, n), mu, inv)
					sdy += a
					sdyx += b
				}
				dgamma += sdyx
				dbeta += sdy
				k := float32(float64(t.gamma[c]) * float64(inv))
				c2, c3 := float32(sdy/m), float32(sdyx/m)
				for n := g * per; n < (g+1)*per; n++ {
					x, dy, dx := plane(t.x, n), plane(dyOf, n), plane(t.dx, n)
					dy, dx = dy[:len(x)], dx[:len(x)]
					for i := vec.BNBackward(x, dy, dx, k, c2, mu, inv, c3); i < len(x); i++ {
						dx[i] = k * (dy[i] - c2 - (x[i]-mu)*inv*c3)
					}
				}
			}
			t.dgamma[c], t.dbeta[c] = float32(dgamma), float32(dbeta)
		}
	}
}

// The reductions below keep several float64 partial sums: one running sum
// is a chain of dependent additions, several let the CPU overlap them, and
// the float64 sums stay far more exact than the float32 values they add.

// sumOf is Σ x.
func sumOf(x []float32) float64 {
	var s [4]float64
	i := vec.SumLanes(x, &s)
	for ; i+4 <= len(x); i += 4 {
		s[0] += float64(x[i])
		s[1] += float64(x[i+1])
		s[2] += float64(x[i+2])
		s[3] += float64(x[i+3])
	}
	for ; i < len(x); i++ {
		s[0] += float64(x[i])
	}
	return (s[0] + s[1]) + (s[2] + s[3])
}

// sumSquaredDev is Σ (x − mu)².
func sumSquaredDev(x []float32, mu float64) float64 {
	var s [4]float64
	i := vec.SqDevLanes(x, mu, &s)
	for ; i+4 <= len(x); i += 4 {
		d0, d1, d2, d3 := float64(x[i])-mu, float64(x[i+1])-mu, float64(x[i+2])-mu, float64(x[i+3])-mu
		s[0] += d0 * d0
		s[1] += d1 * d1
		s[2] += d2 * d2
		s[3] += d3 * d3
	}
	for ; i < len(x); i++ {
		d := float64(x[i]) - mu
		s[0] += d * d
	}
	return (s[0] + s[1]) + (s[2] + s[3])
}

// residual is plane n of r, or nil without r.
func (t *bnTask) residual(plane func([]float32, int) []float32, n int) []float32 {
	if t.r == nil {
		return nil
	}
	return plane(t.r, n)
}

// affine is y = a·x + b over x, then y + r with r, then max(y, 0) with
// relu.
func (t *bnTask) affine(x, r, y []float32, a, b float32) {
	y = y[:len(x)]
	for i := vec.Affine(x, y, a, b); i < len(x); i++ {
		y[i] = a*x[i] + b
	}
	if r != nil {
		add(y, r, y)
	}
	if t.relu {
		relu(y, y)
	}
}

// sumsDyAndDyXhat is Σ dy and Σ dy·x̂ with x̂ = (x − mu)·inv in float32,
// as the forward normalised.
func sumsDyAndDyXhat(x, dy []float32, mu, inv float32) (sdy, sdyx float64) {
	dy = dy[:len(x)]
	var s [4]float64 // Σdy over even and odd i, then Σdy·x̂ over even and odd i
	i := vec.SumsDyXhat(x, dy, mu, inv, &s)
	for ; i+2 <= len(x); i += 2 {
		d0, d1 := float64(dy[i]), float64(dy[i+1])
		s[0] += d0
		s[1] += d1
		s[2] += d0 * float64((x[i]-mu)*inv)
		s[3] += d1 * float64((x[i+1]-mu)*inv)
	}
	for ; i < len(x); i++ {
		d := float64(dy[i])
		s[0] += d
		s[2] += d * float64((x[i]-mu)*inv)
	}
	return s[0] + s[1], s[2] + s[3]
}

// bnCheck validates a BNShape and the length of x-shaped buffers.
func (b *Backend) bnCheck(kernel string, s device.BNShape, train bool, xs ...device.Buffer) bool {
	if s.N <= 0 || s.C <= 0 || s.HW <= 0 || s.Groups <= 0 || s.N%s.Groups != 0 {
		b.fail("%s: shape %+v: N must be a positive multiple of Groups", kernel, s)
		return false
	}
	if !validBlock(s.Block, s.C) {
		b.fail(badBlock, kernel, s)
		return false
	}
	if train && s.N/s.Groups*s.HW < 2 {
		b.fail("%s: shape %+v has one value per channel and group: the batch statistics are undefined", kernel, s)
		return false
	}
	for _, x := range xs {
		if !b.need(kernel, "an N×C×HW buffer", x, s.N*s.C*s.HW) {
			return false
		}
	}
	return true
}

// bnRun runs t over the channels.
func (b *Backend) bnRun(t bnTask) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tasks.bn = t
	if t.s.Block != 0 {
		b.bnBlocked()
	} else {
		b.workers.parallel(t.s.C, max(1, elemGrain/(t.s.N*t.s.HW)), &b.tasks.bn)
	}
	b.tasks.bn = bnTask{}
}

// BatchNormTrain normalises x with the batch statistics of each group and
// updates the running statistics (averaged over the groups, unbiased
// variance, PyTorch's momentum convention).
func (b *Backend) BatchNormTrain(s device.BNShape, x, gamma, beta, y, mean, invStd, runMean, runVar device.Buffer, momentum, eps float32) {
	b.bnTrain("BatchNormTrain", false, s, x, gamma, beta, nil, y, mean, invStd, runMean, runVar, momentum, eps)
}

// BatchNormReLUTrain is BatchNormTrain then ReLU(y) in the same pass.
func (b *Backend) BatchNormReLUTrain(s device.BNShape, x, gamma, beta, y, mean, invStd, runMean, runVar device.Buffer, momentum, eps float32) {
	b.bnTrain("BatchNormReLUTrain", true, s, x, gamma, beta, nil, y, mean, invStd, runMean, runVar, momentum, eps)
}

// BatchNormAddReLUTrain is BatchNormTrain then y + r and ReLU in the same
// pass.
func (b *Backend) BatchNormAddReLUTrain(s device.BNShape, x, gamma, beta, r, y, mean, invStd, runMean, runVar device.Buffer, momentum, eps float32) {
	if b.bnCheck("BatchNormAddReLUTrain", s, true, r) {
		b.bnTrain("BatchNormAddReLUTrain", true, s, x, gamma, beta, r, y, mean, invStd, runMean, runVar, momentum, eps)
	}
}

// bnTrain runs the training forward, with r (may be nil) added before the ReLU.
func (b *Backend) bnTrain(k string, relu bool, s device.BNShape, x, gamma, beta, r, y, mean, invStd, runMean, runVar device.Buffer, momentum, eps float32) {
	if !b.bnCheck(k, s, true, x, y) || !b.need(k, "gamma", gamma, s.C) || !b.need(k, "beta", beta, s.C) ||
		!b.need(k, "mean", mean, s.Groups*s.C) || !b.need(k, "invStd", invStd, s.Groups*s.C) ||
		!b.need(k, "runMean", runMean, s.C) || !b.need(k, "runVar", runVar, s.C) {
		return
	}
	b.bnRun(bnTask{op: bnTrain, relu: relu, s: s, x: Float32s(x), r: optional(r), gamma: Float32s(gamma), beta: Float32s(beta), y: Float32s(y),
		mean: Float32s(mean), invStd: Float32s(invStd), runMean: Float32s(runMean), runVar: Float32s(runVar),
		momentum: momentum, eps: eps})
}

// optional is Float32s(x), or nil for a nil x.
func optional(x device.Buffer) []float32 {
	if x == nil {
		return nil
	}
	return Float32s(x)
}

// BatchNormInfer: y = γ·(x − runMean)/√(runVar + eps) + β.
func (b *Backend) BatchNormInfer(s device.BNShape, x, gamma, beta, runMean, runVar, y device.Buffer, eps float32) {
	b.bnInfer("BatchNormInfer", false, s, x, gamma, beta, nil, runMean, runVar, y, eps)
}

// BatchNormReLUInfer is BatchNormInfer then ReLU(y) in the same pass.
func (b *Backend) BatchNormReLUInfer(s device.BNShape, x, gamma, beta, runMean, runVar, y device.Buffer, eps float32) {
	b.bnInfer("BatchNormReLUInfer", true, s, x, gamma, beta, nil, runMean, runVar, y, eps)
}

// BatchNormAddReLUInfer is BatchNormInfer then y + r and ReLU in the same
// pass.
func (b *Backend) BatchNormAddReLUInfer(s device.BNShape, x, gamma, beta, r, runMean, runVar, y device.Buffer, eps float32) {
	if b.bnCheck("BatchNormAddReLUInfer", s, false, r) {
		b.bnInfer("BatchNormAddReLUInfer", true, s, x, gamma, beta, r, runMean, runVar, y, eps)
	}
}

// bnInfer runs the evaluation forward, with r (may be nil) added before the ReLU.
func (b *Backend) bnInfer(k string, relu bool, s device.BNShape, x, gamma, beta, r, runMean, runVar, y device.Buffer, eps float32) {
	if !b.bnCheck(k, s, false, x, y) || !b.need(k, "gamma", gamma, s.C) || !b.need(k, "beta", beta, s.C) ||
		!b.need(k, "runMean", runMean, s.C) || !b.need(k, "runVar", runVar, s.C) {
		return
	}
	b.bnRun(bnTask{op: bnInfer, relu: relu, s: s, x: Float32s(x), r: optional(r), gamma: Float32s(gamma), beta: Float32s(beta), y: Float32s(y),
		runMean: Float32s(runMean), runVar: Float32s(runVar), eps: eps})
}

// BatchNormBackward: dx, dgamma, dbeta given the forward's x, mean, invStd.
func (b *Backend) BatchNormBackward(s device.BNShape, x, dy, gamma, mean, invStd, dx, dgamma, dbeta device.Buffer) {
	const k = "BatchNormBackward"
	if b.bnCheck(k, s, true, x, dy, dx) {
		b.bnBackward(k, bnTask{op: bnBackward, s: s, x: Float32s(x), dy: Float32s(dy)}, gamma, mean, invStd, dx, dgamma, dbeta)
	}
}

// BatchNormReLUBackward is ReLUBackward(y, dy) then BatchNormBackward in
// the same passes, dx holding the ReLU's gradient in between.
func (b *Backend) BatchNormReLUBackward(s device.BNShape, x, y, dy, gamma, mean, invStd, dx, dgamma, dbeta device.Buffer) {
	const k = "BatchNormReLUBackward"
	if b.bnCheck(k, s, true, x, y, dy, dx) {
		b.bnBackward(k, bnTask{op: bnBackward, relu: true, s: s, x: Float32s(x), y: Float32s(y), dy: Float32s(dy)}, gamma, mean, invStd, dx, dgamma, dbeta)
	}
}

// BatchNormAddReLUBackward is ReLUBackward(y, dy) into dr, then
// BatchNormBackward of dr, in the same passes.
func (b *Backend) BatchNormAddReLUBackward(s device.BNShape, x, y, dy, gamma, mean, invStd, dx, dr, dgamma, dbeta device.Buffer) {
	const k = "BatchNormAddReLUBackward"
	if b.bnCheck(k, s, true, x, y, dy, dx, dr) {
		b.bnBackward(k, bnTask{op: bnBackward, relu: true, s: s, x: Float32s(x), y: Float32s(y), dy: Float32s(dy), dr: Float32s(dr)}, gamma, mean, invStd, dx, dgamma, dbeta)
	}
}

// bnBackward checks the backward's other buffers and runs t with them.
func (b *Backend) bnBackward(k string, t bnTask, gamma, mean, invStd, dx, dgamma, dbeta device.Buffer) {
	s := t.s
	if !b.need(k, "gamma", gamma, s.C) || !b.need(k, "mean", mean, s.Groups*s.C) || !b.need(k, "invStd", invStd, s.Groups*s.C) ||
		!b.need(k, "dgamma", dgamma, s.C) || !b.need(k, "dbeta", dbeta, s.C) {
		return
	}
	t.gamma, t.mean, t.invStd = Float32s(gamma), Float32s(mean), Float32s(invStd)
	t.dx, t.dgamma, t.dbeta = Float32s(dx), Float32s(dgamma), Float32s(dbeta)
	b.bnRun(t)
}
