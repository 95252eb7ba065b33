// elementwise.cu: one thread per element (grid-stride) kernels.
// Build: nvcc -ptx -arch=compute_80 (scripts/build-gpu.sh).
#include "common.cuh"

// fill_f32: x[i] = v.
extern "C" __global__ void fill_f32(float* x, i64 n, double v) {
	float fv = (float)v;
	GRID_STRIDE(i, n) x[i] = fv;
}

// scale_f32: x[i] = alpha·x[i].
extern "C" __global__ void scale_f32(float* x, i64 n, double alpha) {
	float a = (float)alpha;
	GRID_STRIDE(i, n) x[i] = a * x[i];
}

// axpy_f32: y[i] = alpha·x[i] + y[i].
extern "C" __global__ void axpy_f32(const float* x, float* y, i64 n, double alpha) {
	float a = (float)alpha;
	GRID_STRIDE(i, n) y[i] = a * x[i] + y[i];
}

// add_f32: out[i] = a[i] + b[i] (out may alias a or b: each element is
// read before it is written by the same thread).
extern "C" __global__ void add_f32(const float* a, const float* b, float* out, i64 n) {
	GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

// relu_f32: y[i] = max(x[i], 0) (y may alias x).
extern "C" __global__ void relu_f32(const float* x, float* y, i64 n) {
	GRID_STRIDE(i, n) {
		float v = x[i];
		y[i] = v > 0.0f ? v : 0.0f;
	}
}

// relu_backward_f32: dx[i] = dy[i] where y[i] > 0, else 0.
extern "C" __global__ void relu_backward_f32(const float* y, const float* dy, float* dx, i64 n) {
	GRID_STRIDE(i, n) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// add_row_vector_f32: y[r,c] += v[c] for y rows×cols.
extern "C" __global__ void add_row_vector_f32(const float* v, float* y, i64 rows, i64 cols) {
	GRID_STRIDE(i, rows * cols) y[i] += v[i % cols];
}

// global_avg_pool_backward_f32: dx[nc,i] = dy[nc]/hw for dx (nc·hw).
extern "C" __global__ void global_avg_pool_backward_f32(const float* dy, float* dx, i64 nc, i64 hw) {
	float inv = 1.0f / (float)hw;
	GRID_STRIDE(i, nc * hw) dx[i] = dy[i / hw] * inv;
}

// sgd_step_f32 is torch.optim.SGD with dampening 0:
// g = grad + wd·p; v = mom·v + g; p −= lr·(g + mom·v) (Nesterov) or lr·v.
extern "C" __global__ void sgd_step_f32(float* p, const float* grad, float* vel, i64 n,
                                        double lr, double momentum, double weight_decay,
                                        i64 nesterov) {
	float flr = (float)lr, fm = (float)momentum, fwd = (float)weight_decay;
	GRID_STRIDE(i, n) {
		float pi = p[i];
		float g = grad[i] + fwd * pi;
		float v = fm * vel[i] + g;
		vel[i] = v;
		p[i] = nesterov ? pi - flr * (g + fm * v) : pi - flr * v;
	}
}

// momentum_update_f32: dst = m·dst + (1−m)·src (MoCo's key encoder update).
extern "C" __global__ void momentum_update_f32(const float* src, float* dst, i64 n, double m) {
	float fm = (float)m, fr = (float)(1.0 - m);
	GRID_STRIDE(i, n) dst[i] = fm * dst[i] + fr * src[i];
}
