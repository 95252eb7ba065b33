// topn.cu: per-row top-n selection, one block of TOPN_THREADS per row.
//
// 1. Radix select (4 passes of 8 bits over an order-preserving uint32 key)
//    finds the key kth of the n-th largest value and how many elements equal
//    to it must be taken (take_eq); every element with a larger key is taken.
// 2. Compaction writes the chosen elements as 64-bit sort keys
//    (~key << 32 | index), taking the take_eq elements equal to kth with the
//    smallest indices (a block-wide ordered scan).
// 3. A bitonic sort of the npow2 ≥ n keys (padded with UINT64_MAX) orders
//    them by value descending, index ascending; the first n indices are the
//    result. The keys live in dynamic shared memory, or in the global scratch
//    (rows × npow2) when they do not fit (use_global ≠ 0).
#include "common.cuh"

#define TOPN_THREADS 1024

// order_key maps a float to a uint32 whose unsigned order is the float
// order; −0 and +0 map to the same key so that they tie.
__device__ __forceinline__ unsigned int order_key(float f) {
	unsigned int b = f == 0.0f ? 0u : __float_as_uint(f);
	return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ unsigned long long sort_key(unsigned int key, i64 idx) {
	return ((unsigned long long)(~key) << 32) | (unsigned long long)(unsigned int)idx;
}

extern "C" __global__ void topn_f32(const float* x, int* idx, unsigned long long* scratch, i64 rows, i64 cols,
                                    i64 n, i64 npow2, i64 use_global) {
	extern __shared__ unsigned long long smem_keys[];
	__shared__ unsigned int hist[256];
	__shared__ unsigned int s_prefix, s_mask, s_remaining, s_gt, s_eq_base;
	__shared__ unsigned int warp_count[32];

	i64 r = blockIdx.x;
	if (r >= rows) return;
	const float* row = x + r * cols;
	unsigned long long* keys = use_global ? scratch + r * npow2 : smem_keys;
	int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;

	// 1. Radix select of the n-th largest key.
	if (tid == 0) {
		s_prefix = 0;
		s_mask = 0;
		s_remaining = (unsigned int)n;
		s_gt = 0;
		s_eq_base = 0;
	}
	for (int shift = 24; shift >= 0; shift -= 8) {
		for (int b = tid; b < 256; b += blockDim.x) hist[b] = 0;
		__syncthreads();
		unsigned int prefix = s_prefix, mask = s_mask;
		for (i64 j = tid; j < cols; j += blockDim.x) {
			unsigned int k = order_key(row[j]);
			if ((k & mask) == prefix) atomicAdd(&hist[(k >> shift) & 255u], 1u);
		}
		__syncthreads();
		if (tid == 0) {
			unsigned int rem = s_remaining;
			for (int b = 255; b >= 0; b--) {
				if (hist[b] >= rem) {
					s_prefix = prefix | ((unsigned int)b << shift);
					s_mask = mask | (255u << shift);
					s_remaining = rem;
					break;
				}
				rem -= hist[b];
			}
		}
		__syncthreads();
	}
	unsigned int kth = s_prefix, take_eq = s_remaining;
	unsigned int n_gt = (unsigned int)n - take_eq;

	// 2. Compaction, chunk by chunk in index order.
	for (i64 base = 0; base < cols; base += blockDim.x) {
		i64 j = base + tid;
		unsigned int k = j < cols ? order_key(row[j]) : 0u;
		bool gt = j < cols && k > kth;
		bool eq = j < cols && k == kth;
		if (gt) keys[atomicAdd(&s_gt, 1u)] = sort_key(k, j);
		unsigned int ballot = __ballot_sync(FULL_MASK, eq);
		if (lane == 0) warp_count[w] = __popc(ballot);
		__syncthreads();
		unsigned int before = 0, total = 0;
		int nw = blockDim.x >> 5;
		for (int v = 0; v < nw; v++) {
			unsigned int cnt = warp_count[v];
			if (v < w) before += cnt;
			total += cnt;
		}
		if (eq) {
			unsigned int rank = s_eq_base + before + __popc(ballot & ((1u << lane) - 1u));
			if (rank < take_eq) keys[n_gt + rank] = sort_key(k, j);
		}
		__syncthreads();
		if (tid == 0) s_eq_base += total;
		__syncthreads();
	}
	for (i64 t = n + tid; t < npow2; t += blockDim.x) keys[t] = ~0ull;
	__syncthreads();

	// 3. Bitonic sort, ascending.
	for (i64 size = 2; size <= npow2; size <<= 1) {
		for (i64 stride = size >> 1; stride > 0; stride >>= 1) {
			for (i64 t = tid; t < npow2; t += blockDim.x) {
				i64 u = t ^ stride;
				if (u > t) {
					unsigned long long a = keys[t], b = keys[u];
					bool up = (t & size) == 0;
					if ((a > b) == up) {
						keys[t] = b;
						keys[u] = a;
					}
				}
			}
			__syncthreads();
		}
	}
	for (i64 t = tid; t < n; t += blockDim.x) idx[r * n + t] = (int)(unsigned int)(keys[t] & 0xffffffffull);
}
