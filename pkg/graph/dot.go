package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// Dot returns the scalar Σᵢ aᵢ·bᵢ over all elements of a and b, which have
// the same shape (a weighted sum; the tests use it to reduce an op's output
// to a loss).
func Dot(a, b *gorgonia.Node) (*gorgonia.Node, error) {
	if !a.Shape().Eq(b.Shape()) {
		return nil, fmt.Errorf("Dot: shapes %v and %v differ", a.Shape(), b.Shape())
	}
	return Apply(&dotOp{OpBase: NewOpBase(tensor.ScalarShape()), in: a.Shape()}, a, b)
}

// dotOp is the scalar Σ a⊙b of two tensors of shape in.
type dotOp struct {
	OpBase
	in tensor.Shape
}

func (op *dotOp) Type() hm.Type      { r := len(op.in); return fnType(r, r, 0) }
func (op *dotOp) String() string     { return fmt.Sprintf("Dot{%s}", shapeString(op.in)) }
func (op *dotOp) DiffWRT(int) []bool { return []bool{true, true} }

// Exec runs the sum as one row dot product.
func (op *dotOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.RowDot(1, op.in.TotalSize(), in[0], in[1], out)
	return nil
}

// SymDiff: ∂L/∂a = dz·b, ∂L/∂b = dz·a.
func (op *dotOp) SymDiff(in gorgonia.Nodes, _, dz *gorgonia.Node) (gorgonia.Nodes, error) {
	da, err := Apply(&scaleOp{OpBase: NewOpBase(op.in)}, in[1], dz)
	if err != nil {
		return nil, err
	}
	db, err := Apply(&scaleOp{OpBase: NewOpBase(op.in)}, in[0], dz)
	return gorgonia.Nodes{da, db}, err
}

// scaleOp is y = s·x for a tensor x and a scalar s that lives on the
// device (a gradient), so it runs as a GEMM of x (n×1) by s (1×1) instead of
// reading s back to the host.
type scaleOp struct{ OpBase }

func (op *scaleOp) Type() hm.Type  { r := len(op.out); return fnType(r, 0, r) }
func (op *scaleOp) String() string { return fmt.Sprintf("ScaleByScalar{%s}", shapeString(op.out)) }

// Exec computes y = x·s.
func (op *scaleOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.Gemm(false, false, op.out.TotalSize(), 1, 1, 1, in[0], in[1], 0, out)
	return nil
}
