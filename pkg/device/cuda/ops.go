//go:build gpu

package cuda

import (
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gorgonia.org/cu"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// Each method checks its buffers and shapes on the worker (a failed check
// becomes the sticky error and launches nothing), then queues its kernels.
// Offsets into device memory are in bytes: elemSize per element.

// Copy: dst = src over src.Len() elements.
func (b *Backend) Copy(dst, src device.Buffer) {
	b.do(func() {
		c := b.check("Copy")
		n := length(src)
		var dt device.DType
		if bb, ok := src.(*buffer); ok && bb != nil {
			dt = bb.dt
		}
		ps, pd := c.buf("src", src, dt, n), c.buf("dst", dst, dt, n)
		if b.ok(c) && n > 0 {
			b.record(cu.MemcpyDtoD(cu.DevicePtr(pd), cu.DevicePtr(ps), int64(n)*elemSize))
		}
	})
}

// Fill: x[i] = v.
func (b *Backend) Fill(x device.Buffer, v float32) {
	b.do(func() {
		c := b.check("Fill")
		n := length(x)
		px := c.f32("x", x, n)
		if b.ok(c) {
			b.launch(kFill, elementwise(n), ptrArg(px), intArg(n), floatArg(v))
		}
	})
}

// Scale: x = alpha·x.
func (b *Backend) Scale(alpha float32, x device.Buffer) {
	b.do(func() {
		c := b.check("Scale")
		n := length(x)
		px := c.f32("x", x, n)
		if b.ok(c) {
			b.launch(kScale, elementwise(n), ptrArg(px), intArg(n), floatArg(alpha))
		}
	})
}

// Axpy: y = alpha·x + y over x.Len() elements.
func (b *Backend) Axpy(alpha float32, x, y device.Buffer) {
	b.do(func() {
		c := b.check("Axpy")
		n := length(x)
		px, py := c.f32("x", x, n), c.f32("y", y, n)
		if b.ok(c) {
			b.launch(kAxpy, elementwise(n), ptrArg(px), ptrArg(py), intArg(n), floatArg(alpha))
		}
	})
}

// Add: out = a + b over out.Len() elements.
func (b *Backend) Add(x, y, out device.Buffer) {
	b.do(func() {
		c := b.check("Add")
		n := length(out)
		px, py, po := c.f32("a", x, n), c.f32("b", y, n), c.f32("out", out, n)
		if b.ok(c) {
			b.launch(kAdd, elementwise(n), ptrArg(px), ptrArg(py), ptrArg(po), intArg(n))
		}
	})
}

// Sum: out[0] = Σ x.
func (b *Backend) Sum(x, out device.Buffer) {
	b.do(func() {
		c := b.check("Sum")
		n := length(x)
		px, po := c.f32("x", x, n), c.f32("out", out, 1)
		if b.ok(c) {
			b.launch(kSum, blockRows(1, sumBlock), ptrArg(px), ptrArg(po), intArg(n))
		}
	})
}

// devFloats is the []float32 cu/blas takes, over device memory: cuBLAS
// only passes &s[0] on as a device pointer; Go never dereferences it.
func devFloats(ptr uintptr, n int) []float32 {
	return unsafe.Slice((*float32)(*(*unsafe.Pointer)(unsafe.Pointer(&ptr))), max(n, 1))
}

func transpose(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// gemm is c = alpha·op(a)·op(b) + beta·c for row-major matrices on device
// memory. cuBLAS is column-major, and a row-major m×n matrix is the
// column-major n×m transpose, so it computes cᵀ = op(b)ᵀ·op(a)ᵀ: the
// operands swap places and m and n swap, with the leading dimensions of the
// row-major storage.
func (b *Backend) gemm(transA, transB bool, m, n, k int, alpha float32, pa, pb uintptr, beta float32, pc uintptr) {
	if m == 0 || n == 0 {
		return
	}
	if err := b.blas.Err(); err != nil {
		b.record(err)
		return
	}
	lda := k // a stored m×k
	if transA {
		lda = m // a stored k×m
	}
	ldb := n // b stored k×n
	if transB {
		ldb = k // b stored n×k
	}
	b.blas.Sgemm(transpose(transB), transpose(transA), n, m, k,
		alpha, devFloats(pb, k*n), ldb, devFloats(pa, m*k), lda,
		beta, devFloats(pc, m*n), n)
	b.record(b.blas.Err())
}

// Gemm: c = alpha·op(a)·op(b) + beta·c.
func (b *Backend) Gemm(transA, transB bool, m, n, k int, alpha float32, x, y device.Buffer, beta float32, out device.Buffer) {
	b.do(func() {
		c := b.check("Gemm")
		c.require(m >= 0 && n >= 0 && k >= 0, "negative size m=%d n=%d k=%d", m, n, k)
		pa, pb, pc := c.f32("a", x, m*k), c.f32("b", y, k*n), c.f32("c", out, m*n)
		if b.ok(c) {
			b.gemm(transA, transB, m, n, k, alpha, pa, pb, beta, pc)
		}
	})
}

// AddRowVector: y[r,c] += v[c].
func (b *Backend) AddRowVector(rows, cols int, v, y device.Buffer) {
	b.do(func() {
		c := b.check("AddRowVector")
		pv, py := c.f32("v", v, cols), c.f32("y", y, rows*cols)
		if b.ok(c) {
			b.launch(kAddRowVector, elementwise(rows*cols), ptrArg(pv), ptrArg(py), intArg(rows), intArg(cols))
		}
	})
}

// SumRows: out[c] = Σ_r x[r,c].
func (b *Backend) SumRows(rows, cols int, x, out device.Buffer) {
	b.do(func() {
		c := b.check("SumRows")
		px, po := c.f32("x", x, rows*cols), c.f32("out", out, cols)
		if b.ok(c) {
			b.launch(kSumRows, sumRowsLaunch(cols), ptrArg(px), ptrArg(po), intArg(rows), intArg(cols))
		}
	})
}

// RowDot: out[r] = Σ_c a[r,c]·b[r,c].
func (b *Backend) RowDot(rows, cols int, x, y, out device.Buffer) {
	b.do(func() {
		c := b.check("RowDot")
		pa, pb, po := c.f32("a", x, rows*cols), c.f32("b", y, rows*cols), c.f32("out", out, rows)
		if b.ok(c) {
			b.launch(kRowDot, warpRows(rows), ptrArg(pa), ptrArg(pb), ptrArg(po), intArg(rows), intArg(cols))
		}
	})
}

// convArgs are the shape arguments im2col_f32 and col2im_f32 share after
// their two pointers and the chunk's image count.
func convArgs(s device.ConvShape) []kernelArg {
	return []kernelArg{intArg(s.C), intArg(s.H), intArg(s.W), intArg(s.R), intArg(s.S),
		intArg(s.OutH()), intArg(s.OutW()), intArg(s.Stride), intArg(s.Pad)}
}

// convBuffers checks a convolution's shape and buffers and returns the
// device addresses of its image, filter and output-shaped buffers.
func (b *Backend) convBuffers(op string, s device.ConvShape, img, filter, out device.Buffer, imgName, outName string) (pi, pf, po uintptr, ok bool) {
	c := b.check(op)
	if err := validConv(s); err != nil {
		c.fail("%v", err)
		return 0, 0, 0, b.ok(c)
	}
	pi = c.f32(imgName, img, s.N*s.C*s.H*s.W)
	pf = c.f32("w", filter, s.K*s.C*s.R*s.S)
	po = c.f32(outName, out, s.N*s.K*s.OutH()*s.OutW())
	return pi, pf, po, b.ok(c)
}

// Conv2DForward: y = x ⋆ w by im2col + SGEMM, nb images per pass, col
// (C·R·S × nb·P) from x. When P ≥ batchedMinP one strided-batched GEMM
// writes y_n (K × P) = w · col_n for each image in place; else one GEMM
// gives tmp (K × nb·P) = w · col and y[n,k,p] = tmp[k, n·P+p] reorders it.
// A pointwise (1×1, stride 1, no padding) convolution with P ≥ batchedMinP
// needs no im2col: col_n is x_n itself.
func (b *Backend) Conv2DForward(s device.ConvShape, x, w, y device.Buffer) {
	b.do(func() {
		px, pw, py, ok := b.convBuffers("Conv2DForward", s, x, w, y, "x", "y")
		if !ok {
			return
		}
		p, crs, nb := s.OutH()*s.OutW(), s.C*s.R*s.S, convChunk(s, b.convW)
		batched := p >= batchedMinP
		if batched && pointwise(s) { // y_n (K×P) = w (K×C) · x_n (C×P)
			b.record(b.bblas.run(pointwiseForward(s, pw, px, py)))
			return
		}
		col, tmp, release, ok := b.convWorkspaces("Conv2DForward", s, nb, !batched)
		if !ok {
			return
		}
		defer release()
		for n0 := 0; n0 < s.N; n0 += nb {
			cnt := min(nb, s.N-n0)
			b.launch(kIm2col, elementwise(s.C*cnt*p),
				append([]kernelArg{ptrArg(off(px, n0*s.C*s.H*s.W)), ptrArg(col), intArg(cnt)}, convArgs(s)...)...)
			if batched {
				b.record(b.bblas.run(chunkForward(s, cnt, pw, col, off(py, n0*s.K*p))))
				continue
			}
			b.record(b.bblas.run(singleGemm(false, false, s.K, cnt*p, crs, 1, pw, col, 0, tmp)))
			b.launch(kKPToNKP, elementwise(s.K*cnt*p), ptrArg(tmp), ptrArg(off(py, n0*s.K*p)), intArg(s.K), intArg(cnt), intArg(p))
		}
	})
}

// Conv2DBackwardData: dx = col2im(dcol) per chunk with dcol (C·R·S × nb·P)
// = wᵀ · dy: one strided-batched GEMM reading each image's dy_n (K × P)
// when P ≥ batchedMinP, else one GEMM on dy reordered to K × nb·P. A
// pointwise convolution with P ≥ batchedMinP writes dx_n = wᵀ · dy_n
// directly.
func (b *Backend) Conv2DBackwardData(s device.ConvShape, dy, w, dx device.Buffer) {
	b.do(func() {
		pdx, pw, pdy, ok := b.convBuffers("Conv2DBackwardData", s, dx, w, dy, "dx", "dy")
		if !ok {
			return
		}
		p, crs, nb := s.OutH()*s.OutW(), s.C*s.R*s.S, convChunk(s, b.convW)
		batched := p >= batchedMinP
		if batched && pointwise(s) { // dx_n (C×P) = wᵀ (C×K) · dy_n (K×P)
			b.record(b.bblas.run(pointwiseBackwardData(s, pw, pdy, pdx)))
			return
		}
		dcol, dyT, release, ok := b.convWorkspaces("Conv2DBackwardData", s, nb, !batched)
		if !ok {
			return
		}
		defer release()
		for n0 := 0; n0 < s.N; n0 += nb {
			cnt := min(nb, s.N-n0)
			if batched {
				b.record(b.bblas.run(chunkBackwardData(s, cnt, pw, off(pdy, n0*s.K*p), dcol)))
			} else {
				b.launch(kNKPToKP, elementwise(s.K*cnt*p), ptrArg(off(pdy, n0*s.K*p)), ptrArg(dyT), intArg(s.K), intArg(cnt), intArg(p))
				b.record(b.bblas.run(singleGemm(true, false, crs, cnt*p, s.K, 1, pw, dyT, 0, dcol)))
			}
			b.launch(kCol2im, elementwise(cnt*s.C*s.H*s.W),
				append([]kernelArg{ptrArg(dcol), ptrArg(off(pdx, n0*s.C*s.H*s.W)), intArg(cnt)}, convArgs(s)...)...)
		}
	})
}

// Conv2DBackwardFilter: dw = Σ_chunks dyᵀ · colᵀ (K × C·R·S), with dyᵀ the
// chunk's dy reordered to K × nb·P. The GEMM's output is small next to its
// inner dimension nb·P in the early layers, so it is split (splitK) into
// slices that one strided-batched GEMM computes side by side into a
// workspace, which sum_slices adds up.
func (b *Backend) Conv2DBackwardFilter(s device.ConvShape, x, dy, dw device.Buffer) {
	b.do(func() {
		px, pdw, pdy, ok := b.convBuffers("Conv2DBackwardFilter", s, x, dw, dy, "x", "dy")
		if !ok {
			return
		}
		p, crs, nb := s.OutH()*s.OutW(), s.C*s.R*s.S, convChunk(s, b.convW)
		col, dyT, release, ok := b.convWorkspaces("Conv2DBackwardFilter", s, nb, true)
		if !ok {
			return
		}
		defer release()
		var part uintptr
		if slices := splitK(s.K, crs, nb*p, b.sms); slices > 1 { // the first chunk is the largest
			t, partClass, ok := b.workspace("Conv2DBackwardFilter", slices*s.K*crs)
			if !ok {
				return
			}
			defer b.pool.put(t, partClass)
			part = t
		}
		for n0 := 0; n0 < s.N; n0 += nb {
			cnt := min(nb, s.N-n0)
			inner := cnt * p
			b.launch(kIm2col, elementwise(s.C*inner),
				append([]kernelArg{ptrArg(off(px, n0*s.C*s.H*s.W)), ptrArg(col), intArg(cnt)}, convArgs(s)...)...)
			b.launch(kNKPToKP, elementwise(s.K*inner), ptrArg(off(pdy, n0*s.K*p)), ptrArg(dyT), intArg(s.K), intArg(cnt), intArg(p))
			slices := splitK(s.K, crs, inner, b.sms)
			if slices == 1 {
				beta := float32(1)
				if n0 == 0 {
					beta = 0
				}
				b.record(b.bblas.run(singleGemm(false, true, s.K, crs, inner, 1, dyT, col, beta, pdw)))
				continue
			}
			all, rest, hasRest := filterSlices(s, inner, slices, dyT, col, part)
			b.record(b.bblas.run(all))
			if hasRest {
				b.record(b.bblas.run(rest))
			}
			b.launch(kSumSlices, elementwise(s.K*crs), ptrArg(part), ptrArg(pdw), intArg(s.K*crs), intArg(slices), boolArg(n0 > 0))
		}
	})
}

// convWorkspaces takes the workspaces of a convolution pass over nb images:
// col (C·R·S × nb·P, im2col's columns) and, when reorder, kp (K × nb·P, the
// output or output gradient reordered). release returns them to the pool.
func (b *Backend) convWorkspaces(op string, s device.ConvShape, nb int, reorder bool) (col, kp uintptr, release func(), ok bool) {
	p := s.OutH() * s.OutW()
	col, colClass, ok := b.workspace(op, s.C*s.R*s.S*nb*p)
	if !ok {
		return 0, 0, nil, false
	}
	release = func() { b.pool.put(col, colClass) }
	if reorder {
		var kpClass int64
		if kp, kpClass, ok = b.workspace(op, s.K*nb*p); !ok {
			release()
			return 0, 0, nil, false
		}
		release = func() {
			b.pool.put(kp, kpClass)
			b.pool.put(col, colClass)
		}
	}
	return col, kp, release, true
}

// bnCheck checks a batch-norm shape.
func (b *Backend) bnCheck(op string, s device.BNShape) *argCheck {
	c := b.check(op)
	if err := validBN(s); err != nil {
		c.fail("%v", err)
	}
	return c
}

// BatchNormTrain normalises with per-group batch statistics and updates the
// running statistics (one block per channel).
func (b *Backend) BatchNormTrain(s device.BNShape, x, gamma, beta, y, mean, invStd, runMean, runVar device.Buffer, momentum, eps float32) {
	b.do(func() {
		c := b.bnCheck("BatchNormTrain", s)
		n, gc := s.N*s.C*s.HW, s.Groups*s.C
		px, pg, pb, py := c.f32("x", x, n), c.f32("gamma", gamma, s.C), c.f32("beta", beta, s.C), c.f32("y", y, n)
		pm, pi := c.f32("mean", mean, gc), c.f32("invStd", invStd, gc)
		prm, prv := c.f32("runMean", runMean, s.C), c.f32("runVar", runVar, s.C)
		if b.ok(c) {
			b.launch(kBNTrain, blockRows(s.C, bnBlock), ptrArg(px), ptrArg(pg), ptrArg(pb), ptrArg(py),
				ptrArg(pm), ptrArg(pi), ptrArg(prm), ptrArg(prv),
				intArg(s.N), intArg(s.C), intArg(s.HW), intArg(s.Groups), floatArg(momentum), floatArg(eps))
		}
	})
}

// BatchNormInfer: y = γ·(x − runMean)/√(runVar + eps) + β.
func (b *Backend) BatchNormInfer(s device.BNShape, x, gamma, beta, runMean, runVar, y device.Buffer, eps float32) {
	b.do(func() {
		c := b.bnCheck("BatchNormInfer", s)
		n := s.N * s.C * s.HW
		px, pg, pb := c.f32("x", x, n), c.f32("gamma", gamma, s.C), c.f32("beta", beta, s.C)
		prm, prv, py := c.f32("runMean", runMean, s.C), c.f32("runVar", runVar, s.C), c.f32("y", y, n)
		if b.ok(c) {
			b.launch(kBNInfer, elementwise(n), ptrArg(px), ptrArg(pg), ptrArg(pb), ptrArg(prm), ptrArg(prv), ptrArg(py),
				intArg(n), intArg(s.C), intArg(s.HW), floatArg(eps))
		}
	})
}

// BatchNormBackward: dx, dgamma, dbeta (one block per channel).
func (b *Backend) BatchNormBackward(s device.BNShape, x, dy, gamma, mean, invStd, dx, dgamma, dbeta device.Buffer) {
	b.do(func() {
		c := b.bnCheck("BatchNormBackward", s)
		n, gc := s.N*s.C*s.HW, s.Groups*s.C
		px, pdy, pg := c.f32("x", x, n), c.f32("dy", dy, n), c.f32("gamma", gamma, s.C)
		pm, pi := c.f32("mean", mean, gc), c.f32("invStd", invStd, gc)
		pdx, pdg, pdb := c.f32("dx", dx, n), c.f32("dgamma", dgamma, s.C), c.f32("dbeta", dbeta, s.C)
		if b.ok(c) {
			b.launch(kBNBackward, blockRows(s.C, bnBlock), ptrArg(px), ptrArg(pdy), ptrArg(pg), ptrArg(pm), ptrArg(pi),
				ptrArg(pdx), ptrArg(pdg), ptrArg(pdb), intArg(s.N), intArg(s.C), intArg(s.HW), intArg(s.Groups))
		}
	})
}

// ReLU: y = max(x, 0).
func (b *Backend) ReLU(x, y device.Buffer) {
	b.do(func() {
		c := b.check("ReLU")
		n := length(x)
		px, py := c.f32("x", x, n), c.f32("y", y, n)
		if b.ok(c) {
			b.launch(kReLU, elementwise(n), ptrArg(px), ptrArg(py), intArg(n))
		}
	})
}

// ReLUBackward: dx = dy where y > 0, else 0.
func (b *Backend) ReLUBackward(y, dy, dx device.Buffer) {
	b.do(func() {
		c := b.check("ReLUBackward")
		n := length(y)
		py, pdy, pdx := c.f32("y", y, n), c.f32("dy", dy, n), c.f32("dx", dx, n)
		if b.ok(c) {
			b.launch(kReLUBackward, elementwise(n), ptrArg(py), ptrArg(pdy), ptrArg(pdx), intArg(n))
		}
	})
}

// poolArgs are max_pool's shape arguments after its pointers.
func poolArgs(s device.PoolShape) []kernelArg {
	return []kernelArg{intArg(s.N * s.C), intArg(s.H), intArg(s.W), intArg(s.OutH()), intArg(s.OutW()),
		intArg(s.Size), intArg(s.Stride), intArg(s.Pad)}
}

// MaxPoolForward: y = max over each window.
func (b *Backend) MaxPoolForward(s device.PoolShape, x, y device.Buffer) {
	b.do(func() {
		c := b.check("MaxPoolForward")
		if err := validPool(s); err != nil {
			c.fail("%v", err)
		}
		nin, nout := s.N*s.C*s.H*s.W, s.N*s.C*s.OutH()*s.OutW()
		px, py := c.f32("x", x, nin), c.f32("y", y, nout)
		if b.ok(c) {
			b.launch(kMaxPool, elementwise(nout), append([]kernelArg{ptrArg(px), ptrArg(py)}, poolArgs(s)...)...)
		}
	})
}

// MaxPoolBackward: dx routes each dy to its window's first maximum.
func (b *Backend) MaxPoolBackward(s device.PoolShape, x, dy, dx device.Buffer) {
	b.do(func() {
		c := b.check("MaxPoolBackward")
		if err := validPool(s); err != nil {
			c.fail("%v", err)
		}
		nin, nout := s.N*s.C*s.H*s.W, s.N*s.C*s.OutH()*s.OutW()
		px, pdy, pdx := c.f32("x", x, nin), c.f32("dy", dy, nout), c.f32("dx", dx, nin)
		if b.ok(c) {
			b.launch(kMaxPoolBackward, elementwise(nin), append([]kernelArg{ptrArg(px), ptrArg(pdy), ptrArg(pdx)}, poolArgs(s)...)...)
		}
	})
}

// GlobalAvgPool: y[n,c] = mean over hw of x[n,c,·].
func (b *Backend) GlobalAvgPool(n, ch, hw int, x, y device.Buffer) {
	b.do(func() {
		c := b.check("GlobalAvgPool")
		c.require(hw >= 1, "hw = %d, want ≥ 1", hw)
		px, py := c.f32("x", x, n*ch*hw), c.f32("y", y, n*ch)
		if b.ok(c) {
			b.launch(kGlobalAvgPool, warpRows(n*ch), ptrArg(px), ptrArg(py), intArg(n*ch), intArg(hw))
		}
	})
}

// GlobalAvgPoolBackward: dx[n,c,i] = dy[n,c]/hw.
func (b *Backend) GlobalAvgPoolBackward(n, ch, hw int, dy, dx device.Buffer) {
	b.do(func() {
		c := b.check("GlobalAvgPoolBackward")
		c.require(hw >= 1, "hw = %d, want ≥ 1", hw)
		pdy, pdx := c.f32("dy", dy, n*ch), c.f32("dx", dx, n*ch*hw)
		if b.ok(c) {
			b.launch(kGlobalAvgPoolBackward, elementwise(n*ch*hw), ptrArg(pdy), ptrArg(pdx), intArg(n*ch), intArg(hw))
		}
	})
}

// L2Normalize: y[r] = x[r]/max(‖x[r]‖, 1e-12).
func (b *Backend) L2Normalize(rows, cols int, x, y device.Buffer) {
	b.do(func() {
		c := b.check("L2Normalize")
		px, py := c.f32("x", x, rows*cols), c.f32("y", y, rows*cols)
		if b.ok(c) {
			b.launch(kL2Normalize, warpRows(rows), ptrArg(px), ptrArg(py), intArg(rows), intArg(cols))
		}
	})
}

// L2NormalizeBackward: dx = (dy − y·(y·dy))/max(‖x‖, 1e-12).
func (b *Backend) L2NormalizeBackward(rows, cols int, x, y, dy, dx device.Buffer) {
	b.do(func() {
		c := b.check("L2NormalizeBackward")
		n := rows * cols
		px, py, pdy, pdx := c.f32("x", x, n), c.f32("y", y, n), c.f32("dy", dy, n), c.f32("dx", dx, n)
		if b.ok(c) {
			b.launch(kL2NormalizeBackward, warpRows(rows), ptrArg(px), ptrArg(py), ptrArg(pdy), ptrArg(pdx), intArg(rows), intArg(cols))
		}
	})
}

// SoftmaxCrossEntropy: loss[r] = −log softmax(logits[r]/tau)[label[r]] and prob.
func (b *Backend) SoftmaxCrossEntropy(rows, cols int, tau float32, logits, labels, loss, prob device.Buffer) {
	b.do(func() {
		c := b.check("SoftmaxCrossEntropy")
		c.require(cols >= 1 && tau != 0, "cols = %d, tau = %v: want cols ≥ 1 and tau ≠ 0", cols, tau)
		pl, plab := c.f32("logits", logits, rows*cols), c.i32("labels", labels, rows)
		ploss, pp := c.f32("loss", loss, rows), c.f32("prob", prob, rows*cols)
		if b.ok(c) {
			b.launch(kSoftmaxCE, blockRows(rows, rowBlock), ptrArg(pl), ptrArg(plab), ptrArg(ploss), ptrArg(pp),
				intArg(rows), intArg(cols), floatArg(tau))
		}
	})
}

// SoftmaxCrossEntropyBackward: dlogits = scale·(prob − onehot(label))/tau.
func (b *Backend) SoftmaxCrossEntropyBackward(rows, cols int, tau, scale float32, prob, labels, dlogits device.Buffer) {
	b.do(func() {
		c := b.check("SoftmaxCrossEntropyBackward")
		c.require(tau != 0, "tau = 0")
		pp, plab, pd := c.f32("prob", prob, rows*cols), c.i32("labels", labels, rows), c.f32("dlogits", dlogits, rows*cols)
		if b.ok(c) {
			b.launch(kSoftmaxCEBackward, elementwise(rows*cols), ptrArg(pp), ptrArg(plab), ptrArg(pd),
				intArg(rows), intArg(cols), floatArg(tau), floatArg(scale))
		}
	})
}

// SGDStep updates param and velocity in place (torch.optim.SGD).
func (b *Backend) SGDStep(p device.SGDParams, param, grad, velocity device.Buffer) {
	b.do(func() {
		c := b.check("SGDStep")
		n := length(param)
		pp, pg, pv := c.f32("param", param, n), c.f32("grad", grad, n), c.f32("velocity", velocity, n)
		if b.ok(c) {
			b.launch(kSGDStep, elementwise(n), ptrArg(pp), ptrArg(pg), ptrArg(pv), intArg(n),
				floatArg(p.LR), floatArg(p.Momentum), floatArg(p.WeightDecay), boolArg(p.Nesterov))
		}
	})
}

// MomentumUpdate: dst = m·dst + (1−m)·src.
func (b *Backend) MomentumUpdate(m float32, src, dst device.Buffer) {
	b.do(func() {
		c := b.check("MomentumUpdate")
		n := length(dst)
		ps, pd := c.f32("src", src, n), c.f32("dst", dst, n)
		if b.ok(c) {
			b.launch(kMomentumUpdate, elementwise(n), ptrArg(ps), ptrArg(pd), intArg(n), floatArg(m))
		}
	})
}
