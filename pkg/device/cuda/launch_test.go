package cuda

import (
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
)

func TestElementwiseLaunch(t *testing.T) {
	for _, c := range []struct{ n, grid int }{{0, 0}, {1, 1}, {256, 1}, {257, 2}, {1 << 30, maxGrid}} {
		lc := elementwise(c.n)
		if lc.gridX != c.grid || lc.blockX != elementwiseBlock {
			t.Errorf("elementwise(%d) = %+v, want grid %d", c.n, lc, c.grid)
		}
		// A grid-stride loop covers n when grid·block ≥ n or the grid is capped.
		if lc.gridX*lc.blockX < c.n && lc.gridX != maxGrid {
			t.Errorf("elementwise(%d) covers only %d threads", c.n, lc.gridX*lc.blockX)
		}
	}
}

func TestRowLaunches(t *testing.T) {
	for _, rows := range []int{1, 7, 8, 9, 1000} {
		lc := warpRows(rows)
		if warps := lc.gridX * lc.blockX / 32; warps < rows || warps >= rows+warpsPerBlock {
			t.Errorf("warpRows(%d) = %+v: %d warps", rows, lc, warps)
		}
	}
	if lc := sumRowsLaunch(33); lc.gridX != 2 || lc.blockX != 32 || lc.blockY != 8 {
		t.Errorf("sumRowsLaunch(33) = %+v", lc)
	}
}

func TestMixBackwardLaunch(t *testing.T) {
	for _, d := range []int{1, 128, 2048, 12288} {
		lc, err := mixBackwardLaunch(3, d)
		if err != nil {
			t.Fatalf("D = %d: %v", d, err)
		}
		if lc.shared > sharedLimit || lc.shared != 4*d*lc.blockX/32 || lc.blockX%32 != 0 || lc.blockX > 32*mixMaxWarps || lc.gridX != 3 {
			t.Errorf("mixBackwardLaunch(3, %d) = %+v", d, lc)
		}
	}
	if _, err := mixBackwardLaunch(3, 12289); err == nil {
		t.Error("D = 12289 needs more shared memory than a block has, want an error")
	}
}

func TestConvChunk(t *testing.T) {
	s := device.ConvShape{N: 256, C: 64, H: 32, W: 32, K: 64, R: 3, S: 3, Stride: 1, Pad: 1}
	perImage := (64*9 + 64) * 32 * 32
	for _, c := range []struct{ budget, want int }{
		{1, 1}, {perImage - 1, 1}, {perImage, 1}, {10*perImage + 5, 10}, {1 << 40, 256},
	} {
		if got := convChunk(s, c.budget); got != c.want {
			t.Errorf("convChunk(budget %d) = %d, want %d", c.budget, got, c.want)
		}
	}
	if nb := convChunk(s, convWorkspaceFloats); nb*perImage > convWorkspaceFloats {
		t.Errorf("default chunk of %d images needs %d floats, over the budget", nb, nb*perImage)
	}
}

func TestShapeValidation(t *testing.T) {
	good := device.ConvShape{N: 1, C: 1, H: 3, W: 3, K: 1, R: 3, S: 3, Stride: 1}
	if err := validConv(good); err != nil {
		t.Errorf("validConv(%+v): %v", good, err)
	}
	for _, s := range []device.ConvShape{
		{N: 1, C: 1, H: 2, W: 3, K: 1, R: 3, S: 3, Stride: 1},
		{N: 1, C: 1, H: 3, W: 3, K: 1, R: 3, S: 3, Stride: 0},
		{N: 0, C: 1, H: 3, W: 3, K: 1, R: 3, S: 3, Stride: 1},
	} {
		if validConv(s) == nil {
			t.Errorf("validConv(%+v) accepted a bad shape", s)
		}
	}
	if validPool(device.PoolShape{N: 1, C: 1, H: 1, W: 1, Size: 3, Stride: 1}) == nil {
		t.Error("validPool accepted a window larger than the padded input")
	}
	if validBN(device.BNShape{N: 6, C: 1, HW: 1, Groups: 4}) == nil || validBN(device.BNShape{N: 8, C: 1, HW: 1, Groups: 4}) != nil {
		t.Error("validBN must require N to be a multiple of Groups")
	}
	// The CUDA backend has no device.Blocked: a channel block is an error.
	for _, err := range []error{
		validConv(device.ConvShape{N: 1, C: 8, H: 3, W: 3, K: 8, R: 3, S: 3, Stride: 1, Pad: 1, YBlock: 8}),
		validPool(device.PoolShape{N: 1, C: 8, H: 3, W: 3, Size: 3, Stride: 1, Pad: 1, Block: 8}),
		validBN(device.BNShape{N: 2, C: 8, HW: 9, Groups: 1, Block: 8}),
	} {
		if err == nil || !strings.Contains(err.Error(), "channel-blocked") {
			t.Errorf("a shape with a channel block gave %v, want an error naming the layout", err)
		}
	}
	if err := validMix(device.MixShape{B: 1, D: 4, K: 3, N: 4}); err == nil || !strings.Contains(err.Error(), "N ≤ K") {
		t.Errorf("validMix with N > K: %v", err)
	}
}
