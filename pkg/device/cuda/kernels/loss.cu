// loss.cu: softmax cross-entropy with temperature, one block per row.
#include "common.cuh"

// softmax_ce_f32: z = logits[r]/tau; prob[r] = softmax(z);
// loss[r] = −(z[label] − max z − log Σ exp(z − max z)). A label outside
// [0, cols) gives a NaN loss (the kernel cannot report errors).
extern "C" __global__ void softmax_ce_f32(const float* logits, const int* labels, float* loss, float* prob,
                                          i64 rows, i64 cols, double tau) {
	i64 r = blockIdx.x;
	if (r >= rows) return;
	float ftau = (float)tau;
	const float* lr = logits + r * cols;
	float* pr = prob + r * cols;
	float mx = -INFINITY;
	for (i64 c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, lr[c] / ftau);
	mx = block_max(mx);
	double z = 0.0;
	for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
		float e = expf(lr[c] / ftau - mx);
		pr[c] = e;
		z += (double)e;
	}
	z = block_sum_d(z);
	float inv = (float)(1.0 / z);
	for (i64 c = threadIdx.x; c < cols; c += blockDim.x) pr[c] *= inv;
	if (threadIdx.x == 0) {
		int lab = labels[r];
		if (lab < 0 || (i64)lab >= cols) {
			loss[r] = NAN;
		} else {
			loss[r] = (float)(-((double)(lr[lab] / ftau) - (double)mx - log(z)));
		}
	}
}

// softmax_ce_backward_f32: dlogits = scale·(prob − onehot(label))/tau.
extern "C" __global__ void softmax_ce_backward_f32(const float* prob, const int* labels, float* dlogits,
                                                   i64 rows, i64 cols, double tau, double scale) {
	float k = (float)(scale / tau);
	GRID_STRIDE(i, rows * cols) {
		i64 r = i / cols, c = i % cols;
		float p = prob[i];
		if ((i64)labels[r] == c) p -= 1.0f;
		dlogits[i] = k * p;
	}
}
