package hardneg_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/mochi-ssl/mochi/pkg/hardneg"
)

// statsInput is random forward values of one step: similarities drawn
// around 0 with a spread like trained embeddings', Q̃_N as random queue
// indices, and labels of a few classes (some queries unlabelled, −1).
type statsInput struct {
	dm          hardneg.Dims
	lpos, lneg  []float64 // B, B×K
	sel         []int32   // B×N, nil without mixing
	extra       []float64 // B×E
	qLab, kLab  []int32   // B, K; nil without the class oracle
	tau         float64
	description string
}

func newStatsInput(seed uint64, mixing, oracle bool) statsInput {
	rng := rand.New(rand.NewPCG(seed, 7))
	// B = 37 rows: split unevenly over any number of workers.
	in := statsInput{dm: hardneg.Dims{B: 37, K: 300, D: 8}, tau: 0.2,
		description: fmt.Sprintf("mixing=%t oracle=%t", mixing, oracle)}
	if mixing {
		in.dm.N, in.dm.S, in.dm.SPrime = 40, 24, 9
	}
	sim := func(n int) []float64 {
		x := make([]float64, n)
		for i := range x {
			x[i] = float64(float32(math.Tanh(rng.NormFloat64() * 0.3))) // the float32 the step holds
		}
		return x
	}
	in.lpos, in.lneg, in.extra = sim(in.dm.B), sim(in.dm.B*in.dm.K), sim(in.dm.B*in.dm.E())
	if mixing {
		in.sel = make([]int32, in.dm.B*in.dm.N)
		for i := range in.sel {
			in.sel[i] = int32(rng.IntN(in.dm.K))
		}
	}
	if oracle {
		in.qLab, in.kLab = make([]int32, in.dm.B), make([]int32, in.dm.K)
		for i := range in.qLab {
			in.qLab[i] = int32(rng.IntN(6)) - 1
		}
		for i := range in.kLab {
			in.kLab[i] = int32(rng.IntN(5))
		}
	}
	return in
}

func (in statsInput) compute() hardneg.Stats {
	return hardneg.ComputeStats(toF32(in.lpos), toF32(in.lneg), in.sel, toF32(in.extra), hardneg.Labels{Query: in.qLab, Queue: in.kLab}, in.dm, in.tau)
}

// reference is the test's own Stats: every sum over a plain list of the
// kept values, the top 5% by a full sort.
func (in statsInput) reference() hardneg.Stats {
	b, k, n, e := in.dm.B, in.dm.K, in.dm.N, in.dm.E()
	var st hardneg.Stats
	var queue, topN, synth []float64
	var harder int
	for q := range b {
		var kept []float64
		for i := range k {
			if in.qLab == nil || in.qLab[q] < 0 || in.kLab[i] != in.qLab[q] {
				kept = append(kept, in.lneg[q*k+i])
			}
		}
		queue = append(queue, kept...)
		hardest := slices.Max(kept)
		if in.sel != nil {
			for _, i := range in.sel[q*n : (q+1)*n] {
				topN = append(topN, in.lneg[q*k+int(i)])
			}
		}
		ex := in.extra[q*e : (q+1)*e]
		synth = append(synth, ex...)
		for _, v := range ex {
			if v > hardest {
				harder++
			}
		}
		var p []float64
		for _, v := range append(kept, ex...) {
			p = append(p, math.Exp(v/in.tau))
		}
		var all, top float64
		for _, v := range p {
			all += v
		}
		slices.Sort(p)
		slices.Reverse(p)
		for _, v := range p[:int(math.Ceil(0.05*float64(len(p))))] {
			top += v
		}
		st.Top5GradShare += top / all / float64(b)
	}
	mean := func(x []float64) float64 {
		var s float64
		for _, v := range x {
			s += v
		}
		return s / float64(len(x))
	}
	st.QueueMean, st.QueueMax = mean(queue), slices.Max(queue)
	if len(topN) > 0 {
		st.TopNMean, st.TopNMax = mean(topN), slices.Max(topN)
	}
	if len(synth) > 0 {
		st.SynthMean, st.SynthMax = mean(synth), slices.Max(synth)
		st.HarderThanHardestReal = float64(harder) / float64(len(synth))
	}
	return st
}

func statsFields(st hardneg.Stats) []float64 {
	return []float64{st.QueueMean, st.QueueMax, st.TopNMean, st.TopNMax, st.SynthMean, st.SynthMax,
		st.HarderThanHardestReal, st.Top5GradShare}
}

// TestComputeStatsMatchesReference checks the values against the test's own
// computation, with and without mixing and the class oracle.
func TestComputeStatsMatchesReference(t *testing.T) {
	for _, mixing := range []bool{false, true} {
		for _, oracle := range []bool{false, true} {
			in := newStatsInput(11, mixing, oracle)
			got, want := in.compute(), in.reference()
			if mixing && (want.HarderThanHardestReal == 0 || want.TopNMean == 0) {
				t.Fatalf("%s: degenerate instance %+v cannot test the stats", in.description, want)
			}
			if e := maxRelErr(statsFields(got), statsFields(want)); e > 1e-12 {
				t.Errorf("%s: relative error %g\n got %+v\nwant %+v", in.description, e, got, want)
			}
		}
	}
}

// TestComputeStatsSameForAnyWorkers runs the statistics on one worker and on
// several (GOMAXPROCS above the CPU count still runs that many goroutines):
// the per-query parts are summed in row order, so the results must be equal
// bit for bit.
func TestComputeStatsSameForAnyWorkers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, mixing := range []bool{false, true} {
		for _, oracle := range []bool{false, true} {
			in := newStatsInput(12, mixing, oracle)
			runtime.GOMAXPROCS(1)
			one := in.compute()
			for _, workers := range []int{2, 3, 8} {
				runtime.GOMAXPROCS(workers)
				for range 3 { // the rows go to workers in a different order each run
					got := in.compute()
					for i, v := range statsFields(got) {
						if math.Float64bits(v) != math.Float64bits(statsFields(one)[i]) {
							t.Errorf("%s, %d workers: field %d = %v, one worker gives %v", in.description, workers, i, v, statsFields(one)[i])
						}
					}
				}
			}
		}
	}
}
