//go:build purego

package cpu

// bnBlocked records an error: the channel-blocked batch norm is C
// (batchnorm_blocked.c), and this build's ConvBlocks never asks for it.
func (b *Backend) bnBlocked() {
	b.fail("%+v: batch norm on channel-blocked activations needs the cgo build (without tag purego); pass Block 0", b.tasks.bn.s)
}
