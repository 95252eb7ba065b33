// logits.cu: the small kernels that assemble MoCo's logit matrix
// [l_pos | l_neg | extra] and take its gradient apart (pkg/hardneg's
// InfoNCE ops), and the class oracle's mask.
#include "common.cuh"

// scale_rows_f32: out[r,c] = g[r]·x[r,c] for x rows×cols; out may be x.
// With rows = 1 it scales a buffer by a scalar held in device memory.
extern "C" __global__ void scale_rows_f32(const float* g, const float* x, float* out, i64 rows, i64 cols) {
	GRID_STRIDE(i, rows * cols) { out[i] = g[i / cols] * x[i]; }
}

// copy_cols_f32: dst[r, dst_off+c] = src[r, src_off+c] for r < rows, c < n,
// with src rows×src_cols and dst rows×dst_cols.
extern "C" __global__ void copy_cols_f32(const float* src, float* dst, i64 rows, i64 src_cols, i64 src_off,
                                         i64 dst_cols, i64 dst_off, i64 n) {
	GRID_STRIDE(i, rows * n) {
		i64 r = i / n, c = i % n;
		dst[r * dst_cols + dst_off + c] = src[r * src_cols + src_off + c];
	}
}

// mask_equal_f32: x[r,c] = value where row_labels[r] ≥ 0 and
// row_labels[r] == col_labels[c] (float-coded integer labels; negative is
// unknown and never masked). value may be −∞.
extern "C" __global__ void mask_equal_f32(const float* row_labels, const float* col_labels, float* x, i64 rows,
                                          i64 cols, double value) {
	float v = (float)value;
	GRID_STRIDE(i, rows * cols) {
		float l = row_labels[i / cols];
		if (l >= 0.0f && l == col_labels[i % cols]) x[i] = v;
	}
}
