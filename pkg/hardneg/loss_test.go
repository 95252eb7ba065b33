package hardneg_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/mochi-ssl/mochi/internal/numconv"
	"github.com/mochi-ssl/mochi/pkg/hardneg"
	"gonum.org/v1/gonum/floats"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// result holds one run of the loss graph, converted to float64.
type result struct {
	loss                    float64
	lpos, lneg, topN, extra []float64
	dq, dk                  []float64
	stats                   hardneg.Stats
}

var toF32 = numconv.Slice[float32, float64]

func toFloat64(v G.Value) []float64 {
	switch x := v.Data().(type) {
	case []float32:
		return numconv.Slice[float64](x)
	case float32:
		return []float64{float64(x)}
	case []int32:
		return numconv.Slice[float64](x)
	}
	panic(fmt.Sprintf("value of %T", v.Data()))
}

// buildLoss builds, in a new graph, the float32 loss for p with q in place
// of p.q, and its gradients w.r.t. q and k; record sets Inputs.RecordStats.
func buildLoss(p problem, q []float64, cfg hardneg.Config, mix, record bool) (*G.ExprGraph, *hardneg.LossGraph, G.Nodes, error) {
	g := G.NewGraph()
	mat := func(name string, x []float64, r, c int) *G.Node {
		return G.NewMatrix(g, tensor.Float32, G.WithShape(r, c), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(r, c), tensor.WithBacking(toF32(x)))))
	}
	vec := func(name string, x []float64) *G.Node {
		return G.NewVector(g, tensor.Float32, G.WithShape(len(x)), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(len(x)), tensor.WithBacking(toF32(x)))))
	}
	in := hardneg.Inputs{Query: mat("q", q, p.B, p.D), Key: mat("k", p.k, p.B, p.D), Queue: mat("queue", p.queue, p.K, p.D), RecordStats: record}
	if mix && cfg.S+cfg.SPrime > 0 {
		pt := p.draw.Tensor()
		in.Draw = G.NewMatrix(g, tensor.Float32, G.WithShape(pt.Shape()...), G.WithName("draw"), G.WithValue(pt))
	}
	if p.queryLab != nil {
		in.QueryLabels, in.QueueLabels = vec("queryLabels", p.queryLab), vec("queueLabels", p.queLab)
	}
	l, err := hardneg.Loss(in, cfg, mix)
	if err != nil {
		return nil, nil, nil, err
	}
	grads, err := G.Grad(l.Loss, in.Query, in.Key)
	return g, l, grads, err
}

// runGraph builds the float32 loss for p on the TapeMachine, with the
// gradients w.r.t. q and k, runs it once and returns every value.
func runGraph(p problem, q []float64, cfg hardneg.Config, mix bool) (result, error) {
	g, l, grads, err := buildLoss(p, q, cfg, mix, true)
	if err != nil {
		return result{}, err
	}
	var loss, lpos, lneg, topN, extra, dq, dk G.Value
	G.Read(l.Loss, &loss)
	G.Read(l.LPos, &lpos)
	G.Read(l.LNeg, &lneg)
	G.Read(grads[0], &dq)
	G.Read(grads[1], &dk)
	if l.Extra != nil {
		G.Read(l.TopN, &topN)
		G.Read(l.Extra, &extra)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		return result{}, err
	}
	r := result{loss: toFloat64(loss)[0], lpos: toFloat64(lpos), lneg: toFloat64(lneg), dq: toFloat64(dq), dk: toFloat64(dk)}
	if l.Extra != nil {
		r.topN, r.extra = toFloat64(topN), toFloat64(extra)
	}
	if r.stats, err = l.Stats(); err != nil {
		return result{}, err
	}
	return r, nil
}

// maxRelErr is max |got−want| / max(1, |want|).
func maxRelErr(got, want []float64) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var m float64
	for i := range got {
		m = max(m, math.Abs(got[i]-want[i])/max(1, math.Abs(want[i])))
	}
	return m
}

var forwardCases = []struct {
	name     string
	b, k, d  int
	cfg      hardneg.Config
	classes  int
	mix      bool
	wantSynt int
}{
	{name: "MoCHi", b: 5, k: 40, d: 8, cfg: hardneg.Config{N: 10, S: 7, SPrime: 3, Tau: 0.2}, mix: true},
	{name: "N=K", b: 3, k: 12, d: 6, cfg: hardneg.Config{N: 12, S: 5, SPrime: 4, Tau: 0.2}, mix: true},
	{name: "s=0", b: 4, k: 30, d: 8, cfg: hardneg.Config{N: 6, S: 0, SPrime: 5, Tau: 0.1}, mix: true},
	{name: "s′=0", b: 4, k: 30, d: 8, cfg: hardneg.Config{N: 6, S: 5, SPrime: 0, Tau: 0.1}, mix: true},
	{name: "B=1", b: 1, k: 25, d: 5, cfg: hardneg.Config{N: 4, S: 3, SPrime: 2, Tau: 0.2}, mix: true},
	{name: "oracle", b: 6, k: 50, d: 8, cfg: hardneg.Config{N: 8, S: 6, SPrime: 3, Tau: 0.2, ClassOracle: true}, classes: 3, mix: true},
	{name: "MoCo-v2 (mixing off)", b: 4, k: 30, d: 8, cfg: hardneg.Config{N: 6, S: 5, SPrime: 3, Tau: 0.2}},
	{name: "MoCo-v2 (s=s′=0)", b: 4, k: 30, d: 8, cfg: hardneg.Config{N: 6, Tau: 0.2}, mix: true},
}

// forwardTol is the float32 graph's error against the float64 reference:
// float32 rounding of D-term dot products and K-term sums.
const forwardTol = 2e-5

// TestForwardMatchesReference compares every forward value of the float32
// graph with the test's own float64 reference.
func TestForwardMatchesReference(t *testing.T) {
	for i, tc := range forwardCases {
		p := newProblem(uint64(10+i), tc.b, tc.k, tc.d, tc.cfg, tc.classes)
		mixes := tc.mix && tc.cfg.S+tc.cfg.SPrime > 0
		{
			t.Run(tc.name, func(t *testing.T) {
				r, err := runGraph(p, p.q, tc.cfg, tc.mix)
				if err != nil {
					t.Fatal(err)
				}
				if e := maxRelErr([]float64{r.loss}, []float64{p.refLoss(p.q, p.k, p.q, tc.cfg, mixes)}); e > forwardTol {
					t.Errorf("loss: relative error %g", e)
				}
				var lpos, lneg []float64
				for b := range p.B {
					lpos = append(lpos, floats.Dot(row(p.q, b, p.D), row(p.k, b, p.D)))
					for j := range p.K {
						lneg = append(lneg, floats.Dot(row(p.q, b, p.D), row(p.queue, j, p.D)))
					}
				}
				if e := maxRelErr(r.lpos, lpos); e > forwardTol {
					t.Errorf("q·k: relative error %g", e)
				}
				if e := maxRelErr(r.lneg, lneg); e > forwardTol {
					t.Errorf("q·Qᵀ: relative error %g", e)
				}
				if !mixes {
					if r.extra != nil {
						t.Errorf("plain MoCo-v2 built extra logits")
					}
					return
				}
				var sel []float64
				for b := range p.B {
					for _, j := range p.refTopN(p.q, tc.cfg.ClassOracle, b, tc.cfg.N) {
						sel = append(sel, float64(j))
					}
				}
				if e := maxRelErr(r.topN, sel); e != 0 {
					t.Errorf("Q̃_N differs from the reference's full sort:\n got %v\nwant %v", r.topN, sel)
				}
				if e := maxRelErr(r.extra, p.refExtra(p.q, p.q, tc.cfg)); e > forwardTol {
					t.Errorf("extra logits: relative error %g", e)
				}
			})
		}
	}
}

// TestGradientsByFiniteDifferences checks ∂loss/∂q and ∂loss/∂k of the
// float32 graph against central differences of the float64 reference loss,
// in both gradient modes. With h′ detached the reference keeps the q inside h′ at
// its unperturbed value; with GradThroughHPrime it moves with q.
func TestGradientsByFiniteDifferences(t *testing.T) {
	const eps = 1e-6
	for i, tc := range forwardCases {
		inGradModes(t, tc.name, tc.cfg, func(t *testing.T, cfg hardneg.Config) {
			p := newProblem(uint64(40+i), tc.b, tc.k, tc.d, cfg, tc.classes)
			mixes := tc.mix && cfg.S+cfg.SPrime > 0
			r, err := runGraph(p, p.q, cfg, tc.mix)
			if err != nil {
				t.Fatal(err)
			}
			f := func(q, k []float64) float64 {
				qMix := p.q
				if cfg.GradThroughHPrime {
					qMix = q
				}
				return p.refLoss(q, k, qMix, cfg, mixes)
			}
			numeric := func(x []float64, loss func([]float64) float64) []float64 {
				g := make([]float64, len(x))
				for j := range x {
					plus, minus := append([]float64(nil), x...), append([]float64(nil), x...)
					plus[j] += eps
					minus[j] -= eps
					g[j] = (loss(plus) - loss(minus)) / (2 * eps)
				}
				return g
			}
			dq := numeric(p.q, func(q []float64) float64 { return f(q, p.k) })
			dk := numeric(p.k, func(k []float64) float64 { return f(p.q, k) })
			if e := maxRelErr(r.dq, dq); e > 1e-6 {
				t.Errorf("∂loss/∂q: max error %g\n got %v\nwant %v", e, r.dq, dq)
			}
			if e := maxRelErr(r.dk, dk); e > 1e-6 {
				t.Errorf("∂loss/∂k: max error %g", e)
			}
		})
	}
}

// TestGradientModesDiffer shows that the flag changes the gradient (so the
// finite-difference test above exercises both paths).
func TestGradientModesDiffer(t *testing.T) {
	cfg := hardneg.Config{N: 6, S: 2, SPrime: 6, Tau: 0.2}
	p := newProblem(3, 3, 20, 6, cfg, 0)
	detached, err := runGraph(p, p.q, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	cfg.GradThroughHPrime = true
	through, err := runGraph(p, p.q, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	if e := maxRelErr(detached.dq, through.dq); e < 1e-6 {
		t.Errorf("the two gradient modes give the same ∂loss/∂q (difference %g)", e)
	}
	if detached.loss != through.loss {
		t.Errorf("the gradient flag changed the loss: %v vs %v", detached.loss, through.loss)
	}
}

func TestNLargerThanKFails(t *testing.T) {
	cfg := hardneg.Config{N: 21, S: 2, SPrime: 2, Tau: 0.2}
	p := newProblem(1, 2, 20, 4, cfg, 0)
	_, err := runGraph(p, p.q, cfg, true)
	if err == nil || !strings.Contains(err.Error(), "N = 21 exceeds the queue size K = 20") {
		t.Fatalf("N > K: error %v, want one naming N and K", err)
	}
}
