package hardneg

import (
	"fmt"
	"iter"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
)

// The kernels below are the CPU ground truth of the MoCHi op: plain
// functions on row-major slices with their shapes in comments, so that a
// GPU backend can mirror them one for one and be tested against them.

// Float is the element type of the kernels: the graph's float32 or float64.
type Float interface{ float32 | float64 }

// Dims are the sizes the kernels share.
type Dims struct {
	B      int // queries in the batch
	K      int // queue entries
	D      int // embedding dimension
	N      int // |Q̃_N|
	S      int // s, negative–negative mixes per query
	SPrime int // s′, query–negative mixes per query
}

// E is the number of synthetic negatives per query, s + s′.
func (d Dims) E() int { return d.S + d.SPrime }

// normEps is the floor of a norm before division, as torch.nn.functional.normalize.
const normEps = 1e-12

// parallelRows runs fn on one goroutine per CPU; each call ranges over the
// rows it is handed, in chunks taken from [0, b) as it goes, so a worker
// that the OS delays does not hold up the others. fn allocates its scratch
// once per call.
func parallelRows(b int, fn func(rows iter.Seq[int])) {
	const chunk = 4
	var next atomic.Int64
	rows := func(yield func(int) bool) {
		for {
			lo := int(next.Add(chunk)) - chunk
			if lo >= b {
				return
			}
			for r := lo; r < min(lo+chunk, b); r++ {
				if !yield(r) {
					return
				}
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), (b+chunk-1)/chunk)
	if workers <= 1 {
		fn(rows)
		return
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { fn(rows) })
	}
	wg.Wait()
}

// Similarities computes the negative similarities sim = q·Qᵀ (BLAS GEMM).
// sim: B×K, q: B×D, queue: K×D.
func Similarities[T Float](sim, q, queue []T, b, k, d int) {
	gemmNT(sim, q, queue, b, k, d)
}

// gemmNT computes c = a·bᵀ. c: m×n, a: m×d, bm: n×d.
func gemmNT[T Float](c, a, bm []T, m, n, d int) {
	switch c := any(c).(type) {
	case []float32:
		blas32.Gemm(blas.NoTrans, blas.Trans, 1,
			blas32.General{Rows: m, Cols: d, Stride: d, Data: any(a).([]float32)},
			blas32.General{Rows: n, Cols: d, Stride: d, Data: any(bm).([]float32)},
			0, blas32.General{Rows: m, Cols: n, Stride: n, Data: c})
	case []float64:
		blas64.Gemm(blas.NoTrans, blas.Trans, 1,
			blas64.General{Rows: m, Cols: d, Stride: d, Data: any(a).([]float64)},
			blas64.General{Rows: n, Cols: d, Stride: d, Data: any(bm).([]float64)},
			0, blas64.General{Rows: m, Cols: n, Stride: n, Data: c})
	}
}

// gemmNN computes c = a·bm. c: m×n, a: m×k, bm: k×n.
func gemmNN[T Float](c, a, bm []T, m, k, n int) {
	switch c := any(c).(type) {
	case []float32:
		blas32.Gemm(blas.NoTrans, blas.NoTrans, 1,
			blas32.General{Rows: m, Cols: k, Stride: k, Data: any(a).([]float32)},
			blas32.General{Rows: k, Cols: n, Stride: n, Data: any(bm).([]float32)},
			0, blas32.General{Rows: m, Cols: n, Stride: n, Data: c})
	case []float64:
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1,
			blas64.General{Rows: m, Cols: k, Stride: k, Data: any(a).([]float64)},
			blas64.General{Rows: k, Cols: n, Stride: n, Data: any(bm).([]float64)},
			0, blas64.General{Rows: m, Cols: n, Stride: n, Data: c})
	}
}

// SimilaritiesGrad is the gradient of Σ g⊙(q·Qᵀ) w.r.t. q: dq = g·Q.
// dq: B×D, g: B×K, queue: K×D.
func SimilaritiesGrad[T Float](dq, g, queue []T, b, k, d int) {
	gemmNN(dq, g, queue, b, k, d)
}

// dot is x·y over len(x) values, by gonum's assembly kernels.
func dot[T Float](x, y []T) T {
	switch x := any(x).(type) {
	case []float32:
		return T(blas32.Dot(blas32.Vector{N: len(x), Inc: 1, Data: x}, blas32.Vector{N: len(x), Inc: 1, Data: any(y).([]float32)}))
	case []float64:
		return T(blas64.Dot(blas64.Vector{N: len(x), Inc: 1, Data: x}, blas64.Vector{N: len(x), Inc: 1, Data: any(y).([]float64)}))
	}
	panic("unreachable: Float is float32 or float64")
}

// RowDots computes the positive similarities out_b = q_b·k_b.
// out: B, q: B×D, k: B×D.
func RowDots[T Float](out, q, k []T, b, d int) {
	for i := range b {
		out[i] = dot(q[i*d:(i+1)*d], k[i*d:(i+1)*d])
	}
}

// ScaleRows computes out_b = g_b x_b, the gradient of Σ_b g_b (x_b·y_b)
// w.r.t. y. out: B×D, g: B, x: B×D.
func ScaleRows[T Float](out, g, x []T, b, d int) {
	for i := range b {
		for j := range d {
			out[i*d+j] = g[i] * x[i*d+j]
		}
	}
}

// excluded is the class oracle's rule: a queue entry labelled like its
// query is not a negative. Labels < 0 (unknown, or a random initial entry)
// never match.
func excluded(queryLabel, entryLabel int32) bool { return queryLabel >= 0 && entryLabel == queryLabel }

// candidate is a queue entry while selecting Q̃_N.
type candidate[T Float] struct {
	sim T
	idx int32
}

// harder orders candidates by (similarity descending, index ascending), a
// strict total order, so Q̃_N and its ranks are the same on every run and
// every backend, ties included.
func harder[T Float](a, b candidate[T]) bool {
	return a.sim > b.sim || (a.sim == b.sim && a.idx < b.idx)
}

// ErrTooFewCandidates is returned by SelectTopN when fewer than N queue
// entries are candidates for a query: the class oracle removed the rest (or
// their similarities are NaN, which never count).
type ErrTooFewCandidates struct{ Query, Left, N int }

// Error says which query ran short and what to change.
func (e ErrTooFewCandidates) Error() string {
	return fmt.Sprintf("hardneg: the class oracle leaves %d queue entries for query %d, fewer than N = %d; lower mochi.n or raise moco.k", e.Left, e.Query, e.N)
}

// CheckCandidates returns ErrTooFewCandidates for the first query whose
// class oracle leaves fewer than n of the queue's entries, in O(B + K):
// the host's check before a step whose top-N runs on a device, which masks
// the excluded entries and cannot stop on its own (topNOp.Exec). Labels are
// one per query and one per queue entry; labels < 0 never match.
func CheckCandidates(query, queue []int32, n int) error {
	perClass := map[int32]int{}
	for _, l := range queue {
		if l >= 0 {
			perClass[l]++
		}
	}
	for q, l := range query {
		left := len(queue)
		if l >= 0 {
			left -= perClass[l]
		}
		if left < n {
			return ErrTooFewCandidates{Query: q, Left: left, N: n}
		}
	}
	return nil
}

// SelectTopN finds Q̃_N, the N hardest queue entries of each query under
// the strict order (q·n descending, queue index ascending), and lists them in
// queue-index order: sel[b·N + r] is the queue index of rank r. Since the
// plan draws ranks uniformly, their order does not change the method; it
// only has to be the same on every run and backend, ties included.
// queryLabels and queueLabels, when not nil, apply the class oracle.
//
// Selection is partial, O(K) per query: a threshold t is estimated from a
// sample of the similarities so that about 1.4·N entries have q·n ≥ t; those
// are collected and the N-th hardest found by quickselect. When fewer
// than N entries pass t (an unlucky sample), all entries are candidates, so
// the result is always exact.
// sel: B×N, sim: B×K (= q·Qᵀ), queryLabels: B, queueLabels: K.
func SelectTopN[T Float](sel []int32, sim []T, queryLabels, queueLabels []int32, b, k, n int) error {
	errs := make([]error, b)
	parallelRows(b, func(rows iter.Seq[int]) {
		cand, scratch := make([]candidate[T], k), make([]candidate[T], k)
		sample := make([]T, min(k, topNSample))
		for q := range rows {
			simq := sim[q*k : (q+1)*k]
			// collect appends the entries with q·n ≥ t that the oracle keeps.
			collect := func(t T) []candidate[T] {
				c := cand[:0]
				if queryLabels == nil {
					for i, v := range simq {
						if v >= t {
							c = append(c, candidate[T]{sim: v, idx: int32(i)})
						}
					}
					return c
				}
				for i, v := range simq {
					if v >= t && !excluded(queryLabels[q], queueLabels[i]) {
						c = append(c, candidate[T]{sim: v, idx: int32(i)})
					}
				}
				return c
			}
			var c []candidate[T]
			if t, ok := topNThreshold(sample, simq, n); ok {
				c = collect(t)
			}
			if len(c) < n {
				c = collect(T(math.Inf(-1)))
			}
			if len(c) < n {
				errs[q] = ErrTooFewCandidates{Query: q, Left: len(c), N: n}
				continue
			}
			// c is in queue order; find the N-th hardest on a copy, then emit
			// in queue order every candidate at least as hard.
			work := append(scratch[:0], c...)
			selectHardest(work, n)
			weakest, r := work[n-1], 0
			for _, e := range c {
				if !harder(weakest, e) {
					sel[q*n+r] = e.idx
					r++
				}
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// topNSample is how many similarities topNThreshold looks at.
const topNSample = 1024

// topNThreshold estimates a similarity t such that comfortably more than n
// of sim (K) are ≥ t, from len(sample) evenly spaced entries: the number of
// sampled entries above the true N-th largest is about Binomial(m, N/K), so
// t is the sample's value of rank m·N/K + 3 standard deviations + 1. It
// reports false when filtering would not pay (N a large part of K).
func topNThreshold[T Float](sample, sim []T, n int) (T, bool) {
	m, k := len(sample), len(sim)
	f := float64(n) / float64(k)
	r := int(float64(m)*f+3*math.Sqrt(float64(m)*f*(1-f))) + 1
	if r >= m/2 {
		return 0, false
	}
	for i := range sample {
		sample[i] = sim[i*k/m]
	}
	return kthLargest(sample, r), true
}

// kthLargest returns the value of rank r (0 = largest) of x, reordering x
// (quickselect).
func kthLargest[T Float](x []T, r int) T {
	lo, hi := 0, len(x)-1
	for hi > lo {
		pivot := x[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for x[i] > pivot {
				i++
			}
			for pivot > x[j] {
				j--
			}
			if i <= j {
				x[i], x[j] = x[j], x[i]
				i++
				j--
			}
		}
		switch {
		case r <= j:
			hi = j
		case r >= i:
			lo = i
		default:
			return x[r]
		}
	}
	return x[r]
}

// selectHardest partially orders c (Hoare's quickselect, median-of-three
// pivot) so that c[:n] holds its n hardest candidates, in no order.
func selectHardest[T Float](c []candidate[T], n int) {
	lo, hi, k := 0, len(c)-1, n-1
	for hi > lo {
		mid := lo + (hi-lo)/2
		if harder(c[mid], c[lo]) {
			c[mid], c[lo] = c[lo], c[mid]
		}
		if harder(c[hi], c[lo]) {
			c[hi], c[lo] = c[lo], c[hi]
		}
		if harder(c[hi], c[mid]) {
			c[hi], c[mid] = c[mid], c[hi]
		}
		pivot := c[mid]
		i, j := lo, hi
		for i <= j {
			for harder(c[i], pivot) {
				i++
			}
			for harder(pivot, c[j]) {
				j--
			}
			if i <= j {
				c[i], c[j] = c[j], c[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return
		}
	}
}

// drawRow splits one query's row of the plan tensor into its columns.
// row: 3s+2s′ = [i…, j…, α…, j′…, β…].
func drawRow[T Float](row []T, s, sPrime int) (ri, rj, alpha, rjq, beta []T) {
	return row[:s], row[s : 2*s], row[2*s : 3*s], row[3*s : 3*s+sPrime], row[3*s+sPrime : 3*s+2*sPrime]
}

// squaredNorms computes out_k = ‖x_k‖². out: K, x: K×D.
func squaredNorms[T Float](out, x []T, k, d int) {
	parallelRows(k, func(rows iter.Seq[int]) {
		for i := range rows {
			row := x[i*d : (i+1)*d]
			out[i] = dot(row, row)
		}
	})
}

// safeNorm is max(√max(n², 0), ε): rounding can make n² slightly negative
// for nearly opposite vectors.
func safeNorm[T Float](n2 T) T {
	return T(max(math.Sqrt(float64(max(n2, 0))), normEps))
}

// MixLogits computes the extra logits of MoCHi, [q·h_1…q·h_s, q·h′_1…q·h′_s′]
// per query, in closed form from the similarities q·n that the negative
// logits already hold, so each h costs one n_i·n_j and each h′ costs O(1):
//
//	h  = normalize(α n_i + (1−α) n_j):  q·h  = (α q·n_i + (1−α) q·n_j) / ‖α n_i + (1−α) n_j‖,
//	    ‖α n_i + (1−α) n_j‖² = α²‖n_i‖² + (1−α)²‖n_j‖² + 2α(1−α) n_i·n_j;
//	h′ = normalize(β q + (1−β) n_j):    q·h′ = (β ‖q‖² + (1−β) q·n_j) / ‖β q + (1−β) n_j‖,
//	    ‖β q + (1−β) n_j‖² = β²‖q‖² + (1−β)²‖n_j‖² + 2β(1−β) q·n_j.
//
// Norms are kept in the formulas, so the result is exact for inputs that are
// not quite unit length. Synthesize builds h and h′ explicitly.
// out: B×(s+s′), q: B×D, queue: K×D, sim: B×K (= q·Qᵀ), sel: B×N (SelectTopN),
// plan: B×(3s+2s′) (MixDraw.Tensor).
func MixLogits[T Float](out, q, queue, sim []T, sel []int32, plan []T, dm Dims) {
	d, k, n, s, sp, e := dm.D, dm.K, dm.N, dm.S, dm.SPrime, dm.E()
	norm2 := make([]T, k) // K: ‖n‖²
	squaredNorms(norm2, queue, k, d)
	cols := drawCols(s, sp)
	row := func(i int32) []T { return queue[int(i)*d : int(i+1)*d] }
	parallelRows(dm.B, func(rows iter.Seq[int]) {
		// q·n and ‖n‖² of Q̃_N gathered by rank (ascending addresses, as Q̃_N
		// is in queue order) so the random picks below read L1, not K-long
		// rows: N each.
		simN, norm2N := make([]T, n), make([]T, n)
		for b := range rows {
			qb, simb, selb := q[b*d:(b+1)*d], sim[b*k:(b+1)*k], sel[b*n:(b+1)*n]
			for r, i := range selb {
				simN[r], norm2N[r] = simb[i], norm2[i]
			}
			ri, rj, alpha, rjq, beta := drawRow(plan[b*cols:(b+1)*cols], s, sp)
			outb := out[b*e : (b+1)*e]
			for t := range s { // q·h
				i, j, a := int(ri[t]), int(rj[t]), alpha[t]
				nij := dot(row(selb[i]), row(selb[j]))
				den2 := a*a*norm2N[i] + (1-a)*(1-a)*norm2N[j] + 2*a*(1-a)*nij
				outb[t] = (a*simN[i] + (1-a)*simN[j]) / safeNorm(den2)
			}
			qq := dot(qb, qb)
			for t := range sp { // q·h′
				j, bt := int(rjq[t]), beta[t]
				den2 := bt*bt*qq + (1-bt)*(1-bt)*norm2N[j] + 2*bt*(1-bt)*simN[j]
				outb[s+t] = (bt*qq + (1-bt)*simN[j]) / safeNorm(den2)
			}
		}
	})
}

// mixInto writes dst = normalize(a x + (1−a) y) and returns the norm of
// a x + (1−a) y before normalising. dst, x, y: D.
func mixInto[T Float](dst, x, y []T, a T) T {
	for i := range dst {
		dst[i] = a*x[i] + (1-a)*y[i]
	}
	norm := safeNorm(dot(dst, dst))
	for i := range dst {
		dst[i] /= norm
	}
	return norm
}

// Synthesize builds the synthetic negatives explicitly, for analysis:
// h[b,t] = normalize(α n_i + (1−α) n_j) for t < s and
// h[b,s+t] = normalize(β q_b + (1−β) n_j) for t < s′.
// h: B×(s+s′)×D, q: B×D, queue: K×D, sel: B×N, plan: B×(3s+2s′).
func Synthesize[T Float](h, q, queue []T, sel []int32, plan []T, dm Dims) {
	d, n, s, sp, e := dm.D, dm.N, dm.S, dm.SPrime, dm.E()
	cols := drawCols(s, sp)
	row := func(x []T, i int32) []T { return x[int(i)*d : int(i+1)*d] }
	parallelRows(dm.B, func(rows iter.Seq[int]) {
		for b := range rows {
			selb := sel[b*n : (b+1)*n]
			ri, rj, alpha, rjq, beta := drawRow(plan[b*cols:(b+1)*cols], s, sp)
			hb := h[b*e*d : (b+1)*e*d]
			for t := range s {
				mixInto(hb[t*d:(t+1)*d], row(queue, selb[int(ri[t])]), row(queue, selb[int(rj[t])]), alpha[t])
			}
			for t := range sp {
				mixInto(hb[(s+t)*d:(s+t+1)*d], q[b*d:(b+1)*d], row(queue, selb[int(rjq[t])]), beta[t])
			}
		}
	})
}

// MixGrad computes dq = ∂(Σ g⊙extra)/∂q for the extra logits of MixLogits.
// With h and h′ constants (the paper): dq_b = Σ_t g_bt h_bt + Σ_t′ g_bt′ h′_bt′.
// With gradThroughHPrime, the q inside h′ is differentiated too, adding per h′
//
//	∂(q·h′)/∂q − h′ = β (q − (q·h′) h′) / ‖β q + (1−β) n_j‖.
//
// dq: B×D, q: B×D, queue: K×D, sel: B×N, plan: B×(3s+2s′), g: B×(s+s′).
func MixGrad[T Float](dq, q, queue []T, sel []int32, plan, g []T, dm Dims, gradThroughHPrime bool) {
	d, n, s, sp, e := dm.D, dm.N, dm.S, dm.SPrime, dm.E()
	cols := drawCols(s, sp)
	row := func(x []T, i int32) []T { return x[int(i)*d : int(i+1)*d] }
	parallelRows(dm.B, func(rows iter.Seq[int]) {
		h := make([]T, d) // D: one synthetic negative at a time
		for b := range rows {
			qb, dqb, gb := q[b*d:(b+1)*d], dq[b*d:(b+1)*d], g[b*e:(b+1)*e]
			selb := sel[b*n : (b+1)*n]
			ri, rj, alpha, rjq, beta := drawRow(plan[b*cols:(b+1)*cols], s, sp)
			clear(dqb)
			for t := range s {
				mixInto(h, row(queue, selb[int(ri[t])]), row(queue, selb[int(rj[t])]), alpha[t])
				for x := range dqb {
					dqb[x] += gb[t] * h[x]
				}
			}
			for t := range sp {
				norm := mixInto(h, qb, row(queue, selb[int(rjq[t])]), beta[t])
				gt := gb[s+t]
				for x := range dqb {
					dqb[x] += gt * h[x]
				}
				if gradThroughHPrime {
					c := gt * beta[t] / norm
					qh := dot(qb, h)
					for x := range dqb {
						dqb[x] += c * (qb[x] - qh*h[x])
					}
				}
			}
		}
	})
}

// Labels select the negatives the class oracle keeps; nil slices disable it.
type Labels struct {
	Query []int32 // B
	Queue []int32 // K
}

func (l Labels) excludes(b, k int) bool {
	return l.Query != nil && excluded(l.Query[b], l.Queue[k])
}

// infoNCERow returns, for query b, the logits' maximum and Σ exp(z/τ − max)
// over the positive, the kept negatives and the synthetic negatives.
// lpos: B, lneg: B×K, extra: B×E.
func infoNCERow[T Float](lpos, lneg, extra []T, lab Labels, b, k, e int, invTau float64) (zmax, sum float64) {
	zmax = float64(lpos[b]) * invTau
	for i, v := range lneg[b*k : (b+1)*k] {
		if !lab.excludes(b, i) {
			zmax = max(zmax, float64(v)*invTau)
		}
	}
	for _, v := range extra[b*e : (b+1)*e] {
		zmax = max(zmax, float64(v)*invTau)
	}
	sum = math.Exp(float64(lpos[b])*invTau - zmax)
	for i, v := range lneg[b*k : (b+1)*k] {
		if !lab.excludes(b, i) {
			sum += math.Exp(float64(v)*invTau - zmax)
		}
	}
	for _, v := range extra[b*e : (b+1)*e] {
		sum += math.Exp(float64(v)*invTau - zmax)
	}
	return zmax, sum
}

// InfoNCE is the MoCo loss with label 0: the batch mean of
// −log softmax(z_b/τ)_0 over the logits z_b = [q·k, q·n_1…q·n_K, extra_b].
// Queue entries the class oracle excludes drop out of the softmax.
// lpos: B, lneg: B×K, extra: B×E (nil or empty when E = 0).
func InfoNCE[T Float](lpos, lneg, extra []T, lab Labels, b, k, e int, tau float64) float64 {
	losses := make([]float64, b)
	parallelRows(b, func(rows iter.Seq[int]) {
		for i := range rows {
			zmax, sum := infoNCERow(lpos, lneg, extra, lab, i, k, e, 1/tau)
			losses[i] = zmax + math.Log(sum) - float64(lpos[i])/tau
		}
	})
	var total float64
	for _, l := range losses {
		total += l
	}
	return total / float64(b)
}

// InfoNCEGrad writes the gradient of g·InfoNCE w.r.t. each logit block,
// ∂/∂z_bl = g (p_bl − [l = 0]) / (B τ) with p = softmax(z_b/τ), and 0 for
// excluded entries. A nil output is skipped.
// dpos: B, dneg: B×K, dextra: B×E; lpos, lneg, extra as in InfoNCE.
func InfoNCEGrad[T Float](dpos, dneg, dextra, lpos, lneg, extra []T, lab Labels, b, k, e int, tau, g float64) {
	invTau := 1 / tau
	scale := g / (float64(b) * tau)
	parallelRows(b, func(rows iter.Seq[int]) {
		for i := range rows {
			zmax, sum := infoNCERow(lpos, lneg, extra, lab, i, k, e, invTau)
			p := func(v T) float64 { return math.Exp(float64(v)*invTau-zmax) / sum }
			if dpos != nil {
				dpos[i] = T(scale * (p(lpos[i]) - 1))
			}
			if dneg != nil {
				for j, v := range lneg[i*k : (i+1)*k] {
					if lab.excludes(i, j) {
						dneg[i*k+j] = 0
					} else {
						dneg[i*k+j] = T(scale * p(v))
					}
				}
			}
			if dextra != nil {
				for j, v := range extra[i*e : (i+1)*e] {
					dextra[i*e+j] = T(scale * p(v))
				}
			}
		}
	})
}
