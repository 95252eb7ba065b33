// conv.cu: convolution as im2col + cuBLAS SGEMM over a chunk of nb images.
//
// col is (C·R·S) × (nb·P), P = OH·OW, row-major: column j·P + p holds the
// input patch of output pixel p of image j. The GEMM w (K×CRS) · col gives
// K × (nb·P), which kp_to_nkp reorders to the images' N×K×P layout (or a
// strided-batched GEMM writes each image's K×P block in place).
//
// Index math is 32-bit unsigned: a 64-bit division is a ~70-instruction
// subroutine on the GPU and made these memory-bound kernels compute-bound.
// The launcher (ops.go, convChunk and validConv) keeps every chunk below
// 2³¹ elements. Each thread decomposes its index once and then loops over
// the filter taps, so consecutive threads touch consecutive addresses.
#include "common.cuh"

typedef unsigned int u32;

// GRID_STRIDE32 loops t over [0, n) (n < 2³¹) with every thread of the grid.
#define GRID_STRIDE32(t, n) \
	for (u32 t = blockIdx.x * blockDim.x + threadIdx.x; t < (u32)(n); t += blockDim.x * gridDim.x)

// im2col_f32 fills col from x (pointing at the chunk's first image): one
// thread per (c, j, p), writing the R·S rows of its column.
extern "C" __global__ void im2col_f32(const float* x, float* col, i64 nb64, i64 C64, i64 H64, i64 W64, i64 R64,
                                      i64 S64, i64 OH64, i64 OW64, i64 stride64, i64 pad64) {
	u32 nb = (u32)nb64, C = (u32)C64, R = (u32)R64, S = (u32)S64, OW = (u32)OW64;
	int H = (int)H64, W = (int)W64, stride = (int)stride64, pad = (int)pad64;
	u32 P = (u32)OH64 * OW, NP = nb * P;
	GRID_STRIDE32(t, C * NP) {
		u32 p = t % P, jc = t / P;
		u32 j = jc % nb, c = jc / nb;
		u32 oh = p / OW, ow = p - oh * OW;
		int h0 = (int)oh * stride - pad, w0 = (int)ow * stride - pad;
		const float* xp = x + ((size_t)j * C + c) * (u32)H * (u32)W;
		float* cp = col + (size_t)c * R * S * NP + j * P + p;
		for (u32 r = 0; r < R; r++) {
			int h = h0 + (int)r;
			bool hin = h >= 0 && h < H;
			for (u32 s = 0; s < S; s++) {
				int w = w0 + (int)s;
				*cp = hin && w >= 0 && w < W ? xp[h * W + w] : 0.0f;
				cp += NP;
			}
		}
	}
}

// col2im_f32 is im2col's adjoint: dx[j,c,h,w] (chunk-relative, overwritten)
// = Σ over the output pixels (oh, ow) whose window covers (h, w) of
// dcol[(c,r,s), j·P + oh·OW + ow] with r = h + pad − oh·stride (s alike).
// One thread per dx element, no atomics; consecutive w read consecutive ow.
extern "C" __global__ void col2im_f32(const float* dcol, float* dx, i64 nb64, i64 C64, i64 H64, i64 W64, i64 R64,
                                      i64 S64, i64 OH64, i64 OW64, i64 stride64, i64 pad64) {
	u32 nb = (u32)nb64, C = (u32)C64, H = (u32)H64, W = (u32)W64;
	int R = (int)R64, S = (int)S64, OH = (int)OH64, OW = (int)OW64, stride = (int)stride64, pad = (int)pad64;
	u32 P = (u32)(OH * OW), NP = nb * P;
	GRID_STRIDE32(t, nb * C * H * W) {
		u32 w = t % W, t1 = t / W;
		u32 h = t1 % H, t2 = t1 / H;
		u32 c = t2 % C, j = t2 / C;
		int hp = (int)h + pad, wp = (int)w + pad;
		// oh·stride ∈ [hp − R + 1, hp] and 0 ≤ oh < OH.
		int ohLo = hp - R + 1 > 0 ? (hp - R + stride) / stride : 0, ohHi = min(hp / stride, OH - 1);
		int owLo = wp - S + 1 > 0 ? (wp - S + stride) / stride : 0, owHi = min(wp / stride, OW - 1);
		const float* dp = dcol + (size_t)c * (u32)(R * S) * NP + j * P;
		float g = 0.0f;
		for (int oh = ohLo; oh <= ohHi; oh++) {
			int r = hp - oh * stride;
			for (int ow = owLo; ow <= owHi; ow++) {
				int s = wp - ow * stride;
				g += dp[(size_t)(r * S + s) * NP + (u32)(oh * OW + ow)];
			}
		}
		dx[t] = g;
	}
}

// kp_to_nkp_f32: dst[j,k,p] = src[k, j·P + p] (GEMM output to NCHW).
extern "C" __global__ void kp_to_nkp_f32(const float* src, float* dst, i64 K64, i64 nb64, i64 P64) {
	u32 K = (u32)K64, nb = (u32)nb64, P = (u32)P64;
	GRID_STRIDE32(t, K * nb * P) {
		u32 p = t % P, jk = t / P;
		u32 k = jk % K, j = jk / K;
		dst[t] = src[(k * nb + j) * P + p];
	}
}

// nkp_to_kp_f32: dst[k, j·P + p] = src[j,k,p] (NCHW gradient to GEMM layout).
extern "C" __global__ void nkp_to_kp_f32(const float* src, float* dst, i64 K64, i64 nb64, i64 P64) {
	u32 K = (u32)K64, nb = (u32)nb64, P = (u32)P64;
	GRID_STRIDE32(t, K * nb * P) {
		u32 p = t % P, kj = t / P;
		u32 j = kj % nb, k = kj / nb;
		dst[t] = src[(j * K + k) * P + p];
	}
}

// sum_slices_f32 finishes a split-K GEMM: dst[i] = Σ_s part[s·n + i] over
// the slices s < S, plus dst[i] when accumulate is set.
extern "C" __global__ void sum_slices_f32(const float* part, float* dst, i64 n, i64 S, i64 accumulate) {
	GRID_STRIDE(i, n) {
		float v = accumulate ? dst[i] : 0.0f;
		for (i64 s = 0; s < S; s++) v += part[s * n + i];
		dst[i] = v;
	}
}
