package graph

import (
	"fmt"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
)

// Conv2D returns y = x ⋆ w, a 2-D convolution without bias as in
// torch.nn.Conv2d(bias=False): x N×C×H×W, w K×C×R×S,
// y N×K×((H+2·pad−R)/stride+1)×((W+2·pad−S)/stride+1).
func Conv2D(x, w *gorgonia.Node, stride, pad int) (*gorgonia.Node, error) {
	if err := checkRank("Conv2D", "x", x, 4); err != nil {
		return nil, err
	}
	if err := checkRank("Conv2D", "w", w, 4); err != nil {
		return nil, err
	}
	xs, ws := x.Shape(), w.Shape()
	s := device.ConvShape{N: xs[0], C: xs[1], H: xs[2], W: xs[3], K: ws[0], R: ws[2], S: ws[3], Stride: stride, Pad: pad}
	if ws[1] != s.C {
		return nil, fmt.Errorf("Conv2D: w has %d input channels, x has %d", ws[1], s.C)
	}
	if stride < 1 || pad < 0 || s.OutH() < 1 || s.OutW() < 1 {
		return nil, fmt.Errorf("Conv2D: stride %d, pad %d and filter %d×%d do not fit input %v", stride, pad, s.R, s.S, xs)
	}
	return Apply(newConvOp(convForward, s), x, w)
}

type convPass int

const (
	convForward    convPass = iota // (x, w) → y
	convBackData                   // (dy, w) → dx
	convBackFilter                 // (x, dy) → dw
)

var convPassName = [...]string{"Conv2D", "Conv2DBackwardData", "Conv2DBackwardFilter"}

// convOp is one of the three passes of a convolution of shape s.
type convOp struct {
	OpBase
	pass convPass
	s    device.ConvShape
}

func newConvOp(p convPass, s device.ConvShape) *convOp {
	out := map[convPass]tensor.Shape{
		convForward:    {s.N, s.K, s.OutH(), s.OutW()},
		convBackData:   {s.N, s.C, s.H, s.W},
		convBackFilter: {s.K, s.C, s.R, s.S},
	}[p]
	return &convOp{OpBase: NewOpBase(out), pass: p, s: s}
}

func (op *convOp) Type() hm.Type { return fnType(4, 4, 4) }
func (op *convOp) String() string {
	return fmt.Sprintf("%s%+v", convPassName[op.pass], op.s)
}

// layoutSlots: slot 0 is x (dx), slot 1 y (dy), in the layouts the
// backend's kernel for the shape keeps them in; w (dw) is K×C×R×S.
func (op *convOp) layoutSlots(_ *gorgonia.Node, bl device.Blocked) ([]int, []layoutSlot) {
	x, y := bl.ConvBlocks(op.s)
	slots := []layoutSlot{{channels: op.s.C, want: x}, {channels: op.s.K, want: y}}
	switch op.pass {
	case convForward: // (x, w) → y
		return []int{0, plainOperand, 1}, slots
	case convBackData: // (dy, w) → dx
		return []int{1, plainOperand, 0}, slots
	}
	return []int{0, 1, plainOperand}, slots // (x, dy) → dw
}

func (op *convOp) withBlocks(blocks []int) Kernel {
	b := *op
	b.s.XBlock, b.s.YBlock = blocks[0], blocks[1]
	return &b
}

// Exec runs the pass's convolution kernel.
func (op *convOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	switch op.pass {
	case convForward:
		be.Conv2DForward(op.s, in[0], in[1], out)
	case convBackData:
		be.Conv2DBackwardData(op.s, in[0], in[1], out)
	case convBackFilter:
		be.Conv2DBackwardFilter(op.s, in[0], in[1], out)
	}
	return nil
}

// DiffWRT: the forward is differentiable in x and w.
func (op *convOp) DiffWRT(int) []bool { return []bool{true, true} }

// SymDiff: ∂L/∂x = Conv2DBackwardData(dy, w), ∂L/∂w = Conv2DBackwardFilter(x, dy).
func (op *convOp) SymDiff(in gorgonia.Nodes, _, dy *gorgonia.Node) (gorgonia.Nodes, error) {
	if op.pass != convForward {
		return nil, fmt.Errorf("%v: second derivatives are not implemented", op)
	}
	dx, err := Apply(newConvOp(convBackData, op.s), dy, in[1])
	if err != nil {
		return nil, err
	}
	dw, err := Apply(newConvOp(convBackFilter, op.s), in[0], dy)
	if err != nil {
		return nil, err
	}
	return gorgonia.Nodes{dx, dw}, nil
}
