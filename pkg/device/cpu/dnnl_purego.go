//go:build purego

package cpu

import "github.com/mochi-ssl/mochi/pkg/device"

// haveOneDNN reports that this build runs convolutions on oneDNN: not with
// build tag purego, where every mode runs im2col + BLAS.
const haveOneDNN = false

// OneDNN names the oneDNN library this binary uses: none.
func OneDNN() string { return "none (build tag purego)" }

// dnnlState is the backend's convolution setting; without oneDNN only auto
// and blas exist and both run im2col + BLAS.
type dnnlState struct {
	mode ConvMode
}

// dnnlConv reports false: im2col + BLAS runs every convolution.
func (b *Backend) dnnlConv(convOp, device.ConvShape, device.Buffer, device.Buffer, device.Buffer) bool {
	return false
}

// ConvBlocks returns 0, 0: im2col + BLAS takes NCHW activations only.
func (b *Backend) ConvBlocks(device.ConvShape) (x, y int) { return 0, 0 }
