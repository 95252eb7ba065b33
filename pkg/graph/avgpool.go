package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// GlobalAvgPool returns the mean over the spatial positions of each channel:
// x N×C×H×W → y N×C (torch's adaptive_avg_pool2d(x, 1) flattened).
func GlobalAvgPool(x *gorgonia.Node) (*gorgonia.Node, error) {
	if err := checkRank("GlobalAvgPool", "x", x, 4); err != nil {
		return nil, err
	}
	xs := x.Shape()
	return Apply(&avgPoolOp{OpBase: NewOpBase(tensor.Shape{xs[0], xs[1]}), n: xs[0], c: xs[1], h: xs[2], w: xs[3]}, x)
}

// avgPoolOp is x N×C×H×W → y N×C, or with backward set dy N×C → dx N×C×H×W.
type avgPoolOp struct {
	OpBase
	n, c, h, w int
	backward   bool
}

func (op *avgPoolOp) Type() hm.Type {
	if op.backward {
		return fnType(2, 4)
	}
	return fnType(4, 2)
}

func (op *avgPoolOp) String() string {
	name := "GlobalAvgPool"
	if op.backward {
		name += "Backward"
	}
	return fmt.Sprintf("%s{%d×%d×%d×%d}", name, op.n, op.c, op.h, op.w)
}

// Exec runs the pooling or its backward.
func (op *avgPoolOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	if op.backward {
		be.GlobalAvgPoolBackward(op.n, op.c, op.h*op.w, in[0], out)
	} else {
		be.GlobalAvgPool(op.n, op.c, op.h*op.w, in[0], out)
	}
	return nil
}

// DiffWRT: the pooling is differentiable in x.
func (op *avgPoolOp) DiffWRT(int) []bool { return []bool{true} }

// SymDiff: ∂L/∂x[n,c,·] = dy[n,c]/(H·W).
func (op *avgPoolOp) SymDiff(_ gorgonia.Nodes, _, dy *gorgonia.Node) (gorgonia.Nodes, error) {
	if op.backward {
		return nil, fmt.Errorf("%v: second derivatives are not implemented", op)
	}
	b := *op
	b.backward, b.out = true, tensor.Shape{op.n, op.c, op.h, op.w}
	dx, err := Apply(&b, dy)
	return gorgonia.Nodes{dx}, err
}
