package eval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/mochi-ssl/mochi/internal/parallel"
	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
)

// HardnessConfig holds the parameters of the hardness analysis of the MoCHi
// paper (Kalantidis et al., NeurIPS 2020, arXiv 2010.01028, §3.1–3.2): the
// distribution of q·n over the negatives, over the N hardest of them and
// over synthetic negatives mixed from those, MoCHi(N, s, s′).
type HardnessConfig struct {
	// N is the size of Q̃_N, the hardest negatives (highest q·n) per query;
	// capped at the number of negatives.
	N int
	// S is s, the negative–negative mixes h per query.
	S int
	// SPrime is s′, the query–negative mixes h′ per query.
	SPrime int
	// Tau is τ, the InfoNCE temperature of the softmax that weighs each
	// negative's gradient (0.2 for MoCo-v2).
	Tau float64
	// Bins is the number of equal histogram bins on [−1, 1] (default 40).
	Bins int
	// Epsilon is the threshold on p_n below which a negative's gradient
	// contribution counts as negligible (default 1e-5; see AnalyzeHardness).
	Epsilon float64
	// Seed drives the mixing draw (i, j, α, β) of the synthetic negatives.
	Seed uint64
}

// DefaultHardnessConfig returns MoCHi(1024, 1024, 128) from the paper's
// ImageNet-100 runs with τ = 0.2, 40 bins and ε = 1e-5.
func DefaultHardnessConfig() HardnessConfig {
	return HardnessConfig{N: 1024, S: 1024, SPrime: 128, Tau: 0.2, Bins: 40, Epsilon: 1e-5, Seed: 1}
}

// Histogram counts values in Bins equal bins on [Lo, Hi]; values outside are
// clamped into the first or last bin.
type Histogram struct {
	Lo     float64 `json:"lo"`
	Hi     float64 `json:"hi"`
	Counts []int   `json:"counts"`
	// Total is the number of values counted (Σ Counts).
	Total int `json:"total"`
	// Mean is the mean of the counted values (before clamping).
	Mean float64 `json:"mean"`
	sum  float64
}

// NewHistogram returns an empty histogram of bins equal bins on [lo, hi].
func NewHistogram(lo, hi float64, bins int) Histogram {
	return Histogram{Lo: lo, Hi: hi, Counts: make([]int, bins)}
}

// Add counts v.
func (h *Histogram) Add(v float64) {
	b := int(math.Floor((v - h.Lo) / (h.Hi - h.Lo) * float64(len(h.Counts))))
	b = min(max(b, 0), len(h.Counts)-1)
	h.Counts[b]++
	h.Total++
	h.sum += v
	h.Mean = h.sum / float64(h.Total)
}

// merge adds the counts of o, which has the same bins.
func (h *Histogram) merge(o Histogram) {
	for b, c := range o.Counts {
		h.Counts[b] += c
	}
	h.Total += o.Total
	h.sum += o.sum
	if h.Total > 0 {
		h.Mean = h.sum / float64(h.Total)
	}
}

// Density returns the counts normalised to integrate to 1 over [Lo, Hi]
// (all zeros for an empty histogram).
func (h Histogram) Density() []float64 {
	out := make([]float64, len(h.Counts))
	if h.Total == 0 {
		return out
	}
	width := (h.Hi - h.Lo) / float64(len(h.Counts))
	for b, c := range h.Counts {
		out[b] = float64(c) / (float64(h.Total) * width)
	}
	return out
}

// HardnessStats is the outcome of AnalyzeHardness for one checkpoint.
type HardnessStats struct {
	Config HardnessConfig `json:"config"`
	// Negatives is the histogram of q·n over all queries and negatives.
	Negatives Histogram `json:"negatives"`
	// HardNegatives is the histogram of q·n over each query's Q̃_N.
	HardNegatives Histogram `json:"hard_negatives"`
	// Mixed is the histogram of q·h, h = normalize(α n_i + (1−α) n_j).
	Mixed Histogram `json:"mixed"`
	// QueryMixed is the histogram of q·h′, h′ = normalize(β q + (1−β) n_j).
	QueryMixed Histogram `json:"query_mixed"`
	// Positives is the histogram of q·k over the positive pairs.
	Positives Histogram `json:"positives"`
	// NegligibleShare is the share of (query, negative) pairs with
	// p_n < Epsilon, i.e. whose gradient contribution is negligible.
	NegligibleShare float64 `json:"negligible_share"`
}

// AnalyzeHardness measures how hard the negatives are for the queries q (B×D)
// with positive keys k (B×D) and a set of negatives (K×D, e.g. the queue).
// All rows are L2-normalised first (copies). Per query, following the MoCHi
// paper §3.2, with the kernels training runs (the CPU backend's TopN and
// MixLogits, and pkg/hardneg's MixDraw):
//
//	l_n = q·n for every negative                          // K values
//	Q̃_N = the N negatives with the highest l_n
//	h   = normalize(α n_i + (1−α) n_j), i, j ~ U(Q̃_N), α ~ U(0, 1)    // s of them
//	h′  = normalize(β q + (1−β) n_j),   j ~ U(Q̃_N),    β ~ U(0, 0.5)  // s′ of them
//
// The gradient of the InfoNCE loss w.r.t. q is (1/τ)(Σ_n p_n n − (1 − p_k) k)
// with p = softmax([q·k, q·n_1 … q·n_K]/τ), so negative n moves q with weight
// p_n/τ. A negative counts as negligible when p_n < Epsilon — an absolute
// threshold, so the share grows with K; the paper's observation (§3.1) is
// that for a trained MoCo most of the queue is in that regime.
func AnalyzeHardness(q, k, negatives Matrix, cfg HardnessConfig) (HardnessStats, error) {
	for _, m := range []struct {
		name string
		m    Matrix
	}{{"hardness queries", q}, {"hardness keys", k}, {"hardness negatives", negatives}} {
		if err := m.m.validate(m.name); err != nil {
			return HardnessStats{}, err
		}
	}
	switch {
	case q.N == 0 || negatives.N == 0:
		return HardnessStats{}, fmt.Errorf("eval: hardness analysis needs queries and negatives (got %d and %d)", q.N, negatives.N)
	case k.N != q.N || k.D != q.D || negatives.D != q.D:
		return HardnessStats{}, fmt.Errorf("eval: hardness shapes disagree: queries %d×%d, keys %d×%d, negatives %d×%d; keys must pair with queries and all share D", q.N, q.D, k.N, k.D, negatives.N, negatives.D)
	case cfg.S < 0 || cfg.SPrime < 0 || (cfg.S+cfg.SPrime > 0 && cfg.N <= 0):
		return HardnessStats{}, fmt.Errorf("eval: MoCHi(N=%d, s=%d, s′=%d) is invalid: s, s′ ≥ 0 and N > 0 when mixing", cfg.N, cfg.S, cfg.SPrime)
	case !(cfg.Tau > 0) || cfg.Bins <= 0 || !(cfg.Epsilon > 0):
		return HardnessStats{}, fmt.Errorf("eval: hardness needs τ > 0, bins > 0, ε > 0 (got %v, %d, %v); start from DefaultHardnessConfig", cfg.Tau, cfg.Bins, cfg.Epsilon)
	}
	q, k, negatives = normalizeRows(q), normalizeRows(k), normalizeRows(negatives)
	stats := HardnessStats{
		Config:        cfg,
		Negatives:     NewHistogram(-1, 1, cfg.Bins),
		HardNegatives: NewHistogram(-1, 1, cfg.Bins),
		Mixed:         NewHistogram(-1, 1, cfg.Bins),
		QueryMixed:    NewHistogram(-1, 1, cfg.Bins),
		Positives:     NewHistogram(-1, 1, cfg.Bins),
	}
	const block = 256
	d, kNeg := q.D, negatives.N
	nTop := min(max(cfg.N, 0), kNeg)
	shape := device.MixShape{D: d, K: kNeg, N: nTop, S: cfg.S, SPrime: cfg.SPrime}
	e := cfg.S + cfg.SPrime // synthetic negatives per query
	mixes := nTop > 0 && e > 0
	be := cpu.New(0)
	negBuf := cpu.Wrap(negatives.Data)
	sim := make([]float32, min(block, q.N)*kNeg) // block×K: q·n
	top := make([]int32, min(block, q.N)*nTop)   // block×N: Q̃_N
	extra := make([]float32, min(block, q.N)*e)  // block×(s+s′): q·h, q·h′
	// One stream for the whole analysis, drawn block by block in query
	// order, so the draw does not depend on the number of CPUs.
	rng := rand.New(rand.NewPCG(cfg.Seed, 0))
	var negligible int
	for lo := 0; lo < q.N; lo += block {
		hi := min(lo+block, q.N)
		rows := hi - lo
		shape.B = rows
		qBuf := cpu.Wrap(q.Data[lo*d : hi*d])
		simBuf := cpu.Wrap(sim[:rows*kNeg])
		be.Gemm(false, true, rows, kNeg, d, 1, qBuf, negBuf, 0, simBuf)
		if nTop > 0 {
			be.TopN(rows, kNeg, nTop, simBuf, cpu.WrapInt32(top[:rows*nTop]))
		}
		if mixes {
			draw, err := hardneg.NewMixDraw(rng, rows, nTop, cfg.S, cfg.SPrime)
			if err != nil {
				return HardnessStats{}, err
			}
			be.MixLogits(shape, qBuf, negBuf, simBuf, cpu.WrapInt32(top[:rows*nTop]), cpu.Wrap(draw.Encode(nil)), cpu.Wrap(extra[:rows*e]))
		}
		if err := be.Sync(); err != nil {
			return HardnessStats{}, err
		}
		for r := range rows {
			for t, v := range extra[r*e : (r+1)*e] {
				if t < cfg.S {
					stats.Mixed.Add(float64(v))
				} else {
					stats.QueryMixed.Add(float64(v))
				}
			}
			for _, i := range top[r*nTop : (r+1)*nTop] {
				stats.HardNegatives.Add(float64(sim[r*kNeg+int(i)]))
			}
		}
		var mu sync.Mutex
		parallel.Rows(rows, func(rlo, rhi int) {
			part := HardnessStats{Negatives: NewHistogram(-1, 1, cfg.Bins), Positives: NewHistogram(-1, 1, cfg.Bins)}
			partNegligible := 0
			for r := rlo; r < rhi; r++ {
				b := lo + r
				ln := sim[r*kNeg : (r+1)*kNeg] // 1×K: q·n
				lpos := dot32(q.Row(b), k.Row(b))
				part.Positives.Add(lpos)
				// p_n = exp(l_n/τ − logsumexp([l_pos, l_1 … l_K]/τ))
				lse := newLogSumExp()
				lse.add(lpos / cfg.Tau)
				for _, l := range ln {
					part.Negatives.Add(float64(l))
					lse.add(float64(l) / cfg.Tau)
				}
				logZ := lse.value()
				for _, l := range ln {
					if math.Exp(float64(l)/cfg.Tau-logZ) < cfg.Epsilon {
						partNegligible++
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			stats.Negatives.merge(part.Negatives)
			stats.Positives.merge(part.Positives)
			negligible += partNegligible
		})
	}
	stats.NegligibleShare = float64(negligible) / (float64(q.N) * float64(kNeg))
	return stats, nil
}

// dot32 returns a·b accumulated in float64.
func dot32(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}
