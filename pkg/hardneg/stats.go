package hardneg

import (
	"math"

	"github.com/mochi-ssl/mochi/internal/parallel"
)

// Stats summarises one step's negatives, for monitoring and for the paper's
// analysis (its Figure 3): how hard the real and synthetic negatives are and
// how much of the gradient the hardest carry. Similarities are q·n, before
// the temperature; queue entries the class oracle excludes are left out.
type Stats struct {
	QueueMean, QueueMax float64 // q·n over the queue
	TopNMean, TopNMax   float64 // q·n over Q̃_N
	SynthMean, SynthMax float64 // q·h and q·h′ over the synthetic negatives (0 without)
	// HarderThanHardestReal is the fraction of synthetic negatives with a
	// higher similarity than their query's hardest real negative.
	HarderThanHardestReal float64
	// Top5GradShare is the share of the loss gradient carried by the hardest
	// 5% of the negatives (real and synthetic): ∂L/∂z_n ∝ p_n, the softmax
	// probability, so share = Σ of the top 5% p_n / Σ p_n, per query, averaged
	// over the batch.
	Top5GradShare float64
}

// rowStats is one query's part of Stats. Each query's part is computed on
// its own and the batch totals are summed over the queries in row order, so
// Stats is bitwise the same whatever the number of workers.
type rowStats struct {
	queueSum   float64 // Σ q·n over the kept queue entries
	queueCount int     // kept queue entries
	hardest    float64 // max q·n over the kept queue entries (−∞ if none)
	topSum     float64 // Σ q·n over Q̃_N
	topMax     float64
	synthSum   float64 // Σ q·h over the synthetic negatives
	synthMax   float64
	harder     int     // synthetic negatives above hardest
	share      float64 // Σ of the top 5% p_n / Σ p_n
}

// ComputeStats computes Stats from the forward values of one step, the
// queries spread over one goroutine per CPU.
// lpos: B, lneg: B×K (= q·Qᵀ), sel: B×N (nil without mixing), extra: B×E.
func ComputeStats(lpos, lneg []float32, sel []int32, extra []float32, lab Labels, dm Dims, tau float64) Stats {
	b, k, n, e := dm.B, dm.K, dm.N, dm.E()
	rows := make([]rowStats, b)
	parallel.Rows(b, func(lo, hi int) {
		probs := make([]float64, 0, k+e) // one query's negative probabilities
		for q := lo; q < hi; q++ {
			var qSel []int32
			if sel != nil {
				qSel = sel[q*n : (q+1)*n]
			}
			rows[q] = queryStats(lneg[q*k:(q+1)*k], qSel, extra[q*e:(q+1)*e], lab, q, tau, probs)
		}
	})

	var st Stats
	st.QueueMax, st.TopNMax, st.SynthMax = math.Inf(-1), math.Inf(-1), math.Inf(-1)
	var queueSum, topSum, synthSum float64
	var queueCount, harderCount int
	for _, r := range rows { // in row order: the sums do not depend on the workers
		queueSum += r.queueSum
		queueCount += r.queueCount
		st.QueueMax = max(st.QueueMax, r.hardest)
		topSum += r.topSum
		st.TopNMax = max(st.TopNMax, r.topMax)
		synthSum += r.synthSum
		st.SynthMax = max(st.SynthMax, r.synthMax)
		harderCount += r.harder
		st.Top5GradShare += r.share
	}
	st.QueueMean = queueSum / float64(queueCount)
	st.Top5GradShare /= float64(b)
	if sel == nil {
		st.TopNMax = 0
	} else {
		st.TopNMean = topSum / float64(b*n)
	}
	if e == 0 {
		st.SynthMax = 0
	} else {
		st.SynthMean = synthSum / float64(b*e)
		st.HarderThanHardestReal = float64(harderCount) / float64(b*e)
	}
	return st
}

// queryStats is query q's part of Stats. neg: K (q·Qᵀ), sel: N (nil without
// mixing), extra: E; probs is scratch of capacity K+E.
func queryStats(neg []float32, sel []int32, extra []float32, lab Labels, q int, tau float64, probs []float64) rowStats {
	kept := func(i int) bool { return !lab.excludes(q, i) } // the class oracle's rule
	var queueSum float64
	queueCount, hardest := 0, math.Inf(-1)
	for i, v := range neg {
		if kept(i) {
			queueSum += float64(v)
			queueCount++
			hardest = max(hardest, float64(v))
		}
	}
	r := rowStats{queueSum: queueSum, queueCount: queueCount, hardest: hardest, topMax: math.Inf(-1), synthMax: math.Inf(-1)}
	for _, i := range sel {
		v := float64(neg[i])
		r.topSum += v
		r.topMax = max(r.topMax, v)
	}
	for _, v := range extra {
		r.synthSum += float64(v)
		r.synthMax = max(r.synthMax, float64(v))
		if float64(v) > hardest {
			r.harder++
		}
	}
	// p_n ∝ exp(z_n/τ); the normaliser cancels in the share.
	probs = probs[:0]
	zmax := math.Max(hardest, maxOf(extra))
	for i, v := range neg {
		if kept(i) {
			probs = append(probs, math.Exp((float64(v)-zmax)/tau))
		}
	}
	for _, v := range extra {
		probs = append(probs, math.Exp((float64(v)-zmax)/tau))
	}
	r.share = topShare(probs, 0.05)
	return r
}

// maxOf is the largest value of x, −∞ when x is empty.
func maxOf(x []float32) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, float64(v))
	}
	return m
}

// topShare is the sum of the largest ⌈frac·len(p)⌉ values of p over the sum
// of all (p is reordered). A selection finds the threshold value t, so the
// cost is linear in len(p): the head is every value above t plus as many
// copies of t as the count still needs (ties at t are equal either way).
func topShare(p []float64, frac float64) float64 {
	top := int(math.Ceil(frac * float64(len(p))))
	if top == 0 {
		return 0
	}
	var all float64
	for _, v := range p {
		all += v
	}
	t := kthLargest(p, top-1)
	var head float64
	above := 0
	for _, v := range p {
		if v > t {
			head += v
			above++
		}
	}
	head += float64(top-above) * t
	return head / all
}

// kthLargest returns the value of rank r (0 = largest) of x, reordering x
// (quickselect).
func kthLargest(x []float64, r int) float64 {
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
