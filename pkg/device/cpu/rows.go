package cpu

import (
	"math"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// l2Floor is the smallest norm L2Normalize divides by (PyTorch's eps).
const l2Floor = 1e-12

// rowOp names a kernel that works row by row.
type rowOp int

const (
	rowAddVector rowOp = iota
	rowSumColumns
	rowDot
	rowAvgPool
	rowAvgPoolBackward
	rowL2Normalize
	rowL2NormalizeBackward
	rowSoftmaxCE
	rowSoftmaxCEBackward
	rowScale
	rowCopyCols
	rowMaskEqual
)

// rowTask runs a row kernel over a range of rows (of columns for
// rowSumColumns) of a rows×cols matrix.
type rowTask struct {
	op         rowOp
	rows, cols int
	x, y, z, w []float32 // operands; which are read and written depends on op
	labels     []int32
	tau, scale float32
	// rowCopyCols: z[r, dstOff+c] = x[r, srcOff+c] for c < n, z rows×dstCols.
	srcOff, dstCols, dstOff, n int
}

func (t *rowTask) run(_, lo, hi int) {
	cols := t.cols
	switch t.op {
	case rowAddVector: // x[r,:] += y
		v := t.y[:cols]
		for r := lo; r < hi; r++ {
			row := t.x[r*cols : (r+1)*cols]
			for c := range row {
				row[c] += v[c]
			}
		}
	case rowSumColumns: // y[c] = Σ_r x[r,c] for columns lo..hi
		out := t.y[lo:hi]
		copy(out, t.x[lo:hi])
		for r := 1; r < t.rows; r++ {
			row := t.x[r*cols+lo : r*cols+hi]
			row = row[:len(out)]
			for c, v := range row {
				out[c] += v
			}
		}
	case rowDot: // z[r] = x[r,:]·y[r,:]
		for r := lo; r < hi; r++ {
			t.z[r] = float32(dot64(t.x[r*cols:(r+1)*cols], t.y[r*cols:(r+1)*cols]))
		}
	case rowAvgPool: // y[r] = mean x[r,:]
		for r := lo; r < hi; r++ {
			var s float64
			for _, v := range t.x[r*cols : (r+1)*cols] {
				s += float64(v)
			}
			t.y[r] = float32(s / float64(cols))
		}
	case rowAvgPoolBackward: // x[r,:] = y[r]/cols
		for r := lo; r < hi; r++ {
			v := float32(float64(t.y[r]) / float64(cols))
			row := t.x[r*cols : (r+1)*cols]
			for c := range row {
				row[c] = v
			}
		}
	case rowL2Normalize: // y[r] = x[r]/max(‖x[r]‖, 1e-12)
		for r := lo; r < hi; r++ {
			x, y := t.x[r*cols:(r+1)*cols], t.y[r*cols:(r+1)*cols]
			inv := 1 / math.Max(math.Sqrt(dot64(x, x)), l2Floor)
			for c, v := range x {
				y[c] = float32(float64(v) * inv)
			}
		}
	case rowL2NormalizeBackward: // z = (w − y·(y·w))/max(‖x‖, 1e-12); w = dy
		for r := lo; r < hi; r++ {
			x, y := t.x[r*cols:(r+1)*cols], t.y[r*cols:(r+1)*cols]
			dy, dx := t.w[r*cols:(r+1)*cols], t.z[r*cols:(r+1)*cols]
			inv := 1 / math.Max(math.Sqrt(dot64(x, x)), l2Floor)
			yd := dot64(y, dy)
			for c := range dx {
				dx[c] = float32((float64(dy[c]) - float64(y[c])*yd) * inv)
			}
		}
	case rowSoftmaxCE: // y = softmax(x/τ) per row, z[r] = −log y[r, label]
		inv := 1 / float64(t.tau)
		for r := lo; r < hi; r++ {
			x, p := t.x[r*cols:(r+1)*cols], t.y[r*cols:(r+1)*cols]
			mx := math.Inf(-1)
			for _, v := range x {
				mx = math.Max(mx, float64(v)*inv)
			}
			var z float64
			for c, v := range x {
				e := math.Exp(float64(v)*inv - mx)
				p[c] = float32(e)
				z += e
			}
			iz := 1 / z
			for c := range p {
				p[c] = float32(float64(p[c]) * iz)
			}
			t.z[r] = float32(mx + math.Log(z) - float64(x[t.labels[r]])*inv)
		}
	case rowSoftmaxCEBackward: // z = scale·(y − onehot(label))/τ
		k := float64(t.scale) / float64(t.tau)
		k32 := float32(k)
		for r := lo; r < hi; r++ {
			p, d := t.y[r*cols:(r+1)*cols], t.z[r*cols:(r+1)*cols]
			for c, v := range p {
				d[c] = k32 * v
			}
			l := t.labels[r]
			d[l] = float32(k * (float64(p[l]) - 1))
		}
	case rowScale: // z[r,:] = y[r]·x[r,:] (z may be x)
		for r := lo; r < hi; r++ {
			g, x, z := t.y[r], t.x[r*cols:(r+1)*cols], t.z[r*cols:(r+1)*cols]
			for c, v := range x {
				z[c] = g * v
			}
		}
	case rowCopyCols:
		for r := lo; r < hi; r++ {
			copy(t.z[r*t.dstCols+t.dstOff:r*t.dstCols+t.dstOff+t.n], t.x[r*cols+t.srcOff:r*cols+t.srcOff+t.n])
		}
	case rowMaskEqual: // x[r,c] = scale where y[r] ≥ 0 and y[r] == w[c]
		for r := lo; r < hi; r++ {
			l := t.y[r]
			if !(l >= 0) {
				continue
			}
			x := t.x[r*cols : (r+1)*cols]
			for c, v := range t.w[:cols] {
				if v == l {
					x[c] = t.scale
				}
			}
		}
	}
}

// dot64 is Σ a·b accumulated in float64.
func dot64(a, b []float32) float64 {
	b = b[:len(a)]
	var s float64
	for i, v := range a {
		s += float64(v) * float64(b[i])
	}
	return s
}

// rowRun runs t over n rows (or columns) of rowLen elements each.
func (b *Backend) rowRun(t rowTask, n, rowLen int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tasks.rows = t
	b.workers.parallel(n, max(1, elemGrain/max(rowLen, 1)), &b.tasks.rows)
	b.tasks.rows = rowTask{}
}

// AddRowVector: y[r,c] += v[c].
func (b *Backend) AddRowVector(rows, cols int, v, y device.Buffer) {
	if b.need("AddRowVector", "v", v, cols) && b.need("AddRowVector", "y", y, rows*cols) {
		b.rowRun(rowTask{op: rowAddVector, rows: rows, cols: cols, x: Float32s(y), y: Float32s(v)}, rows, cols)
	}
}

// SumRows: out[c] = Σ_r x[r,c].
func (b *Backend) SumRows(rows, cols int, x, out device.Buffer) {
	if rows <= 0 {
		b.fail("SumRows: %d rows", rows)
		return
	}
	if b.need("SumRows", "x", x, rows*cols) && b.need("SumRows", "out", out, cols) {
		b.rowRun(rowTask{op: rowSumColumns, rows: rows, cols: cols, x: Float32s(x), y: Float32s(out)}, cols, rows)
	}
}

// RowDot: out[r] = Σ_c a[r,c]·b[r,c], accumulated in float64.
func (b *Backend) RowDot(rows, cols int, a, bb, out device.Buffer) {
	if b.need("RowDot", "a", a, rows*cols) && b.need("RowDot", "b", bb, rows*cols) && b.need("RowDot", "out", out, rows) {
		b.rowRun(rowTask{op: rowDot, rows: rows, cols: cols, x: Float32s(a), y: Float32s(bb), z: Float32s(out)}, rows, cols)
	}
}

// GlobalAvgPool: y[n,c] = mean over hw of x[n,c,·].
func (b *Backend) GlobalAvgPool(n, c, hw int, x, y device.Buffer) {
	if b.need("GlobalAvgPool", "x", x, n*c*hw) && b.need("GlobalAvgPool", "y", y, n*c) {
		b.rowRun(rowTask{op: rowAvgPool, rows: n * c, cols: hw, x: Float32s(x), y: Float32s(y)}, n*c, hw)
	}
}

// GlobalAvgPoolBackward: dx[n,c,i] = dy[n,c]/hw.
func (b *Backend) GlobalAvgPoolBackward(n, c, hw int, dy, dx device.Buffer) {
	if b.need("GlobalAvgPoolBackward", "dy", dy, n*c) && b.need("GlobalAvgPoolBackward", "dx", dx, n*c*hw) {
		b.rowRun(rowTask{op: rowAvgPoolBackward, rows: n * c, cols: hw, x: Float32s(dx), y: Float32s(dy)}, n*c, hw)
	}
}

// L2Normalize: y[r] = x[r]/max(‖x[r]‖, 1e-12).
func (b *Backend) L2Normalize(rows, cols int, x, y device.Buffer) {
	if b.need("L2Normalize", "x", x, rows*cols) && b.need("L2Normalize", "y", y, rows*cols) {
		b.rowRun(rowTask{op: rowL2Normalize, rows: rows, cols: cols, x: Float32s(x), y: Float32s(y)}, rows, cols)
	}
}

// L2NormalizeBackward: dx = (dy − y·(y·dy))/max(‖x‖, 1e-12).
func (b *Backend) L2NormalizeBackward(rows, cols int, x, y, dy, dx device.Buffer) {
	const k = "L2NormalizeBackward"
	if b.need(k, "x", x, rows*cols) && b.need(k, "y", y, rows*cols) && b.need(k, "dy", dy, rows*cols) && b.need(k, "dx", dx, rows*cols) {
		b.rowRun(rowTask{op: rowL2NormalizeBackward, rows: rows, cols: cols,
			x: Float32s(x), y: Float32s(y), w: Float32s(dy), z: Float32s(dx)}, rows, cols)
	}
}

// SoftmaxCrossEntropy: loss[r] = −log softmax(logits[r]/τ)[label[r]] and
// prob = softmax(logits/τ), computed in float64 with the row maximum
// subtracted.
func (b *Backend) SoftmaxCrossEntropy(rows, cols int, tau float32, logits, labels, loss, prob device.Buffer) {
	const k = "SoftmaxCrossEntropy"
	if b.need(k, "logits", logits, rows*cols) && b.need(k, "labels", labels, rows) && b.need(k, "loss", loss, rows) && b.need(k, "prob", prob, rows*cols) {
		b.rowRun(rowTask{op: rowSoftmaxCE, rows: rows, cols: cols, tau: tau,
			x: Float32s(logits), labels: Int32s(labels), z: Float32s(loss), y: Float32s(prob)}, rows, 8*cols)
	}
}

// SoftmaxCrossEntropyBackward: dlogits = scale·(prob − onehot(label))/τ.
func (b *Backend) SoftmaxCrossEntropyBackward(rows, cols int, tau, scale float32, prob, labels, dlogits device.Buffer) {
	const k = "SoftmaxCrossEntropyBackward"
	if b.need(k, "prob", prob, rows*cols) && b.need(k, "labels", labels, rows) && b.need(k, "dlogits", dlogits, rows*cols) {
		b.rowRun(rowTask{op: rowSoftmaxCEBackward, rows: rows, cols: cols, tau: tau, scale: scale,
			y: Float32s(prob), labels: Int32s(labels), z: Float32s(dlogits)}, rows, cols)
	}
}

// ScaleRows: out[r,c] = g[r]·x[r,c] (out may alias x).
func (b *Backend) ScaleRows(rows, cols int, g, x, out device.Buffer) {
	const k = "ScaleRows"
	if b.need(k, "g", g, rows) && b.need(k, "x", x, rows*cols) && b.need(k, "out", out, rows*cols) {
		b.rowRun(rowTask{op: rowScale, rows: rows, cols: cols, x: Float32s(x), y: Float32s(g), z: Float32s(out)}, rows, cols)
	}
}

// CopyCols: dst[r, dstOff+c] = src[r, srcOff+c] for c < n.
func (b *Backend) CopyCols(rows, srcCols, srcOff, dstCols, dstOff, n int, src, dst device.Buffer) {
	const k = "CopyCols"
	if rows < 0 || n < 0 || srcOff < 0 || dstOff < 0 || srcOff+n > srcCols || dstOff+n > dstCols {
		b.fail("%s: columns [%d, %d) of %d to [%d, %d) of %d do not fit", k, srcOff, srcOff+n, srcCols, dstOff, dstOff+n, dstCols)
		return
	}
	if b.need(k, "src", src, rows*srcCols) && b.need(k, "dst", dst, rows*dstCols) {
		b.rowRun(rowTask{op: rowCopyCols, rows: rows, cols: srcCols, x: Float32s(src), z: Float32s(dst),
			srcOff: srcOff, dstCols: dstCols, dstOff: dstOff, n: n}, rows, n)
	}
}

// MaskEqual: x[r,c] = value where rowLabels[r] ≥ 0 and rowLabels[r] == colLabels[c].
func (b *Backend) MaskEqual(rows, cols int, rowLabels, colLabels, x device.Buffer, value float32) {
	const k = "MaskEqual"
	if b.need(k, "rowLabels", rowLabels, rows) && b.need(k, "colLabels", colLabels, cols) && b.need(k, "x", x, rows*cols) {
		b.rowRun(rowTask{op: rowMaskEqual, rows: rows, cols: cols, x: Float32s(x), y: Float32s(rowLabels),
			w: Float32s(colLabels), scale: value}, rows, cols)
	}
}
