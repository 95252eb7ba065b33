package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// slice returns elements [off, off+shape.TotalSize()) of the vector v,
// reshaped to shape. Under a Plan it is a view of v's buffer (no copy).
func slice(v *gorgonia.Node, off int, shape tensor.Shape) (*gorgonia.Node, error) {
	return Apply(&sliceOp{OpBase: NewOpBase(shape), off: off, from: v.Shape().TotalSize()}, v)
}

// sliceOp is y = v[off : off+|y|] of a vector of from elements.
type sliceOp struct {
	OpBase
	off, from int
}

func (op *sliceOp) Type() hm.Type { return fnType(1, len(op.out)) }
func (op *sliceOp) String() string {
	return fmt.Sprintf("Slice{[%d:%d] of %d as %s}", op.off, op.off+op.out.TotalSize(), op.from, shapeString(op.out))
}

// Exec copies the slice (the TapeMachine path; a Plan aliases it, or runs
// the copy bound by prepare where the slice is an output of its own).
func (op *sliceOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.Copy(out, be.View(in[0], op.off, op.out.TotalSize()))
	return nil
}

// layoutSlots: an activation of BatchNorm's backward output (dx, dr:
// 4-d slices at a multiple of their size) has the layout of the vector,
// whose activations the backward writes in one layout; dγ and dβ, behind
// them, are vectors that no layout changes.
func (op *sliceOp) layoutSlots(*gorgonia.Node, device.Blocked) ([]int, []layoutSlot) {
	if len(op.out) == 4 && op.off%op.out.TotalSize() == 0 {
		return []int{0, 0}, []layoutSlot{{channels: op.out[1], want: -1}}
	}
	return []int{anyOperand, plainOperand}, nil
}
func (op *sliceOp) withBlocks([]int) Kernel { return op }

// viewOf tells the plan that this node is a view of input 0 at offset off.
func (op *sliceOp) viewOf() (input, off int) { return 0, op.off }

// prepare binds the view once: a slice the plan runs (an output of its own)
// copies without allocating a view per Run.
func (op *sliceOp) prepare(be device.Backend, in []device.Buffer, out device.Buffer) func() error {
	v := be.View(in[0], op.off, op.out.TotalSize())
	return func() error {
		be.Copy(out, v)
		return nil
	}
}
