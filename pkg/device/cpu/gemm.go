package cpu

import (
	"gonum.org/v1/gonum/blas"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// gemmGrain is the fewest multiply-adds worth a part of their own.
const gemmGrain = 1 << 16

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// gemmTask computes a band of c = alpha·op(a)·op(b) + beta·c: rows of c when
// byRows, else columns.
type gemmTask struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	byRows         bool
}

func (t *gemmTask) run(_, lo, hi int) {
	lda, ldb := t.k, t.n // row strides of a and b as stored
	if t.transA {
		lda = t.m
	}
	if t.transB {
		ldb = t.k
	}
	a, b, c := t.a, t.b, t.c
	m, n := t.m, t.n
	if t.byRows { // rows lo..hi of op(a) and of c
		if t.transA {
			a = a[lo:]
		} else {
			a = a[lo*lda:]
		}
		c, m = c[lo*n:], hi-lo
	} else { // columns lo..hi of op(b) and of c
		if t.transB {
			b = b[lo*ldb:]
		} else {
			b = b[lo:]
		}
		c, n = c[lo:], hi-lo
	}
	blas32.Sgemm(trans(t.transA), trans(t.transB), m, n, t.k, t.alpha, a, lda, b, ldb, t.beta, c, t.n)
}

// Gemm: c = alpha·op(a)·op(b) + beta·c, split over the rows or columns of c
// (whichever is longer) across the workers, each running a single-threaded
// BLAS call. beta = 0 overwrites c without reading it (BLAS convention).
func (b *Backend) Gemm(transA, transB bool, m, n, k int, alpha float32, a, bb device.Buffer, beta float32, c device.Buffer) {
	if !b.need("Gemm", "a", a, m*k) || !b.need("Gemm", "b", bb, k*n) || !b.need("Gemm", "c", c, m*n) {
		return
	}
	if m == 0 || n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t := &b.tasks.gemm
	*t = gemmTask{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: Float32s(a)[:m*k], b: Float32s(bb)[:k*n], c: Float32s(c)[:m*n], byRows: m >= n}
	long := n
	if t.byRows {
		long = m
	}
	// Each part should hold gemmGrain multiply-adds and at least 4 rows.
	grain := max(4, gemmGrain/max(1, (m*n*k)/long))
	b.workers.parallel(long, grain, t)
	*t = gemmTask{}
}
