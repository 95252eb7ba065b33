package hardneg

import (
	"fmt"
	"math/rand/v2"

	"gorgonia.org/tensor"
)

// MixDraw is the randomness of one step of hard-negative mixing, drawn before
// the data is known so that the mixing op is a pure function of its inputs.
// Ranks index Q̃_N, the query's N hardest queue entries, listed in queue
// index order (see device.Backend.TopN).
type MixDraw struct {
	B, N, S, SPrime int
	I, J            []int32   // B×s ranks of n_i and n_j in h = normalize(α n_i + (1−α) n_j)
	Alpha           []float32 // B×s, α ~ U(0, 1)
	JQ              []int32   // B×s′ ranks of n_j in h′ = normalize(β q + (1−β) n_j)
	Beta            []float32 // B×s′, β ~ U(0, 0.5)
}

// NewMixDraw draws the mixing for b queries from rng (which the trainer owns and
// seeds): per query, s triples (i, j, α) then s′ pairs (j, β), with i and j
// uniform on [0, N) (i = j allowed).
func NewMixDraw(rng *rand.Rand, b, n, s, sPrime int) (*MixDraw, error) {
	if b <= 0 || n <= 0 || s < 0 || sPrime < 0 || n > 1<<24 {
		return nil, fmt.Errorf("hardneg: mixing draw for B = %d, N = %d, s = %d, s′ = %d: B and N must be positive (N ≤ 2²⁴), s and s′ not negative", b, n, s, sPrime)
	}
	p := &MixDraw{B: b, N: n, S: s, SPrime: sPrime,
		I: make([]int32, b*s), J: make([]int32, b*s), Alpha: make([]float32, b*s),
		JQ: make([]int32, b*sPrime), Beta: make([]float32, b*sPrime)}
	p.fill(rng)
	return p, nil
}

// NextMixDraw is NewMixDraw in prev's memory when prev (the last step's
// draw, or nil) has the same sizes: a training loop then allocates nothing
// for its draws. It takes from rng what NewMixDraw takes.
func NextMixDraw(prev *MixDraw, rng *rand.Rand, b, n, s, sPrime int) (*MixDraw, error) {
	if prev == nil || prev.B != b || prev.N != n || prev.S != s || prev.SPrime != sPrime {
		return NewMixDraw(rng, b, n, s, sPrime)
	}
	prev.fill(rng)
	return prev, nil
}

// fill draws p's ranks and weights from rng.
func (p *MixDraw) fill(rng *rand.Rand) {
	b, n, s, sPrime := p.B, p.N, p.S, p.SPrime
	for q := range b {
		for t := q * s; t < (q+1)*s; t++ {
			p.I[t] = int32(rng.IntN(n))
			p.J[t] = int32(rng.IntN(n))
			p.Alpha[t] = rng.Float32()
		}
		for t := q * sPrime; t < (q+1)*sPrime; t++ {
			p.JQ[t] = int32(rng.IntN(n))
			p.Beta[t] = 0.5 * rng.Float32()
		}
	}
}

// Rows is the draw of queries [lo, hi) alone, sharing p's memory: a
// data-parallel rank's part of the global batch's draw.
func (p *MixDraw) Rows(lo, hi int) *MixDraw {
	s, sp := p.S, p.SPrime
	return &MixDraw{B: hi - lo, N: p.N, S: s, SPrime: sp,
		I: p.I[lo*s : hi*s], J: p.J[lo*s : hi*s], Alpha: p.Alpha[lo*s : hi*s],
		JQ: p.JQ[lo*sp : hi*sp], Beta: p.Beta[lo*sp : hi*sp]}
}

// Cols is the width of the draw's tensor encoding: 3s + 2s′.
func (p *MixDraw) Cols() int { return 3*p.S + 2*p.SPrime }

// Encode writes the draw as the B×(3s+2s′) float32 matrix that the mixing
// op reads into dst (reallocated when too short) and returns it. Row b
// holds [i_1…i_s, j_1…j_s, α_1…α_s, j′_1…j′_s′, β_1…β_s′]; ranks below 2²⁴
// are exact in float32.
func (p *MixDraw) Encode(dst []float32) []float32 {
	s, sp, cols := p.S, p.SPrime, p.Cols()
	if cap(dst) < p.B*cols {
		dst = make([]float32, p.B*cols)
	}
	out := dst[:p.B*cols]
	for b := range p.B {
		row := out[b*cols : (b+1)*cols]
		for t := range s {
			row[t] = float32(p.I[b*s+t])
			row[s+t] = float32(p.J[b*s+t])
			row[2*s+t] = p.Alpha[b*s+t]
		}
		for t := range sp {
			row[3*s+t] = float32(p.JQ[b*sp+t])
			row[3*s+sp+t] = p.Beta[b*sp+t]
		}
	}
	return out
}

// Tensor is Encode's matrix as a tensor (a graph input's value).
func (p *MixDraw) Tensor() *tensor.Dense {
	return tensor.New(tensor.WithShape(p.B, p.Cols()), tensor.WithBacking(p.Encode(nil)))
}
