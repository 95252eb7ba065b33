//go:build !purego

// mochi's Winograd F(4×4, 3×3): the transforms, 8 tiles (or 8 channels of
// a filter) at a time in 8-lane vectors, and the 36 GEMMs per chunk on
// OpenBLAS. The matrices, for the interpolation points 0, ±1, ±2, ∞:
//
//	     [4  0 -5  0  1  0]        [ 1/4    0     0  ]
//	     [0 -4 -4  1  1  0]        [-1/6  -1/6  -1/6 ]        [1 1  1 1  1 0]
//	Bᵀ = [0  4 -4 -1  1  0]    G = [-1/6   1/6  -1/6 ]   Aᵀ = [0 1 -1 2 -2 0]
//	     [0 -2 -1  2  1  0]        [ 1/24  1/12  1/6 ]        [0 1  1 4  4 0]
//	     [0  2 -1 -2  1  0]        [ 1/24 -1/12  1/6 ]        [0 1 -1 8 -8 1]
//	     [0  4  0 -5  0  1]        [  0     0     1  ]
//
// so that a 4×4 output tile is Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A for the 6×6
// input tile d around it and the 3×3 filter g. The plain-Go float64
// reference of the tests checks every transform below through the three
// convolutions.

#include <stddef.h>
#include <string.h>
#include <cblas.h>
#include "winograd.h"

// The hot loops are compiled twice, for AVX2 and for the base x86-64 ISA;
// the loader picks the first the CPU runs (GCC's ifunc dispatch).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MOCHI_HOT __attribute__((target_clones("avx2", "default")))
#else
#define MOCHI_HOT
#endif

// v8 is 8 lanes: 8 tiles of one channel, or 8 channels of one filter.
// The helpers taking and returning v8 are always inlined into the cloned
// loops, so no v8 crosses a call and GCC's ABI notes (silenced by
// -Wno-psabi in winograd.go) do not apply.
typedef float v8 __attribute__((vector_size(32)));
#define static_inline static inline __attribute__((always_inline))

static_inline v8 ld8(const float *p) {
	v8 v;
	memcpy(&v, p, sizeof v);
	return v;
}

static_inline void st8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

// bt6 applies Bᵀ to z0…z5, writing o[0], o[s], …, o[5s].
static_inline void bt6(v8 z0, v8 z1, v8 z2, v8 z3, v8 z4, v8 z5, v8 *o, int s) {
	v8 t1 = z4 - 4.0f * z2, t2 = z3 - 4.0f * z1;
	v8 t3 = z4 - z2, t4 = 2.0f * (z3 - z1);
	o[0] = 4.0f * z0 - 5.0f * z2 + z4;
	o[s] = t1 + t2;
	o[2 * s] = t1 - t2;
	o[3 * s] = t3 + t4;
	o[4 * s] = t3 - t4;
	o[5 * s] = 4.0f * z1 - 5.0f * z3 + z5;
}

// at6 applies Aᵀ to m0…m5, writing o[0], o[s], o[2s], o[3s].
static_inline void at6(v8 m0, v8 m1, v8 m2, v8 m3, v8 m4, v8 m5, v8 *o, int s) {
	v8 a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4;
	o[0] = m0 + a + c;
	o[s] = b + 2.0f * d;
	o[2 * s] = a + 4.0f * c;
	o[3 * s] = b + 8.0f * d + m5;
}

// a6 applies A (at6's adjoint) to y0…y3, writing o[0], o[s], …, o[5s].
static_inline void a6(v8 y0, v8 y1, v8 y2, v8 y3, v8 *o, int s) {
	v8 e = y0 + y2, f = y1 + y3, g = y0 + 4.0f * y2, h = 2.0f * y1 + 8.0f * y3;
	o[0] = y0;
	o[s] = e + f;
	o[2 * s] = e - f;
	o[3 * s] = g + h;
	o[4 * s] = g - h;
	o[5 * s] = y3;
}

// g6 applies G to g0…g2, writing o[0], o[s], …, o[5s].
static_inline void g6(v8 g0, v8 g1, v8 g2, v8 *o, int s) {
	v8 e = g0 + g2, f = g0 * (1.0f / 24) + g2 * (1.0f / 6), h = g1 * (1.0f / 12);
	o[0] = g0 * 0.25f;
	o[s] = (e + g1) * (-1.0f / 6);
	o[2 * s] = (e - g1) * (-1.0f / 6);
	o[3 * s] = f + h;
	o[4 * s] = f - h;
	o[5 * s] = g2;
}

// gt6 applies Gᵀ (g6's adjoint) to z0…z5, writing o[0], o[s], o[2s].
static_inline void gt6(v8 z0, v8 z1, v8 z2, v8 z3, v8 z4, v8 z5, v8 *o, int s) {
	v8 p = z1 + z2, q = z3 + z4;
	o[0] = z0 * 0.25f - p * (1.0f / 6) + q * (1.0f / 24);
	o[s] = (z2 - z1) * (1.0f / 6) + (z3 - z4) * (1.0f / 12);
	o[2 * s] = (q - p) * (1.0f / 6) + z5;
}

// tpos walks the tiles of a chunk: image, tile row, tile column.
typedef struct {
	int img, th, tw;
} tpos;

static inline tpos tile_at(int t, int th_n, int tw_n) {
	int r = t % (th_n * tw_n);
	return (tpos){t / (th_n * tw_n), r / tw_n, r % tw_n};
}

static inline void tile_next(tpos *p, int th_n, int tw_n) {
	if (++p->tw == tw_n) {
		p->tw = 0;
		if (++p->th == th_n) {
			p->th = 0;
			p->img++;
		}
	}
}

// gather6 copies the 6×6 window of plane p (H×W) at rows oy…oy+5, columns
// ox…ox+5 into d[(r·6 + q)·8] (one lane of a block), zeros outside.
static inline void gather6(const float *p, int H, int W, int oy, int ox, float *d) {
	int qlo = ox < 0 ? -ox : 0, qhi = W - ox < 6 ? W - ox : 6;
	for (int r = 0; r < 6; r++) {
		float *dr = d + r * 6 * 8;
		int iy = oy + r;
		if (iy < 0 || iy >= H) {
			for (int q = 0; q < 6; q++) dr[q * 8] = 0;
			continue;
		}
		const float *s = p + (ptrdiff_t)iy * W + ox;
		if (qlo == 0 && qhi == 6) {
			for (int q = 0; q < 6; q++) dr[q * 8] = s[q];
			continue;
		}
		for (int q = 0; q < 6; q++) dr[q * 8] = q >= qlo && q < qhi ? s[q] : 0.0f;
	}
}

MOCHI_HOT void mochi_wino_input(const float *x, float *v, int n, int C, int H, int W, int c0, int c1, int ld) {
	int th_n = (H + 3) / 4, tw_n = (W + 3) / 4, T = n * th_n * tw_n;
	size_t hw = (size_t)H * W, xs = (size_t)C * ld; // xs: the stride of ξ in v
	for (int c = c0; c < c1; c++) {
		for (int t0 = 0; t0 < T; t0 += 8) {
			float d[36][8] __attribute__((aligned(32)));
			tpos p = tile_at(t0, th_n, tw_n);
			for (int l = 0; l < 8; l++, tile_next(&p, th_n, tw_n)) {
				if (t0 + l >= T) {
					for (int i = 0; i < 36; i++) d[i][l] = 0;
					continue;
				}
				gather6(x + ((size_t)p.img * C + c) * hw, H, W, 4 * p.th - 1, 4 * p.tw - 1, &d[0][l]);
			}
			v8 a[36]; // Bᵀ d, column by column
			for (int q = 0; q < 6; q++) {
				bt6(ld8(d[q]), ld8(d[6 + q]), ld8(d[12 + q]), ld8(d[18 + q]), ld8(d[24 + q]), ld8(d[30 + q]), &a[q], 6);
			}
			float *out = v + (size_t)c * ld + t0;
			for (int i = 0; i < 6; i++) { // (Bᵀ d) B, row by row
				v8 o[6];
				bt6(a[i * 6], a[i * 6 + 1], a[i * 6 + 2], a[i * 6 + 3], a[i * 6 + 4], a[i * 6 + 5], o, 1);
				for (int j = 0; j < 6; j++) st8(out + (i * 6 + j) * xs, o[j]);
			}
		}
	}
}

MOCHI_HOT void mochi_wino_output(const float *m, float *y, int n, int K, int H, int W, int k0, int k1, int ld) {
	int th_n = (H + 3) / 4, tw_n = (W + 3) / 4, T = n * th_n * tw_n;
	size_t hw = (size_t)H * W, xs = (size_t)K * ld;
	for (int k = k0; k < k1; k++) {
		const float *in = m + (size_t)k * ld;
		for (int t0 = 0; t0 < T; t0 += 8) {
			v8 a[24]; // Aᵀ M, column by column: a[i·6 + q], i < 4
			for (int q = 0; q < 6; q++) {
				const float *col = in + t0 + q * xs;
				at6(ld8(col), ld8(col + 6 * xs), ld8(col + 12 * xs), ld8(col + 18 * xs), ld8(col + 24 * xs),
				    ld8(col + 30 * xs), &a[q], 6);
			}
			float o[16][8] __attribute__((aligned(32)));
			for (int i = 0; i < 4; i++) { // (Aᵀ M) A, row by row
				v8 r[4];
				at6(a[i * 6], a[i * 6 + 1], a[i * 6 + 2], a[i * 6 + 3], a[i * 6 + 4], a[i * 6 + 5], r, 1);
				for (int j = 0; j < 4; j++) st8(o[i * 4 + j], r[j]);
			}
			tpos p = tile_at(t0, th_n, tw_n);
			for (int l = 0; l < 8 && t0 + l < T; l++, tile_next(&p, th_n, tw_n)) {
				int oy = 4 * p.th, ox = 4 * p.tw;
				int rows = H - oy < 4 ? H - oy : 4, cols = W - ox < 4 ? W - ox : 4;
				float *dst = y + ((size_t)p.img * K + k) * hw + (size_t)oy * W + ox;
				for (int i = 0; i < rows; i++) {
					for (int j = 0; j < cols; j++) dst[i * W + j] = o[i * 4 + j][l];
				}
			}
		}
	}
}

MOCHI_HOT void mochi_wino_output_adjoint(const float *dy, float *m, int n, int K, int H, int W, int k0, int k1, int ld) {
	int th_n = (H + 3) / 4, tw_n = (W + 3) / 4, T = n * th_n * tw_n;
	size_t hw = (size_t)H * W, xs = (size_t)K * ld;
	for (int k = k0; k < k1; k++) {
		for (int t0 = 0; t0 < T; t0 += 8) {
			float d[16][8] __attribute__((aligned(32)));
			memset(d, 0, sizeof d);
			tpos p = tile_at(t0, th_n, tw_n);
			for (int l = 0; l < 8 && t0 + l < T; l++, tile_next(&p, th_n, tw_n)) {
				int oy = 4 * p.th, ox = 4 * p.tw;
				int rows = H - oy < 4 ? H - oy : 4, cols = W - ox < 4 ? W - ox : 4;
				const float *src = dy + ((size_t)p.img * K + k) * hw + (size_t)oy * W + ox;
				for (int i = 0; i < rows; i++) {
					for (int j = 0; j < cols; j++) d[i * 4 + j][l] = src[i * W + j];
				}
			}
			v8 a[24]; // A dY, column by column: a[i·4 + q], i < 6
			for (int q = 0; q < 4; q++) a6(ld8(d[q]), ld8(d[4 + q]), ld8(d[8 + q]), ld8(d[12 + q]), &a[q], 4);
			float *out = m + (size_t)k * ld + t0;
			for (int i = 0; i < 6; i++) { // (A dY) Aᵀ, row by row
				v8 o[6];
				a6(a[i * 4], a[i * 4 + 1], a[i * 4 + 2], a[i * 4 + 3], o, 1);
				for (int j = 0; j < 6; j++) st8(out + (i * 6 + j) * xs, o[j]);
			}
		}
	}
}

MOCHI_HOT void mochi_wino_filter(const float *w, float *u, int K, int C, int k0, int k1, int flip) {
	size_t xs = (size_t)K * C;
	for (int k = k0; k < k1; k++) {
		for (int c0 = 0; c0 < C; c0 += 8) {
			int lanes = C - c0 < 8 ? C - c0 : 8;
			float g[9][8] __attribute__((aligned(32)));
			memset(g, 0, sizeof g);
			for (int l = 0; l < lanes; l++) {
				const float *src = w + ((size_t)k * C + c0 + l) * 9;
				for (int i = 0; i < 9; i++) g[i][l] = src[flip ? 8 - i : i];
			}
			v8 a[18]; // G g, column by column: a[i·3 + s], i < 6
			for (int s = 0; s < 3; s++) g6(ld8(g[s]), ld8(g[3 + s]), ld8(g[6 + s]), &a[s], 3);
			float *out = u + (size_t)k * C + c0;
			for (int i = 0; i < 6; i++) { // (G g) Gᵀ, row by row
				v8 o[6];
				g6(a[i * 3], a[i * 3 + 1], a[i * 3 + 2], o, 1);
				for (int j = 0; j < 6; j++) {
					if (lanes == 8) {
						st8(out + (i * 6 + j) * xs, o[j]);
						continue;
					}
					float tmp[8] __attribute__((aligned(32)));
					st8(tmp, o[j]);
					memcpy(out + (i * 6 + j) * xs, tmp, lanes * sizeof(float));
				}
			}
		}
	}
}

MOCHI_HOT void mochi_wino_filter_adjoint(const float *du, float *dw, int K, int C, int k0, int k1) {
	size_t xs = (size_t)K * C;
	for (int k = k0; k < k1; k++) {
		for (int c0 = 0; c0 < C; c0 += 8) {
			int lanes = C - c0 < 8 ? C - c0 : 8;
			const float *in = du + (size_t)k * C + c0;
			v8 z[36];
			for (int i = 0; i < 36; i++) {
				if (lanes == 8) {
					z[i] = ld8(in + i * xs);
					continue;
				}
				float tmp[8] __attribute__((aligned(32))) = {0};
				memcpy(tmp, in + i * xs, lanes * sizeof(float));
				z[i] = ld8(tmp);
			}
			v8 a[18]; // Gᵀ dU, column by column: a[r·6 + b], r < 3
			for (int b = 0; b < 6; b++) gt6(z[b], z[6 + b], z[12 + b], z[18 + b], z[24 + b], z[30 + b], &a[b], 6);
			float o[9][8] __attribute__((aligned(32)));
			for (int r = 0; r < 3; r++) { // (Gᵀ dU) G, row by row
				v8 g[3];
				gt6(a[r * 6], a[r * 6 + 1], a[r * 6 + 2], a[r * 6 + 3], a[r * 6 + 4], a[r * 6 + 5], g, 1);
				for (int s = 0; s < 3; s++) st8(o[r * 3 + s], g[s]);
			}
			for (int l = 0; l < lanes; l++) {
				float *dst = dw + ((size_t)k * C + c0 + l) * 9;
				for (int i = 0; i < 9; i++) dst[i] = o[i][l];
			}
		}
	}
}

void mochi_wino_gemm(int op, float *u, float *v, float *m, int K, int C, int t, int ld, int x0, int x1, float beta) {
	size_t kc = (size_t)K * C, cl = (size_t)C * ld, kl = (size_t)K * ld;
	for (int x = x0; x < x1; x++) {
		switch (op) {
		case MOCHI_WINO_FWD:
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, t, C, 1, u + x * kc, C, v + x * cl, ld, 0,
			            m + x * kl, ld);
			break;
		case MOCHI_WINO_BWD_DATA:
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, t, K, 1, u + x * kc, C, v + x * kl, ld, 0,
			            m + x * cl, ld);
			break;
		default:
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, C, t, 1, m + x * kl, ld, v + x * cl, ld, beta,
			            u + x * kc, C);
		}
	}
}
