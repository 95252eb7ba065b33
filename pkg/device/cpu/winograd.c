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
#include "simd.h"


// v4 is half a v8: one 4-wide row of a tile.
typedef float v4 __attribute__((vector_size(16)));

static_inline v4 ld4(const float *p) {
	v4 v;
	memcpy(&v, p, sizeof v);
	return v;
}

static_inline void st4(float *p, v4 v) { memcpy(p, &v, sizeof v); }

// join4 is the v8 of lo and hi; low4 and high4 are its halves.
static_inline v8 join4(v4 lo, v4 hi) { return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7); }
static_inline v4 low4(v8 v) { return __builtin_shufflevector(v, v, 0, 1, 2, 3); }
static_inline v4 high4(v8 v) { return __builtin_shufflevector(v, v, 4, 5, 6, 7); }

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

size_t mochi_wino_slice(int rows, int cols) { return (size_t)rows * cols + 16; }

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

// Lane shuffles (vunpck/vshuf/vperm2f128 on AVX2): unpacklo/unpackhi
// interleave the low/high pairs of each 128-bit half, lo64/hi64 take the
// low/high 64 bits of each half of a and b, lo128/hi128 join the low/high
// halves of a and b.
#define unpacklo(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13)
#define unpackhi(a, b) __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15)
#define lo64(a, b) __builtin_shufflevector(a, b, 0, 1, 8, 9, 4, 5, 12, 13)
#define hi64(a, b) __builtin_shufflevector(a, b, 2, 3, 10, 11, 6, 7, 14, 15)
#define lo128(a, b) __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11)
#define hi128(a, b) __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15)

// transpose8 writes the columns of the 8×8 matrix of rows r[0…7] to c[0…7].
static_inline void transpose8(const v8 *r, v8 *c) {
	v8 t0 = unpacklo(r[0], r[1]), t1 = unpackhi(r[0], r[1]), t2 = unpacklo(r[2], r[3]), t3 = unpackhi(r[2], r[3]);
	v8 t4 = unpacklo(r[4], r[5]), t5 = unpackhi(r[4], r[5]), t6 = unpacklo(r[6], r[7]), t7 = unpackhi(r[6], r[7]);
	v8 s0 = lo64(t0, t2), s1 = hi64(t0, t2), s2 = lo64(t1, t3), s3 = hi64(t1, t3);
	v8 s4 = lo64(t4, t6), s5 = hi64(t4, t6), s6 = lo64(t5, t7), s7 = hi64(t5, t7);
	c[0] = lo128(s0, s4);
	c[1] = lo128(s1, s5);
	c[2] = lo128(s2, s6);
	c[3] = lo128(s3, s7);
	c[4] = hi128(s0, s4);
	c[5] = hi128(s1, s5);
	c[6] = hi128(s2, s6);
	c[7] = hi128(s3, s7);
}

// transpose4x8 turns 4 vectors r[j] (lane l: element j of tile l) into 4
// vectors t[m] holding tile m's 4 elements in their low half and tile
// m + 4's in their high half; applied again it turns them back.
static_inline void transpose4x8(const v8 *r, v8 *t) {
	v8 a = unpacklo(r[0], r[1]), b = unpackhi(r[0], r[1]), c = unpacklo(r[2], r[3]), d = unpackhi(r[2], r[3]);
	t[0] = lo64(a, c);
	t[1] = hi64(a, c);
	t[2] = lo64(b, d);
	t[3] = hi64(b, d);
}

// The input transform reads 6×6 windows from a zero-padded copy of a
// chunk's planes of one channel, so that every window row is one 8-float
// load that stays inside the copy: pad_h × pad_w per image, the plane at
// row 1, column 1.
static_inline int pad_h(int H) { return 4 * ((H + 3) / 4) + 2; }
static_inline int pad_w(int W) { return 4 * ((W + 3) / 4) + 4; }

size_t mochi_wino_pad_floats(int n, int H, int W) { return (size_t)n * pad_h(H) * pad_w(W); }

MOCHI_HOT void mochi_wino_input(const float *x, float *v, float *pad, int n, int C, int H, int W, int c0, int c1,
                                int ld) {
	int th_n = (H + 3) / 4, tw_n = (W + 3) / 4, T = n * th_n * tw_n;
	int ph = pad_h(H), pw = pad_w(W);
	size_t hw = (size_t)H * W, xs = mochi_wino_slice(C, ld), pp = (size_t)ph * pw;
	memset(pad, 0, n * pp * sizeof(float)); // the border and the partial tiles' excess stay 0
	for (int c = c0; c < c1; c++) {
		for (int img = 0; img < n; img++) {
			const float *src = x + ((size_t)img * C + c) * hw;
			for (int i = 0; i < H; i++) {
				float *dst = pad + img * pp + (size_t)(i + 1) * pw + 1;
				const float *s = src + (size_t)i * W;
				int j = 0;
				for (; j + 8 <= W; j += 8) st8(dst + j, ld8(s + j));
				for (; j < W; j++) dst[j] = s[j];
			}
		}
		for (int t0 = 0; t0 < T; t0 += 8) {
			const float *win[8]; // the lanes' windows; past the last tile, the first's
			tpos p = tile_at(t0, th_n, tw_n);
			for (int l = 0; l < 8; l++, tile_next(&p, th_n, tw_n)) {
				win[l] = t0 + l < T ? pad + p.img * pp + (size_t)(4 * p.th) * pw + 4 * p.tw : win[0];
			}
			v8 d[36]; // d[r·6 + q]: the windows' row r, column q
			for (int r = 0; r < 6; r++) {
				v8 rows[8];
				for (int l = 0; l < 8; l++) rows[l] = ld8(win[l] + r * pw);
				v8 cols[8];
				transpose8(rows, cols);
				for (int q = 0; q < 6; q++) d[r * 6 + q] = cols[q];
			}
			v8 a[36]; // Bᵀ d, column by column
			for (int q = 0; q < 6; q++) bt6(d[q], d[6 + q], d[12 + q], d[18 + q], d[24 + q], d[30 + q], &a[q], 6);
			float *out = v + (size_t)c * ld + t0;
			for (int i = 0; i < 6; i++) { // (Bᵀ d) B, row by row
				v8 o[6];
				bt6(a[i * 6], a[i * 6 + 1], a[i * 6 + 2], a[i * 6 + 3], a[i * 6 + 4], a[i * 6 + 5], o, 1);
				for (int j = 0; j < 6; j++) st8(out + (i * 6 + j) * xs, o[j]);
			}
		}
	}
}

MOCHI_HOT void mochi_wino_output(float *m, float *y, int n, int K, int H, int W, int k0, int k1, int ld) {
	int th_n = (H + 3) / 4, tw_n = (W + 3) / 4, T = n * th_n * tw_n;
	size_t hw = (size_t)H * W, xs = mochi_wino_slice(K, ld);
	for (int k = k0; k < k1; k++) {
		float *in = m + (size_t)k * ld;
		for (int t0 = 0; t0 < T; t0 += 8) {
			v8 a[24]; // Aᵀ M, column by column: a[i·6 + q], i < 4
			for (int q = 0; q < 6; q++) {
				float *col = in + t0 + q * xs;
				at6(ld8(col), ld8(col + 6 * xs), ld8(col + 12 * xs), ld8(col + 18 * xs), ld8(col + 24 * xs),
				    ld8(col + 30 * xs), &a[q], 6);
				for (int i = 0; i < 6; i++) st8(col + i * 6 * xs, (v8){0}); // for the next GEMMs to add to
			}
			v8 o[16]; // Aᵀ M A: o[i·4 + j]
			for (int i = 0; i < 4; i++) { // (Aᵀ M) A, row by row
				at6(a[i * 6], a[i * 6 + 1], a[i * 6 + 2], a[i * 6 + 3], a[i * 6 + 4], a[i * 6 + 5], &o[i * 4], 1);
			}
			// Tile l's output row i goes to row[l] + i·stride[l]: into y for
			// a whole tile, else into part[l], copied clipped below.
			float part[8][4][4], *row[8];
			size_t stride[8];
			tpos p = tile_at(t0, th_n, tw_n);
			for (int l = 0; l < 8; l++, tile_next(&p, th_n, tw_n)) {
				int oy = 4 * p.th, ox = 4 * p.tw;
				int whole = t0 + l < T && oy + 4 <= H && ox + 4 <= W;
				row[l] = whole ? y + ((size_t)p.img * K + k) * hw + (size_t)oy * W + ox : part[l][0];
				stride[l] = whole ? (size_t)W : 4;
			}
			for (int i = 0; i < 4; i++) {
				v8 t[4];
				transpose4x8(&o[i * 4], t);
				for (int l = 0; l < 4; l++) {
					st4(row[l] + i * stride[l], low4(t[l]));
					st4(row[l + 4] + i * stride[l + 4], high4(t[l]));
				}
			}
			p = tile_at(t0, th_n, tw_n);
			for (int l = 0; l < 8 && t0 + l < T; l++, tile_next(&p, th_n, tw_n)) {
				if (row[l] != part[l][0]) continue;
				int oy = 4 * p.th, ox = 4 * p.tw;
				int nrows = H - oy < 4 ? H - oy : 4, cols = W - ox < 4 ? W - ox : 4;
				float *dst = y + ((size_t)p.img * K + k) * hw + (size_t)oy * W + ox;
				for (int i = 0; i < nrows; i++) {
					for (int j = 0; j < cols; j++) dst[(size_t)i * W + j] = part[l][i][j];
				}
			}
		}
	}
}

MOCHI_HOT void mochi_wino_output_adjoint(const float *dy, float *m, int n, int K, int H, int W, int k0, int k1, int ld) {
	int th_n = (H + 3) / 4, tw_n = (W + 3) / 4, T = n * th_n * tw_n;
	size_t hw = (size_t)H * W, xs = mochi_wino_slice(K, ld);
	for (int k = k0; k < k1; k++) {
		for (int t0 = 0; t0 < T; t0 += 8) {
			// Tile l's row i of dy is at row[l] + i·stride[l]: in dy for a
			// whole tile, else in part[l], a zero-filled copy.
			float part[8][4][4];
			const float *row[8];
			size_t stride[8];
			tpos p = tile_at(t0, th_n, tw_n);
			for (int l = 0; l < 8; l++, tile_next(&p, th_n, tw_n)) {
				int oy = 4 * p.th, ox = 4 * p.tw;
				const float *src = dy + ((size_t)p.img * K + k) * hw + (size_t)oy * W + ox;
				if (t0 + l < T && oy + 4 <= H && ox + 4 <= W) {
					row[l] = src;
					stride[l] = W;
					continue;
				}
				memset(part[l], 0, sizeof part[l]);
				int nrows = t0 + l >= T ? 0 : H - oy < 4 ? H - oy : 4, cols = W - ox < 4 ? W - ox : 4;
				for (int i = 0; i < nrows; i++) {
					for (int j = 0; j < cols; j++) part[l][i][j] = src[(size_t)i * W + j];
				}
				row[l] = part[l][0];
				stride[l] = 4;
			}
			v8 d[16]; // d[i·4 + j]: row i, column j of the lanes' dy
			for (int i = 0; i < 4; i++) {
				v8 t[4];
				for (int l = 0; l < 4; l++) t[l] = join4(ld4(row[l] + i * stride[l]), ld4(row[l + 4] + i * stride[l + 4]));
				transpose4x8(t, &d[i * 4]);
			}
			v8 a[24]; // A dY, column by column: a[i·4 + q], i < 6
			for (int q = 0; q < 4; q++) a6(d[q], d[4 + q], d[8 + q], d[12 + q], &a[q], 4);
			float *out = m + (size_t)k * ld + t0;
			for (int i = 0; i < 6; i++) { // (A dY) Aᵀ, row by row
				v8 o[6];
				a6(a[i * 4], a[i * 4 + 1], a[i * 4 + 2], a[i * 4 + 3], o, 1);
				for (int j = 0; j < 6; j++) st8(out + (i * 6 + j) * xs, o[j]);
			}
		}
	}
}

MOCHI_HOT void mochi_wino_filter(const float *w, float *u, int C, int kbase, int ku, int k0, int k1, int flip) {
	size_t xs = mochi_wino_slice(ku, C);
	for (int k = k0; k < k1; k++) {
		for (int c0 = 0; c0 < C; c0 += 8) {
			int lanes = C - c0 < 8 ? C - c0 : 8;
			// g[i]: tap i (row-major 3×3) of the lanes' filters
			const float *src = w + ((size_t)k * C + c0) * 9;
			v8 g[9];
			if (lanes == 8) {
				v8 rows[8];
				float last[8];
				for (int l = 0; l < 8; l++) {
					rows[l] = ld8(src + l * 9);
					last[l] = src[l * 9 + 8];
				}
				transpose8(rows, g);
				g[8] = ld8(last);
			} else {
				float t[9][8] __attribute__((aligned(32))) = {{0}};
				for (int l = 0; l < lanes; l++) {
					for (int i = 0; i < 9; i++) t[i][l] = src[l * 9 + i];
				}
				for (int i = 0; i < 9; i++) g[i] = ld8(t[i]);
			}
			if (flip) { // rotate by 180°: tap i ↔ tap 8 − i
				for (int i = 0; i < 4; i++) {
					v8 tmp = g[i];
					g[i] = g[8 - i];
					g[8 - i] = tmp;
				}
			}
			v8 a[18]; // G g, column by column: a[i·3 + s], i < 6
			for (int s = 0; s < 3; s++) g6(g[s], g[3 + s], g[6 + s], &a[s], 3);
			float *out = u + (size_t)(k - kbase) * C + c0;
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

MOCHI_HOT void mochi_wino_filter_adjoint(float *du, float *dw, int C, int kbase, int ku, int k0, int k1) {
	size_t xs = mochi_wino_slice(ku, C);
	for (int k = k0; k < k1; k++) {
		for (int c0 = 0; c0 < C; c0 += 8) {
			int lanes = C - c0 < 8 ? C - c0 : 8;
			float *in = du + (size_t)(k - kbase) * C + c0;
			v8 z[36];
			for (int i = 0; i < 36; i++) { // read, and zero for the next GEMMs to add to
				if (lanes == 8) {
					z[i] = ld8(in + i * xs);
					st8(in + i * xs, (v8){0});
					continue;
				}
				float tmp[8] __attribute__((aligned(32))) = {0};
				memcpy(tmp, in + i * xs, lanes * sizeof(float));
				memset(in + i * xs, 0, lanes * sizeof(float));
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

void mochi_wino_gemm(int op, float *u, float *v, float *m, int K, int C, int kbase, int ku, int t, int ld, int x0, int x1) {
	size_t kc = mochi_wino_slice(ku, C), cl = mochi_wino_slice(C, ld), kl = mochi_wino_slice(K, ld);
	size_t kb = (size_t)kbase * ld; // row kbase of an m or v of K rows
	for (int x = x0; x < x1; x++) {
		switch (op) {
		case MOCHI_WINO_FWD:
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ku, t, C, 1, u + x * kc, C, v + x * cl, ld, 1,
			            m + x * kl + kb, ld);
			break;
		case MOCHI_WINO_BWD_DATA:
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, t, ku, 1, u + x * kc, C, v + x * kl + kb, ld, 1,
			            m + x * cl, ld);
			break;
		default:
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ku, C, t, 1, m + x * kl + kb, ld, v + x * cl, ld, 1,
			            u + x * kc, C);
		}
	}
}
