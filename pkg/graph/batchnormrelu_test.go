package graph

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"gorgonia.org/gorgonia"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/device/cpu"
)

// withoutFusion is a backend without the device.BatchNormReLU and
// device.BatchNormAddReLU abilities (as CUDA): BatchNormReLU and
// BatchNormAddReLU run their BatchNorm, Add and ReLU kernels in turn.
type withoutFusion struct{ device.Backend }

// TestBatchNormReLUMatchesUnfused checks BatchNormReLU against BatchNorm
// then ReLU, and BatchNormAddReLU against BatchNorm, Add (a residual r),
// ReLU, bit for bit: the output, the gradients of x, γ, β and r (the
// BatchNorm's, Add's and the ReLU's gradients, each checked by finite
// differences in TestGradients), the running statistics, and the
// evaluation-mode output, on the CPU backend (fused kernels) and on a
// backend without the abilities (the fallback), for split-BN too.
func TestBatchNormReLUMatchesUnfused(t *testing.T) {
	shapes := [][]int{{4, 3, 5, 5}, {4, 2, 4, 4}, {6, 5}}
	for _, shape := range shapes {
		for _, groups := range []int{1, 2} {
			for _, fallback := range []bool{false, true} {
				for _, residual := range []bool{false, true} {
					name := fmt.Sprintf("%v groups %d fallback %v residual %v", shape, groups, fallback, residual)
					t.Run(name, func(t *testing.T) { checkBatchNormReLU(t, shape, groups, fallback, residual) })
				}
			}
		}
	}
}

// bnReLURun is one graph's outputs: y in training mode, the gradients,
// the running statistics, and y in evaluation mode.
type bnReLURun struct{ y, dx, dgamma, dbeta, dr, runMean, runVar, yEval []float32 }

func checkBatchNormReLU(t *testing.T, shape []int, groups int, fallback, residual bool) {
	size := 1
	for _, d := range shape {
		size *= d
	}
	c := shape[1]
	rng := rand.New(rand.NewSource(11))
	x, r := randomAwayFromZero(rng, size), randomAwayFromZero(rng, size)
	gamma, beta := randomAwayFromZero(rng, c), randomAwayFromZero(rng, c)
	res := randomAwayFromZero(rng, size)
	run := func(fused bool) bnReLURun {
		t.Helper()
		base := cpu.New(2)
		var be device.Backend = base
		if fallback {
			be = withoutFusion{base}
		}
		g := gorgonia.NewGraph()
		xn, gn, bn := input(g, "x", x, shape...), input(g, "γ", gamma, c), input(g, "β", beta, c)
		rn := input(g, "r", res, shape...)
		st := NewBNState(base, c)
		st.Groups = groups
		var y *gorgonia.Node
		var err error
		switch {
		case fused && residual:
			y, err = BatchNormAddReLU(xn, gn, bn, rn, st)
		case fused:
			y, err = BatchNormReLU(xn, gn, bn, st)
		default:
			y, err = BatchNorm(xn, gn, bn, st)
			if err == nil && residual {
				y, err = Add(y, rn)
			}
			if err == nil {
				y, err = ReLU(y)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		loss, err := Dot(y, input(g, "R", r, shape...))
		if err != nil {
			t.Fatal(err)
		}
		wrt := gorgonia.Nodes{xn, gn, bn}
		if residual {
			wrt = append(wrt, rn)
		}
		grads, err := gorgonia.Grad(loss, wrt...)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := Compile(g, be, append(gorgonia.Nodes{y}, grads...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer plan.Free()
		eval, err := Compile(g, be, y)
		if err != nil {
			t.Fatal(err)
		}
		defer eval.Free()
		download := func(p *Plan, n *gorgonia.Node) []float32 {
			v := make([]float32, n.Shape().TotalSize())
			base.Download(v, p.Buffer(n))
			return v
		}
		for range 2 { // two steps: the second normalises with updated running statistics in eval
			if err := plan.Run(); err != nil {
				t.Fatal(err)
			}
		}
		var out bnReLURun
		out.y, out.dx, out.dgamma, out.dbeta = download(plan, y), download(plan, grads[0]), download(plan, grads[1]), download(plan, grads[2])
		if residual {
			out.dr = download(plan, grads[3])
		}
		out.runMean, out.runVar = st.RunningStats()
		st.Training = false
		if err := eval.Run(); err != nil {
			t.Fatal(err)
		}
		out.yEval = download(eval, y)
		if err := be.Sync(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got, want := run(true), run(false)
	zeros := 0
	for _, v := range want.y {
		if v == 0 {
			zeros++
		}
	}
	if zeros == 0 || zeros == len(want.y) {
		t.Fatalf("%d of %d outputs are 0: the test data must exercise both sides of the ReLU", zeros, len(want.y))
	}
	for _, c := range []struct {
		what      string
		got, want []float32
	}{
		{"y", got.y, want.y}, {"∂L/∂x", got.dx, want.dx}, {"∂L/∂γ", got.dgamma, want.dgamma}, {"∂L/∂β", got.dbeta, want.dbeta}, {"∂L/∂r", got.dr, want.dr},
		{"running mean", got.runMean, want.runMean}, {"running variance", got.runVar, want.runVar}, {"evaluation y", got.yEval, want.yEval},
	} {
		for i := range c.want {
			if math.Float32bits(c.got[i]) != math.Float32bits(c.want[i]) {
				t.Fatalf("%s[%d] = %v, BatchNorm then ReLU gives %v", c.what, i, c.got[i], c.want[i])
			}
		}
	}
}
