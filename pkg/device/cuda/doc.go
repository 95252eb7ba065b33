// Package cuda is the NVIDIA GPU implementation of device.Backend on
// gorgonia.org/cu (driver API, module loading) and gorgonia.org/cu/blas
// (cuBLAS SGEMM), with the project's own kernels in kernels/*.cu compiled to
// PTX for compute_80 and embedded in the binary.
//
// # Build
//
// The backend itself (New, Backend) is compiled only with the build tag gpu
// — never Gorgonia's tag cuda, whose packages do not build on current NVIDIA
// software (docs/GPU.md, "CUDA build facts"). A binary that links cu exits at start on a
// machine without a GPU, so the GPU code is compiled and vetted in CI but
// tested only on a GPU machine (scripts/gpu-check.sh). The host-side logic —
// launch configurations, kernel argument packing, the memory pool, buffer
// and shape checks, the PTX module table — is in untagged files and is
// unit-tested everywhere.
//
// # Execution model
//
// Every CUDA call runs on one goroutine locked to one OS thread, which made
// the context current and created the cuBLAS handle (cuBLAS must be created
// on the thread that holds the context). Backend methods send closures to
// it, so the backend may be called from any goroutine. Kernels are queued
// without waiting; Alloc, Upload, Download and Sync wait for their result.
// Everything runs on the default stream, so work executes in call order and
// pool memory freed by one call can be reused by the next.
//
// # Invariants
//
// Every kernel parameter is 8 bytes wide (pointers, long long, double):
// cu's Function.Launch copies 8 bytes per argument. Device memory comes from
// cuMemAlloc through a size-class pool and is never managed memory. The
// first failure (bad shape, failed launch, out of memory) is kept and
// returned by Sync, like a CUDA stream's sticky error.
package cuda
