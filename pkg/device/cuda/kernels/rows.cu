// rows.cu: reductions over whole buffers, rows and columns.
// Warp-per-row kernels run 8 warps per block of 256 threads; the Go side
// (launch.go, warpRows) sizes the grid as ceil(rows/8).
#include "common.cuh"

// sum_f32: out[0] = Σ x, one block (blockDim a multiple of 32), accumulated
// in double so that the result does not depend on the summation order.
extern "C" __global__ void sum_f32(const float* x, float* out, i64 n) {
	double s = 0.0;
	for (i64 i = threadIdx.x; i < n; i += blockDim.x) s += (double)x[i];
	s = block_sum_d(s);
	if (threadIdx.x == 0) out[0] = (float)s;
}

// sum_rows_f32: out[c] = Σ_r x[r,c] for x rows×cols. Block 32×8: threadIdx.x
// picks the column (coalesced reads), threadIdx.y strides the rows.
extern "C" __global__ void sum_rows_f32(const float* x, float* out, i64 rows, i64 cols) {
	__shared__ double part[8][33];
	i64 c = (i64)blockIdx.x * 32 + threadIdx.x;
	double s = 0.0;
	if (c < cols) {
		for (i64 r = threadIdx.y; r < rows; r += 8) s += (double)x[r * cols + c];
	}
	part[threadIdx.y][threadIdx.x] = s;
	__syncthreads();
	if (threadIdx.y == 0 && c < cols) {
		double t = 0.0;
		for (int k = 0; k < 8; k++) t += part[k][threadIdx.x];
		out[c] = (float)t;
	}
}

// warp_row is the row handled by the calling warp (8 warps per block).
__device__ __forceinline__ i64 warp_row() {
	return (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
}

// row_dot_f32: out[r] = Σ_c a[r,c]·b[r,c], one warp per row.
extern "C" __global__ void row_dot_f32(const float* a, const float* b, float* out, i64 rows, i64 cols) {
	i64 r = warp_row();
	if (r >= rows) return;
	int lane = threadIdx.x & 31;
	const float* ar = a + r * cols;
	const float* br = b + r * cols;
	float s = 0.0f;
	for (i64 c = lane; c < cols; c += 32) s += ar[c] * br[c];
	s = warp_sum(s);
	if (lane == 0) out[r] = s;
}

// l2_normalize_f32: y[r] = x[r]/max(‖x[r]‖, 1e-12), one warp per row.
extern "C" __global__ void l2_normalize_f32(const float* x, float* y, i64 rows, i64 cols) {
	i64 r = warp_row();
	if (r >= rows) return;
	int lane = threadIdx.x & 31;
	const float* xr = x + r * cols;
	float* yr = y + r * cols;
	float s = 0.0f;
	for (i64 c = lane; c < cols; c += 32) s += xr[c] * xr[c];
	s = warp_sum(s);
	float inv = 1.0f / fmaxf(sqrtf(s), 1e-12f);
	for (i64 c = lane; c < cols; c += 32) yr[c] = xr[c] * inv;
}

// l2_normalize_backward_f32: dx = (dy − y·(y·dy))/max(‖x‖, 1e-12), one
// warp per row.
extern "C" __global__ void l2_normalize_backward_f32(const float* x, const float* y, const float* dy,
                                                     float* dx, i64 rows, i64 cols) {
	i64 r = warp_row();
	if (r >= rows) return;
	int lane = threadIdx.x & 31;
	const float* xr = x + r * cols;
	const float* yr = y + r * cols;
	const float* dyr = dy + r * cols;
	float* dxr = dx + r * cols;
	float xx = 0.0f, yd = 0.0f;
	for (i64 c = lane; c < cols; c += 32) {
		xx += xr[c] * xr[c];
		yd += yr[c] * dyr[c];
	}
	xx = warp_sum(xx);
	yd = warp_sum(yd);
	float inv = 1.0f / fmaxf(sqrtf(xx), 1e-12f);
	for (i64 c = lane; c < cols; c += 32) dxr[c] = (dyr[c] - yr[c] * yd) * inv;
}

// global_avg_pool_f32: y[nc] = mean of x[nc, 0:hw], one warp per (n, c).
extern "C" __global__ void global_avg_pool_f32(const float* x, float* y, i64 nc, i64 hw) {
	i64 r = warp_row();
	if (r >= nc) return;
	int lane = threadIdx.x & 31;
	const float* xr = x + r * hw;
	float s = 0.0f;
	for (i64 i = lane; i < hw; i += 32) s += xr[i];
	s = warp_sum(s);
	if (lane == 0) y[r] = s / (float)hw;
}
