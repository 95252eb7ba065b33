package cuda

import (
	"embed"
	"fmt"
	"strings"
)

// ptxFiles holds the PTX that scripts/build-gpu.sh compiles from
// kernels/*.cu (nvcc with the flags in kernels/nvcc.flags). It is
// committed, so building the GPU binary needs no nvcc; the driver
// JIT-compiles it for the GPU at load. Each .ptx starts with a
// "// mochi-source-sha256:" line naming the hash of its flags and sources,
// which TestPTXIsFresh checks.
//
//go:embed kernels/*.ptx
var ptxFiles embed.FS

// kernelID indexes the kernel table.
type kernelID int

// The kernels, one constant per extern "C" __global__ function.
const (
	kFill kernelID = iota
	kScale
	kAxpy
	kAdd
	kReLU
	kReLUBackward
	kAddRowVector
	kGlobalAvgPoolBackward
	kSGDStep
	kMomentumUpdate
	kSum
	kSumRows
	kRowDot
	kL2Normalize
	kL2NormalizeBackward
	kGlobalAvgPool
	kSoftmaxCE
	kSoftmaxCEBackward
	kMaxPool
	kMaxPoolBackward
	kIm2col
	kCol2im
	kKPToNKP
	kNKPToKP
	kSumSlices
	kBNTrain
	kBNInfer
	kBNBackward
	kTopN
	kMixLogits
	kMixLogitsBackward
	kScaleRows
	kCopyCols
	kMaskEqual
	numKernels
)

// kernel names a kernel's module (kernels/<module>.cu) and PTX entry.
type kernel struct {
	module, name string
}

// kernelTable maps every kernelID to its entry.
var kernelTable = [numKernels]kernel{
	kFill:                  {"elementwise", "fill_f32"},
	kScale:                 {"elementwise", "scale_f32"},
	kAxpy:                  {"elementwise", "axpy_f32"},
	kAdd:                   {"elementwise", "add_f32"},
	kReLU:                  {"elementwise", "relu_f32"},
	kReLUBackward:          {"elementwise", "relu_backward_f32"},
	kAddRowVector:          {"elementwise", "add_row_vector_f32"},
	kGlobalAvgPoolBackward: {"elementwise", "global_avg_pool_backward_f32"},
	kSGDStep:               {"elementwise", "sgd_step_f32"},
	kMomentumUpdate:        {"elementwise", "momentum_update_f32"},
	kSum:                   {"rows", "sum_f32"},
	kSumRows:               {"rows", "sum_rows_f32"},
	kRowDot:                {"rows", "row_dot_f32"},
	kL2Normalize:           {"rows", "l2_normalize_f32"},
	kL2NormalizeBackward:   {"rows", "l2_normalize_backward_f32"},
	kGlobalAvgPool:         {"rows", "global_avg_pool_f32"},
	kSoftmaxCE:             {"loss", "softmax_ce_f32"},
	kSoftmaxCEBackward:     {"loss", "softmax_ce_backward_f32"},
	kMaxPool:               {"pool", "max_pool_f32"},
	kMaxPoolBackward:       {"pool", "max_pool_backward_f32"},
	kIm2col:                {"conv", "im2col_f32"},
	kCol2im:                {"conv", "col2im_f32"},
	kKPToNKP:               {"conv", "kp_to_nkp_f32"},
	kNKPToKP:               {"conv", "nkp_to_kp_f32"},
	kSumSlices:             {"conv", "sum_slices_f32"},
	kBNTrain:               {"bn", "bn_train_f32"},
	kBNInfer:               {"bn", "bn_infer_f32"},
	kBNBackward:            {"bn", "bn_backward_f32"},
	kTopN:                  {"topn", "topn_f32"},
	kMixLogits:             {"mix", "mix_logits_f32"},
	kMixLogitsBackward:     {"mix", "mix_logits_backward_f32"},
	kScaleRows:             {"logits", "scale_rows_f32"},
	kCopyCols:              {"logits", "copy_cols_f32"},
	kMaskEqual:             {"logits", "mask_equal_f32"},
}

// kernelParams is the number of 8-byte parameters of every kernel, checked
// at each launch and against the PTX by the unit tests.
var kernelParams = [numKernels]int{
	kFill: 3, kScale: 3, kAxpy: 4, kAdd: 4, kReLU: 3, kReLUBackward: 4,
	kAddRowVector: 4, kGlobalAvgPoolBackward: 4, kSGDStep: 8, kMomentumUpdate: 4,
	kSum: 3, kSumRows: 4, kRowDot: 5, kL2Normalize: 4, kL2NormalizeBackward: 6,
	kGlobalAvgPool: 4, kSoftmaxCE: 7, kSoftmaxCEBackward: 7,
	kMaxPool: 10, kMaxPoolBackward: 11,
	kIm2col: 12, kCol2im: 12, kKPToNKP: 5, kNKPToKP: 5, kSumSlices: 5,
	kBNTrain: 14, kBNInfer: 10, kBNBackward: 12,
	kTopN: 5, kMixLogits: 11, kMixLogitsBackward: 13,
	kScaleRows: 5, kCopyCols: 8, kMaskEqual: 6,
}

// modules lists the PTX modules in load order.
func modules() []string {
	var names []string
	seen := map[string]bool{}
	for _, k := range kernelTable {
		if !seen[k.module] {
			seen[k.module] = true
			names = append(names, k.module)
		}
	}
	return names
}

// modulePTX returns the embedded PTX of a module.
func modulePTX(module string) (string, error) {
	b, err := ptxFiles.ReadFile("kernels/" + module + ".ptx")
	if err != nil {
		return "", fmt.Errorf("embedded PTX of module %q: %w (run scripts/build-gpu.sh)", module, err)
	}
	return string(b), nil
}

// ptxEntryParams returns the parameter widths (in bytes) of each .entry of
// a PTX text, by entry name.
func ptxEntryParams(ptx string) map[string][]int {
	entries := map[string][]int{}
	var cur string
	for _, line := range strings.Split(ptx, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == ".entry":
			cur = strings.TrimSuffix(f[2], "(")
			entries[cur] = []int{}
		case cur != "" && len(f) >= 2 && f[0] == ".param":
			width := 0
			switch strings.TrimPrefix(f[1], ".") {
			case "u64", "s64", "b64", "f64":
				width = 8
			case "u32", "s32", "b32", "f32":
				width = 4
			case "u16", "s16", "b16":
				width = 2
			case "u8", "s8", "b8":
				width = 1
			}
			entries[cur] = append(entries[cur], width)
		case cur != "" && len(f) > 0 && f[0] == ")":
			cur = ""
		}
	}
	return entries
}
