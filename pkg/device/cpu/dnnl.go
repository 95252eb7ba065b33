package cpu

import (
	"fmt"
	"strconv"
	"strings"
)

// ConvMode selects the kernels of the CPU backend's three convolutions.
type ConvMode string

// The convolution modes (config key cpu.conv).
const (
	// ConvAuto is the configuration's default: the fastest kernels this
	// build has that were measured against PyTorch and pass its parity
	// tests: mochi's Winograd F(4×4, 3×3) for the 3×3 stride-1 pad-1
	// convolutions with 64 channels or more (as in ConvWinograd) and
	// oneDNN's direct kernels for the others; without oneDNN (build tag
	// purego) ConvBLAS. It never takes oneDNN's own Winograd kernels
	// (AVX-512 CPUs only), which no measurement of mochi's has run.
	ConvAuto ConvMode = "auto"
	// ConvWinograd runs Winograd kernels for the 3×3 stride-1 pad-1
	// convolutions: oneDNN's where oneDNN has one for the shape (AVX-512
	// CPUs), elsewhere mochi's own F(4×4, 3×3) (winograd.go) where both
	// sides have 64 channels or more (winoMinChannels; with fewer its
	// transforms outweigh the multiplications saved); oneDNN's direct
	// kernels run every other convolution. Winograd's transforms
	// round more than a direct sum: relative error 1e-6–4e-6 against
	// 1e-7–1e-6 on the ResNet's shapes.
	ConvWinograd ConvMode = "winograd"
	// ConvDirect runs oneDNN's direct kernels only: the closest float32
	// numerics of the oneDNN paths.
	ConvDirect ConvMode = "direct"
	// ConvBLAS is im2col + GEMM on the backend's BLAS (OpenBLAS, or gonum
	// with purego): the fallback and the conformance reference.
	ConvBLAS ConvMode = "blas"
)

// ConvModes lists the modes in the order of the documentation.
var ConvModes = []ConvMode{ConvAuto, ConvWinograd, ConvDirect, ConvBLAS}

// winoImpl names mochi's Winograd (winograd.go) where a oneDNN kernel name
// would stand.
const winoImpl = "mochi wino F(4x4,3x3)"

// winoMinChannels is the fewest input and output channels for which
// mochi's Winograd runs: its transforms cost per channel what its GEMMs
// cost per channel pair, so with few channels they outweigh the saved
// multiplications. Against oneDNN's direct kernels at batch 64 on 2
// threads (scripts/wino-bench.sh, medians of 5 interleaved rounds, AVX2):
// the RGB stem 3–4× slower, 16 channels at 32×32 0.7–1.0×, 32 channels at
// 16×16 0.9–1.45× over two runs (break-even: direct, which rounds less,
// keeps it), 64 channels at 8×8 1.4–1.6×.
const winoMinChannels = 64

// ParseConvMode returns the mode named s.
func ParseConvMode(s string) (ConvMode, error) {
	for _, m := range ConvModes {
		if string(m) == s {
			return m, nil
		}
	}
	names := make([]string, len(ConvModes))
	for i, m := range ConvModes {
		names[i] = string(m)
	}
	return "", fmt.Errorf("convolution mode %q: choose one of %s", s, strings.Join(names, ", "))
}

// SetConvMode switches the convolutions to mode m. Without oneDNN (build
// tag purego) only auto and blas exist, and both run im2col + BLAS.
func (b *Backend) SetConvMode(m ConvMode) error {
	if _, err := ParseConvMode(string(m)); err != nil {
		return err
	}
	if !haveOneDNN && m != ConvAuto && m != ConvBLAS {
		return fmt.Errorf("convolution mode %s needs oneDNN, which this binary was built without (build tag purego): "+
			"use auto or blas, or build without -tags purego after installing libdnnl-dev (scripts/setup.sh)", m)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dnnl.mode = m
	return nil
}

// ConvMode returns the convolution mode as set: blas, the reference, unless
// SetConvMode chose another. (A backend starts on the reference, which the
// package's tests compare the other modes against; the configuration's
// default, cpu.conv auto, is set by the commands.)
func (b *Backend) ConvMode() ConvMode {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dnnl.mode == "" {
		return ConvBLAS
	}
	return b.dnnl.mode
}

// Device describes what runs the convolutions (mochi bench prints it
// beside the backend's name): the mode, the kernels it stands for, and the
// library.
func (b *Backend) Device() string {
	m := b.ConvMode()
	name := "convolutions " + string(m)
	if m == ConvBLAS || !haveOneDNN {
		if m == ConvAuto {
			name += ": blas"
		}
		return name + " (im2col + BLAS)"
	}
	switch m {
	case ConvAuto:
		return name + " (3×3 stride 1 from " + strconv.Itoa(winoMinChannels) + " channels: " + winoImpl + "; others: direct, " + OneDNN() + ")"
	case ConvWinograd:
		name += " (3×3 stride 1: oneDNN's Winograd where it has one, else " + winoImpl + ";"
		return name + " others: " + OneDNN() + ")"
	}
	return name + " (" + OneDNN() + ")"
}
