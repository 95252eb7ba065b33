// mix.cu: MoCHi's synthetic-negative logits and their gradient.
//
// The mixing draw (B×(3S+2S′), pkg/hardneg's MixDraw.Tensor; the kernels'
// `plan` argument) holds per query b the row
// [i_1…i_S, j_1…j_S, α_1…α_S, j′_1…j′_S′, β_1…β_S′], ranks into the query's
// top-N list as exact float integers. For mix t < S: u = α·n_i + (1−α)·n_j
// with i = top[b, i_t], j = top[b, j_t]; for t = S + t' < S + S′:
// u = β·q_b + (1−β)·n_j with j = top[b, j′_t']. h = u/max(‖u‖, 1e-12) and
// out[b,t] = q_b·h. The kernels build u explicitly in D dimensions, which
// costs the same as the closed form from sim on a GPU, so MixLogits' sim
// argument is not passed to them. A rank or index out of range gives NaN (the kernel
// cannot report errors).
#include "common.cuh"

// plan_rank converts a float-coded rank, returning −1 unless it is an
// integer in [0, N).
__device__ __forceinline__ int plan_rank(float f, i64 N) {
	return (f >= 0.0f && f < (float)N && f == floorf(f)) ? (int)f : -1;
}

// mix_rows resolves mix t of query b to its two source rows and weight:
// u = wa·a + (1−wa)·b_row. It returns false for an out-of-range rank or index.
__device__ __forceinline__ bool mix_rows(const float* q, const float* queue, const int* top, const float* plan,
                                         i64 b, i64 t, i64 D, i64 K, i64 N, i64 S, i64 SP, const float** a,
                                         const float** brow, float* wa) {
	const float* pr = plan + b * (3 * S + 2 * SP);
	int ri, rj;
	if (t < S) {
		ri = plan_rank(pr[t], N);
		rj = plan_rank(pr[S + t], N);
		*wa = pr[2 * S + t];
	} else {
		ri = 0;
		rj = plan_rank(pr[3 * S + (t - S)], N);
		*wa = pr[3 * S + SP + (t - S)];
	}
	if (ri < 0 || rj < 0) return false;
	int j = top[b * N + rj];
	if (j < 0 || j >= K) return false;
	*brow = queue + (i64)j * D;
	if (t < S) {
		int i = top[b * N + ri];
		if (i < 0 || i >= K) return false;
		*a = queue + (i64)i * D;
	} else {
		*a = q + b * D;
	}
	return true;
}

// mix_logits_f32: one warp per (b, t), 8 warps per block.
extern "C" __global__ void mix_logits_f32(const float* q, const float* queue, const int* top, const float* plan,
                                          float* out, i64 B, i64 D, i64 K, i64 N, i64 S, i64 SP) {
	i64 T = S + SP;
	i64 wid = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
	if (wid >= B * T) return;
	int lane = threadIdx.x & 31;
	i64 b = wid / T, t = wid % T;
	const float *a, *br;
	float wa;
	if (!mix_rows(q, queue, top, plan, b, t, D, K, N, S, SP, &a, &br, &wa)) {
		if (lane == 0) out[wid] = NAN;
		return;
	}
	const float* qb = q + b * D;
	float uu = 0.0f, qu = 0.0f;
	for (i64 d = lane; d < D; d += 32) {
		float u = wa * a[d] + (1.0f - wa) * br[d];
		uu += u * u;
		qu += qb[d] * u;
	}
	uu = warp_sum(uu);
	qu = warp_sum(qu);
	if (lane == 0) out[wid] = qu / fmaxf(sqrtf(uu), 1e-12f);
}

// mix_logits_backward_f32: dq[b] = Σ_t dout[b,t]·h_t, plus with grad_through_q
// the path through q inside h′ = u/‖u‖: dout·β/‖u‖·(q − (q·h′)·h′).
// One block per query; each warp takes every nwarps-th mix and accumulates
// into its own row of the dynamic shared acc (nwarps × D), summed at the end
// in warp order (a fixed order: the result is deterministic).
extern "C" __global__ void mix_logits_backward_f32(const float* q, const float* queue, const int* top,
                                                   const float* plan, const float* dout, float* dq, i64 B, i64 D,
                                                   i64 K, i64 N, i64 S, i64 SP, i64 grad_through_q) {
	extern __shared__ float acc[];
	i64 b = blockIdx.x;
	if (b >= B) return;
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	float* mine = acc + (i64)w * D;
	for (i64 d = lane; d < D; d += 32) mine[d] = 0.0f;
	i64 T = S + SP;
	const float* qb = q + b * D;
	bool bad = false;
	for (i64 t = w; t < T; t += nw) {
		const float *a, *br;
		float wa;
		if (!mix_rows(q, queue, top, plan, b, t, D, K, N, S, SP, &a, &br, &wa)) {
			bad = true;
			continue;
		}
		float uu = 0.0f, qu = 0.0f;
		for (i64 d = lane; d < D; d += 32) {
			float u = wa * a[d] + (1.0f - wa) * br[d];
			uu += u * u;
			qu += qb[d] * u;
		}
		uu = warp_sum(uu);
		qu = warp_sum(qu);
		float nrm = fmaxf(sqrtf(uu), 1e-12f);
		float g = dout[b * T + t];
		float gh = g / nrm;  // coefficient of u in g·h
		float gq = 0.0f;     // coefficient of q in the path through h′
		if (grad_through_q && t >= S) {
			float qh = qu / nrm;  // q·h′
			gq = g * wa / nrm;    // wa is β here
			gh -= gq * qh / nrm;  // −g·β/‖u‖·(q·h′)·h′ = −gq·qh·u/‖u‖
		}
		for (i64 d = lane; d < D; d += 32) {
			float u = wa * a[d] + (1.0f - wa) * br[d];
			mine[d] += gh * u + gq * qb[d];
		}
	}
	float nan_if_bad = __syncthreads_or(bad) ? NAN : 0.0f;  // also the barrier before reading acc
	for (i64 d = threadIdx.x; d < D; d += blockDim.x) {
		float s = 0.0f;
		for (int v = 0; v < nw; v++) s += acc[(i64)v * D + d];
		dq[b * D + d] = s + nan_if_bad;
	}
}
