package devicetest

import (
	"math"
	"sort"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// The reference kernels below are plain float64 loops written for clarity,
// one per kernel of device.Backend, independent of every backend. Each is the
// definition the suite checks a backend against; the gradient references are
// themselves checked by finite differences of the forward references
// (ref_test.go).

// refGemm: c = alpha·op(a)·op(b) + beta·c; beta = 0 overwrites c (BLAS).
func refGemm(transA, transB bool, m, n, k int, alpha float64, a, b []float64, beta float64, c []float64) {
	at := func(i, p int) float64 { // op(a)[i,p]
		if transA {
			return a[p*m+i]
		}
		return a[i*k+p]
	}
	bt := func(p, j int) float64 { // op(b)[p,j]
		if transB {
			return b[j*k+p]
		}
		return b[p*n+j]
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += at(i, p) * bt(p, j)
			}
			if beta == 0 {
				c[i*n+j] = alpha * s
			} else {
				c[i*n+j] = alpha*s + beta*c[i*n+j]
			}
		}
	}
}

// ConvTaps calls tap for every product of the convolution sh, in a fixed
// order: the offsets of its output in y, its input in x and its weight in w
// (padding taps, which read zero, are left out).
func ConvTaps(sh device.ConvShape, tap func(yi, xi, wi int)) {
	oh, ow := sh.OutH(), sh.OutW()
	for n := 0; n < sh.N; n++ {
		for k := 0; k < sh.K; k++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					yi := ((n*sh.K+k)*oh+i)*ow + j
					for c := 0; c < sh.C; c++ {
						for r := 0; r < sh.R; r++ {
							for q := 0; q < sh.S; q++ {
								h, v := i*sh.Stride-sh.Pad+r, j*sh.Stride-sh.Pad+q
								if h < 0 || h >= sh.H || v < 0 || v >= sh.W {
									continue
								}
								tap(yi, ((n*sh.C+c)*sh.H+h)*sh.W+v, ((k*sh.C+c)*sh.R+r)*sh.S+q)
							}
						}
					}
				}
			}
		}
	}
}

// refConvForward: y[n,k,oh,ow] = Σ_{c,r,s} x[n,c,oh·st−pad+r, ow·st−pad+s]·w[k,c,r,s].
func refConvForward(sh device.ConvShape, x, w []float64) []float64 {
	y := make([]float64, sh.N*sh.K*sh.OutH()*sh.OutW())
	ConvTaps(sh, func(yi, xi, wi int) { y[yi] += x[xi] * w[wi] })
	return y
}

// refConvBackward returns dx and dw of L = Σ dy⊙conv(x, w) by scattering
// every output's gradient back along the forward's index map.
func refConvBackward(sh device.ConvShape, x, w, dy []float64) (dx, dw []float64) {
	dx = make([]float64, len(x))
	dw = make([]float64, len(w))
	ConvTaps(sh, func(yi, xi, wi int) {
		dx[xi] += dy[yi] * w[wi]
		dw[wi] += dy[yi] * x[xi]
	})
	return dx, dw
}

// bnIndex is the offset of x[n,c,i] for x N×C×HW.
func bnIndex(sh device.BNShape, n, c, i int) int { return (n*sh.C+c)*sh.HW + i }

// refBNStats returns the biased mean and variance of each group and channel
// (Groups×C): group g holds samples [g·N/G, (g+1)·N/G).
func refBNStats(sh device.BNShape, x []float64) (mean, variance []float64) {
	per := sh.N / sh.Groups
	m := float64(per * sh.HW)
	mean = make([]float64, sh.Groups*sh.C)
	variance = make([]float64, sh.Groups*sh.C)
	for g := 0; g < sh.Groups; g++ {
		for c := 0; c < sh.C; c++ {
			var s float64
			for n := g * per; n < (g+1)*per; n++ {
				for i := 0; i < sh.HW; i++ {
					s += x[bnIndex(sh, n, c, i)]
				}
			}
			mu := s / m
			var v float64
			for n := g * per; n < (g+1)*per; n++ {
				for i := 0; i < sh.HW; i++ {
					d := x[bnIndex(sh, n, c, i)] - mu
					v += d * d
				}
			}
			mean[g*sh.C+c] = mu
			variance[g*sh.C+c] = v / m
		}
	}
	return mean, variance
}

// refBNTrain returns y, mean, invStd and the updated running statistics.
func refBNTrain(sh device.BNShape, x, gamma, beta, runMean, runVar []float64, momentum, eps float64) (y, mean, invStd, newMean, newVar []float64) {
	mean, variance := refBNStats(sh, x)
	invStd = make([]float64, len(variance))
	for i, v := range variance {
		invStd[i] = 1 / math.Sqrt(v+eps)
	}
	per := sh.N / sh.Groups
	y = make([]float64, len(x))
	for n := 0; n < sh.N; n++ {
		g := n / per
		for c := 0; c < sh.C; c++ {
			for i := 0; i < sh.HW; i++ {
				j := bnIndex(sh, n, c, i)
				y[j] = gamma[c]*(x[j]-mean[g*sh.C+c])*invStd[g*sh.C+c] + beta[c]
			}
		}
	}
	m := float64(per * sh.HW)
	newMean = make([]float64, sh.C)
	newVar = make([]float64, sh.C)
	for c := 0; c < sh.C; c++ {
		var mu, v float64
		for g := 0; g < sh.Groups; g++ {
			mu += mean[g*sh.C+c]
			v += variance[g*sh.C+c] * m / (m - 1) // unbiased, as PyTorch's running_var
		}
		mu /= float64(sh.Groups)
		v /= float64(sh.Groups)
		newMean[c] = (1-momentum)*runMean[c] + momentum*mu
		newVar[c] = (1-momentum)*runVar[c] + momentum*v
	}
	return y, mean, invStd, newMean, newVar
}

// refBNInfer: y = γ·(x − runMean)/√(runVar + eps) + β.
func refBNInfer(sh device.BNShape, x, gamma, beta, runMean, runVar []float64, eps float64) []float64 {
	y := make([]float64, len(x))
	for n := 0; n < sh.N; n++ {
		for c := 0; c < sh.C; c++ {
			for i := 0; i < sh.HW; i++ {
				j := bnIndex(sh, n, c, i)
				y[j] = gamma[c]*(x[j]-runMean[c])/math.Sqrt(runVar[c]+eps) + beta[c]
			}
		}
	}
	return y
}

// refBNBackward is the gradient of L = Σ dy⊙BN_train(x) per group with
// M = N/G·HW elements: x̂ = (x−μ)·invStd,
// dx = γ·invStd/M·(M·dy − Σ dy − x̂·Σ dy·x̂), dγ = Σ dy·x̂, dβ = Σ dy.
func refBNBackward(sh device.BNShape, x, dy, gamma, mean, invStd []float64) (dx, dgamma, dbeta []float64) {
	per := sh.N / sh.Groups
	m := float64(per * sh.HW)
	dx = make([]float64, len(x))
	dgamma = make([]float64, sh.C)
	dbeta = make([]float64, sh.C)
	for g := 0; g < sh.Groups; g++ {
		for c := 0; c < sh.C; c++ {
			mu, is := mean[g*sh.C+c], invStd[g*sh.C+c]
			var sdy, sdyx float64
			for n := g * per; n < (g+1)*per; n++ {
				for i := 0; i < sh.HW; i++ {
					j := bnIndex(sh, n, c, i)
					sdy += dy[j]
					sdyx += dy[j] * (x[j] - mu) * is
				}
			}
			dgamma[c] += sdyx
			dbeta[c] += sdy
			for n := g * per; n < (g+1)*per; n++ {
				for i := 0; i < sh.HW; i++ {
					j := bnIndex(sh, n, c, i)
					xh := (x[j] - mu) * is
					dx[j] = gamma[c] * is / m * (m*dy[j] - sdy - xh*sdyx)
				}
			}
		}
	}
	return dx, dgamma, dbeta
}

// poolWindow calls f for every input position (h, w) inside the window of
// output (i, j), in row-major order, skipping padding.
func poolWindow(sh device.PoolShape, i, j int, f func(h, w int)) {
	for r := 0; r < sh.Size; r++ {
		for q := 0; q < sh.Size; q++ {
			h, w := i*sh.Stride-sh.Pad+r, j*sh.Stride-sh.Pad+q
			if h >= 0 && h < sh.H && w >= 0 && w < sh.W {
				f(h, w)
			}
		}
	}
}

// refMaxPool returns y and, for every output, the input offset of the first
// maximal element of its window.
func refMaxPool(sh device.PoolShape, x []float64) (y []float64, arg []int) {
	oh, ow := sh.OutH(), sh.OutW()
	y = make([]float64, sh.N*sh.C*oh*ow)
	arg = make([]int, len(y))
	for nc := 0; nc < sh.N*sh.C; nc++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				best, at := math.Inf(-1), -1
				poolWindow(sh, i, j, func(h, w int) {
					if v := x[(nc*sh.H+h)*sh.W+w]; v > best {
						best, at = v, (nc*sh.H+h)*sh.W+w
					}
				})
				o := (nc*oh+i)*ow + j
				y[o], arg[o] = best, at
			}
		}
	}
	return y, arg
}

// refMaxPoolBackward routes each dy to its window's first maximum.
func refMaxPoolBackward(sh device.PoolShape, x, dy []float64) []float64 {
	_, arg := refMaxPool(sh, x)
	dx := make([]float64, len(x))
	for o, a := range arg {
		dx[a] += dy[o]
	}
	return dx
}

// refAvgPool: y[n,c] = mean over hw of x[n,c,·].
func refAvgPool(nc, hw int, x []float64) []float64 {
	y := make([]float64, nc)
	for i := range y {
		for p := 0; p < hw; p++ {
			y[i] += x[i*hw+p]
		}
		y[i] /= float64(hw)
	}
	return y
}

// refAvgPoolBackward: dx[n,c,i] = dy[n,c]/hw.
func refAvgPoolBackward(nc, hw int, dy []float64) []float64 {
	dx := make([]float64, nc*hw)
	for i := range dx {
		dx[i] = dy[i/hw] / float64(hw)
	}
	return dx
}

// l2Floor is the smallest norm L2Normalize divides by (PyTorch's eps).
const l2Floor = 1e-12

// refL2Normalize: y[r] = x[r]/max(‖x[r]‖, 1e-12).
func refL2Normalize(rows, cols int, x []float64) []float64 {
	y := make([]float64, len(x))
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		nrm := math.Max(norm(row), l2Floor)
		for c, v := range row {
			y[r*cols+c] = v / nrm
		}
	}
	return y
}

// refL2NormalizeBackward: dx = (dy − y·(y·dy))/max(‖x‖, 1e-12) (the
// projection is exact only where ‖x‖ ≥ 1e-12; the kernel's contract).
func refL2NormalizeBackward(rows, cols int, x, dy []float64) []float64 {
	y := refL2Normalize(rows, cols, x)
	dx := make([]float64, len(x))
	for r := 0; r < rows; r++ {
		yr, dyr := y[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols]
		nrm := math.Max(norm(x[r*cols:(r+1)*cols]), l2Floor)
		yd := dot(yr, dyr)
		for c := range yr {
			dx[r*cols+c] = (dyr[c] - yr[c]*yd) / nrm
		}
	}
	return dx
}

// refSoftmaxCE returns loss[r] = −log softmax(logits[r]/τ)[label[r]] and the
// probabilities, computed with the row maximum subtracted.
func refSoftmaxCE(rows, cols int, tau float64, logits []float64, labels []int32) (loss, prob []float64) {
	loss = make([]float64, rows)
	prob = make([]float64, len(logits))
	for r := 0; r < rows; r++ {
		row := logits[r*cols : (r+1)*cols]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v/tau)
		}
		var z float64
		for _, v := range row {
			z += math.Exp(v/tau - mx)
		}
		for c, v := range row {
			prob[r*cols+c] = math.Exp(v/tau-mx) / z
		}
		loss[r] = -(row[labels[r]]/tau - mx - math.Log(z))
	}
	return loss, prob
}

// refSoftmaxCEBackward: dlogits = scale·(prob − onehot(label))/τ.
func refSoftmaxCEBackward(rows, cols int, tau, scale float64, prob []float64, labels []int32) []float64 {
	d := make([]float64, len(prob))
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			p := prob[r*cols+c]
			if int32(c) == labels[r] {
				p--
			}
			d[r*cols+c] = scale * p / tau
		}
	}
	return d
}

// refTopN sorts each row's indices fully by (value desc, index asc), keeps
// the first n and lists them in ascending index order.
func refTopN(rows, cols, n int, x []float64) []int32 {
	out := make([]int32, rows*n)
	for r := 0; r < rows; r++ {
		idx := make([]int, cols)
		for i := range idx {
			idx[i] = i
		}
		row := x[r*cols : (r+1)*cols]
		sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
		kept := idx[:n]
		sort.Ints(kept)
		for i, v := range kept {
			out[r*n+i] = int32(v)
		}
	}
	return out
}

// mixDraw is one step's MoCHi mixing draw on the host.
type mixDraw struct {
	top, pairI, pairJ, negJ []int32   // B×N, B×S, B×S, B×S′
	alpha, beta             []float64 // B×S, B×S′
}

// packed encodes the draw as the kernels read it: B×(3S+2S′), row b =
// [i_1…i_S, j_1…j_S, α_1…α_S, j′_1…j′_S′, β_1…β_S′], ranks as floats.
func (p mixDraw) packed(sh device.MixShape) []float32 {
	cols := 3*sh.S + 2*sh.SPrime
	out := make([]float32, sh.B*cols)
	for b := 0; b < sh.B; b++ {
		row := out[b*cols : (b+1)*cols]
		for t := 0; t < sh.S; t++ {
			row[t] = float32(p.pairI[b*sh.S+t])
			row[sh.S+t] = float32(p.pairJ[b*sh.S+t])
			row[2*sh.S+t] = float32(p.alpha[b*sh.S+t])
		}
		for t := 0; t < sh.SPrime; t++ {
			row[3*sh.S+t] = float32(p.negJ[b*sh.SPrime+t])
			row[3*sh.S+sh.SPrime+t] = float32(p.beta[b*sh.SPrime+t])
		}
	}
	return out
}

// refMixVectors returns the synthetic negatives of query b built explicitly
// in D dimensions: h_t = normalize(α·n_i + (1−α)·n_j) for t < S and
// h′_t = normalize(β·q + (1−β)·n_j), with ‖u_t‖ (the norm before normalising).
// normalize divides by max(‖u‖, 1e-12) like L2Normalize and F.normalize.
func refMixVectors(sh device.MixShape, b int, q, queue []float64, p mixDraw) (h [][]float64, u []float64) {
	row := func(k int32) []float64 { return queue[int(k)*sh.D : (int(k)+1)*sh.D] }
	qb := q[b*sh.D : (b+1)*sh.D]
	for t := 0; t < sh.S; t++ {
		a := p.alpha[b*sh.S+t]
		ni := row(p.top[b*sh.N+int(p.pairI[b*sh.S+t])])
		nj := row(p.top[b*sh.N+int(p.pairJ[b*sh.S+t])])
		v := make([]float64, sh.D)
		for d := range v {
			v[d] = a*ni[d] + (1-a)*nj[d]
		}
		h, u = append(h, scaled(v, 1/math.Max(norm(v), l2Floor))), append(u, math.Max(norm(v), l2Floor))
	}
	for t := 0; t < sh.SPrime; t++ {
		be := p.beta[b*sh.SPrime+t]
		nj := row(p.top[b*sh.N+int(p.negJ[b*sh.SPrime+t])])
		v := make([]float64, sh.D)
		for d := range v {
			v[d] = be*qb[d] + (1-be)*nj[d]
		}
		h, u = append(h, scaled(v, 1/math.Max(norm(v), l2Floor))), append(u, math.Max(norm(v), l2Floor))
	}
	return h, u
}

// refMixLogits: out[b,t] = q_b·h_t over the S + S′ synthetic negatives.
func refMixLogits(sh device.MixShape, q, queue []float64, p mixDraw) []float64 {
	out := make([]float64, sh.B*(sh.S+sh.SPrime))
	for b := 0; b < sh.B; b++ {
		h, _ := refMixVectors(sh, b, q, queue, p)
		for t, ht := range h {
			out[b*(sh.S+sh.SPrime)+t] = dot(q[b*sh.D:(b+1)*sh.D], ht)
		}
	}
	return out
}

// refMixLogitsBackward: dq = Σ_t dout[b,t]·h_t; with gradThroughHPrime the path
// through q inside h′ = u/‖u‖, u = βq + (1−β)n_j, adds
// dout·β/‖u‖·(q − (q·h′)·h′).
func refMixLogitsBackward(sh device.MixShape, q, queue []float64, p mixDraw, dout []float64, gradThroughHPrime bool) []float64 {
	dq := make([]float64, sh.B*sh.D)
	for b := 0; b < sh.B; b++ {
		qb := q[b*sh.D : (b+1)*sh.D]
		h, u := refMixVectors(sh, b, q, queue, p)
		for t, ht := range h {
			g := dout[b*(sh.S+sh.SPrime)+t]
			for d := range ht {
				dq[b*sh.D+d] += g * ht[d]
			}
			if gradThroughHPrime && t >= sh.S {
				be := p.beta[b*sh.SPrime+t-sh.S]
				qh := dot(qb, ht)
				for d := range ht {
					dq[b*sh.D+d] += g * be / u[t] * (qb[d] - qh*ht[d])
				}
			}
		}
	}
	return dq
}

// refScaleRows: out[r,c] = g[r]·x[r,c].
func refScaleRows(rows, cols int, g, x []float64) []float64 {
	out := make([]float64, rows*cols)
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			out[r*cols+c] = g[r] * x[r*cols+c]
		}
	}
	return out
}

// refCopyCols returns dst with dst[r, dstOff+c] = src[r, srcOff+c], c < n.
func refCopyCols(rows, srcCols, srcOff, dstCols, dstOff, n int, src, dst []float64) []float64 {
	out := append([]float64(nil), dst...)
	for r := 0; r < rows; r++ {
		for c := 0; c < n; c++ {
			out[r*dstCols+dstOff+c] = src[r*srcCols+srcOff+c]
		}
	}
	return out
}

// refMaskEqual returns x with value where the row's label is known (≥ 0)
// and equals the column's.
func refMaskEqual(rows, cols int, rowLabels, colLabels, x []float64, value float64) []float64 {
	out := append([]float64(nil), x...)
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			if rowLabels[r] >= 0 && rowLabels[r] == colLabels[c] {
				out[r*cols+c] = value
			}
		}
	}
	return out
}

// refSGD applies torch.optim.SGD (dampening 0) to p and v in place.
func refSGD(sp device.SGDParams, p, g, v []float64) {
	lr, mom, wd := float64(sp.LR), float64(sp.Momentum), float64(sp.WeightDecay)
	for i := range p {
		gi := g[i] + wd*p[i]
		v[i] = mom*v[i] + gi
		if sp.Nesterov {
			p[i] -= lr * (gi + mom*v[i])
		} else {
			p[i] -= lr * v[i]
		}
	}
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func norm(a []float64) float64 { return math.Sqrt(dot(a, a)) }

func scaled(a []float64, f float64) []float64 {
	out := make([]float64, len(a))
	for i, v := range a {
		out[i] = v * f
	}
	return out
}
