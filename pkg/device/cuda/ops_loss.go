//go:build gpu

package cuda

import "github.com/mochi-ssl/mochi/pkg/device"

// The launchers of the MoCo/MoCHi loss kernels (kernels/topn.cu, mix.cu,
// logits.cu): top-N selection, the synthetic negatives' logits and their
// gradient, and the logit-matrix helpers of pkg/hardneg's InfoNCE ops.

// TopN: idx lists each row's n largest values' indices (ties to the lower
// index) in ascending index order.
func (b *Backend) TopN(rows, cols, n int, x, idx device.Buffer) {
	b.do(func() {
		c := b.check("TopN")
		c.require(n >= 1 && n <= cols && cols < 1<<31, "n = %d, cols = %d: want 1 ≤ n ≤ cols < 2³¹", n, cols)
		px, pi := c.f32("x", x, rows*cols), c.i32("idx", idx, rows*n)
		if b.ok(c) {
			b.launch(kTopN, blockRows(rows, topNBlock), ptrArg(px), ptrArg(pi), intArg(rows), intArg(cols), intArg(n))
		}
	})
}

// mixBuffers checks MixLogits' shared arguments and returns their addresses
// in kernel order: q, queue, top, draw.
func mixBuffers(c *argCheck, s device.MixShape, q, queue, top, draw device.Buffer) []kernelArg {
	if err := validMix(s); err != nil {
		c.fail("%v", err)
	}
	return []kernelArg{
		ptrArg(c.f32("q", q, s.B*s.D)), ptrArg(c.f32("queue", queue, s.K*s.D)),
		ptrArg(c.i32("top", top, s.B*s.N)), ptrArg(c.f32("draw", draw, s.B*s.DrawCols())),
	}
}

func mixShapeArgs(s device.MixShape) []kernelArg {
	return []kernelArg{intArg(s.B), intArg(s.D), intArg(s.K), intArg(s.N), intArg(s.S), intArg(s.SPrime)}
}

// MixLogits writes the MoCHi logits out[b,t] = q_b·h_t. The kernel builds
// each u_t in D dimensions (as cheap as the closed form on a GPU), so sim
// is checked but not read.
func (b *Backend) MixLogits(s device.MixShape, q, queue, sim, top, draw, out device.Buffer) {
	b.do(func() {
		c := b.check("MixLogits")
		args := mixBuffers(c, s, q, queue, top, draw)
		c.f32("sim", sim, s.B*s.K)
		t := s.S + s.SPrime
		po := c.f32("out", out, s.B*t)
		if b.ok(c) {
			args = append(append(args, ptrArg(po)), mixShapeArgs(s)...)
			b.launch(kMixLogits, warpRows(s.B*t), args...)
		}
	})
}

// MixLogitsBackward: dq = Σ_t dout[b,t]·h_t (+ the path through q in h′).
func (b *Backend) MixLogitsBackward(s device.MixShape, q, queue, top, draw, dout device.Buffer, gradThroughHPrime bool, dq device.Buffer) {
	b.do(func() {
		c := b.check("MixLogitsBackward")
		args := mixBuffers(c, s, q, queue, top, draw)
		pdo, pdq := c.f32("dout", dout, s.B*(s.S+s.SPrime)), c.f32("dq", dq, s.B*s.D)
		lc, err := mixBackwardLaunch(s.B, s.D)
		if err != nil {
			c.fail("%v", err)
		}
		if b.ok(c) {
			args = append(append(args, ptrArg(pdo), ptrArg(pdq)), mixShapeArgs(s)...)
			b.launch(kMixLogitsBackward, lc, append(args, boolArg(gradThroughHPrime))...)
		}
	})
}

// ScaleRows: out[r,c] = g[r]·x[r,c] (out may alias x).
func (b *Backend) ScaleRows(rows, cols int, g, x, out device.Buffer) {
	b.do(func() {
		c := b.check("ScaleRows")
		c.require(rows >= 0 && cols >= 0, "rows = %d, cols = %d", rows, cols)
		pg, px, po := c.f32("g", g, rows), c.f32("x", x, rows*cols), c.f32("out", out, rows*cols)
		if b.ok(c) && cols > 0 {
			b.launch(kScaleRows, elementwise(rows*cols), ptrArg(pg), ptrArg(px), ptrArg(po), intArg(rows), intArg(cols))
		}
	})
}

// CopyCols: dst[r, dstOff+c] = src[r, srcOff+c] for c < n.
func (b *Backend) CopyCols(rows, srcCols, srcOff, dstCols, dstOff, n int, src, dst device.Buffer) {
	b.do(func() {
		c := b.check("CopyCols")
		c.require(rows >= 0 && n >= 0 && srcOff >= 0 && dstOff >= 0 && srcOff+n <= srcCols && dstOff+n <= dstCols,
			"columns [%d, %d) of %d to [%d, %d) of %d do not fit", srcOff, srcOff+n, srcCols, dstOff, dstOff+n, dstCols)
		ps, pd := c.f32("src", src, rows*srcCols), c.f32("dst", dst, rows*dstCols)
		if b.ok(c) && n > 0 {
			b.launch(kCopyCols, elementwise(rows*n), ptrArg(ps), ptrArg(pd), intArg(rows), intArg(srcCols), intArg(srcOff),
				intArg(dstCols), intArg(dstOff), intArg(n))
		}
	})
}

// MaskEqual: x[r,c] = value where rowLabels[r] ≥ 0 and rowLabels[r] == colLabels[c].
func (b *Backend) MaskEqual(rows, cols int, rowLabels, colLabels, x device.Buffer, value float32) {
	b.do(func() {
		c := b.check("MaskEqual")
		c.require(rows >= 0 && cols >= 0, "rows = %d, cols = %d", rows, cols)
		pr, pc, px := c.f32("rowLabels", rowLabels, rows), c.f32("colLabels", colLabels, cols), c.f32("x", x, rows*cols)
		if b.ok(c) && cols > 0 {
			b.launch(kMaskEqual, elementwise(rows*cols), ptrArg(pr), ptrArg(pc), ptrArg(px), intArg(rows), intArg(cols),
				floatArg(value))
		}
	})
}
