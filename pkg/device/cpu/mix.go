package cpu

import (
	"math"
	"slices"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// topTask selects the top n of a range of rows: a radix select finds the
// n-th best key, then one pass in index order emits the selection.
type topTask struct {
	rows, cols, n int
	x             []float32
	idx           []int32
	ws            *workspace
}

// better orders candidates: larger value first, then smaller index.
func better(row []float32, a, b int32) bool {
	return row[a] > row[b] || (row[a] == row[b] && a < b)
}

// siftDown restores the heap property below position i of heap h, whose
// root is the worst element kept (a min-heap under better).
func siftDown(row []float32, h []int32, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && better(row, h[c], h[c+1]) {
			c++
		}
		if !better(row, h[i], h[c]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// heapTop writes row's top n to out with a bounded heap of n. It serves the
// rows holding a NaN, which has no place in the key order of topKey: the
// heap's comparisons give those rows their established selection.
func heapTop(row []float32, h, out []int32) {
	// Fill the heap with the first n indices, then keep the n best: a
	// candidate enters only if better than the worst kept (the root).
	for i := range h {
		h[i] = int32(i)
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		siftDown(row, h, i)
	}
	for i := len(h); i < len(row); i++ {
		if v, w := row[i], row[h[0]]; v > w { // equal values lose: larger index
			h[0] = int32(i)
			siftDown(row, h, 0)
		}
	}
	// The heap holds the selected set; list it in index order.
	slices.Sort(h)
	copy(out, h)
}

// topKey maps a float32 other than NaN to a key whose unsigned order is the
// float order, with −0 and +0 one key as they compare equal.
func topKey(v float32) uint32 {
	b := math.Float32bits(v)
	if b == 1<<31 {
		b = 0
	}
	return b ^ (uint32(int32(b)>>31) | 1<<31)
}

// topRadix is the digit width of the radix select: three digits of 11, 11
// and 10 bits cover a key, with a histogram of 2¹¹ counts.
const topRadix = 11

// topThreshold finds the key of row's n-th largest value and how many of the
// values with that key the top n takes; ok is false if row holds a NaN.
// keys needs len(row) + 1<<topRadix elements.
func topThreshold(row []float32, n int, keys []uint32) (key uint32, take int, ok bool) {
	hist := keys[len(row) : len(row)+1<<topRadix]
	keys = keys[:len(row)]
	clear(hist)
	nan := false
	for i, v := range row {
		if v != v {
			nan = true
		}
		k := topKey(v)
		keys[i] = k
		hist[k>>(32-topRadix)]++
	}
	if nan {
		return 0, 0, false
	}
	// Each digit: the bucket holding the need-th largest candidate becomes
	// the next digit of the key; candidates outside it are dropped.
	need, m := n, len(row)
	for _, shift := range [...]uint{32 - topRadix, 32 - 2*topRadix, 0} {
		mask := uint32(1)<<(32-2*topRadix) - 1 // the last digit's 10 bits
		if shift > 0 {
			mask = 1<<topRadix - 1
		}
		if shift != 32-topRadix { // the first digit was counted with the keys
			clear(hist)
			for _, k := range keys[:m] {
				hist[(k>>shift)&mask]++
			}
		}
		d := int(mask)
		for ; int(hist[d]) < need; d-- {
			need -= int(hist[d])
		}
		key |= uint32(d) << shift
		if shift > 0 {
			c := 0
			for _, k := range keys[:m] {
				if (k>>shift)&mask == uint32(d) {
					keys[c] = k
					c++
				}
			}
			m = c
		}
	}
	return key, need, true
}

func (t *topTask) run(part, lo, hi int) {
	h, keys := t.ws.idx[part][:t.n], t.ws.keys[part]
	for r := lo; r < hi; r++ {
		row, out := t.x[r*t.cols:(r+1)*t.cols], t.idx[r*t.n:(r+1)*t.n]
		key, take, ok := topThreshold(row, t.n, keys)
		if !ok {
			heapTop(row, h, out)
			continue
		}
		// Every value above the threshold key, and the first take equal to
		// it (ties go to the lower index), in index order: exactly n.
		j := 0
		for i, v := range row {
			if k := topKey(v); k > key || (k == key && take > 0) {
				if k == key {
					take--
				}
				out[j] = int32(i)
				j++
			}
		}
	}
}

// TopN writes each row's n largest indices (ties to the lower index) in
// ascending index order: a radix select of the n-th largest value (a few
// passes over the row, whatever n), then one pass that emits the selection
// in index order. Rows with a NaN keep a bounded heap's selection.
func (b *Backend) TopN(rows, cols, n int, x, idx device.Buffer) {
	if n <= 0 || n > cols {
		b.fail("TopN: n = %d must lie in [1, cols = %d]", n, cols)
		return
	}
	if !b.need("TopN", "x", x, rows*cols) || !b.need("TopN", "idx", idx, rows*n) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for p := 0; p < b.workers.parts(rows, 1); p++ {
		b.ws.idx[p] = grow(b.ws.idx[p], n)
		b.ws.keys[p] = grow(b.ws.keys[p], cols+1<<topRadix)
	}
	b.tasks.top = topTask{rows: rows, cols: cols, n: n, x: Float32s(x), idx: Int32s(idx), ws: &b.ws}
	b.workers.parallel(rows, max(1, elemGrain/cols), &b.tasks.top)
	b.tasks.top = topTask{}
}

// mixTask computes the MoCHi logits (or their gradient) for a range of
// queries.
type mixTask struct {
	s                           device.MixShape
	q, queue, sim               []float32
	top                         []int32
	draw                        []float32 // B×(3S+2S′): [i…, j…, α…, j′…, β…] per query
	out, dout, dq               []float32
	norms                       []float64 // ‖n‖² of every queue row
	backward, gradThroughHPrime bool
	ws                          *workspace
	kernel                      string   // for errors
	be                          *Backend // for errors found by a worker
}

// mixNorm is max(√u², 1e-12) for the squared norm u² of a mixed vector
// (clamped at 0 against rounding), as normalize divides by.
func mixNorm(u2 float64) float64 { return math.Max(math.Sqrt(math.Max(u2, 0)), l2Floor) }

func (t *mixTask) run(part, lo, hi int) {
	s := t.s
	d, cols := s.D, s.DrawCols()
	row := func(k int32) []float32 { return t.queue[int(k)*d : (int(k)+1)*d] }
	// The S Gram entries n_i·n_j of a query, then (backward) its S′ q·n_j.
	dots := t.ws.f64[part][:s.S+s.SPrime]
	for b := lo; b < hi; b++ {
		qb, top := t.q[b*d:(b+1)*d], t.top[b*s.N:(b+1)*s.N]
		draw := t.draw[b*cols : (b+1)*cols]
		pairI, pairJ, alpha := draw[:s.S], draw[s.S:2*s.S], draw[2*s.S:3*s.S]
		negJ, beta := draw[3*s.S:3*s.S+s.SPrime], draw[3*s.S+s.SPrime:cols]
		if !t.validRow(b, top, draw[:3*s.S], negJ) {
			return
		}
		// nn returns ‖n‖² of the queue row at rank r of this query's top N.
		nn := func(r int32) float64 { return t.norms[top[r]] }
		pairs := dots[:s.S]
		dotRows(pairs, func(t0 int) ([]float32, []float32) {
			return row(top[int32(pairI[t0])]), row(top[int32(pairJ[t0])])
		})
		if t.backward { // the backward has no sim: recompute q·n_j
			dotRows(dots[s.S:], func(t1 int) ([]float32, []float32) { return qb, row(top[int32(negJ[t1])]) })
		}
		qq := dot64(qb, qb)
		var dq []float32
		var cq float64 // coefficient of q_b in dq_b, added at the end
		if t.backward {
			dq = t.dq[b*d : (b+1)*d]
			clear(dq)
		}
		m := s.S + s.SPrime
		// Negative–negative: h = u/‖u‖, u = α·n_i + (1−α)·n_j,
		// ‖u‖² = α²·n_i·n_i + (1−α)²·n_j·n_j + 2α(1−α)·n_i·n_j,
		// q·h = (α·s_i + (1−α)·s_j)/‖u‖ with s = q·n from sim.
		for t0 := 0; t0 < s.S; t0++ {
			ri, rj := int32(pairI[t0]), int32(pairJ[t0])
			i, j := top[ri], top[rj]
			a := float64(alpha[t0])
			u := mixNorm(a*a*nn(ri) + (1-a)*(1-a)*nn(rj) + 2*a*(1-a)*pairs[t0]) // n_i·n_i if i = j
			if !t.backward {
				si, sj := float64(t.sim[b*s.K+int(i)]), float64(t.sim[b*s.K+int(j)])
				t.out[b*m+t0] = float32((a*si + (1-a)*sj) / u)
				continue
			}
			g := float64(t.dout[b*m+t0]) / u // dq += dout·h
			axpy32(float32(g*a), row(i), dq)
			axpy32(float32(g*(1-a)), row(j), dq)
		}
		// Query–negative: h′ = u/‖u‖, u = β·q + (1−β)·n_j,
		// ‖u‖² = β²·q·q + (1−β)²·n_j·n_j + 2β(1−β)·s_j,
		// q·h′ = (β·q·q + (1−β)·s_j)/‖u‖.
		for t1 := 0; t1 < s.SPrime; t1++ {
			rj := int32(negJ[t1])
			j := top[rj]
			be := float64(beta[t1])
			var sj float64
			if t.backward {
				sj = dots[s.S+t1]
			} else {
				sj = float64(t.sim[b*s.K+int(j)])
			}
			u := mixNorm(be*be*qq + (1-be)*(1-be)*nn(rj) + 2*be*(1-be)*sj)
			qh := (be*qq + (1-be)*sj) / u
			if !t.backward {
				t.out[b*m+s.S+t1] = float32(qh)
				continue
			}
			g := float64(t.dout[b*m+s.S+t1]) / u
			cqT, cnT := g*be, g*(1-be) // dq += dout·h′
			if t.gradThroughHPrime {
				// ∂(q·u/‖u‖)/∂q through u adds β/‖u‖·(q − (q·h′)·h′).
				cqT += g * be
				cqT -= g * be * qh * be / u
				cnT -= g * be * qh * (1 - be) / u
			}
			cq += cqT
			axpy32(float32(cnT), row(j), dq)
		}
		if t.backward {
			axpy32(float32(cq), qb, dq)
		}
	}
}

// dotRows sets out[t] to dot64 of the two rows that rows(t) returns, four
// dot products at a time: each one's sum keeps dot64's order (and so its
// bits), while the four independent sums overlap their additions.
func dotRows(out []float64, rows func(t int) ([]float32, []float32)) {
	t := 0
	for ; t+4 <= len(out); t += 4 {
		a0, b0 := rows(t)
		a1, b1 := rows(t + 1)
		a2, b2 := rows(t + 2)
		a3, b3 := rows(t + 3)
		n := len(a0)
		a1, a2, a3 = a1[:n], a2[:n], a3[:n]
		b0, b1, b2, b3 = b0[:n], b1[:n], b2[:n], b3[:n]
		var s0, s1, s2, s3 float64
		for i, v := range a0 {
			s0 += float64(v) * float64(b0[i])
			s1 += float64(a1[i]) * float64(b1[i])
			s2 += float64(a2[i]) * float64(b2[i])
			s3 += float64(a3[i]) * float64(b3[i])
		}
		out[t], out[t+1], out[t+2], out[t+3] = s0, s1, s2, s3
	}
	for ; t < len(out); t++ {
		a, b := rows(t)
		out[t] = dot64(a, b)
	}
}

// normTask sets norms[k] = ‖n_k‖² for a range of queue rows.
type normTask struct {
	d     int
	queue []float32
	norms []float64
}

func (t *normTask) run(_, lo, hi int) {
	row := func(k int) []float32 { return t.queue[k*t.d : (k+1)*t.d] }
	dotRows(t.norms[lo:hi], func(k int) ([]float32, []float32) { return row(lo + k), row(lo + k) })
}

// axpy32: y += a·x.
func axpy32(a float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}

// validRow checks query b's top-N indices and the ranks of its draw row
// (pairs: the 2S ranks i, j followed by the S weights α, which are skipped;
// negJ: the S′ ranks j′), recording an error naming the first bad one.
func (t *mixTask) validRow(b int, top []int32, pairs, negJ []float32) bool {
	s := t.s
	for r, i := range top {
		if i < 0 || int(i) >= s.K {
			t.be.fail("%s: top[%d, %d] = %d is not a queue index in [0, %d)", t.kernel, b, r, i, s.K)
			return false
		}
	}
	for c, v := range pairs[:2*s.S] {
		if !validRank(v, s.N) {
			t.be.fail("%s: draw[%d, %d] = %v is not a rank in [0, N = %d); make the draw with the same N", t.kernel, b, c, v, s.N)
			return false
		}
	}
	for c, v := range negJ {
		if !validRank(v, s.N) {
			t.be.fail("%s: draw[%d, %d] = %v is not a rank in [0, N = %d); make the draw with the same N", t.kernel, b, 3*s.S+c, v, s.N)
			return false
		}
	}
	return true
}

// validRank reports whether v is an integer in [0, n).
func validRank(v float32, n int) bool { return v >= 0 && v < float32(n) && v == float32(int32(v)) }

// mix validates the buffers of the MoCHi kernels and runs t over the batch.
func (b *Backend) mix(kernel string, t mixTask, q, queue, sim, top, draw device.Buffer) {
	s := t.s
	if s.B < 0 || s.D <= 0 || s.N <= 0 || s.N > s.K || s.S < 0 || s.SPrime < 0 {
		b.fail("%s: invalid shape %+v (need 1 ≤ N ≤ K)", kernel, s)
		return
	}
	if !b.need(kernel, "q", q, s.B*s.D) || !b.need(kernel, "queue", queue, s.K*s.D) ||
		!b.need(kernel, "top", top, s.B*s.N) || !b.need(kernel, "draw", draw, s.B*s.DrawCols()) {
		return
	}
	if sim != nil && !b.need(kernel, "sim", sim, s.B*s.K) {
		return
	}
	t.q, t.queue, t.top, t.draw = Float32s(q), Float32s(queue), Int32s(top), Float32s(draw)
	if sim != nil {
		t.sim = Float32s(sim)
	}
	t.kernel, t.be = kernel, b
	b.mu.Lock()
	defer b.mu.Unlock()
	for p := 0; p < b.workers.parts(s.B, 1); p++ {
		b.ws.f64[p] = grow(b.ws.f64[p], s.S+s.SPrime)
	}
	// Every queue row's ‖n‖² once, rather than per query for each of its
	// top N: at MoCHi's sizes B·N is many times K.
	b.ws.norms = grow(b.ws.norms, s.K)
	b.tasks.norms = normTask{d: s.D, queue: t.queue, norms: b.ws.norms}
	b.workers.parallel(s.K, max(1, elemGrain/s.D), &b.tasks.norms)
	b.tasks.norms = normTask{}
	t.ws, t.norms = &b.ws, b.ws.norms
	b.tasks.mix = t
	b.workers.parallel(s.B, 1, &b.tasks.mix)
	b.tasks.mix = mixTask{}
}

// MixLogits writes the MoCHi extra logits in closed form: q·h from the
// similarities s = q·n in sim and the Gram entries n_i·n_i, n_j·n_j, n_i·n_j
// of the queue rows; q·h′ from q·q, n_j·n_j and s_j. The norms are computed,
// not assumed to be 1, so the result is exact for any rows.
func (b *Backend) MixLogits(s device.MixShape, q, queue, sim, top, draw, out device.Buffer) {
	if !b.need("MixLogits", "out", out, s.B*(s.S+s.SPrime)) {
		return
	}
	b.mix("MixLogits", mixTask{s: s, out: Float32s(out)}, q, queue, sim, top, draw)
}

// MixLogitsBackward: dq = Σ_t dout[b,t]·h_t with h, h′ constant; with
// gradThroughHPrime it adds the path through q inside h′,
// dout·β/‖u‖·(q − (q·h′)·h′).
func (b *Backend) MixLogitsBackward(s device.MixShape, q, queue, top, draw, dout device.Buffer, gradThroughHPrime bool, dq device.Buffer) {
	if !b.need("MixLogitsBackward", "dout", dout, s.B*(s.S+s.SPrime)) || !b.need("MixLogitsBackward", "dq", dq, s.B*s.D) {
		return
	}
	b.mix("MixLogitsBackward", mixTask{s: s, dout: Float32s(dout),
		dq: Float32s(dq), backward: true, gradThroughHPrime: gradThroughHPrime}, q, queue, nil, top, draw)
}
