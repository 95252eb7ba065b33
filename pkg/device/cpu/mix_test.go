package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// TestTopNMatchesHeap requires the radix select to pick exactly what the
// bounded heap picks, in the same order, on rows built to stress it: many
// ties, −0 beside +0, ±Inf, values crowded into one key bucket (so every
// digit decides), n from 1 to cols; rows with a NaN must take the heap's
// selection.
func TestTopNMatchesHeap(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	negZero := float32(math.Copysign(0, -1))
	gens := map[string]func() float32{
		"uniform":  func() float32 { return rng.Float32()*2 - 1 },
		"ties":     func() float32 { return float32(rng.IntN(5)) - 2 },
		"zeros":    func() float32 { return []float32{0, negZero, 1, -1}[rng.IntN(4)] },
		"infs":     func() float32 { return []float32{float32(math.Inf(1)), float32(math.Inf(-1)), 0, 1}[rng.IntN(4)] },
		"crowded":  func() float32 { return math.Float32frombits(math.Float32bits(0.3) + uint32(rng.IntN(64))) },
		"extremes": func() float32 { return math.Float32frombits(rng.Uint32()&^(0xff<<23) | uint32(rng.IntN(2)*254)<<23) },
	}
	for name, gen := range gens {
		for _, nan := range []bool{false, true} {
			for _, cols := range []int{1, 7, 300, 4100} {
				rows := 5
				x := make([]float32, rows*cols)
				for i := range x {
					x[i] = gen()
				}
				if nan {
					x[rng.IntN(len(x))] = float32(math.NaN())
				}
				for _, n := range []int{1, 2, cols / 3, cols - 1, cols} {
					if n < 1 || n > cols {
						continue
					}
					got := make([]int32, rows*n)
					be := New(2)
					be.TopN(rows, cols, n, Wrap(x), WrapInt32(got))
					if err := be.Sync(); err != nil {
						t.Fatal(err)
					}
					want := make([]int32, rows*n)
					for r := range rows {
						heapTop(x[r*cols:(r+1)*cols], make([]int32, n), want[r*n:(r+1)*n])
					}
					if !slices.Equal(got, want) {
						t.Errorf("%s nan=%v cols=%d n=%d: TopN = %v, the heap's = %v", name, nan, cols, n, trim(got), trim(want))
					}
				}
			}
		}
	}
}

func trim(s []int32) string {
	if len(s) > 20 {
		return fmt.Sprint(s[:20]) + "…"
	}
	return fmt.Sprint(s)
}

// TestMixMatchesPlain requires MixLogits and MixLogitsBackward to give the
// bits of the plain per-query computation below (every norm and Gram entry
// by dot64 where it is used), on unnormalised rows, with i = j pairs and S,
// S′ not multiples of four, on one, two and three (finely split) threads.
func TestMixMatchesPlain(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	s := device.MixShape{B: 5, D: 13, K: 50, N: 10, S: 9, SPrime: 6}
	gauss := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	q, queue, sim, dout := gauss(s.B*s.D), gauss(s.K*s.D), gauss(s.B*s.K), gauss(s.B*(s.S+s.SPrime))
	top := make([]int32, s.B*s.N)
	for b := range s.B {
		for r, k := range rng.Perm(s.K)[:s.N] {
			top[b*s.N+r] = int32(k)
		}
	}
	draw := make([]float32, s.B*s.DrawCols())
	for b := range s.B {
		d := draw[b*s.DrawCols() : (b+1)*s.DrawCols()]
		for c := range d {
			switch {
			case c < 2*s.S || (c >= 3*s.S && c < 3*s.S+s.SPrime):
				d[c] = float32(rng.IntN(s.N))
			default:
				d[c] = rng.Float32()
			}
		}
		d[s.S] = d[0] // a pair with i = j
	}
	wantOut, wantDq := plainMix(s, q, queue, sim, top, draw, dout)
	for _, be := range []*Backend{New(1), New(2), newFine(3)} {
		out := make([]float32, s.B*(s.S+s.SPrime))
		be.MixLogits(s, Wrap(q), Wrap(queue), Wrap(sim), WrapInt32(top), Wrap(draw), Wrap(out))
		for g, want := range wantDq {
			dq := make([]float32, s.B*s.D)
			be.MixLogitsBackward(s, Wrap(q), Wrap(queue), WrapInt32(top), Wrap(draw), Wrap(dout), g == 1, Wrap(dq))
			if !bitsEqual(dq, want) {
				t.Errorf("%d threads, gradThroughHPrime=%v: dq = %v, plain %v", be.workers.n, g == 1, dq, want)
			}
		}
		if err := be.Sync(); err != nil {
			t.Fatal(err)
		}
		if !bitsEqual(out, wantOut) {
			t.Errorf("%d threads: MixLogits = %v, plain %v", be.workers.n, out, wantOut)
		}
		// Warm, the kernels allocate nothing: the workspace is kept.
		qB, queueB, simB, topB, drawB, outB, doutB := Wrap(q), Wrap(queue), Wrap(sim), WrapInt32(top), Wrap(draw), Wrap(out), Wrap(dout)
		selB, dqB := WrapInt32(make([]int32, s.B*s.N)), Wrap(make([]float32, s.B*s.D))
		if n := testing.AllocsPerRun(3, func() {
			be.TopN(s.B, s.K, s.N, simB, selB)
			be.MixLogits(s, qB, queueB, simB, topB, drawB, outB)
			be.MixLogitsBackward(s, qB, queueB, topB, drawB, doutB, true, dqB)
		}); n != 0 {
			t.Errorf("%d threads: TopN, MixLogits and MixLogitsBackward allocate %v times", be.workers.n, n)
		}
	}
}

func bitsEqual(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

// plainMix computes the MoCHi logits and their gradients dq (without, then
// with the path through h′) one query, one logit at a time.
func plainMix(s device.MixShape, q, queue, sim []float32, top []int32, draw, dout []float32) (out []float32, dq [2][]float32) {
	d, m, cols := s.D, s.S+s.SPrime, s.DrawCols()
	row := func(k int32) []float32 { return queue[int(k)*d : (int(k)+1)*d] }
	out = make([]float32, s.B*m)
	dq = [2][]float32{make([]float32, s.B*s.D), make([]float32, s.B*s.D)}
	for b := range s.B {
		qb, tb, db := q[b*d:(b+1)*d], top[b*s.N:(b+1)*s.N], draw[b*cols:(b+1)*cols]
		qq := dot64(qb, qb)
		var cq [2]float64
		for t0 := range s.S {
			i, j, a := tb[int(db[t0])], tb[int(db[s.S+t0])], float64(db[2*s.S+t0])
			u := mixNorm(a*a*dot64(row(i), row(i)) + (1-a)*(1-a)*dot64(row(j), row(j)) + 2*a*(1-a)*dot64(row(i), row(j)))
			si, sj := float64(sim[b*s.K+int(i)]), float64(sim[b*s.K+int(j)])
			out[b*m+t0] = float32((a*si + (1-a)*sj) / u)
			g := float64(dout[b*m+t0]) / u
			for h := range dq {
				axpy32(float32(g*a), row(i), dq[h][b*d:(b+1)*d])
				axpy32(float32(g*(1-a)), row(j), dq[h][b*d:(b+1)*d])
			}
		}
		for t1 := range s.SPrime {
			j, be := tb[int(db[3*s.S+t1])], float64(db[3*s.S+s.SPrime+t1])
			for h, sj := range []float64{float64(sim[b*s.K+int(j)]), dot64(qb, row(j)), dot64(qb, row(j))} {
				u := mixNorm(be*be*qq + (1-be)*(1-be)*dot64(row(j), row(j)) + 2*be*(1-be)*sj)
				qh := (be*qq + (1-be)*sj) / u
				if h == 0 {
					out[b*m+s.S+t1] = float32(qh)
					continue
				}
				g := float64(dout[b*m+s.S+t1]) / u
				cqT, cnT := g*be, g*(1-be)
				if h == 2 {
					cqT += g * be
					cqT -= g * be * qh * be / u
					cnT -= g * be * qh * (1 - be) / u
				}
				cq[h-1] += cqT
				axpy32(float32(cnT), row(j), dq[h-1][b*d:(b+1)*d])
			}
		}
		for h := range dq {
			axpy32(float32(cq[h]), qb, dq[h][b*d:(b+1)*d])
		}
	}
	return out, dq
}
