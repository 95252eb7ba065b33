//go:build !purego

package cpu

// mochi's own Winograd F(4×4, 3×3) convolutions (winograd.c), which mode
// winograd runs for the 3×3 stride-1 pad-1 shapes oneDNN has no Winograd
// kernel for: oneDNN 2.x has them for AVX-512 CPUs only. A 4×4 output
// tile costs 36 multiplications per channel pair instead of direct's 144;
// they are 36 GEMMs, one per transform point ξ, over a chunk of images.
//
// Each convolution runs in phases, each split across the workers: the
// filter's transform (by output channel), then per chunk of images the
// input's (by channel), the 36 GEMMs (by ξ) and the output's (by channel).
// A batch that is a single chunk has its filter transformed (or its
// gradient folded) block by block of output channels around each block's
// GEMMs instead, to bound that memory. The transforms of a chunk are
// shared, not per part, so a GEMM multiplies every tile of the chunk and
// the filter gradient needs no partial per part; the result does not
// depend on the thread count.

// #cgo CFLAGS: -Wno-psabi
// #include "winograd.h"
import "C"

import (
	"unsafe"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// mochiWinograd reports a convolution mochi's Winograd runs where oneDNN
// has no Winograd kernel: 3×3, stride 1, pad 1 (the output has the input's
// size), with winoMinChannels channels or more on either side unless the
// tests ask for any.
func (b *Backend) mochiWinograd(s device.ConvShape) bool {
	return s.R == 3 && s.S == 3 && s.Stride == 1 && s.Pad == 1 && (b.dnnl.winoAnyChannels || min(s.C, s.K) >= winoMinChannels)
}

// A chunk of images is transformed, multiplied and transformed back
// before the next: as many images as give each GEMM winoChunkTiles tiles
// (columns), but no more than winoChunkBytes of input and output
// transforms (2.25 times the chunk's activations). Long GEMMs matter where
// an image has few tiles: the ResNet-18's deepest stage (512 channels,
// 4×4, one tile an image) takes a batch of 64 in one chunk of 9.4 MiB,
// where two chunks of 32 spent a quarter of the time packing the filter's
// transform anew; where an image has many, a smaller chunk stays in the
// cache between the phases (64 channels at 32×32: 4 images, 4.7 MiB).
const (
	winoChunkTiles = 256
	winoChunkBytes = 12 << 20
	// winoFilterBytes bounds the filter's transform of a single chunk.
	winoFilterBytes = 6 << 20
)

// winoState is mochi's Winograd's memory, grown on demand and reused by
// every later convolution: the filter's transform u (its gradient du in
// backward weights), a chunk's input transform v and output transform m
// (dy's, g, in backward weights), and per part the zero-padded copy of the
// planes the input transform reads. m and du are all zero between calls:
// the GEMMs add to them rather than overwrite them, which spares OpenBLAS
// a pass that zeroes them first (28% of the forward at 64 channels 32×32,
// 14–28% of the backward weights at 512 channels), and the output
// transform and the filter gradient's zero what they have read.
type winoState struct {
	u, du, v, m, g []float32
	pad            [][]float32
	task           winoTask
}

// winoPhase is one parallel step of a Winograd convolution.
type winoPhase int

const (
	winoFilter        winoPhase = iota // u from w, by output channel
	winoFilterAdjoint                  // dw from u, by output channel
	winoInput                          // v from the chunk's input, by channel
	winoOutput                         // the chunk's output from m, by channel
	winoBoth                           // v from x and m from dy (backward weights), by channel of either
	winoGemm                           // the products, by transform point
)

// winoTask runs one phase of a Winograd convolution. in and out are the
// transformed input and output, cin and cout their channels: (x, y) for
// the forward, (dy, dx) for the backward data, (x, dy) for the backward
// weights, whose result is dw.
type winoTask struct {
	phase      winoPhase
	op         convOp
	s          device.ConvShape
	in, out, w []float32
	cin, cout  int
	n0, cnt    int // the chunk's first image and image count
	ld         int // the chunk's tiles, rounded up to 8
	kbase, ku  int // the output channels whose filter transform u holds
	u, v, m    []float32
	pad        [][]float32 // per part
}

// fp is the C pointer to s's first element (nil for a nil slice); the
// blocked batch norm (batchnorm_blocked.go) passes its operands with it too.
func fp(s []float32) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(s))) }

func (t *winoTask) run(part, lo, hi int) {
	s := t.s
	hw := s.H * s.W
	k, c, h, w := C.int(s.K), C.int(s.C), C.int(s.H), C.int(s.W)
	n, ld := C.int(t.cnt), C.int(t.ld)
	kb, ku := C.int(t.kbase), C.int(t.ku) // the filter phases' items count from kbase
	// The chunk's images of the transformed input and output.
	in := func() *C.float { return fp(t.in[t.n0*t.cin*hw:]) }
	out := func() *C.float { return fp(t.out[t.n0*t.cout*hw:]) }
	switch t.phase {
	case winoFilter:
		var flip C.int
		if t.op == convBackwardData {
			flip = 1
		}
		C.mochi_wino_filter(fp(t.w), fp(t.u), c, kb, ku, kb+C.int(lo), kb+C.int(hi), flip)
	case winoFilterAdjoint:
		C.mochi_wino_filter_adjoint(fp(t.u), fp(t.w), c, kb, ku, kb+C.int(lo), kb+C.int(hi))
	case winoInput:
		C.mochi_wino_input(in(), fp(t.v), fp(t.pad[part]), n, C.int(t.cin), h, w, C.int(lo), C.int(hi), ld)
	case winoOutput:
		C.mochi_wino_output(fp(t.m), out(), n, C.int(t.cout), h, w, C.int(lo), C.int(hi), ld)
	case winoBoth: // items [0, C) are x's channels, [C, C+K) dy's
		if lo < s.C {
			C.mochi_wino_input(in(), fp(t.v), fp(t.pad[part]), n, c, h, w, C.int(lo), C.int(min(hi, s.C)), ld)
		}
		if hi > s.C {
			C.mochi_wino_output_adjoint(out(), fp(t.m), n, k, h, w, C.int(max(lo, s.C)-s.C), C.int(hi-s.C), ld)
		}
	case winoGemm:
		op := C.int(C.MOCHI_WINO_FWD)
		switch t.op {
		case convBackwardData:
			op = C.MOCHI_WINO_BWD_DATA
		case convBackwardFilter:
			op = C.MOCHI_WINO_BWD_WEIGHTS
		}
		tiles := t.cnt * ((s.H + 3) / 4) * ((s.W + 3) / 4)
		C.mochi_wino_gemm(op, fp(t.u), fp(t.v), fp(t.m), k, c, kb, ku, C.int(tiles), ld, C.int(lo), C.int(hi))
	}
}

// winograd runs a checked 3×3 stride-1 pad-1 convolution (mochiWinograd) with
// a non-empty batch on mochi's Winograd; x is dx for the backward data and
// y is dy for both backwards, as in conv. Called with b.mu held.
func (b *Backend) winograd(op convOp, s device.ConvShape, x, w, y []float32) {
	ws := &b.dnnl.convs.wino
	tpi := ((s.H + 3) / 4) * ((s.W + 3) / 4)
	// Images per chunk (winoChunkTiles, winoChunkBytes), split evenly.
	nb := max(1, min(s.N, (winoChunkTiles+tpi-1)/tpi, winoChunkBytes/(36*4*(s.C+s.K)*tpi)))
	chunks := (s.N + nb - 1) / nb
	nb = (s.N + chunks - 1) / chunks
	t := &ws.task
	*t = winoTask{op: op, s: s, in: x, out: y, w: w, cin: s.C, cout: s.K, ld: (nb*tpi + 7) &^ 7}
	if op == convBackwardData {
		t.in, t.out, t.cin, t.cout = y, x, s.K, s.C
	}
	// The filter's transform (or its gradient): for all K output channels
	// where several chunks share it; for a single chunk, in blocks of
	// output channels, each transformed just before its GEMMs (folded
	// into dw just after them in backward weights), which holds at most
	// winoFilterBytes: 6 MiB rather than 38 at 512 channels, where the
	// batch of 64 is one chunk.
	kb := s.K
	if chunks == 1 {
		blocks := (s.K*36*4*s.C + winoFilterBytes - 1) / winoFilterBytes
		kb = (s.K + blocks - 1) / blocks
	}
	ulen := 36 * int(C.mochi_wino_slice(C.int(kb), C.int(s.C)))
	if op == convBackwardFilter {
		ws.du = grow(ws.du, ulen) // zero if new, and else zero as left
		t.u = ws.du
	} else {
		ws.u = grow(ws.u, ulen)
		t.u = ws.u
	}
	ws.v = grow(ws.v, 36*int(C.mochi_wino_slice(C.int(t.cin), C.int(t.ld))))
	mlen := 36 * int(C.mochi_wino_slice(C.int(t.cout), C.int(t.ld)))
	if op == convBackwardFilter {
		ws.g = grow(ws.g, mlen)
		t.m = ws.g
	} else {
		ws.m = grow(ws.m, mlen) // zero if new, and else zero as left
		t.m = ws.m
	}
	if len(ws.pad) < b.workers.n {
		ws.pad = append(ws.pad, make([][]float32, b.workers.n-len(ws.pad))...)
	}
	for p := range ws.pad {
		ws.pad[p] = grow(ws.pad[p], int(C.mochi_wino_pad_floats(C.int(nb), C.int(s.H), C.int(s.W))))
	}
	t.v, t.pad = ws.v, ws.pad
	phase := func(p winoPhase, items int) {
		t.phase = p
		b.workers.parallel(items, 1, t)
	}
	t.kbase, t.ku = 0, s.K
	if op != convBackwardFilter && kb == s.K {
		phase(winoFilter, s.K)
	}
	for t.n0 = 0; t.n0 < s.N; t.n0 += nb {
		t.cnt = min(nb, s.N-t.n0)
		if op == convBackwardFilter {
			phase(winoBoth, s.C+s.K)
		} else {
			phase(winoInput, t.cin)
		}
		for t.kbase = 0; t.kbase < s.K; t.kbase += kb {
			t.ku = min(kb, s.K-t.kbase)
			if op != convBackwardFilter && kb < s.K {
				phase(winoFilter, t.ku)
			}
			phase(winoGemm, 36)
			if op == convBackwardFilter && kb < s.K {
				phase(winoFilterAdjoint, t.ku)
			}
		}
		if op != convBackwardFilter {
			phase(winoOutput, t.cout)
		}
	}
	if op == convBackwardFilter && kb == s.K {
		t.kbase, t.ku = 0, s.K
		phase(winoFilterAdjoint, s.K)
	}
	// Keep the buffers; drop the caller's.
	*t = winoTask{}
}
