// pool.cu: max pooling (padding counts as −∞) with the first maximum of
// each window in row-major order, as PyTorch and the CPU backend pick it.
#include "common.cuh"

// window_argmax returns the offset (h·W + w) of the first maximal input of
// output (oh, ow)'s window in plane xp, or −1 when the window holds only
// padding, −∞ or NaN; best receives its value (−∞ when none).
__device__ __forceinline__ int window_argmax(const float* xp, int H, int W, int oh, int ow,
                                             int size, int stride, int pad, float* best) {
	float b = -INFINITY;
	int at = -1;
	int h0 = oh * stride - pad, w0 = ow * stride - pad;
	for (int r = 0; r < size; r++) {
		int h = h0 + r;
		if (h < 0 || h >= H) continue;
		for (int q = 0; q < size; q++) {
			int w = w0 + q;
			if (w < 0 || w >= W) continue;
			float v = xp[h * W + w];
			if (v > b) {
				b = v;
				at = h * W + w;
			}
		}
	}
	*best = b;
	return at;
}

// max_pool_f32: y[nc, oh, ow] = max of the window; one thread per output.
extern "C" __global__ void max_pool_f32(const float* x, float* y, i64 nc, i64 H, i64 W, i64 OH, i64 OW,
                                        i64 size, i64 stride, i64 pad) {
	GRID_STRIDE(o, nc * OH * OW) {
		i64 plane = o / (OH * OW);
		int rem = (int)(o % (OH * OW));
		float best;
		window_argmax(x + plane * H * W, (int)H, (int)W, rem / (int)OW, rem % (int)OW,
		              (int)size, (int)stride, (int)pad, &best);
		y[o] = best;
	}
}

// max_pool_backward_f32 gathers instead of scattering (no atomics, a fixed
// summation order): input (h, w) sums dy over the outputs whose window
// contains it and whose first maximum it is. One thread per input.
extern "C" __global__ void max_pool_backward_f32(const float* x, const float* dy, float* dx, i64 nc, i64 H,
                                                 i64 W, i64 OH, i64 OW, i64 size, i64 stride, i64 pad) {
	GRID_STRIDE(i, nc * H * W) {
		i64 plane = i / (H * W);
		int hw = (int)(i % (H * W));
		int h = hw / (int)W, w = hw % (int)W;
		int st = (int)stride, sz = (int)size, pd = (int)pad;
		// Outputs oh with oh·st − pd ≤ h ≤ oh·st − pd + sz − 1.
		int ohLo = h + pd - sz + 1 > 0 ? (h + pd - sz + 1 + st - 1) / st : 0;
		int ohHi = min((h + pd) / st, (int)OH - 1);
		int owLo = w + pd - sz + 1 > 0 ? (w + pd - sz + 1 + st - 1) / st : 0;
		int owHi = min((w + pd) / st, (int)OW - 1);
		const float* xp = x + plane * H * W;
		const float* dyp = dy + plane * OH * OW;
		float g = 0.0f;
		for (int oh = ohLo; oh <= ohHi; oh++) {
			for (int ow = owLo; ow <= owHi; ow++) {
				float best;
				if (window_argmax(xp, (int)H, (int)W, oh, ow, sz, st, pd, &best) == hw) {
					g += dyp[oh * (int)OW + ow];
				}
			}
		}
		dx[i] = g;
	}
}
