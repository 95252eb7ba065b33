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
	same3x3(1, 1, 1, 1, 1),
	same3x3(3, 5, 5, 7, 3),
	same3x3(2, 3, 4, 4, 11),
	same3x3(5, 13, 9, 6, 17),
	same3x3(4, 9, 1, 10, 2),
	same3x3(5, 24, 32, 32, 20),
	same3x3(3, 200, 5, 6, 300),
}

// same3x3 is the 3×3 stride-1 pad-1 convolution of n images of c×h×w to k
// channels, the only shape mochi's Winograd takes.
func same3x3(n, c, h, w, k int) device.ConvShape {
	return device.ConvShape{N: n, C: c, H: h, W: w, K: k, R: 3, S: 3, Stride: 1, Pad: 1}
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
