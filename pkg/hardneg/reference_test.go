package hardneg_test

import (
	"math"
	"math/rand/v2"
	"sort"

	"gonum.org/v1/gonum/floats"

	"github.com/mochi-ssl/mochi/pkg/hardneg"
)

// This file is the test's own float64 reference of the method, written
// from the paper's formulas without the package's helpers: a full sort for
// Q̃_N, explicit h and h′, and a plain log-sum-exp.

// problem is one random instance of the loss.
type problem struct {
	B, K, D          int
	q, k, queue      []float64 // B×D, B×D, K×D
	queryLab, queLab []float64 // B, K; nil without labels
	draw             *hardneg.MixDraw
}

func unitRows(rng *rand.Rand, rows, d int) []float64 {
	x := make([]float64, rows*d)
	for r := range rows {
		var n2 float64
		for i := range d {
			v := rng.NormFloat64()
			x[r*d+i] = v
			n2 += v * v
		}
		for i := range d { // a float32 value: the graph's input is the same number
			x[r*d+i] = float64(float32(x[r*d+i] / math.Sqrt(n2)))
		}
	}
	return x
}

func newProblem(seed uint64, b, k, d int, cfg hardneg.Config, classes int) problem {
	rng := rand.New(rand.NewPCG(seed, 1))
	p := problem{B: b, K: k, D: d, q: unitRows(rng, b, d), k: unitRows(rng, b, d), queue: unitRows(rng, k, d)}
	if classes > 0 {
		p.queryLab, p.queLab = make([]float64, b), make([]float64, k)
		for i := range p.queryLab {
			p.queryLab[i] = float64(rng.IntN(classes))
		}
		for i := range p.queLab {
			p.queLab[i] = float64(rng.IntN(classes))
		}
	}
	draw, err := hardneg.NewMixDraw(rng, b, max(cfg.N, 1), cfg.S, cfg.SPrime)
	if err != nil {
		panic(err)
	}
	p.draw = draw
	return p
}

func row(x []float64, i, d int) []float64 { return x[i*d : (i+1)*d] }

func refNormalize(v []float64) []float64 {
	n := math.Sqrt(floats.Dot(v, v))
	out := make([]float64, len(v))
	for i := range v {
		out[i] = v[i] / n
	}
	return out
}

// refKept reports whether queue entry j is a negative for query b.
func (p problem) refKept(oracle bool, b, j int) bool {
	return !oracle || p.queryLab[b] < 0 || p.queLab[j] != p.queryLab[b]
}

// refTopN sorts the kept queue entries fully by (q·n desc, index asc),
// keeps the first n and lists them by index.
func (p problem) refTopN(q []float64, oracle bool, b, n int) []int {
	var idx []int
	for j := range p.K {
		if p.refKept(oracle, b, j) {
			idx = append(idx, j)
		}
	}
	sim := func(j int) float64 { return floats.Dot(row(q, b, p.D), row(p.queue, j, p.D)) }
	sort.SliceStable(idx, func(x, y int) bool { return sim(idx[x]) > sim(idx[y]) })
	idx = idx[:n]
	sort.Ints(idx)
	return idx
}

// refSynthetic builds query b's synthetic negatives [h_1…h_s, h′_1…h′_s′]
// explicitly; qMix is the q inside h′ (a frozen copy when h′ is detached).
func (p problem) refSynthetic(q, qMix []float64, cfg hardneg.Config, b int) [][]float64 {
	sel := p.refTopN(q, cfg.ClassOracle, b, cfg.N)
	var hs [][]float64
	for t := range cfg.S {
		a := float64(p.draw.Alpha[b*cfg.S+t])
		ni := row(p.queue, sel[p.draw.I[b*cfg.S+t]], p.D)
		nj := row(p.queue, sel[p.draw.J[b*cfg.S+t]], p.D)
		h := make([]float64, p.D)
		for x := range h {
			h[x] = a*ni[x] + (1-a)*nj[x]
		}
		hs = append(hs, refNormalize(h))
	}
	for t := range cfg.SPrime {
		be := float64(p.draw.Beta[b*cfg.SPrime+t])
		nj := row(p.queue, sel[p.draw.JQ[b*cfg.SPrime+t]], p.D)
		h := make([]float64, p.D)
		for x := range h {
			h[x] = be*row(qMix, b, p.D)[x] + (1-be)*nj[x]
		}
		hs = append(hs, refNormalize(h))
	}
	return hs
}

// refExtra is the B×(s+s′) matrix of q·h, q·h′.
func (p problem) refExtra(q, qMix []float64, cfg hardneg.Config) []float64 {
	var out []float64
	for b := range p.B {
		for _, h := range p.refSynthetic(q, qMix, cfg, b) {
			out = append(out, floats.Dot(row(q, b, p.D), h))
		}
	}
	return out
}

// refLoss is InfoNCE with label 0 over [q·k, kept q·n, extra]/τ.
func (p problem) refLoss(q, k, qMix []float64, cfg hardneg.Config, mix bool) float64 {
	var extra []float64
	e := 0
	if mix {
		extra, e = p.refExtra(q, qMix, cfg), cfg.S+cfg.SPrime
	}
	var total float64
	for b := range p.B {
		logits := []float64{floats.Dot(row(q, b, p.D), row(k, b, p.D)) / cfg.Tau}
		for j := range p.K {
			if p.refKept(cfg.ClassOracle, b, j) {
				logits = append(logits, floats.Dot(row(q, b, p.D), row(p.queue, j, p.D))/cfg.Tau)
			}
		}
		for _, v := range extra[b*e : (b+1)*e] {
			logits = append(logits, v/cfg.Tau)
		}
		var sumExp float64
		for _, z := range logits {
			sumExp += math.Exp(z)
		}
		total += math.Log(sumExp) - logits[0]
	}
	return total / float64(p.B)
}
