// bn.cu: batch normalisation over x N×C×HW with split-BN groups: group g
// holds samples [g·N/G, (g+1)·N/G) and has its own statistics. One block
// per channel loops over the groups; sums are accumulated in double.
#include "common.cuh"

// group_index is the offset of the j-th element (j < per·HW) of channel c
// in the group starting at sample n0.
__device__ __forceinline__ i64 group_index(i64 j, i64 n0, i64 c, i64 C, i64 HW) {
	return ((n0 + j / HW) * C + c) * HW + j % HW;
}

// bn_train_f32 writes y, mean and invStd (G×C, biased variance) and updates
// the running statistics with the group-averaged mean and unbiased variance:
// run = (1−momentum)·run + momentum·stat.
extern "C" __global__ void bn_train_f32(const float* x, const float* gamma, const float* beta, float* y,
                                        float* mean, float* invstd, float* run_mean, float* run_var, i64 N,
                                        i64 C, i64 HW, i64 G, double momentum, double eps) {
	i64 c = blockIdx.x;
	if (c >= C) return;
	i64 per = N / G, m = per * HW;
	float gm = gamma[c], bt = beta[c];
	double mu_avg = 0.0, var_avg = 0.0;
	for (i64 g = 0; g < G; g++) {
		i64 n0 = g * per;
		double s = 0.0, ss = 0.0;
		for (i64 j = threadIdx.x; j < m; j += blockDim.x) {
			double v = (double)x[group_index(j, n0, c, C, HW)];
			s += v;
			ss += v * v;
		}
		s = block_sum_d(s);
		ss = block_sum_d(ss);
		double mu = s / (double)m;
		double var = fmax(ss / (double)m - mu * mu, 0.0);
		double is = 1.0 / sqrt(var + eps);
		if (threadIdx.x == 0) {
			mean[g * C + c] = (float)mu;
			invstd[g * C + c] = (float)is;
		}
		float fmu = (float)mu, fis = (float)is;
		for (i64 j = threadIdx.x; j < m; j += blockDim.x) {
			i64 k = group_index(j, n0, c, C, HW);
			y[k] = gm * (x[k] - fmu) * fis + bt;
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
	i64 per = N / G, m = per * HW;
	double dg = 0.0, db = 0.0;
	for (i64 g = 0; g < G; g++) {
		i64 n0 = g * per;
		float mu = mean[g * C + c], is = invstd[g * C + c];
		double sdy = 0.0, sdyx = 0.0;
		for (i64 j = threadIdx.x; j < m; j += blockDim.x) {
			i64 k = group_index(j, n0, c, C, HW);
			double d = (double)dy[k];
			sdy += d;
			sdyx += d * (double)((x[k] - mu) * is);
		}
		sdy = block_sum_d(sdy);
		sdyx = block_sum_d(sdyx);
		dg += sdyx;
		db += sdy;
		// In double: M·dy − Σdy − x̂·Σdy·x̂ cancels to a small remainder.
		double k1 = (double)gamma[c] * (double)is / (double)m;
		for (i64 j = threadIdx.x; j < m; j += blockDim.x) {
			i64 k = group_index(j, n0, c, C, HW);
			double xh = (double)((x[k] - mu) * is);
			dx[k] = (float)(k1 * ((double)m * (double)dy[k] - sdy - xh * sdyx));
		}
	}
	if (threadIdx.x == 0) {
		dgamma[c] = (float)dg;
		dbeta[c] = (float)db;
	}
}
