//go:build !purego

// Batch normalisation (and its fusion with the ReLU that follows) on
// activations in a channel-blocked layout (device.Blocked): each call
// handles 8 consecutive channels c0…c0+7 of one block, which sit side by
// side at every pixel, so one 8-lane vector holds the 8 channels of a
// pixel. The arithmetic is batchnorm.go's, lane by lane: statistics summed
// in float64 (per image, even and odd pixels apart, images in order, so
// the sums depend on neither the thread count nor the block), the
// per-channel coefficients in float64, the elementwise passes in float32
// (products and sums rounded apart, as the plain kernels round them).

#include <math.h>
#include <stddef.h>
#include <string.h>
#include "batchnorm_blocked.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MOCHI_HOT __attribute__((target_clones("avx2", "default")))
#else
#define MOCHI_HOT
#endif

// v8 is the 8 channels of one pixel; v8d the same in float64.
typedef float v8 __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));
#define static_inline static inline __attribute__((always_inline))

static_inline v8 ld8(const float *p) {
	v8 v;
	memcpy(&v, p, sizeof v);
	return v;
}

static_inline void st8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

static_inline v8d wide(v8 v) { return __builtin_convertvector(v, v8d); }

typedef int v8i __attribute__((vector_size(32)));

// where_pos is v where c > 0, else +0: the ReLU (c = v) and its gradient
// (c = y) as elementwise.go has them.
static_inline v8 where_pos(v8 c, v8 v) {
	v8 zero = {0};
	return (v8)((v8i)v & (c > zero));
}

// mochi_bnb_at is where the 8 channels c0… of image n start: the images'
// blocks are consecutive, C/B of them an image, each HW·B floats.
static_inline size_t mochi_bnb_at(mochi_bnb s, long n) {
	return ((size_t)n * (s.c / s.block) + s.c0 / s.block) * s.hw * s.block + s.c0 % s.block;
}

// mochi_bnb_sum is Σ x over images [n0, n1) per lane.
static_inline v8d mochi_bnb_sum(mochi_bnb s, const float *x, long n0, long n1) {
	v8d sum = {0};
	long hw = s.hw, b = s.block;
	for (long n = n0; n < n1; n++) {
		const float *p = x + mochi_bnb_at(s, n);
		v8d a0 = {0}, a1 = {0};
		long i = 0;
		for (; i + 2 <= hw; i += 2) {
			a0 += wide(ld8(p + i * b));
			a1 += wide(ld8(p + (i + 1) * b));
		}
		if (i < hw) a0 += wide(ld8(p + i * b));
		sum += a0 + a1;
	}
	return sum;
}

// mochi_bnb_sqdev is Σ (x − mu)² over images [n0, n1) per lane.
static_inline v8d mochi_bnb_sqdev(mochi_bnb s, const float *x, long n0, long n1, v8d mu) {
	v8d sum = {0};
	long hw = s.hw, b = s.block;
	for (long n = n0; n < n1; n++) {
		const float *p = x + mochi_bnb_at(s, n);
		v8d a0 = {0}, a1 = {0};
		long i = 0;
		for (; i + 2 <= hw; i += 2) {
			v8d d0 = wide(ld8(p + i * b)) - mu, d1 = wide(ld8(p + (i + 1) * b)) - mu;
			a0 += d0 * d0;
			a1 += d1 * d1;
		}
		if (i < hw) {
			v8d d = wide(ld8(p + i * b)) - mu;
			a0 += d * d;
		}
		sum += a0 + a1;
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
			st8(q + i * blk, relu ? where_pos(v, v) : v);
		}
	}
}

MOCHI_HOT void mochi_bnb_train(mochi_bnb s, const float *x, const float *r, float *y, const float *gamma, const float *beta,
	float *mean, float *inv_std, float *run_mean, float *run_var, double momentum, double eps, int relu) {
	long per = s.n / s.groups, c0 = s.c0;
	double m = (double)per * s.hw;
	v8d mu_sum = {0}, var_sum = {0};
	for (long g = 0; g < s.groups; g++) {
		long n0 = g * per, n1 = n0 + per;
		v8d mu = mochi_bnb_sum(s, x, n0, n1) / m;
		v8d sq = mochi_bnb_sqdev(s, x, n0, n1, mu);
		v8 a, b;
		for (int l = 0; l < 8; l++) {
			double variance = sq[l] / m; // biased: normalises the batch
			double inv = 1 / sqrt(variance + eps);
			mean[g * s.c + c0 + l] = (float)mu[l];
			inv_std[g * s.c + c0 + l] = (float)inv;
			double al = (double)gamma[c0 + l] * inv;
			a[l] = (float)al;
			b[l] = (float)((double)beta[c0 + l] - al * mu[l]);
		}
		mu_sum += mu;
		var_sum += sq / (m - 1); // unbiased: PyTorch's running_var
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
		d = where_pos(ld8(y + i), d);
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
	v8d dg = {0}, db = {0};
	for (long g = 0; g < s.groups; g++) {
		long n0 = g * per, n1 = n0 + per;
		v8 mu = ld8(mean + g * s.c + c0), inv = ld8(inv_std + g * s.c + c0);
		v8d sdy = {0}, sdyx = {0};
		for (long n = n0; n < n1; n++) {
			size_t at = mochi_bnb_at(s, n);
			const float *px = x + at, *pdy = dy + at, *py = y + at;
			float *pdz = dz + at;
			v8d s0 = {0}, s1 = {0}, t0 = {0}, t1 = {0}; // Σdy, Σdy·x̂ over even and odd pixels
			long i = 0;
			for (; i + 2 <= hw; i += 2) {
				v8 d0 = mochi_bnb_dz(pdy, py, pdz, i * blk, relu), d1 = mochi_bnb_dz(pdy, py, pdz, (i + 1) * blk, relu);
				s0 += wide(d0);
				s1 += wide(d1);
				t0 += wide(d0) * wide(mochi_bnb_xhat(px, i * blk, mu, inv));
				t1 += wide(d1) * wide(mochi_bnb_xhat(px, (i + 1) * blk, mu, inv));
			}
			if (i < hw) {
				v8 d = mochi_bnb_dz(pdy, py, pdz, i * blk, relu);
				s0 += wide(d);
				t0 += wide(d) * wide(mochi_bnb_xhat(px, i * blk, mu, inv));
			}
			sdy += s0 + s1;
			sdyx += t0 + t1;
		}
		dg += sdyx;
		db += sdy;
		v8 k, c2, c3;
		for (int l = 0; l < 8; l++) {
			k[l] = (float)((double)gamma[c0 + l] * (double)inv[l]);
			c2[l] = (float)(sdy[l] / m);
			c3[l] = (float)(sdyx[l] / m);
		}
		// dx = γ·invStd·(dz − Σdz/M − x̂·Σ(dz·x̂)/M)
		for (long n = n0; n < n1; n++) {
			size_t at = mochi_bnb_at(s, n);
			const float *px = x + at, *pdz = dzr + at;
			float *pdx = dx + at;
			for (long i = 0; i < hw; i++) {
				v8 t = ld8(pdz + i * blk) - c2;
				v8 u = (ld8(px + i * blk) - mu) * inv;
				u = u * c3;
				st8(pdx + i * blk, k * (t - u));
			}
		}
	}
	for (int l = 0; l < 8; l++) {
		dgamma[c0 + l] = (float)dg[l];
		dbeta[c0 + l] = (float)db[l];
	}
}
