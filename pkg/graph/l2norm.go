package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// L2Normalize returns each row of x rows×cols divided by its Euclidean norm
// (at least 1e-12), as torch.nn.functional.normalize(x, dim=1).
func L2Normalize(x *gorgonia.Node) (*gorgonia.Node, error) {
	if err := checkRank("L2Normalize", "x", x, 2); err != nil {
		return nil, err
	}
	return Apply(&l2NormOp{OpBase: NewOpBase(x.Shape())}, x)
}

// l2NormOp is x → y = x/‖x‖ per row, or with backward set (x, y, dy) → dx.
type l2NormOp struct {
	OpBase
	backward bool
}

func (op *l2NormOp) Type() hm.Type {
	if op.backward {
		return fnType(2, 2, 2, 2)
	}
	return fnType(2, 2)
}

func (op *l2NormOp) String() string {
	if op.backward {
		return fmt.Sprintf("L2NormalizeBackward{%s}", shapeString(op.out))
	}
	return fmt.Sprintf("L2Normalize{%s}", shapeString(op.out))
}

// Exec runs the normalisation or its backward.
func (op *l2NormOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	rows, cols := op.out[0], op.out[1]
	if op.backward {
		be.L2NormalizeBackward(rows, cols, in[0], in[1], in[2], out)
	} else {
		be.L2Normalize(rows, cols, in[0], out)
	}
	return nil
}

// DiffWRT: the normalisation is differentiable in x.
func (op *l2NormOp) DiffWRT(int) []bool { return []bool{true} }

// SymDiff: dx = (dy − y·(y·dy))/‖x‖ per row.
func (op *l2NormOp) SymDiff(in gorgonia.Nodes, y, dy *gorgonia.Node) (gorgonia.Nodes, error) {
	if op.backward {
		return nil, fmt.Errorf("%v: second derivatives are not implemented", op)
	}
	dx, err := Apply(&l2NormOp{OpBase: op.OpBase, backward: true}, in[0], y, dy)
	return gorgonia.Nodes{dx}, err
}
