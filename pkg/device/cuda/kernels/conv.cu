// conv.cu: convolution as im2col + cuBLAS SGEMM over a chunk of nb images.
//
// col is (C·R·S) × (nb·P), P = OH·OW, row-major: column j·P + p holds the
// input patch of output pixel p of image j. The GEMM w (K×CRS) · col gives
// K × (nb·P), which kp_to_nkp reorders to the images' N×K×P layout.
#include "common.cuh"

// im2col_f32 fills col from x (pointing at the chunk's first image).
extern "C" __global__ void im2col_f32(const float* x, float* col, i64 nb, i64 C, i64 H, i64 W, i64 R, i64 S,
                                      i64 OH, i64 OW, i64 stride, i64 pad) {
	i64 P = OH * OW, NP = nb * P;
	GRID_STRIDE(i, C * R * S * NP) {
		i64 q = i / NP, jp = i % NP;
		i64 j = jp / P, p = jp % P;
		i64 c = q / (R * S), rs = q % (R * S);
		i64 r = rs / S, s = rs % S;
		i64 h = (p / OW) * stride - pad + r;
		i64 w = (p % OW) * stride - pad + s;
		float v = 0.0f;
		if (h >= 0 && h < H && w >= 0 && w < W) v = x[((j * C + c) * H + h) * W + w];
		col[i] = v;
	}
}

// col2im_f32 is im2col's adjoint: dx[j,c,h,w] (chunk-relative, overwritten)
// = Σ over the (r, s) that map an output pixel onto (h, w) of
// dcol[(c,r,s), j·P + p]. One thread per dx element, no atomics.
extern "C" __global__ void col2im_f32(const float* dcol, float* dx, i64 nb, i64 C, i64 H, i64 W, i64 R, i64 S,
                                      i64 OH, i64 OW, i64 stride, i64 pad) {
	i64 P = OH * OW, NP = nb * P;
	GRID_STRIDE(i, nb * C * H * W) {
		i64 w = i % W, h = (i / W) % H, c = (i / (H * W)) % C, j = i / (C * H * W);
		float g = 0.0f;
		for (i64 r = 0; r < R; r++) {
			i64 th = h + pad - r;  // = oh·stride
			if (th < 0 || th % stride != 0) continue;
			i64 oh = th / stride;
			if (oh >= OH) continue;
			for (i64 s = 0; s < S; s++) {
				i64 tw = w + pad - s;
				if (tw < 0 || tw % stride != 0) continue;
				i64 ow = tw / stride;
				if (ow >= OW) continue;
				g += dcol[((c * R + r) * S + s) * NP + j * P + oh * OW + ow];
			}
		}
		dx[i] = g;
	}
}

// kp_to_nkp_f32: dst[j,k,p] = src[k, j·P + p] (GEMM output to NCHW).
extern "C" __global__ void kp_to_nkp_f32(const float* src, float* dst, i64 K, i64 nb, i64 P) {
	GRID_STRIDE(i, K * nb * P) {
		i64 p = i % P, k = (i / P) % K, j = i / (K * P);
		dst[i] = src[k * nb * P + j * P + p];
	}
}

// nkp_to_kp_f32: dst[k, j·P + p] = src[j,k,p] (NCHW gradient to GEMM layout).
extern "C" __global__ void nkp_to_kp_f32(const float* src, float* dst, i64 K, i64 nb, i64 P) {
	GRID_STRIDE(i, K * nb * P) {
		i64 jp = i % (nb * P), k = i / (nb * P);
		i64 j = jp / P, p = jp % P;
		dst[i] = src[(j * K + k) * P + p];
	}
}
