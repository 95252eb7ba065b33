// mochi's Winograd F(4×4, 3×3) convolution for 3×3 stride-1 pad-1 shapes
// (winograd.c; driven by winograd.go). Transform points ξ = 0…35 are the
// 6×6 entries of a tile's transform, row-major. The transforms live in
// three matrices of 36 slices each, slice ξ at ξ·mochi_wino_slice(rows,
// row length):
//   u: ku×C, row k − kbase, column c   the filter's, U = G g Gᵀ (dU in
//      backward weights), for the ku output channels from kbase (all K,
//      or a block of them when a single chunk is multiplied block by block);
//   v: C×ld, row c, column t           an input's, V = Bᵀ d B (t: tile of the chunk);
//   m: K×ld, row k, column t           an output's (M; in backward weights A dY Aᵀ).
// A chunk's tile t is image t / tpi, tile row (t % tpi) / tw, tile column
// (t % tpi) % tw, with tpi = th·tw tiles of 4×4 outputs per image; ld is
// the chunk's tile count rounded up to 8 (the transforms write 8 tiles at
// a time; the GEMMs never read the columns past the last tile).

// mochi_wino_filter writes U for output channels [k0, k1) ⊆ [kbase,
// kbase + ku) of w (K×C×3×3), rotated by 180° when flip is set (backward
// data).
void mochi_wino_filter(const float *w, float *u, int C, int kbase, int ku, int k0, int k1, int flip);

// mochi_wino_filter_adjoint writes dw (K×C×3×3) = Gᵀ dU G for output
// channels [k0, k1) ⊆ [kbase, kbase + ku), and zeroes the part of du it
// read.
void mochi_wino_filter_adjoint(float *du, float *dw, int C, int kbase, int ku, int k0, int k1);

// mochi_wino_input writes V for channels [c0, c1) of the n images x
// (C×H×W each, zero-padded by 1), using pad, mochi_wino_pad_floats(n, H,
// W) floats of scratch.
void mochi_wino_input(const float *x, float *v, float *pad, int n, int C, int H, int W, int c0, int c1, int ld);
size_t mochi_wino_pad_floats(int n, int H, int W);

// mochi_wino_output writes Y = Aᵀ M A into channels [k0, k1) of the n
// images y (K×H×W each), dropping the outputs of partial tiles that fall
// outside the image, and zeroes the part of m it read.
void mochi_wino_output(float *m, float *y, int n, int K, int H, int W, int k0, int k1, int ld);

// mochi_wino_output_adjoint writes m = A dY Aᵀ (the adjoint of
// mochi_wino_output) for channels [k0, k1) of the n images dy.
void mochi_wino_output_adjoint(const float *dy, float *m, int n, int K, int H, int W, int k0, int k1, int ld);

#include <stddef.h>

// mochi_wino_slice is the distance in floats between slices of rows × cols:
// one cache line more than their size. The transforms write (or read) all
// 36 slices at once; at a distance of a multiple of 4 KiB, as rows × cols
// mostly is, the 36 streams would share a few sets of the L1 cache and
// evict each other.
size_t mochi_wino_slice(int rows, int cols);

enum { MOCHI_WINO_FWD = 0, MOCHI_WINO_BWD_DATA = 1, MOCHI_WINO_BWD_WEIGHTS = 2 };

// mochi_wino_gemm runs the products of transform points [x0, x1) for t
// tiles and the ku output channels from kbase whose filter transform u
// holds:
//   forward:          m[ξ] (ku×t, from row kbase) += u[ξ] (ku×C) · v[ξ] (C×t);
//   backward data:    m[ξ] (C×t) += u[ξ]ᵀ (C×ku) · v[ξ] (ku×t, from row kbase), v from dy;
//   backward weights: u[ξ] (ku×C) += m[ξ] (ku×t, from row kbase) · v[ξ]ᵀ, u being dU.
// The sums start from zero or from the earlier blocks' or chunks' sums:
// adding to them spares OpenBLAS a pass that zeroes them first.
void mochi_wino_gemm(int op, float *u, float *v, float *m, int K, int C, int kbase, int ku, int t, int ld, int x0, int x1);
