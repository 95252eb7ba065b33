// bn.cu: batch normalisation over x N×C×HW with split-BN groups: group g
// holds samples [g·N/G, (g+1)·N/G) and has its own statistics. One block
// per channel loops over the groups; sums are accumulated in double.
//
// A thread walks its elements (sample n, pixel hw) of a channel by adding
// the block size with a carry instead of dividing each flat index by HW: a
// 64-bit division per element made these memory-bound kernels slow.
#include "common.cuh"

// chan_iter walks the elements of one channel in one group, blockDim.x
// apart: element (n, hw) is at base + n·C·HW + hw.
struct chan_iter {
	int n, hw;    // current sample (group-relative) and pixel
	int dn, dhw;  // blockDim.x as whole samples and remaining pixels
	int HW;
	__device__ chan_iter(int HW_) : HW(HW_) {
		n = (int)threadIdx.x / HW;
		hw = (int)threadIdx.x - n * HW;
		dn = (int)blockDim.x / HW;
		dhw = (int)blockDim.x - dn * HW;
	}
	__device__ void next() {
		n += dn;
		hw += dhw;
		if (hw >= HW) {
			hw -= HW;
			n++;
		}
	}
};

// block_sum2_d sums a and b over the block in one pass of reductions (the
// rules of block_sum_d apply).
__device__ __forceinline__ void block_sum2_d(double* a, double* b) {
	__shared__ double part[2][32];
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
	double x = warp_sum_d(*a), y = warp_sum_d(*b);
	__syncthreads();  // a previous call may still be reading part
	if (lane == 0) {
		part[0][w] = x;
		part[1][w] = y;
	}
	__syncthreads();
	int nw = blockDim.x >> 5;
	x = lane < nw ? part[0][lane] : 0.0;
	y = lane < nw ? part[1][lane] : 0.0;
	*a = warp_sum_d(x);
	*b = warp_sum_d(y);
}

// bn_train_f32 writes y, mean and invStd (G×C, biased variance) and updates
// the running statistics with the group-averaged mean and unbiased variance:
// run = (1−momentum)·run + momentum·stat.
extern "C" __global__ void bn_train_f32(const float* x, const float* gamma, const float* beta, float* y,
                                        float* mean, float* invstd, float* run_mean, float* run_var, i64 N,
                                        i64 C, i64 HW, i64 G, double momentum, double eps) {
	i64 c = blockIdx.x;
	if (c >= C) return;
	int per = (int)(N / G), hwn = (int)HW;
	i64 m = (i64)per * HW, chw = C * HW;
	float gm = gamma[c], bt = beta[c];
	double mu_avg = 0.0, var_avg = 0.0;
	for (i64 g = 0; g < G; g++) {
		const float* xg = x + (g * per * C + c) * HW;
		float* yg = y + (g * per * C + c) * HW;
		double s = 0.0, ss = 0.0;
		for (chan_iter it(hwn); it.n < per; it.next()) {
			double v = (double)xg[it.n * chw + it.hw];
			s += v;
			ss += v * v;
		}
		block_sum2_d(&s, &ss);
		double mu = s / (double)m;
		double var = fmax(ss / (double)m - mu * mu, 0.0);
		double is = 1.0 / sqrt(var + eps);
		if (threadIdx.x == 0) {
			mean[g * C + c] = (float)mu;
			invstd[g * C + c] = (float)is;
		}
		float fmu = (float)mu, fis = (float)is;
		for (chan_iter it(hwn); it.n < per; it.next()) {
			i64 k = it.n * chw + it.hw;
			yg[k] = gm * (xg[k] - fmu) * fis + bt;
		}
		mu_avg += mu;
		var_avg += var * (double)m / (double)(m - 1);  // unbiased, as PyTorch's running_var
	}
	if (threadIdx.x == 0) {
		mu_avg /= (double)G;
		var_avg /= (double)G;
		run_mean[c] = (float)((1.0 - momentum) * (double)run_mean[c] + momentum * mu_avg);
		run_var[c] = (float)((1.0 - momentum) * (double)run_var[c] + momentum * var_avg);
	}
}

// bn_infer_f32: y = γ·(x − runMean)/√(runVar + eps) + β, one thread per element.
extern "C" __global__ void bn_infer_f32(const float* x, const float* gamma, const float* beta,
                                        const float* run_mean, const float* run_var, float* y, i64 total,
                                        i64 C, i64 HW, double eps) {
	GRID_STRIDE(i, total) {
		i64 c = (i / HW) % C;
		float is = (float)(1.0 / sqrt((double)run_var[c] + eps));
		y[i] = gamma[c] * (x[i] - run_mean[c]) * is + beta[c];
	}
}

// bn_backward_f32: per group with M = per·HW elements and x̂ = (x−μ)·invStd,
// dx = γ·invStd/M·(M·dy − Σdy − x̂·Σdy·x̂); dγ = Σ_g Σdy·x̂, dβ = Σ_g Σdy.
extern "C" __global__ void bn_backward_f32(const float* x, const float* dy, const float* gamma,
                                           const float* mean, const float* invstd, float* dx, float* dgamma,
                                           float* dbeta, i64 N, i64 C, i64 HW, i64 G) {
	i64 c = blockIdx.x;
	if (c >= C) return;
	int per = (int)(N / G), hwn = (int)HW;
	i64 m = (i64)per * HW, chw = C * HW;
	double dg = 0.0, db = 0.0;
	for (i64 g = 0; g < G; g++) {
		i64 base = (g * per * C + c) * HW;
		const float *xg = x + base, *dyg = dy + base;
		float* dxg = dx + base;
		float mu = mean[g * C + c], is = invstd[g * C + c];
		double sdy = 0.0, sdyx = 0.0;
		for (chan_iter it(hwn); it.n < per; it.next()) {
			i64 k = it.n * chw + it.hw;
			double d = (double)dyg[k];
			sdy += d;
			sdyx += d * (double)((xg[k] - mu) * is);
		}
		block_sum2_d(&sdy, &sdyx);
		dg += sdyx;
		db += sdy;
		// In double: M·dy − Σdy − x̂·Σdy·x̂ cancels to a small remainder.
		double k1 = (double)gamma[c] * (double)is / (double)m;
		for (chan_iter it(hwn); it.n < per; it.next()) {
			i64 k = it.n * chw + it.hw;
			double xh = (double)((xg[k] - mu) * is);
			dxg[k] = (float)(k1 * ((double)m * (double)dyg[k] - sdy - xh * sdyx));
		}
	}
	if (threadIdx.x == 0) {
		dgamma[c] = (float)dg;
		dbeta[c] = (float)db;
	}
}
