// topn.cu: per-row top-n selection, one block of TOPN_THREADS per row. The
// result lists the n selected indices in ascending index order (the order
// device.Backend.TopN specifies), so no sort by value is needed.
//
// 1. Radix select (4 passes of 8 bits over an order-preserving uint32 key)
//    finds the key kth of the n-th largest value and how many elements equal
//    to it must be taken (take_eq): every element with a larger key is taken,
//    and of those equal to kth the take_eq with the smallest indices.
// 2. An ordered compaction, chunk by chunk in index order, writes each taken
//    index at its rank among the taken ones (a block-wide scan of warp
//    ballots: one for the rank among the ties, one for the output position).
#include "common.cuh"

#define TOPN_THREADS 1024

// order_key maps a float to a uint32 whose unsigned order is the float
// order; −0 and +0 map to the same key so that they tie.
__device__ __forceinline__ unsigned int order_key(float f) {
	unsigned int b = f == 0.0f ? 0u : __float_as_uint(f);
	return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// block_scan returns, for a warp's ballot, the number of set bits in the
// block's lower lanes and warps (before) and in the whole block (total).
// counts is shared scratch of 32 entries; every thread must call it.
__device__ __forceinline__ void block_scan(unsigned int ballot, unsigned int* counts, unsigned int* before,
                                           unsigned int* total) {
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	if (lane == 0) counts[w] = __popc(ballot);
	__syncthreads();
	unsigned int b = 0, t = 0;
	for (int v = 0; v < nw; v++) {
		unsigned int cnt = counts[v];
		if (v < w) b += cnt;
		t += cnt;
	}
	*before = b + __popc(ballot & ((1u << lane) - 1u));
	*total = t;
}

extern "C" __global__ void topn_f32(const float* x, int* idx, i64 rows, i64 cols, i64 n) {
	__shared__ unsigned int hist[256];
	__shared__ unsigned int s_prefix, s_mask, s_remaining, s_eq_base, s_out_base;
	__shared__ unsigned int eq_count[32], taken_count[32];

	i64 r = blockIdx.x;
	if (r >= rows) return;
	const float* row = x + r * cols;
	int tid = threadIdx.x;

	// 1. Radix select of the n-th largest key.
	if (tid == 0) {
		s_prefix = 0;
		s_mask = 0;
		s_remaining = (unsigned int)n;
		s_eq_base = 0;
		s_out_base = 0;
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

	// 2. Ordered compaction; stops once n indices are written.
	int* out = idx + r * n;
	for (i64 base = 0; base < cols; base += blockDim.x) {
		i64 j = base + tid;
		unsigned int k = j < cols ? order_key(row[j]) : 0u;
		bool gt = j < cols && k > kth;
		bool eq = j < cols && k == kth;
		unsigned int eq_before, eq_total;
		block_scan(__ballot_sync(FULL_MASK, eq), eq_count, &eq_before, &eq_total);
		bool taken = gt || (eq && s_eq_base + eq_before < take_eq);
		unsigned int pos, taken_total;
		block_scan(__ballot_sync(FULL_MASK, taken), taken_count, &pos, &taken_total);
		if (taken) out[s_out_base + pos] = (int)j;
		__syncthreads();  // every thread has read s_eq_base, s_out_base and the counts
		if (tid == 0) {
			s_eq_base += eq_total;
			s_out_base += taken_total;
		}
		__syncthreads();
		if (s_out_base >= (unsigned int)n) break;
	}
}
