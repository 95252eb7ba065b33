// common.cuh: helpers shared by mochi's CUDA kernels.
//
// Every kernel parameter is 8 bytes wide (pointers, long long, double):
// gorgonia.org/cu's Function.Launch copies 8 bytes for every argument
// (docs/GPU.md, "CUDA build facts"), so a float or int parameter would be
// misread. Scalars
// arrive as double or long long and are narrowed inside the kernel.
//
// Kernels are extern "C" so that their PTX entry names are the plain names
// the Go side looks up (pkg/device/cuda/kernels.go).
#pragma once

typedef long long i64;

// GRID_STRIDE loops i over [0, n) with every thread of the grid.
#define GRID_STRIDE(i, n)                                                   \
	for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (i64)(n); \
	     i += (i64)blockDim.x * gridDim.x)

#define FULL_MASK 0xffffffffu

__device__ __forceinline__ float warp_sum(float v) {
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
	return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
	return v;
}

__device__ __forceinline__ float warp_max(float v) {
	for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
	return v;
}

// block_sum_d returns the sum of v over the block to every thread.
// blockDim.x must be a multiple of 32 (at most 1024). Every thread of the
// block must call it (it synchronises).
__device__ __forceinline__ double block_sum_d(double v) {
	__shared__ double part[32];
	__shared__ double total;
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
	v = warp_sum_d(v);
	__syncthreads();  // a previous call may still be reading part/total
	if (lane == 0) part[w] = v;
	__syncthreads();
	if (w == 0) {
		int nw = blockDim.x >> 5;
		double s = lane < nw ? part[lane] : 0.0;
		s = warp_sum_d(s);
		if (lane == 0) total = s;
	}
	__syncthreads();
	return total;
}

// block_max returns the maximum of v over the block to every thread
// (same rules as block_sum_d).
__device__ __forceinline__ float block_max(float v) {
	__shared__ float part[32];
	__shared__ float total;
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
	v = warp_max(v);
	__syncthreads();
	if (lane == 0) part[w] = v;
	__syncthreads();
	if (w == 0) {
		int nw = blockDim.x >> 5;
		float s = lane < nw ? part[lane] : -INFINITY;
		s = warp_max(s);
		if (lane == 0) total = s;
	}
	__syncthreads();
	return total;
}
