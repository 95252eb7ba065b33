//go:build !purego

package cpu

import (
	"fmt"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// winoShapes are 3×3 stride-1 pad-1 convolutions of odd sizes for mochi's
// Winograd: planes that are not multiples of the 4×4 tile (partial tiles
// at the right and bottom), a single pixel, a single tile, tile counts
// that are not multiples of the 8 tiles a transform handles at once,
// channels that are not multiples of the 8 a filter transform handles, and
// batches that chunks and parts split unevenly (5 images of 64 tiles in
// chunks of 3 and 2, winoChunkTiles), and a single chunk whose filter
// transform is made in two blocks of output channels (winoFilterBytes).
var winoShapes = []device.ConvShape{
	{N: 1, C: 1, H: 1, W: 1, K: 1, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: 3, C: 5, H: 5, W: 7, K: 3, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: 2, C: 3, H: 4, W: 4, K: 11, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: 5, C: 13, H: 9, W: 6, K: 17, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: 4, C: 9, H: 1, W: 10, K: 2, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: 5, C: 24, H: 32, W: 32, K: 20, R: 3, S: 3, Stride: 1, Pad: 1},
	{N: 3, C: 200, H: 5, W: 6, K: 300, R: 3, S: 3, Stride: 1, Pad: 1},
}

// TestWinogradAgainstFloat64: mochi's Winograd's three convolutions match
// the float64 definition within Winograd's bound (modeBound), on two
// threads and on three split as finely as possible, one backend running
// every shape in turn (its memory reused across shapes), and ran as
// mochi's Winograd where oneDNN has no Winograd kernel (without AVX-512).
func TestWinogradAgainstFloat64(t *testing.T) {
	for _, threads := range []int{2, 3} {
		be := modeBackend(t, threads, ConvWinograd)
		be.workers.fine = threads == 3
		be.winogradAnyChannels()
		for i, s := range winoShapes {
			c := newConvCase(s, uint64(100+i))
			t.Run(fmt.Sprintf("threads%d/%dx%d@%dx%d/n%d", threads, s.C, s.K, s.H, s.W, s.N), func(t *testing.T) {
				y, dx, dw := make([]float32, len(c.y64)), make([]float32, len(c.x)), make([]float32, len(c.w))
				be.Conv2DForward(s, Wrap(c.x), Wrap(c.w), Wrap(y))
				be.Conv2DBackwardData(s, Wrap(c.dy), Wrap(c.w), Wrap(dx))
				be.Conv2DBackwardFilter(s, Wrap(c.x), Wrap(c.dy), Wrap(dw))
				if err := be.Sync(); err != nil {
					t.Fatal(err)
				}
				for _, o := range []struct {
					name string
					op   convOp
					got  []float32
					want []float64
				}{{"y", convForward, y, c.y64}, {"dx", convBackwardData, dx, c.dx64}, {"dw", convBackwardFilter, dw, c.dw64}} {
					e := l2Err(o.got, o.want)
					impl := be.convImpl(o.op, s)
					t.Logf("%-2s relative error %.2g, max %.2g (%s)", o.name, e, maxErr(o.got, o.want), impl)
					if !(e <= modeBound(ConvWinograd)) {
						t.Errorf("%s: relative error %.2g against float64 > %.2g", o.name, e, modeBound(ConvWinograd))
					}
					if !hasAVX512() && impl != winoImpl {
						t.Errorf("%s ran %q, want %q", o.name, impl, winoImpl)
					}
				}
			})
		}
	}
}

// maxErr is max |got − want| / max |want|.
func maxErr(got []float32, want []float64) float64 {
	var d, n float64
	for i, w := range want {
		d = max(d, abs(float64(got[i])-w))
		n = max(n, abs(w))
	}
	return d / n
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
