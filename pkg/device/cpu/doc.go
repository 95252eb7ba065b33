// Package cpu is the CPU implementation of device.Backend, the ground truth
// every other backend is tested against (package device/devicetest).
//
// # Overview
//
// Buffers are plain Go slices: a device.Buffer made here is a []float32 or
// []int32, and View is a subslice. Code that already holds host slices (the
// Gorgonia ops' Do methods) passes them in with Wrap and WrapInt32 and reads
// results with Float32s and Int32s, without copying.
//
// GEMM goes through OpenBLAS (gonum.org/v1/netlib, cgo, linked with
// -lopenblas); the build tag purego selects gonum's pure-Go BLAS instead, for
// machines without OpenBLAS.
//
// Convolutions run on oneDNN (cgo, -ldnnl; dnnl_conv.go) in modes auto,
// winograd and direct (a new Backend starts on blas, the reference; the
// configuration's default is auto) (SetConvMode, config key cpu.conv):
// each part of the batch gets its own primitive per shape, created on
// first use and cached, whose operands are reordered between NCHW/OIHW and
// oneDNN's blocked layouts inside the call, into a per-part arena that
// every shape reuses — unless the shape's activations are already in the
// primitive's channel blocks (device.Blocked: ConvBlocks names them, the
// batch norms take them in C, batchnorm_blocked.c, and max pooling in Go,
// so a compiled plan keeps activations blocked between oneDNN's
// convolutions). In mode auto, the 3×3 stride-1 pad-1 convolutions
// with 64 channels or more run mochi's own Winograd F(4×4, 3×3) instead;
// in mode winograd, those that oneDNN has no Winograd kernel for (any CPU
// without AVX-512) do (winograd.go, winograd.c): per chunk of images,
// transforms of the input and output split across the workers by channel
// and 36 OpenBLAS GEMMs split by transform point, in buffers reused by
// every later call.
// In mode blas, and always in the purego build, they use im2col/col2im into
// per-thread workspaces that grow on demand and are reused across calls;
// images with small outputs are placed side by side so that each GEMM has
// at least convCols columns, and a single image of a 1×1 stride-1
// convolution is multiplied directly, without im2col.
//
// # Threads
//
// A Backend owns a fixed set of worker goroutines and splits each kernel's
// work into contiguous ranges (images for convolutions, channels for batch
// norm, planes for pooling, rows for the row kernels, blocks for elementwise
// kernels). OpenBLAS itself is set to one thread, so each worker runs its own
// single-threaded GEMM and the machine is never oversubscribed. (The purego
// build's gonum BLAS may start goroutines of its own for large products.)
// oneDNN's OpenMP runtime likewise gets one thread on every call (the
// calling thread's team size is set to 1), so it starts no thread team
// whose idle threads would spin beside the workers.
//
// # Invariants
//
// Kernels on one Backend are serialised by a mutex: workspaces and worker
// state are shared, so concurrent callers are safe but do not overlap. A
// kernel's result does not depend on the thread count, except Gemm and the
// convolutions, whose products are cut into different GEMMs or oneDNN
// primitives (they agree within float32 rounding); mochi's Winograd's
// chunks and GEMMs do not depend on it. After the workspaces
// have grown and each convolution shape has its primitives, kernels
// allocate nothing.
//
// # Errors
//
// A buffer shorter than its shape needs is recorded as an error and the
// kernel does nothing; Sync returns the first such error. Passing a buffer of
// another backend or the wrong element type panics, as a programming error.
package cpu
