//go:build !gpu || !cgo

package nccl

// system is the NCCL of this build: none without the GPU backend (tag gpu)
// and cgo, which loading libnccl.so.2 needs.
func system() library { return nil }
