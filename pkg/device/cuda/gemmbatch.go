package cuda

import "github.com/mochi-ssl/mochi/pkg/device"

// gemmBatch is one strided-batched GEMM in row-major terms: for i < count,
// c_i = alpha·op(a_i)·op(b_i) + beta·c_i with op(a_i) m×k and op(b_i) k×n,
// where a_i starts strideA floats after a_{i−1} (b, c alike) and lda, ldb,
// ldc are the row lengths as stored. Addresses are device bytes.
type gemmBatch struct {
	transA, transB            bool
	m, n, k                   int
	alpha, beta               float32
	a, b, c                   uintptr
	lda, ldb, ldc             int
	strideA, strideB, strideC int
	count                     int
}

// colMajor returns the column-major call cuBLAS runs for g: a row-major
// m×n matrix is the column-major n×m transpose, so it computes
// c_iᵀ = op(b_i)ᵀ·op(a_i)ᵀ, the operands and m, n swapped (as Backend.gemm
// does for one matrix).
func (g gemmBatch) colMajor() gemmBatch {
	return gemmBatch{transA: g.transB, transB: g.transA, m: g.n, n: g.m, k: g.k, alpha: g.alpha, beta: g.beta,
		a: g.b, b: g.a, c: g.c, lda: g.ldb, ldb: g.lda, ldc: g.ldc,
		strideA: g.strideB, strideB: g.strideA, strideC: g.strideC, count: g.count}
}

// singleGemm is the one GEMM c = alpha·op(a)·op(b) + beta·c of row-major
// matrices stored without padding (op(a) m×k, op(b) k×n), as a batch of
// one: the convolutions run every GEMM on their own handle, whose math mode
// SetConvTF32 sets, and none on Backend.gemm's.
func singleGemm(transA, transB bool, m, n, k int, alpha float32, a, b uintptr, beta float32, c uintptr) gemmBatch {
	lda, ldb := k, n // a stored m×k, b stored k×n
	if transA {
		lda = m // a stored k×m
	}
	if transB {
		ldb = k // b stored n×k
	}
	return gemmBatch{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: a, b: b, c: c, lda: lda, ldb: ldb, ldc: n, count: 1}
}

// The convolution GEMMs (ops.go), in row-major terms; P = OH·OW, CRS =
// C·R·S, cnt the images of the chunk, col the chunk's im2col matrix
// (CRS × cnt·P).

// pointwiseForward: y_n (K×P) = w (K×C) · x_n (C×P) for all N images.
func pointwiseForward(s device.ConvShape, w, x, y uintptr) gemmBatch {
	p := s.OutH() * s.OutW()
	return gemmBatch{m: s.K, n: p, k: s.C, alpha: 1, a: w, lda: s.C,
		b: x, ldb: p, strideB: s.C * p, c: y, ldc: p, strideC: s.K * p, count: s.N}
}

// pointwiseBackwardData: dx_n (C×P) = wᵀ (C×K) · dy_n (K×P) for all N images.
func pointwiseBackwardData(s device.ConvShape, w, dy, dx uintptr) gemmBatch {
	p := s.OutH() * s.OutW()
	return gemmBatch{transA: true, m: s.C, n: p, k: s.K, alpha: 1, a: w, lda: s.C,
		b: dy, ldb: p, strideB: s.K * p, c: dx, ldc: p, strideC: s.C * p, count: s.N}
}

// chunkForward: y_n (K×P) = w (K×CRS) · col[:, n·P:(n+1)·P] for the cnt
// images whose output starts at y.
func chunkForward(s device.ConvShape, cnt int, w, col, y uintptr) gemmBatch {
	p, crs := s.OutH()*s.OutW(), s.C*s.R*s.S
	return gemmBatch{m: s.K, n: p, k: crs, alpha: 1, a: w, lda: crs,
		b: col, ldb: cnt * p, strideB: p, c: y, ldc: p, strideC: s.K * p, count: cnt}
}

// chunkBackwardData: dcol[:, n·P:(n+1)·P] = wᵀ (CRS×K) · dy_n (K×P) for the
// cnt images whose gradient starts at dy.
func chunkBackwardData(s device.ConvShape, cnt int, w, dy, dcol uintptr) gemmBatch {
	p, crs := s.OutH()*s.OutW(), s.C*s.R*s.S
	return gemmBatch{transA: true, m: crs, n: p, k: s.K, alpha: 1, a: w, lda: crs,
		b: dy, ldb: p, strideB: s.K * p, c: dcol, ldc: cnt * p, strideC: p, count: cnt}
}

// filterSlices is the split-K backward-filter GEMM over inner = cnt·P
// columns cut into slices of l = inner/slices: part_i (K×CRS) =
// dyT[:, i·l:(i+1)·l] · col[:, i·l:(i+1)·l]ᵀ, with dyT K × inner. When
// inner is not a multiple of slices, rest adds the last inner − slices·l
// columns into part_0 (ok is false when there are none).
func filterSlices(s device.ConvShape, inner, slices int, dyT, col, part uintptr) (all, rest gemmBatch, ok bool) {
	crs, l := s.C*s.R*s.S, inner/slices
	all = gemmBatch{transB: true, m: s.K, n: crs, k: l, alpha: 1, a: dyT, lda: inner, strideA: l,
		b: col, ldb: inner, strideB: l, c: part, ldc: crs, strideC: s.K * crs, count: slices}
	r := inner - slices*l
	rest = gemmBatch{transB: true, m: s.K, n: crs, k: r, alpha: 1, beta: 1, a: off(dyT, slices*l), lda: inner,
		b: off(col, slices*l), ldb: inner, c: part, ldc: crs, count: 1}
	return all, rest, r > 0
}

func off(p uintptr, elems int) uintptr { return p + uintptr(elems*elemSize) }
