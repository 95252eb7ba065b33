package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// MaxPool2D returns the maximum over size×size windows of x N×C×H×W moved
// by stride, with pad cells of −∞ on each side, as torch.nn.MaxPool2d:
// y N×C×((H+2·pad−size)/stride+1)×((W+2·pad−size)/stride+1).
func MaxPool2D(x *gorgonia.Node, size, stride, pad int) (*gorgonia.Node, error) {
	if err := checkRank("MaxPool2D", "x", x, 4); err != nil {
		return nil, err
	}
	xs := x.Shape()
	s := device.PoolShape{N: xs[0], C: xs[1], H: xs[2], W: xs[3], Size: size, Stride: stride, Pad: pad}
	if size < 1 || stride < 1 || pad < 0 || 2*pad > size || s.OutH() < 1 || s.OutW() < 1 {
		return nil, fmt.Errorf("MaxPool2D: size %d, stride %d, pad %d do not fit input %v (pad must be at most size/2)", size, stride, pad, xs)
	}
	return Apply(&maxPoolOp{OpBase: NewOpBase(tensor.Shape{s.N, s.C, s.OutH(), s.OutW()}), s: s}, x)
}

// maxPoolOp is the pooling x → y, or with backward set (x, dy) → dx.
type maxPoolOp struct {
	OpBase
	s        device.PoolShape
	backward bool
}

func (op *maxPoolOp) Type() hm.Type {
	if op.backward {
		return fnType(4, 4, 4)
	}
	return fnType(4, 4)
}

func (op *maxPoolOp) String() string {
	if op.backward {
		return fmt.Sprintf("MaxPool2DBackward{%+v}", op.s)
	}
	return fmt.Sprintf("MaxPool2D{%+v}", op.s)
}

// layoutSlots: x, y (and dy, dx) share any layout.
func (op *maxPoolOp) layoutSlots(*gorgonia.Node, device.Blocked) ([]int, []layoutSlot) {
	operands := []int{0, 0}
	if op.backward {
		operands = append(operands, 0)
	}
	return operands, []layoutSlot{{channels: op.s.C, want: -1}}
}

func (op *maxPoolOp) withBlocks(blocks []int) Kernel {
	b := *op
	b.s.Block = blocks[0]
	return &b
}

// Exec runs the pooling or its backward.
func (op *maxPoolOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	if op.backward {
		be.MaxPoolBackward(op.s, in[0], in[1], out)
	} else {
		be.MaxPoolForward(op.s, in[0], out)
	}
	return nil
}

// DiffWRT: the pooling is differentiable in x.
func (op *maxPoolOp) DiffWRT(int) []bool { return []bool{true} }

// SymDiff: ∂L/∂x routes each dy to the first maximum of its window.
func (op *maxPoolOp) SymDiff(in gorgonia.Nodes, _, dy *gorgonia.Node) (gorgonia.Nodes, error) {
	if op.backward {
		return nil, fmt.Errorf("%v: second derivatives are not implemented", op)
	}
	s := op.s
	dx, err := Apply(&maxPoolOp{OpBase: NewOpBase(tensor.Shape{s.N, s.C, s.H, s.W}), s: s, backward: true}, in[0], dy)
	return gorgonia.Nodes{dx}, err
}
