package graph

import (
	"math"
	"math/rand"
	"testing"

	"gonum.org/v1/gonum/floats"
	"gorgonia.org/gorgonia"
)

// Gradients are checked by central finite differences in float32, the
// precision the kernels run in (the backend is float32 only; a float64 path
// would test other code than the one that ships). The loss Σ y⊙R for a fixed
// random R is summed on the host in float64, so the only float32 rounding is
// the op's own (≈1e-7 relative); with a step of 1e-2 that contributes ≈1e-4
// to a difference quotient and the O(h²) truncation error about as much, so
// |numeric − analytic| ≤ 5e-3 + 1e-2·|analytic| fails on any wrong formula
// but not on rounding. Inputs stay 0.05 away from kinks (ReLU at 0, ties of
// a max) so that the step never crosses one.
const (
	fdStep   = 1e-2
	fdAbsTol = 5e-3
	fdRelTol = 1e-2
)

type gradInput struct {
	name  string
	data  []float32
	shape []int
	diff  bool // checked by finite differences
}

func checkGradient(t *testing.T, rng *rand.Rand, ins []gradInput, build func(g *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error)) {
	t.Helper()
	g := gorgonia.NewGraph()
	nodes := make([]*gorgonia.Node, len(ins))
	var wrt []*gorgonia.Node
	for i, in := range ins {
		nodes[i] = input(g, in.name, in.data, in.shape...)
		if in.diff {
			wrt = append(wrt, nodes[i])
		}
	}
	y, err := build(g, nodes)
	if err != nil {
		t.Fatal(err)
	}
	loss, r := y, []float64{1}
	if !y.IsScalar() {
		rd := randomAwayFromZero(rng, y.Shape().TotalSize())
		r = f64(rd)
		if loss, err = Dot(y, input(g, "R", rd, y.Shape()...)); err != nil {
			t.Fatal(err)
		}
	}
	grads, err := gorgonia.Grad(loss, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	m := gorgonia.NewTapeMachine(g)
	defer m.Close()
	run := func() float64 {
		m.Reset()
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		return floats.Dot(values(t, y), r)
	}
	run()
	analytic := make([][]float64, len(grads))
	for i, gn := range grads {
		analytic[i] = values(t, gn)
	}
	k := 0
	for _, in := range ins {
		if !in.diff {
			continue
		}
		for j := range in.data {
			orig := in.data[j]
			in.data[j] = orig + fdStep
			plus := run()
			in.data[j] = orig - fdStep
			minus := run()
			in.data[j] = orig
			num := (plus - minus) / (2 * fdStep)
			ana := analytic[k][j]
			if d := math.Abs(num - ana); !(d <= fdAbsTol+fdRelTol*math.Abs(ana)) {
				t.Fatalf("∂L/∂%s[%d]: analytic %.6g, finite difference %.6g", in.name, j, ana, num)
			}
		}
		k++
	}
}

func TestGradients(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	rnd := func(name string, diff bool, shape ...int) gradInput {
		n := 1
		for _, d := range shape {
			n *= d
		}
		return gradInput{name: name, data: randomAwayFromZero(rng, n), shape: shape, diff: diff}
	}
	for _, tc := range []struct {
		name  string
		ins   []gradInput
		build func(g *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error)
	}{
		{"Conv2D s1 p1", []gradInput{rnd("x", true, 2, 2, 5, 5), rnd("w", true, 3, 2, 3, 3)},
			func(_ *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error) {
				return Conv2D(in[0], in[1], 1, 1)
			}},
		{"Conv2D s2 p1", []gradInput{rnd("x", true, 2, 2, 6, 5), rnd("w", true, 3, 2, 3, 2)},
			func(_ *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error) {
				return Conv2D(in[0], in[1], 2, 1)
			}},
		{"BatchNorm NCHW split 2", []gradInput{rnd("x", true, 4, 2, 3, 3), rnd("γ", true, 2), rnd("β", true, 2)},
			func(_ *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error) {
				st := NewBNState(Host(), 2)
				st.Groups = 2
				return BatchNorm(in[0], in[1], in[2], st)
			}},
		{"BatchNorm NC", []gradInput{rnd("x", true, 6, 3), rnd("γ", true, 3), rnd("β", true, 3)},
			func(_ *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error) {
				return BatchNorm(in[0], in[1], in[2], NewBNState(Host(), 3))
			}},
		{"ReLU", []gradInput{rnd("x", true, 3, 4)},
			func(_ *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error) { return ReLU(in[0]) }},
		{"MaxPool2D 3/2/1", []gradInput{{name: "x", data: distinct(rng, 2*2*5*5), shape: []int{2, 2, 5, 5}, diff: true}},
			func(_ *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error) {
				return MaxPool2D(in[0], 3, 2, 1)
			}},
		{"GlobalAvgPool", []gradInput{rnd("x", true, 2, 3, 2, 3)},
			func(_ *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error) { return GlobalAvgPool(in[0]) }},
		{"Linear", []gradInput{rnd("x", true, 3, 4), rnd("w", true, 5, 4), rnd("b", true, 5)},
			func(_ *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error) {
				return Linear(in[0], in[1], in[2])
			}},
		{"Linear no bias", []gradInput{rnd("x", true, 3, 4), rnd("w", true, 5, 4)},
			func(_ *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error) {
				return Linear(in[0], in[1], nil)
			}},
		{"L2Normalize", []gradInput{rnd("x", true, 3, 4)},
			func(_ *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error) { return L2Normalize(in[0]) }},
		{"SoftmaxCrossEntropy", []gradInput{rnd("logits", true, 4, 5)},
			func(g *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error) {
				return SoftmaxCrossEntropy(in[0], labelsNode(g, []int32{3, 0, 4, 1}), 0.5)
			}},
		{"Add", []gradInput{rnd("a", true, 2, 3), rnd("b", true, 2, 3)},
			func(_ *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error) { return Add(in[0], in[1]) }},
		{"Dot", []gradInput{rnd("a", true, 2, 3), rnd("b", true, 2, 3)},
			func(_ *gorgonia.ExprGraph, in []*gorgonia.Node) (*gorgonia.Node, error) { return Dot(in[0], in[1]) }},
	} {
		t.Run(tc.name, func(t *testing.T) { checkGradient(t, rng, tc.ins, tc.build) })
	}
}

// TestDistinctHashes checks that ops differing only in a parameter stay
// distinct nodes in one graph, and identical ones are merged.
func TestDistinctHashes(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	g := gorgonia.NewGraph()
	x := input(g, "x", randomAwayFromZero(rng, 2*2*6*6), 2, 2, 6, 6)
	w := input(g, "w", randomAwayFromZero(rng, 2*2*3*3), 2, 2, 3, 3)
	gamma, beta := input(g, "γ", randomAwayFromZero(rng, 2), 2), input(g, "β", randomAwayFromZero(rng, 2), 2)
	build := []struct {
		name string
		f    func() (*gorgonia.Node, error)
	}{
		{"conv s1 p1", func() (*gorgonia.Node, error) { return Conv2D(x, w, 1, 1) }},
		{"conv s2 p1", func() (*gorgonia.Node, error) { return Conv2D(x, w, 2, 1) }},
		{"conv s1 p0", func() (*gorgonia.Node, error) { return Conv2D(x, w, 1, 0) }},
		{"pool 2/2/0", func() (*gorgonia.Node, error) { return MaxPool2D(x, 2, 2, 0) }},
		{"pool 3/2/1", func() (*gorgonia.Node, error) { return MaxPool2D(x, 3, 2, 1) }},
		{"pool 2/1/0", func() (*gorgonia.Node, error) { return MaxPool2D(x, 2, 1, 0) }},
		{"bn A", func() (*gorgonia.Node, error) { return BatchNorm(x, gamma, beta, NewBNState(Host(), 2)) }},
		{"bn B", func() (*gorgonia.Node, error) { return BatchNorm(x, gamma, beta, NewBNState(Host(), 2)) }},
	}
	seen := map[*gorgonia.Node]string{}
	for _, b := range build {
		n, err := b.f()
		if err != nil {
			t.Fatal(err)
		}
		if other, ok := seen[n]; ok {
			t.Fatalf("%s and %s were merged into one node", b.name, other)
		}
		seen[n] = b.name
	}
	a, _ := Conv2D(x, w, 2, 1)
	b, _ := Conv2D(x, w, 2, 1)
	if a != b {
		t.Fatalf("two identical convolutions were not merged: %v, %v", a, b)
	}
}
