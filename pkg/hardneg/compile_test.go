package hardneg_test

import (
	"fmt"
	"math"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
	"github.com/mochi-ssl/mochi/pkg/graph"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
)

// runCompiled builds the float32 loss for p with the gradients w.r.t. q
// and k, compiles it for be and runs it twice (the second run must repeat
// the first: workspaces hold no state between runs). It returns the second
// run's values.
func runCompiled(t *testing.T, be device.Backend, p problem, cfg hardneg.Config, mix bool) result {
	t.Helper()
	g, l, grads, err := buildLoss(p, p.q, cfg, mix, false)
	if err != nil {
		t.Fatal(err)
	}
	outputs := G.Nodes{l.Loss, l.LPos, l.LNeg, grads[0], grads[1]}
	if l.Extra != nil {
		outputs = append(outputs, l.TopN, l.Extra)
	}
	plan, err := graph.Compile(g, be, outputs...)
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Free()
	download := func(n *G.Node) []float64 {
		b := plan.Buffer(n)
		if b.DType() == device.Int32 {
			x := make([]int32, b.Len())
			be.DownloadInt32(x, b)
			return toFloat64(tensor.New(tensor.WithBacking(x)))
		}
		x := make([]float32, b.Len())
		be.Download(x, b)
		return toFloat64(tensor.New(tensor.WithBacking(x)))
	}
	var runs [2][][]float64
	for i := range runs {
		if err := plan.Run(); err != nil {
			t.Fatal(err)
		}
		for _, n := range outputs {
			runs[i] = append(runs[i], download(n))
		}
	}
	if fmt.Sprint(runs[0]) != fmt.Sprint(runs[1]) {
		t.Error("a second run of the same plan gave other values")
	}
	v := runs[1]
	r := result{loss: v[0][0], lpos: v[1], lneg: v[2], dq: v[3], dk: v[4]}
	if l.Extra != nil {
		r.topN, r.extra = v[5], v[6]
	}
	return r
}

// relToMax is max_i |got_i − want_i| / max_i |want_i|: an error relative
// to the typical size of a value, for gradients whose entries cancel.
func relToMax(got, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d, m float64
	for i := range got {
		if math.IsNaN(got[i]) {
			return math.Inf(1)
		}
		d = max(d, math.Abs(got[i]-want[i]))
		m = max(m, math.Abs(want[i]))
	}
	return d / m
}

// TestCompiledLossMatchesTapeMachine runs the float32 loss graph compiled
// for a backend (a plan: buffers reused, views, kernels in one sequence)
// and on the TapeMachine (each op's Exec on graph.Host, fresh values), with
// and without mixing and the class oracle, in both gradient modes, and
// compares every value. The two CPU backends differ in thread count, so
// their kernels may split sums differently, hence 1e-5.
func TestCompiledLossMatchesTapeMachine(t *testing.T) {
	const tol = 1e-5
	be := cpu.New(2) // graph.Compile runs backend kernels only, as on a GPU
	cases := []struct {
		name    string
		b, k, d int
		cfg     hardneg.Config
		classes int
		mix     bool
	}{
		{"MoCHi", 6, 200, 16, hardneg.Config{N: 24, S: 20, SPrime: 8, Tau: 0.2}, 0, true},
		{"MoCHi oracle", 6, 200, 16, hardneg.Config{N: 24, S: 20, SPrime: 8, Tau: 0.2, ClassOracle: true}, 4, true},
		{"s′=0 oracle", 5, 90, 8, hardneg.Config{N: 10, S: 6, Tau: 0.1, ClassOracle: true}, 3, true},
		{"s=0", 5, 90, 8, hardneg.Config{N: 10, SPrime: 6, Tau: 0.1}, 0, true},
		{"MoCo-v2", 6, 200, 16, hardneg.Config{N: 24, S: 20, SPrime: 8, Tau: 0.2}, 0, false},
		{"MoCo-v2 oracle", 6, 200, 16, hardneg.Config{Tau: 0.2, ClassOracle: true}, 4, false},
	}
	for i, tc := range cases {
		inGradModes(t, tc.name, tc.cfg, func(t *testing.T, cfg hardneg.Config) {
			p := newProblem(uint64(70+i), tc.b, tc.k, tc.d, cfg, tc.classes)
			want, err := runGraph(p, p.q, cfg, tc.mix)
			if err != nil {
				t.Fatal(err)
			}
			got := runCompiled(t, be, p, cfg, tc.mix)
			for _, c := range []struct {
				what      string
				got, want []float64
			}{
				{"loss", []float64{got.loss}, []float64{want.loss}},
				{"q·k", got.lpos, want.lpos},
				{"q·Qᵀ", got.lneg, want.lneg},
				{"∂loss/∂q", got.dq, want.dq},
				{"∂loss/∂k", got.dk, want.dk},
				{"extra logits", got.extra, want.extra},
			} {
				if c.want == nil && c.got == nil {
					continue
				}
				if e := relToMax(c.got, c.want); !(e <= tol) {
					t.Errorf("%s: compiled vs TapeMachine, relative error %.3g > %g", c.what, e, tol)
				}
			}
			if fmt.Sprint(got.topN) != fmt.Sprint(want.topN) {
				t.Errorf("Q̃_N: compiled %v, TapeMachine %v", got.topN, want.topN)
			}
			// the float64 reference, as a check that both are right
			if e := maxRelErr([]float64{got.loss}, []float64{p.refLoss(p.q, p.k, p.q, cfg, tc.mix && cfg.S+cfg.SPrime > 0)}); e > 2e-5 {
				t.Errorf("loss: relative error %g against the float64 reference", e)
			}
		})
	}
}

// inGradModes runs f as a subtest name/gradThroughHPrime=… with cfg in both
// gradient modes: h′ a constant, and the gradient through the q inside h′.
func inGradModes(t *testing.T, name string, cfg hardneg.Config, f func(t *testing.T, cfg hardneg.Config)) {
	for _, through := range []bool{false, true} {
		cfg.GradThroughHPrime = through
		t.Run(fmt.Sprintf("%s/gradThroughHPrime=%t", name, through), func(t *testing.T) { f(t, cfg) })
	}
}
