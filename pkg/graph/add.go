package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// Add returns a + b elementwise for a and b of the same shape (a residual
// connection).
func Add(a, b *gorgonia.Node) (*gorgonia.Node, error) {
	if !a.Shape().Eq(b.Shape()) {
		return nil, fmt.Errorf("Add: shapes %v and %v differ", a.Shape(), b.Shape())
	}
	return Apply(&addOp{OpBase: NewOpBase(a.Shape())}, a, b)
}

// addOp is y = a + b.
type addOp struct{ OpBase }

func (op *addOp) Type() hm.Type      { r := len(op.out); return fnType(r, r, r) }
func (op *addOp) String() string     { return fmt.Sprintf("Add{%s}", shapeString(op.out)) }
func (op *addOp) DiffWRT(int) []bool { return []bool{true, true} }

func (op *addOp) layoutSlots(n *gorgonia.Node, _ device.Blocked) ([]int, []layoutSlot) {
	return elementwiseSlots(n, 2)
}
func (op *addOp) withBlocks([]int) Kernel { return op }

// Exec runs the elementwise addition.
func (op *addOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.Add(in[0], in[1], out)
	return nil
}

// SymDiff: both inputs receive dy unchanged.
func (op *addOp) SymDiff(_ gorgonia.Nodes, _, dy *gorgonia.Node) (gorgonia.Nodes, error) {
	return gorgonia.Nodes{dy, dy}, nil
}
