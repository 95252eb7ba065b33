// Package registry opens a compute backend by name, so that the rest of
// mochi picks a device with a flag and imports no device package itself.
//
// # Overview
//
// "cpu" (package cpu, all cores) is always available. "cuda" (package cuda,
// GPU 0) registers itself from a file of this package behind the build tag
// gpu, so only the GPU binary (scripts/build-gpu.sh, bin/mochi-gpu) links
// gorgonia.org/cu; a CPU binary asked for "cuda" returns an error that says
// how to get that binary.
//
// # Invariants
//
// Registration happens in init functions only; Open and Available may be
// called from any goroutine afterwards.
package registry
