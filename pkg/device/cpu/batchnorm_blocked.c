//go:build !purego

// Batch normalisation (and its fusions with the residual sum and the ReLU
// that follow) on activations in a channel-blocked layout
// (device.Blocked): each call handles 8 consecutive channels c0…c0+7 of
// one block, which sit side by side at every pixel, so one 8-lane vector
// holds the 8 channels of a pixel. The arithmetic is batchnorm.go's, lane
// by lane: statistics summed in float64 (per image, even and odd pixels
// apart, images in order, so the sums depend neither on the thread count
// nor on the block), the per-channel coefficients in float64, the
// elementwise passes in float32 (products and sums rounded apart, as the
// plain kernels round them), the ReLU and its gradient as elementwise.go
// has them.

#include <math.h>
#include <stddef.h>
#include "batchnorm_blocked.h"
#include "simd.h"

// A float64 sum of the 8 channels of a pixel is two v4d, the low and the
// high 4 channels (GCC keeps 8 doubles, wider than an AVX2 register, in
// memory).
typedef int v8i __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));

static_inline v4d lo(v8 v) { return __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), v4d); }
static_inline v4d hi(v8 v) { return __builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), v4d); }

// sum8 is a float64 value per channel.
typedef struct {
	v4d lo, hi;
} sum8;

static_inline sum8 add8(sum8 a, sum8 b) { return (sum8){a.lo + b.lo, a.hi + b.hi}; }
static_inline double lane(sum8 s, int l) { return l < 4 ? s.lo[l] : s.hi[l - 4]; }

// relu8 is max(v, 0) as Go's max: v where v > 0 or v is NaN, else +0.
static_inline v8 relu8(v8 v) {
	v8 zero = {0};
	return (v8)((v8i)v & ((v > zero) | (v != v)));
}

// relu_grad8 is d where y's bits as an int32 are ≥ 1 (positiveMask), else +0.
static_inline v8 relu_grad8(v8 y, v8 d) {
	v8i zero = {0};
	return (v8)((v8i)d & ((v8i)y > zero));
}

// mochi_bnb_at is where the 8 channels c0… of image n start: the images'
// blocks are consecutive, C/B of them an image, each HW·B floats.
static_inline size_t mochi_bnb_at(mochi_bnb s, long n) {
	return ((size_t)n * (s.c / s.block) + s.c0 / s.block) * s.hw * s.block + s.c0 % s.block;
}

// mochi_bnb_term adds pixel v's term to a: x (square 0) or (x − mu)².
static_inline void mochi_bnb_term(sum8 *a, v8 v, sum8 mu, int square) {
	v4d l = lo(v), h = hi(v);
	if (square) {
		l = (l - mu.lo) * (l - mu.lo);
		h = (h - mu.hi) * (h - mu.hi);
	}
	a->lo += l;
	a->hi += h;
}

// mochi_bnb_moment is Σ x (square 0) or Σ (x − mu)² (square 1) over
// images [n0, n1) per channel.
static_inline sum8 mochi_bnb_moment(mochi_bnb s, const float *x, long n0, long n1, sum8 mu, int square) {
	sum8 sum = {0};
	long hw = s.hw, b = s.block;
	for (long n = n0; n < n1; n++) {
		const float *p = x + mochi_bnb_at(s, n);
		sum8 a0 = {0}, a1 = {0}; // even and odd pixels
		long i = 0;
		for (; i + 2 <= hw; i += 2) {
			mochi_bnb_term(&a0, ld8(p + i * b), mu, square);
			mochi_bnb_term(&a1, ld8(p + (i + 1) * b), mu, square);
		}
		if (i < hw) mochi_bnb_term(&a0, ld8(p + i * b), mu, square);
		sum = add8(sum, add8(a0, a1));
	}
	return sum;
}

// mochi_bnb_affine is y = a·x + b over images [n0, n1), then y + r where
// r is not NULL, then max(y, 0) with relu.
static_inline void mochi_bnb_affine(mochi_bnb s, const float *x, const float *r, float *y, long n0, long n1, v8 a, v8 b, int relu) {
	long hw = s.hw, blk = s.block;
	for (long n = n0; n < n1; n++) {
		size_t at = mochi_bnb_at(s, n);
		const float *p = x + at;
		float *q = y + at;
		for (long i = 0; i < hw; i++) {
			v8 v = a * ld8(p + i * blk);
			v = v + b;
			if (r) v = v + ld8(r + at + i * blk);
			st8(q + i * blk, relu ? relu8(v) : v);
		}
	}
}

MOCHI_HOT void mochi_bnb_train(mochi_bnb s, const float *x, const float *r, float *y, const float *gamma, const float *beta,
	float *mean, float *inv_std, float *run_mean, float *run_var, double momentum, double eps, int relu) {
	long per = s.n / s.groups, c0 = s.c0;
	double m = (double)per * s.hw;
	double mu_sum[8] = {0}, var_sum[8] = {0};
	for (long g = 0; g < s.groups; g++) {
		long n0 = g * per, n1 = n0 + per;
		sum8 zero = {0}, mu = mochi_bnb_moment(s, x, n0, n1, zero, 0);
		mu.lo /= m;
		mu.hi /= m;
		sum8 sq = mochi_bnb_moment(s, x, n0, n1, mu, 1);
		v8 a, b;
		for (int l = 0; l < 8; l++) {
			double mul = lane(mu, l), sql = lane(sq, l);
			double variance = sql / m; // biased: normalises the batch
			double inv = 1 / sqrt(variance + eps);
			mean[g * s.c + c0 + l] = (float)mul;
			inv_std[g * s.c + c0 + l] = (float)inv;
			mu_sum[l] += mul;
			var_sum[l] += sql / (m - 1); // unbiased: PyTorch's running_var
			// y = γ·(x − μ)·invStd + β = a·x + (β − a·μ)
			double al = (double)gamma[c0 + l] * inv;
			a[l] = (float)al;
			b[l] = (float)((double)beta[c0 + l] - al * mul);
		}
		mochi_bnb_affine(s, x, r, y, n0, n1, a, b, relu);
	}
	double groups = (double)s.groups;
	for (int l = 0; l < 8; l++) {
		run_mean[c0 + l] = (float)((1 - momentum) * (double)run_mean[c0 + l] + momentum * mu_sum[l] / groups);
		run_var[c0 + l] = (float)((1 - momentum) * (double)run_var[c0 + l] + momentum * var_sum[l] / groups);
	}
}

MOCHI_HOT void mochi_bnb_infer(mochi_bnb s, const float *x, const float *r, float *y, const float *gamma, const float *beta,
	const float *run_mean, const float *run_var, double eps, int relu) {
	v8 a, b;
	for (int l = 0; l < 8; l++) {
		long c = s.c0 + l;
		double al = (double)gamma[c] / sqrt((double)run_var[c] + eps);
		a[l] = (float)al;
		b[l] = (float)((double)beta[c] - al * (double)run_mean[c]);
	}
	mochi_bnb_affine(s, x, r, y, 0, s.n, a, b, relu);
}

// mochi_bnb_dz is the upstream gradient of the batch norm at offset i: dy,
// or with relu dy·[y > 0], then also stored into dz.
static_inline v8 mochi_bnb_dz(const float *dy, const float *y, float *dz, long i, int relu) {
	v8 d = ld8(dy + i);
	if (relu) {
		d = relu_grad8(ld8(y + i), d);
		st8(dz + i, d);
	}
	return d;
}

// mochi_bnb_xhat is x̂ = (x − mu)·inv at offset i in float32, as the
// forward normalised.
static_inline v8 mochi_bnb_xhat(const float *x, long i, v8 mu, v8 inv) { return (ld8(x + i) - mu) * inv; }

MOCHI_HOT void mochi_bnb_backward(mochi_bnb s, const float *x, const float *y, const float *dy, float *dz, float *dx,
	const float *gamma, const float *mean, const float *inv_std, float *dgamma, float *dbeta, int relu) {
	long per = s.n / s.groups, c0 = s.c0, hw = s.hw, blk = s.block;
	double m = (double)per * hw;
	// dz is the batch norm's upstream gradient: dy, or with relu
	// dy·[y > 0], written by the sums' pass and read by the second.
	const float *dzr = relu ? dz : dy;
	double dg[8] = {0}, db[8] = {0};
	for (long g = 0; g < s.groups; g++) {
		long n0 = g * per, n1 = n0 + per;
		v8 mu = ld8(mean + g * s.c + c0), inv = ld8(inv_std + g * s.c + c0);
		sum8 sdy = {0}, sdyx = {0};
		for (long n = n0; n < n1; n++) {
			size_t at = mochi_bnb_at(s, n);
			const float *px = x + at, *pdy = dy + at, *py = y + at;
			float *pdz = dz + at;
			sum8 s0 = {0}, s1 = {0}, t0 = {0}, t1 = {0}; // Σdy, Σdy·x̂ over even and odd pixels
			long i = 0;
			for (; i + 2 <= hw; i += 2) {
				v8 d0 = mochi_bnb_dz(pdy, py, pdz, i * blk, relu), d1 = mochi_bnb_dz(pdy, py, pdz, (i + 1) * blk, relu);
				v8 x0 = mochi_bnb_xhat(px, i * blk, mu, inv), x1 = mochi_bnb_xhat(px, (i + 1) * blk, mu, inv);
				s0.lo += lo(d0);
				s0.hi += hi(d0);
				s1.lo += lo(d1);
				s1.hi += hi(d1);
				t0.lo += lo(d0) * lo(x0);
				t0.hi += hi(d0) * hi(x0);
				t1.lo += lo(d1) * lo(x1);
				t1.hi += hi(d1) * hi(x1);
			}
			if (i < hw) {
				v8 d = mochi_bnb_dz(pdy, py, pdz, i * blk, relu), xh = mochi_bnb_xhat(px, i * blk, mu, inv);
				s0.lo += lo(d);
				s0.hi += hi(d);
				t0.lo += lo(d) * lo(xh);
				t0.hi += hi(d) * hi(xh);
			}
			sdy = add8(sdy, add8(s0, s1));
			sdyx = add8(sdyx, add8(t0, t1));
		}
		v8 k, c2, c3;
		for (int l = 0; l < 8; l++) {
			double sl = lane(sdy, l), tl = lane(sdyx, l);
			dg[l] += tl;
			db[l] += sl;
			k[l] = (float)((double)gamma[c0 + l] * (double)inv[l]);
			c2[l] = (float)(sl / m);
			c3[l] = (float)(tl / m);
		}
		// dx = γ·invStd·(dz − Σdz/M − x̂·Σ(dz·x̂)/M)
		for (long n = n0; n < n1; n++) {
			size_t at = mochi_bnb_at(s, n);
			const float *px = x + at, *pdz = dzr + at;
			float *pdx = dx + at;
			for (long i = 0; i < hw; i++) {
				v8 t = ld8(pdz + i * blk) - c2;
				v8 u = mochi_bnb_xhat(px, i * blk, mu, inv) * c3;
				st8(pdx + i * blk, k * (t - u));
			}
		}
	}
	for (int l = 0; l < 8; l++) {
		dgamma[c0 + l] = (float)dg[l];
		dbeta[c0 + l] = (float)db[l];
	}
}
