package graph

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/internal/numconv"
)

// randomAwayFromZero returns n values uniform in ±[0.1, 1): never zero,
// and never within a finite-difference step of ReLU's kink.
func randomAwayFromZero(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(0.1 + 0.9*rng.Float64())
		if rng.Intn(2) == 0 {
			v[i] = -v[i]
		}
	}
	return v
}

// distinct returns n values with every pair at least 0.05 apart, so that a
// maximum never changes under a finite-difference step of 1e-2.
func distinct(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i, p := range rng.Perm(n) {
		v[i] = float32(p-n/2)*0.05 + 0.025
	}
	return v
}

var f64 = numconv.Slice[float64, float32]

// paramMaker returns param(name, shape...), which adds to g an input node
// of random values away from zero, named name and its index in *params
// (names must be unique: Gorgonia merges input nodes of equal name and
// shape), and appends it to *params.
func paramMaker(g *gorgonia.ExprGraph, rng *rand.Rand, params *[]*gorgonia.Node) func(name string, shape ...int) *gorgonia.Node {
	return func(name string, shape ...int) *gorgonia.Node {
		size := 1
		for _, d := range shape {
			size *= d
		}
		p := input(g, fmt.Sprintf("%s%d", name, len(*params)), randomAwayFromZero(rng, size), shape...)
		*params = append(*params, p)
		return p
	}
}

// mustNode returns must(y, err), which fails tb on err and returns y.
func mustNode(tb testing.TB) func(y *gorgonia.Node, err error) *gorgonia.Node {
	return func(y *gorgonia.Node, err error) *gorgonia.Node {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return y
	}
}

// input adds a float32 tensor node bound to data.
func input(g *gorgonia.ExprGraph, name string, data []float32, shape ...int) *gorgonia.Node {
	t := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
	return gorgonia.NewTensor(g, tensor.Float32, len(shape), gorgonia.WithShape(shape...), gorgonia.WithName(name), gorgonia.WithValue(t))
}

// labelsNode adds an int32 vector node bound to labels.
func labelsNode(g *gorgonia.ExprGraph, labels []int32) *gorgonia.Node {
	t := tensor.New(tensor.WithShape(len(labels)), tensor.WithBacking(labels))
	return gorgonia.NewTensor(g, tensor.Int32, 1, gorgonia.WithShape(len(labels)), gorgonia.WithName("labels"), gorgonia.WithValue(t))
}

// values returns a node's value as float64s.
func values(t *testing.T, n *gorgonia.Node) []float64 {
	t.Helper()
	switch d := n.Value().Data().(type) {
	case []float32:
		return f64(d)
	case float32:
		return []float64{float64(d)}
	}
	t.Fatalf("node %v holds %T", n, n.Value().Data())
	return nil
}

// closeTo fails when got and want differ by more than tol relative to the
// largest |want| (at least 1).
func closeTo(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale := 1.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	for i := range got {
		if d := math.Abs(got[i] - want[i]); !(d <= tol*scale) {
			t.Fatalf("%s[%d] = %v, want %v (|Δ| %.3g > %.3g)", what, i, got[i], want[i], d, tol*scale)
		}
	}
}

func runTape(t *testing.T, g *gorgonia.ExprGraph) {
	t.Helper()
	m := gorgonia.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
}
