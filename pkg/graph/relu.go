package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// ReLU returns y = max(x, 0) elementwise, for x of any shape.
func ReLU(x *gorgonia.Node) (*gorgonia.Node, error) {
	return Apply(&reluOp{OpBase: NewOpBase(x.Shape())}, x)
}

// reluOp is y = max(x, 0), or with backward set dx = dy where y > 0 from (y, dy).
type reluOp struct {
	OpBase
	backward bool
}

func (op *reluOp) Type() hm.Type {
	r := len(op.out)
	if op.backward {
		return fnType(r, r, r)
	}
	return fnType(r, r)
}

func (op *reluOp) String() string {
	if op.backward {
		return fmt.Sprintf("ReLUBackward{%s}", shapeString(op.out))
	}
	return fmt.Sprintf("ReLU{%s}", shapeString(op.out))
}

// layoutSlots: the forward's x, y and the backward's y, dy, dx share any layout.
func (op *reluOp) layoutSlots(n *gorgonia.Node, _ device.Blocked) ([]int, []layoutSlot) {
	if op.backward {
		return elementwiseSlots(n, 2)
	}
	return elementwiseSlots(n, 1)
}
func (op *reluOp) withBlocks([]int) Kernel { return op }

// Exec runs ReLU or its backward.
func (op *reluOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	if op.backward {
		be.ReLUBackward(in[0], in[1], out)
	} else {
		be.ReLU(in[0], out)
	}
	return nil
}

// DiffWRT: ReLU is differentiable in x.
func (op *reluOp) DiffWRT(int) []bool { return []bool{true} }

// SymDiff: ∂L/∂x = dy·[y > 0], read from the output y.
func (op *reluOp) SymDiff(_ gorgonia.Nodes, y, dy *gorgonia.Node) (gorgonia.Nodes, error) {
	if op.backward {
		return nil, fmt.Errorf("%v: second derivatives are not implemented", op)
	}
	dx, err := Apply(&reluOp{OpBase: op.OpBase, backward: true}, y, dy)
	return gorgonia.Nodes{dx}, err
}
