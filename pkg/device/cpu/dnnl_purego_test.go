//go:build purego

package cpu

import "github.com/mochi-ssl/mochi/pkg/device"

// convImplName is what ran a result of TestConvPathsAgree: im2col + BLAS,
// the only path of the purego build.
func (b *Backend) convImplName(string, device.ConvShape) string { return "im2col + BLAS" }

// winogradAnyChannels does nothing: the purego build has no Winograd.
func (b *Backend) winogradAnyChannels() {}
