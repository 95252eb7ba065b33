package cpu

import (
	"gonum.org/v1/gonum/blas"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// workspace is a backend's scratch memory, one slot per part (worker) so
// that parts never share: grown on demand, kept across calls.
type workspace struct {
	col  [][]float32 // im2col matrices, C·R·S × nb·OH·OW
	tmp  [][]float32 // outputs or output gradients side by side, K × nb·OH·OW
	dw   [][]float32 // partial filter gradients of parts 1…, K×C·R·S
	idx  [][]int32   // TopN heaps
	keys [][]uint32  // TopN sort keys and digit histogram
	f64  [][]float64 // MixLogits dot products of a query
	// MixLogits ‖n‖² of the queue rows: one slice the parts fill in
	// disjoint ranges, then only read.
	norms []float64
}

func newWorkspace(threads int) workspace {
	return workspace{
		col:  make([][]float32, threads),
		tmp:  make([][]float32, threads),
		dw:   make([][]float32, threads),
		idx:  make([][]int32, threads),
		keys: make([][]uint32, threads),
		f64:  make([][]float64, threads),
	}
}

// grow returns s[:n], reallocating when s is shorter.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// convOp names a convolution kernel.
type convOp int

const (
	convForward convOp = iota
	convBackwardData
	convBackwardFilter
)

// convCols is the fewest GEMM columns worth aiming for: images with small
// outputs (the deep stages' 8×8 and 4×4) are im2col'ed side by side until
// one GEMM has this many columns, since thin products run far below the
// BLAS's peak.
const convCols = 512

// transposedFilterK is the most output channels for which the filter
// gradient is computed transposed, dwᵀ (CRS × K) = col · dyᵀ: OpenBLAS runs
// that product 25–35% faster than dy · colᵀ for K = 16–64, alike at
// 128–256 and slower at 512 (measured at the CIFAR ResNet-18's shapes).
const transposedFilterK = 64

// convTask runs a convolution kernel over a range of images, nb images per
// GEMM. x is the input (dx for convBackwardData), y the output (dy for the
// backwards), dw the filter gradient of part 0 — unless transposed, when
// every part writes dwᵀ into its workspace.
type convTask struct {
	op         convOp
	s          device.ConvShape
	nb         int
	x, w, y    []float32
	dw         []float32
	transposed bool
	ws         *workspace
}

// direct reports a 1×1 stride-1 unpadded convolution: the image is already
// its own im2col matrix.
func direct(s device.ConvShape) bool {
	return s.R == 1 && s.S == 1 && s.Stride == 1 && s.Pad == 0
}

func (t *convTask) run(part, lo, hi int) {
	s := t.s
	chw, ohw := s.C*s.H*s.W, s.OutH()*s.OutW()
	crs, kohw := s.C*s.R*s.S, s.K*ohw
	dw := t.dw
	if part > 0 || t.transposed {
		dw = t.ws.dw[part]
	}
	for n0 := lo; n0 < hi; n0 += t.nb {
		cnt := min(t.nb, hi-n0)
		cols := cnt * ohw // GEMM columns: cnt images' outputs side by side
		x, y := t.x[n0*chw:(n0+cnt)*chw], t.y[n0*kohw:(n0+cnt)*kohw]
		// col (CRS × cols) is the chunk's patch matrix; a single image of a
		// direct convolution is its own.
		col := x
		if cnt > 1 || !direct(s) {
			col = t.ws.col[part][:crs*cols]
		}
		// yc (K × cols) is y or dy with the chunk's images side by side: y
		// itself for a single image.
		yc := y
		if cnt > 1 {
			yc = t.ws.tmp[part][:s.K*cols]
		}
		switch t.op {
		case convForward: // yc = w (K×CRS) · col
			if cnt > 1 || !direct(s) {
				im2colChunk(s, x, col, cnt)
			}
			blas32.Sgemm(blas.NoTrans, blas.NoTrans, s.K, cols, crs, 1, t.w, crs, col, cols, 0, yc, cols)
			if cnt > 1 {
				sideBySide(yc, y, s.K, ohw, cnt, false)
			}
		case convBackwardData: // col = wᵀ · yc, x = col2im(col)
			if cnt > 1 {
				sideBySide(yc, y, s.K, ohw, cnt, true)
			}
			blas32.Sgemm(blas.Trans, blas.NoTrans, crs, cols, s.K, 1, t.w, crs, yc, cols, 0, col, cols)
			if cnt > 1 || !direct(s) {
				for i := 0; i < cnt; i++ {
					col2im(s, col[i*ohw:], cols, x[i*chw:(i+1)*chw])
				}
			}
		case convBackwardFilter: // dw (K×CRS) += yc · colᵀ
			if cnt > 1 || !direct(s) {
				im2colChunk(s, x, col, cnt)
			}
			if cnt > 1 {
				sideBySide(yc, y, s.K, ohw, cnt, true)
			}
			var beta float32
			if n0 > lo {
				beta = 1
			}
			if t.transposed { // dwᵀ (CRS×K) += col · ycᵀ
				blas32.Sgemm(blas.NoTrans, blas.Trans, crs, s.K, cols, 1, col, cols, yc, cols, beta, dw, s.K)
				continue
			}
			blas32.Sgemm(blas.NoTrans, blas.Trans, s.K, crs, cols, 1, yc, cols, col, cols, beta, dw, crs)
		}
	}
}

// im2colChunk writes the patch matrices of cnt images of x side by side
// into col (CRS × cnt·OH·OW).
func im2colChunk(s device.ConvShape, x, col []float32, cnt int) {
	chw, ohw := s.C*s.H*s.W, s.OutH()*s.OutW()
	for i := 0; i < cnt; i++ {
		im2col(s, x[i*chw:(i+1)*chw], col[i*ohw:], cnt*ohw)
	}
}

// sideBySide converts between cnt images of rows×width in NCHW order (nchw)
// and the rows × cnt·width matrix with the images side by side (wide):
// wide → nchw, or nchw → wide when gather is set.
func sideBySide(wide, nchw []float32, rows, width, cnt int, gather bool) {
	for i := 0; i < cnt; i++ {
		for r := 0; r < rows; r++ {
			w := wide[r*cnt*width+i*width:][:width]
			n := nchw[(i*rows+r)*width:][:width]
			if gather {
				copy(w, n)
			} else {
				copy(n, w)
			}
		}
	}
}

// outRange returns the outputs o ∈ [lo, hi) of one row whose input
// o·stride + off falls inside [0, size).
func outRange(out, size, stride, off int) (lo, hi int) {
	lo = 0
	if off < 0 {
		lo = (-off + stride - 1) / stride
	}
	hi = 0
	if size-off > 0 {
		hi = (size - off + stride - 1) / stride
	}
	hi = min(hi, out)
	return min(lo, hi), hi
}

// im2col writes the C·R·S × OH·OW patch matrix of one image x (C×H×W)
// into col with row stride ld:
// col[(c,r,q), (i,j)] = x[c, i·stride−pad+r, j·stride−pad+q], 0 in padding.
func im2col(s device.ConvShape, x, col []float32, ld int) {
	oh, ow := s.OutH(), s.OutW()
	if s.Stride == 1 && ow == s.W {
		for r := 0; r < s.R; r++ {
			for q := 0; q < s.S; q++ {
				p := newPlaneShift(s, r, q)
				for c := 0; c < s.C; c++ {
					p.copyTo(col[((c*s.R+r)*s.S+q)*ld:][:oh*ow], x[c*s.H*s.W:(c+1)*s.H*s.W])
				}
			}
		}
		return
	}
	for c := 0; c < s.C; c++ {
		plane := x[c*s.H*s.W : (c+1)*s.H*s.W]
		for r := 0; r < s.R; r++ {
			for q := 0; q < s.S; q++ {
				dst := col[((c*s.R+r)*s.S+q)*ld:][:oh*ow]
				off := q - s.Pad
				jlo, jhi := outRange(ow, s.W, s.Stride, off)
				for i := 0; i < oh; i++ {
					d := dst[i*ow : (i+1)*ow]
					h := i*s.Stride - s.Pad + r
					if h < 0 || h >= s.H {
						clear(d)
						continue
					}
					src := plane[h*s.W : (h+1)*s.W]
					clear(d[:jlo])
					clear(d[jhi:])
					if s.Stride == 1 {
						copy(d[jlo:jhi], src[jlo+off:jhi+off])
						continue
					}
					for j := jlo; j < jhi; j++ {
						d[j] = src[j*s.Stride+off]
					}
				}
			}
		}
	}
}

// col2im is im2col's adjoint: it overwrites x (C×H×W) with the sum of the
// entries of the patch matrix col (row stride ld) that im2col would have
// read from each element. For a stride-1 convolution as wide as its input
// it zeroes the entries of col that fall outside the image (col is the
// caller's scratch) and adds each patch row as one shifted vector.
func col2im(s device.ConvShape, col []float32, ld int, x []float32) {
	clear(x[:s.C*s.H*s.W])
	oh, ow := s.OutH(), s.OutW()
	if s.Stride == 1 && ow == s.W {
		for r := 0; r < s.R; r++ { // each plane gets its (r, q) terms in the order below either way
			for q := 0; q < s.S; q++ {
				p := newPlaneShift(s, r, q)
				for c := 0; c < s.C; c++ {
					p.addTo(x[c*s.H*s.W:(c+1)*s.H*s.W], col[((c*s.R+r)*s.S+q)*ld:][:oh*ow])
				}
			}
		}
		return
	}
	for c := 0; c < s.C; c++ {
		plane := x[c*s.H*s.W : (c+1)*s.H*s.W]
		for r := 0; r < s.R; r++ {
			for q := 0; q < s.S; q++ {
				src := col[((c*s.R+r)*s.S+q)*ld:][:oh*ow]
				off := q - s.Pad
				jlo, jhi := outRange(ow, s.W, s.Stride, off)
				for i := 0; i < oh; i++ {
					h := i*s.Stride - s.Pad + r
					if h < 0 || h >= s.H {
						continue
					}
					d := plane[h*s.W : (h+1)*s.W]
					sr := src[i*ow : (i+1)*ow]
					if s.Stride == 1 {
						dd, ss := d[jlo+off:jhi+off], sr[jlo:jhi]
						ss = ss[:len(dd)]
						for j, v := range ss {
							dd[j] += v
						}
						continue
					}
					for j := jlo; j < jhi; j++ {
						d[j*s.Stride+off] += sr[j]
					}
				}
			}
		}
	}
}

// planeShift is patch row (·, r, q) of a stride-1 convolution whose output
// rows are as wide as its input's, the same for every channel: the input
// plane shifted by r − pad rows and q − pad columns. One copy (im2col) or
// one vector addition (col2im) moves every valid row at once, rather than
// one short loop per image row; the columns outside [jlo, jhi) would take
// neighbouring rows' values and are zeroed instead.
type planeShift struct {
	w        int // the row width
	ilo, ihi int // output rows that read inside the plane
	jlo, jhi int // output columns that do
	shift    int // plane index − patch-row index
	lo, hi   int // patch-row entries whose plane index is inside the plane
}

func newPlaneShift(s device.ConvShape, r, q int) planeShift {
	p := planeShift{w: s.W, shift: (r-s.Pad)*s.W + q - s.Pad}
	p.ilo, p.ihi = outRange(s.OutH(), s.H, 1, r-s.Pad)
	p.jlo, p.jhi = outRange(s.OutW(), s.W, 1, q-s.Pad)
	p.lo = min(s.OutH()*s.OutW(), max(p.ilo*s.W, -p.shift))
	p.hi = max(p.lo, min(p.ihi*s.W, s.H*s.W-p.shift))
	return p
}

// copyTo writes the patch row of plane into dst.
func (p planeShift) copyTo(dst, plane []float32) {
	clear(dst[:p.lo])
	if p.hi > p.lo {
		copy(dst[p.lo:p.hi], plane[p.lo+p.shift:p.hi+p.shift])
	}
	clear(dst[p.hi:])
	p.zeroBorders(dst)
}

// addTo adds the patch row src to plane, after zeroing its entries that
// fall in the padding (src is scratch).
func (p planeShift) addTo(plane, src []float32) {
	p.zeroBorders(src)
	if p.hi > p.lo {
		addVector(plane[p.lo+p.shift:p.hi+p.shift], src[p.lo:p.hi])
	}
}

// zeroBorders zeroes the columns outside [jlo, jhi) of the rows that read
// inside the plane (one or two values per row for a 3×3 kernel: plain
// stores, not a clear call each).
func (p planeShift) zeroBorders(row []float32) {
	for i := p.ilo; i < p.ihi; i++ {
		r := row[i*p.w : (i+1)*p.w]
		for j := 0; j < p.jlo; j++ {
			r[j] = 0
		}
		for j := p.jhi; j < len(r); j++ {
			r[j] = 0
		}
	}
}

// addVector is dst += src. Long vectors go to BLAS's vectorised axpy (one
// cgo call); y + 1·x rounds as y + x, so the sums do not depend on the
// length.
func addVector(dst, src []float32) {
	if len(src) >= 256 {
		blas32.Saxpy(len(src), 1, src, 1, dst, 1)
		return
	}
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}

// validBlock reports a channel block the kernels take for c channels:
// none (0), or 8 or 16 dividing c (oneDNN's nChw8c and nChw16c).
func validBlock(block, c int) bool {
	return block == 0 || (block == 8 || block == 16) && c%block == 0
}

// badBlock is the error format (kernel, shape) of a block validBlock refuses.
const badBlock = "%s: shape %+v: a channel block must be 8 or 16 and divide the channels"

// blocked reports a convolution with an operand in a channel-blocked layout.
func blocked(s device.ConvShape) bool { return s.XBlock != 0 || s.YBlock != 0 }

// conv checks the buffers of a convolution and runs op over the batch, one
// part per range of images.
func (b *Backend) conv(kernel string, op convOp, s device.ConvShape, x, w, y device.Buffer) {
	oh, ow := s.OutH(), s.OutW()
	if s.N < 0 || s.C <= 0 || s.K <= 0 || s.R <= 0 || s.S <= 0 || s.Stride <= 0 || oh <= 0 || ow <= 0 {
		b.fail("%s: invalid shape %+v", kernel, s)
		return
	}
	if !validBlock(s.XBlock, s.C) || !validBlock(s.YBlock, s.K) {
		b.fail(badBlock, kernel, s)
		return
	}
	xname, yname := "x", "dy"
	if op == convForward {
		yname = "y"
	} else if op == convBackwardData {
		xname = "dx"
	}
	if !b.need(kernel, xname, x, s.N*s.C*s.H*s.W) || !b.need(kernel, "w", w, s.K*s.C*s.R*s.S) || !b.need(kernel, yname, y, s.N*s.K*oh*ow) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dnnlConv(op, s, x, w, y) {
		return
	}
	if blocked(s) {
		b.fail("%s %+v: im2col + BLAS takes NCHW activations, not channel blocks; compile the plan after SetConvMode (it asks ConvBlocks)", kernel, s)
		return
	}
	crs, ohw := s.C*s.R*s.S, oh*ow
	parts := b.workers.parts(s.N, 1)
	// Images per GEMM: enough for convCols columns, but no more than a
	// part's share of the batch so that every worker has work.
	nb := max(1, min((convCols+ohw-1)/ohw, (s.N+parts-1)/parts))
	transposed := op == convBackwardFilter && s.K <= transposedFilterK
	for p := 0; p < parts; p++ {
		if nb > 1 || !direct(s) {
			b.ws.col[p] = grow(b.ws.col[p], crs*nb*ohw)
		}
		if nb > 1 {
			b.ws.tmp[p] = grow(b.ws.tmp[p], s.K*nb*ohw)
		}
		if op == convBackwardFilter && (p > 0 || transposed) {
			b.ws.dw[p] = grow(b.ws.dw[p], s.K*crs)
		}
	}
	t := &b.tasks.conv
	*t = convTask{op: op, s: s, nb: nb, x: Float32s(x), w: Float32s(w)[:s.K*crs], y: Float32s(y), transposed: transposed, ws: &b.ws}
	if op == convBackwardFilter {
		t.dw = t.w
		if s.N == 0 {
			clear(t.dw)
		}
	}
	b.workers.parallel(s.N, 1, t)
	switch {
	case op == convBackwardFilter && transposed: // dw = Σ_parts (dwᵀ)ᵀ, parts in order
		dw := t.dw
		for k := 0; k < s.K; k++ {
			row := dw[k*crs : (k+1)*crs]
			for i := range row {
				var sum float32
				for p := 0; p < parts; p++ {
					sum += b.ws.dw[p][i*s.K+k]
				}
				row[i] = sum
			}
		}
	case op == convBackwardFilter:
		for p := 1; p < parts; p++ {
			dw := t.dw
			for i, v := range b.ws.dw[p][:len(dw)] {
				dw[i] += v
			}
		}
	}
	*t = convTask{}
}

// Conv2DForward: y = x ⋆ w (cross-correlation, as PyTorch's conv2d).
func (b *Backend) Conv2DForward(s device.ConvShape, x, w, y device.Buffer) {
	b.conv("Conv2DForward", convForward, s, x, w, y)
}

// Conv2DBackwardData: dx = ∂L/∂x given dy and w.
func (b *Backend) Conv2DBackwardData(s device.ConvShape, dy, w, dx device.Buffer) {
	b.conv("Conv2DBackwardData", convBackwardData, s, dx, w, dy)
}

// Conv2DBackwardFilter: dw = ∂L/∂w given x and dy, summed over the batch.
func (b *Backend) Conv2DBackwardFilter(s device.ConvShape, x, dy, dw device.Buffer) {
	b.conv("Conv2DBackwardFilter", convBackwardFilter, s, x, dw, dy)
}
