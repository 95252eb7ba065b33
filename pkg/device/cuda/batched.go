//go:build gpu

package cuda

/*
// NVIDIA's toolkit layout (Dockerfile.cuda's image), as in gorgonia.org/cu's
// flags; Debian's headers are in /usr/include.
#cgo CFLAGS: -I/usr/local/cuda/include
#cgo LDFLAGS: -lcublas
#include <stdint.h>
#include <cublas_v2.h>

// sgemm_strided_batched takes the device addresses as integers: they are
// not Go pointers, and Go code may not turn a uintptr into a pointer.
static cublasStatus_t sgemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
		int m, int n, int k, float alpha, uintptr_t a, int lda, long long sa, uintptr_t b, int ldb,
		long long sb, float beta, uintptr_t c, int ldc, long long sc, int count) {
	return cublasSgemmStridedBatched(h, ta, tb, m, n, k, &alpha, (const float*)a, lda, sa,
		(const float*)b, ldb, sb, &beta, (float*)c, ldc, sc, count);
}
*/
import "C"

import "fmt"

// batchedBLAS is a second cuBLAS handle, created through cgo on the
// worker's thread, for cublasSgemmStridedBatched, which gorgonia.org/cu/blas
// does not wrap. It runs on the default stream like the first handle, so
// its GEMMs are ordered with every other call.
type batchedBLAS struct {
	h C.cublasHandle_t
}

func newBatchedBLAS() (*batchedBLAS, error) {
	var h C.cublasHandle_t
	if st := C.cublasCreate(&h); st != C.CUBLAS_STATUS_SUCCESS {
		return nil, fmt.Errorf("cublasCreate: status %d", int(st))
	}
	return &batchedBLAS{h: h}, nil
}

func (bb *batchedBLAS) close() error {
	if st := C.cublasDestroy(bb.h); st != C.CUBLAS_STATUS_SUCCESS {
		return fmt.Errorf("cuda: cublasDestroy: status %d", int(st))
	}
	return nil
}

// setTF32 switches the handle's single-precision GEMMs — every convolution —
// between plain fp32 and TensorFloat-32 tensor cores (inputs rounded to a
// 10-bit mantissa, fp32 accumulation).
func (bb *batchedBLAS) setTF32(on bool) error {
	mode := C.cublasMath_t(C.CUBLAS_DEFAULT_MATH)
	if on {
		mode = C.CUBLAS_TF32_TENSOR_OP_MATH
	}
	if st := C.cublasSetMathMode(bb.h, mode); st != C.CUBLAS_STATUS_SUCCESS {
		return fmt.Errorf("cuda: cublasSetMathMode(TF32 %v): status %d", on, int(st))
	}
	return nil
}

func cublasOp(t bool) C.cublasOperation_t {
	if t {
		return C.CUBLAS_OP_T
	}
	return C.CUBLAS_OP_N
}

// run queues g (see gemmBatch.colMajor).
func (bb *batchedBLAS) run(g gemmBatch) error {
	if g.m == 0 || g.n == 0 || g.count == 0 {
		return nil
	}
	c := g.colMajor()
	st := C.sgemm_strided_batched(bb.h, cublasOp(c.transA), cublasOp(c.transB),
		C.int(c.m), C.int(c.n), C.int(c.k), C.float(c.alpha),
		C.uintptr_t(c.a), C.int(c.lda), C.longlong(c.strideA),
		C.uintptr_t(c.b), C.int(c.ldb), C.longlong(c.strideB), C.float(c.beta),
		C.uintptr_t(c.c), C.int(c.ldc), C.longlong(c.strideC), C.int(c.count))
	if st != C.CUBLAS_STATUS_SUCCESS {
		return fmt.Errorf("cuda: cublasSgemmStridedBatched(m %d, n %d, k %d, count %d): status %d", g.m, g.n, g.k, g.count, int(st))
	}
	return nil
}
