package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// Linear returns y = x·wᵀ + b as torch.nn.Linear: x N×in, w out×in,
// b out (nil for no bias), y N×out.
func Linear(x, w, b *gorgonia.Node) (*gorgonia.Node, error) {
	if err := checkRank("Linear", "x", x, 2); err != nil {
		return nil, err
	}
	if err := checkRank("Linear", "w", w, 2); err != nil {
		return nil, err
	}
	xs, ws := x.Shape(), w.Shape()
	op := &linearOp{OpBase: NewOpBase(tensor.Shape{xs[0], ws[0]}), n: xs[0], inF: xs[1], outF: ws[0]}
	if ws[1] != op.inF {
		return nil, fmt.Errorf("Linear: w is %v, want %d×%d for x %v", ws, op.outF, op.inF, xs)
	}
	if b == nil {
		return Apply(op, x, w)
	}
	if err := checkRank("Linear", "b", b, 1); err != nil {
		return nil, err
	}
	if b.Shape()[0] != op.outF {
		return nil, fmt.Errorf("Linear: b has %d elements, want %d", b.Shape()[0], op.outF)
	}
	op.bias = true
	return Apply(op, x, w, b)
}

type linearPass int

const (
	linearForward    linearPass = iota // (x, w[, b]) → y N×out
	linearBackData                     // (dy, w) → dx N×in
	linearBackWeight                   // (dy, x) → dw out×in
	linearBackBias                     // (dy) → db out
)

var linearPassName = [...]string{"Linear", "LinearBackwardData", "LinearBackwardWeight", "LinearBackwardBias"}

// linearOp is one pass of a fully connected layer x N×in → y N×out.
type linearOp struct {
	OpBase
	pass         linearPass
	n, inF, outF int  // batch, input and output features
	bias         bool // forward only: a third input b
}

func (op *linearOp) Type() hm.Type {
	switch {
	case op.pass == linearBackBias:
		return fnType(2, 1)
	case op.bias:
		return fnType(2, 2, 1, 2)
	}
	return fnType(2, 2, 2)
}

func (op *linearOp) String() string {
	return fmt.Sprintf("%s{n=%d in=%d out=%d bias=%t}", linearPassName[op.pass], op.n, op.inF, op.outF, op.bias)
}

// Exec runs the pass as one GEMM (or a column sum for the bias gradient).
func (op *linearOp) Exec(be device.Backend, in []device.Buffer, y device.Buffer) error {
	switch op.pass {
	case linearForward:
		be.Gemm(false, true, op.n, op.outF, op.inF, 1, in[0], in[1], 0, y) // y = x·wᵀ
		if op.bias {
			be.AddRowVector(op.n, op.outF, in[2], y)
		}
	case linearBackData:
		be.Gemm(false, false, op.n, op.inF, op.outF, 1, in[0], in[1], 0, y) // dx = dy·w
	case linearBackWeight:
		be.Gemm(true, false, op.outF, op.inF, op.n, 1, in[0], in[1], 0, y) // dw = dyᵀ·x
	case linearBackBias:
		be.SumRows(op.n, op.outF, in[0], y) // db = Σ_n dy[n,·]
	}
	return nil
}

// DiffWRT: the forward is differentiable in every input.
func (op *linearOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

// SymDiff: dx = dy·w, dw = dyᵀ·x, db = Σ_n dy.
func (op *linearOp) SymDiff(in gorgonia.Nodes, _, dy *gorgonia.Node) (gorgonia.Nodes, error) {
	if op.pass != linearForward {
		return nil, fmt.Errorf("%v: second derivatives are not implemented", op)
	}
	pass := func(p linearPass, out tensor.Shape, args ...*gorgonia.Node) (*gorgonia.Node, error) {
		return Apply(&linearOp{OpBase: NewOpBase(out), pass: p, n: op.n, inF: op.inF, outF: op.outF}, args...)
	}
	dx, err := pass(linearBackData, tensor.Shape{op.n, op.inF}, dy, in[1])
	if err != nil {
		return nil, err
	}
	dw, err := pass(linearBackWeight, tensor.Shape{op.outF, op.inF}, dy, in[0])
	if err != nil {
		return nil, err
	}
	if !op.bias {
		return gorgonia.Nodes{dx, dw}, nil
	}
	db, err := pass(linearBackBias, tensor.Shape{op.outF}, dy)
	return gorgonia.Nodes{dx, dw, db}, err
}
