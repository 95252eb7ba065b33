package graph

import (
	"math/rand"
	"testing"

	"gonum.org/v1/gonum/floats"
	"gorgonia.org/gorgonia"
)

// TestForward runs every op through the TapeMachine (its Do, on the CPU
// backend) and compares it with the plain float64 reference.
func TestForward(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	const n, c, h, w, k = 4, 3, 7, 6, 5
	x := randomAwayFromZero(rng, n*c*h*w)
	xm := randomAwayFromZero(rng, n*c)
	wc := randomAwayFromZero(rng, k*c*3*3)
	gamma, beta := randomAwayFromZero(rng, c), randomAwayFromZero(rng, c)
	wl, bl := randomAwayFromZero(rng, k*c), randomAwayFromZero(rng, k)
	labels := []int32{2, 0, 4, 1}
	ones, zeros := []float64{1, 1, 1}, []float64{0, 0, 0}

	for _, tc := range []struct {
		name  string
		build func(g *gorgonia.ExprGraph) (*gorgonia.Node, error)
		want  []float64
	}{
		{"Conv2D s1 p1", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			return Conv2D(input(g, "x", x, n, c, h, w), input(g, "w", wc, k, c, 3, 3), 1, 1)
		}, refConv(f64(x), f64(wc), n, c, h, w, k, 3, 3, 1, 1)},
		{"Conv2D s2 p0", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			return Conv2D(input(g, "x", x, n, c, h, w), input(g, "w", wc, k, c, 3, 3), 2, 0)
		}, refConv(f64(x), f64(wc), n, c, h, w, k, 3, 3, 2, 0)},
		{"BatchNorm NCHW", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			return BatchNorm(input(g, "x", x, n, c, h, w), input(g, "γ", gamma, c), input(g, "β", beta, c), NewBNState(Host(), c))
		}, first(refBNTrain(f64(x), f64(gamma), f64(beta), zeros, ones, n, c, h*w, 1, 0.1, 1e-5))},
		{"BatchNorm NC split 2", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			st := NewBNState(Host(), c)
			st.Groups = 2
			return BatchNorm(input(g, "x", xm, n, c), input(g, "γ", gamma, c), input(g, "β", beta, c), st)
		}, first(refBNTrain(f64(xm), f64(gamma), f64(beta), zeros, ones, n, c, 1, 2, 0.1, 1e-5))},
		{"ReLU", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			return ReLU(input(g, "x", x, n, c, h, w))
		}, refReLU(f64(x))},
		{"MaxPool2D 3/2/1", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			return MaxPool2D(input(g, "x", x, n, c, h, w), 3, 2, 1)
		}, refMaxPool(f64(x), n, c, h, w, 3, 2, 1)},
		{"MaxPool2D 2/2/0", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			return MaxPool2D(input(g, "x", x, n, c, h, w), 2, 2, 0)
		}, refMaxPool(f64(x), n, c, h, w, 2, 2, 0)},
		{"GlobalAvgPool", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			return GlobalAvgPool(input(g, "x", x, n, c, h, w))
		}, refGAP(f64(x), n, c, h*w)},
		{"Linear", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			return Linear(input(g, "x", xm, n, c), input(g, "w", wl, k, c), input(g, "b", bl, k))
		}, refLinear(f64(xm), f64(wl), f64(bl), n, c, k)},
		{"Linear no bias", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			return Linear(input(g, "x", xm, n, c), input(g, "w", wl, k, c), nil)
		}, refLinear(f64(xm), f64(wl), nil, n, c, k)},
		{"L2Normalize", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			return L2Normalize(input(g, "x", wl, k, c))
		}, refL2Normalize(f64(wl), k, c)},
		{"SoftmaxCrossEntropy", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			return SoftmaxCrossEntropy(input(g, "logits", x[:n*k], n, k), labelsNode(g, labels), 0.2)
		}, []float64{refSoftmaxCE(f64(x[:n*k]), labels, n, k, 0.2)}},
		{"Add", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			return Add(input(g, "a", x[:n*c], n, c), input(g, "b", xm, n, c))
		}, refAdd(f64(x[:n*c]), f64(xm))},
		{"Dot", func(g *gorgonia.ExprGraph) (*gorgonia.Node, error) {
			return Dot(input(g, "a", x[:n*c], n, c), input(g, "b", xm, n, c))
		}, []float64{floats.Dot(f64(x[:n*c]), f64(xm))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := gorgonia.NewGraph()
			y, err := tc.build(g)
			if err != nil {
				t.Fatal(err)
			}
			runTape(t, g)
			closeTo(t, "y", values(t, y), tc.want, 1e-5)
		})
	}
}

func first(y, _, _ []float64) []float64 { return y }

// TestBatchNormRunningStats checks the running-average update in training
// mode and the use of the running statistics in evaluation mode.
func TestBatchNormRunningStats(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	const n, c, hw, groups = 4, 3, 5, 2
	x := randomAwayFromZero(rng, n*c*hw)
	gamma, beta := randomAwayFromZero(rng, c), randomAwayFromZero(rng, c)
	runMean, runVar := randomAwayFromZero(rng, c), randomAwayFromZero(rng, c)
	for i := range runVar {
		runVar[i] = 0.5 + runVar[i]*runVar[i]
	}
	st := NewBNState(Host(), c)
	st.Groups = groups
	if err := st.SetRunningStats(runMean, runVar); err != nil {
		t.Fatal(err)
	}
	g := gorgonia.NewGraph()
	y, err := BatchNorm(input(g, "x", x, n, c, 1, hw), input(g, "γ", gamma, c), input(g, "β", beta, c), st)
	if err != nil {
		t.Fatal(err)
	}
	runTape(t, g)
	_, wantMean, wantVar := refBNTrain(f64(x), f64(gamma), f64(beta), f64(runMean), f64(runVar), n, c, hw, groups, 0.1, 1e-5)
	gotMean, gotVar := st.RunningStats()
	closeTo(t, "running mean", f64(gotMean), wantMean, 1e-5)
	closeTo(t, "running var", f64(gotVar), wantVar, 1e-5)

	st.Training = false
	runTape(t, g)
	closeTo(t, "eval y", values(t, y), refBNInfer(f64(x), f64(gamma), f64(beta), wantMean, wantVar, n, c, hw, 1e-5), 1e-5)
	if m, _ := st.RunningStats(); f64(m)[0] != f64(gotMean)[0] {
		t.Fatalf("evaluation mode changed the running mean: %v → %v", gotMean, m)
	}
}
