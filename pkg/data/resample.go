package data

import "math"

// resampleAxis holds, for every output along one axis, the source span and
// the normalised taps of PIL's bilinear filter (a triangle of support 1
// stretched by the reduction factor when shrinking, so that every source
// pixel contributes: antialiasing), as PIL's Image.resize computes them.
type resampleAxis struct {
	lo, n []int32   // first source index and tap count, per output
	w     []float32 // taps, stride taps per output
	taps  int
}

// set computes the taps of count outputs, output j centred at source
// coordinate start + (j + offset + 0.5)·scale, reading only source indices
// in [clampLo, clampHi) (the crop, whose edges the filter does not cross).
func (r *resampleAxis) set(start, scale float64, clampLo, clampHi, offset, count int) {
	filterScale := max(scale, 1)
	support := filterScale // the bilinear (triangle) filter's support is 1
	r.taps = int(math.Ceil(support))*2 + 1
	r.lo, r.n = growInt32(r.lo, count), growInt32(r.n, count)
	if cap(r.w) < count*r.taps {
		r.w = make([]float32, count*r.taps)
	}
	r.w = r.w[:count*r.taps]
	inv := 1 / filterScale
	for j := range count {
		center := start + (float64(j+offset)+0.5)*scale
		lo := max(int(math.Floor(center-support+0.5)), clampLo)
		hi := min(int(math.Floor(center+support+0.5)), clampHi)
		w := r.w[j*r.taps : (j+1)*r.taps]
		var sum float64
		n := 0
		for x := lo; x < hi && n < r.taps; x++ {
			t := 1 - math.Abs((float64(x)-center+0.5)*inv)
			t = max(t, 0)
			w[n] = float32(t)
			sum += t
			n++
		}
		if sum == 0 { // a span narrower than a pixel: take the nearest one
			lo, n, w[0], sum = min(max(int(center), clampLo), clampHi-1), 1, 1, 1
		}
		for k := range n {
			w[k] = float32(float64(w[k]) / sum)
		}
		r.lo[j], r.n[j] = int32(lo), int32(n)
	}
}

func growInt32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}

// resampler resizes a region of an RGB image with resampleAxis filters,
// horizontally then vertically, as PIL does (in float32 throughout, where
// PIL rounds to 8 bits between the passes). It keeps its buffers.
type resampler struct {
	x, y resampleAxis
	tmp  []float32 // source rows × outW × 3
}

// box is a region of a source image in (possibly fractional) pixels.
type box struct {
	left, top, width, height float64
}

// crop resamples region b of img to an outW×outH planar image in dst
// (3×outH×outW, values in [0, 1]). Taps stay inside b (rounded outwards to
// whole pixels), as torchvision's crop-then-resize.
func (r *resampler) crop(dst []float32, img *rgbImage, b box, outW, outH int) {
	x0, x1 := int(math.Floor(b.left)), min(int(math.Ceil(b.left+b.width)), img.w)
	y0, y1 := int(math.Floor(b.top)), min(int(math.Ceil(b.top+b.height)), img.h)
	r.x.set(b.left, b.width/float64(outW), x0, x1, 0, outW)
	r.y.set(b.top, b.height/float64(outH), y0, y1, 0, outH)
	r.run(dst, img, outW, outH, 1.0/255)
}

// run applies the axes' taps: dst[c][oy][ox] = scale · Σ wy·Σ wx·pix.
func (r *resampler) run(dst []float32, img *rgbImage, outW, outH int, scale float32) {
	rowLo := int(r.y.lo[0])
	rowHi := rowLo
	for j := range outH {
		rowLo = min(rowLo, int(r.y.lo[j]))
		rowHi = max(rowHi, int(r.y.lo[j]+r.y.n[j]))
	}
	stride := outW * 3
	if n := (rowHi - rowLo) * stride; cap(r.tmp) < n {
		r.tmp = make([]float32, n)
	}
	tmp := r.tmp[:(rowHi-rowLo)*stride]
	xt := r.x.taps
	for y := rowLo; y < rowHi; y++ {
		src := img.pix[y*img.w*3 : (y+1)*img.w*3]
		out := tmp[(y-rowLo)*stride : (y-rowLo+1)*stride]
		for ox := range outW {
			lo, n := int(r.x.lo[ox]), int(r.x.n[ox])
			w := r.x.w[ox*xt : ox*xt+n]
			var sr, sg, sb float32
			p := src[lo*3 : (lo+n)*3]
			for k, wk := range w {
				sr += wk * float32(p[3*k])
				sg += wk * float32(p[3*k+1])
				sb += wk * float32(p[3*k+2])
			}
			out[3*ox], out[3*ox+1], out[3*ox+2] = sr, sg, sb
		}
	}
	plane := outW * outH
	yt := r.y.taps
	for oy := range outH {
		lo, n := int(r.y.lo[oy]), int(r.y.n[oy])
		w := r.y.w[oy*yt : oy*yt+n]
		for c := range 3 {
			row := dst[c*plane+oy*outW : c*plane+(oy+1)*outW]
			clear(row)
			for k, wk := range w {
				in := tmp[(lo+k-rowLo)*stride:]
				for ox := range row {
					row[ox] += wk * in[3*ox+c]
				}
			}
			for ox := range row {
				row[ox] *= scale
			}
		}
	}
}
