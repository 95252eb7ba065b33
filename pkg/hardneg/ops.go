package hardneg

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/graph"
)

// The Gorgonia ops of the MoCo/MoCHi loss follow pkg/graph's convention
// (graph.OpBase, added with graph.Apply): each is implemented once, as its
// Exec (graph.Kernel) over device.Backend float32 buffers, so a plan
// compiled by graph.Compile keeps the loss on the CPU or the GPU, and its
// Do (from graph.OpBase) runs that same Exec on graph.Host for the
// TapeMachine. Each differentiable op has its own
// backward op: Gorgonia's multi-axis reductions and several of its
// gradients are wrong (docs/ARCHITECTURE.md, "Why mochi's own ops"), so the
// loss is built from these ops only. Every op is a pure function of its
// inputs and writes all its parameters, shapes included, in its String
// (which graph.OpBase's WriteHash hashes), so ops with different parameters
// stay distinct nodes.

var (
	dtypeVar = hm.TypeVariable('a')
	vecType  = G.TensorType{Dims: 1, Of: dtypeVar}
	matType  = G.TensorType{Dims: 2, Of: dtypeVar}
	// indexType is Q̃_N's type: queue indices, int32.
	indexType = G.TensorType{Dims: 2, Of: tensor.Int32}
)

// shapes converts InferShape's arguments, checking their ranks.
func shapes(op fmt.Stringer, in []G.DimSizer, ranks ...int) ([]tensor.Shape, error) {
	if len(in) != len(ranks) {
		return nil, fmt.Errorf("hardneg: %v takes %d inputs, got %d", op, len(ranks), len(in))
	}
	out := make([]tensor.Shape, len(in))
	for i, d := range in {
		s, ok := d.(tensor.Shape)
		if !ok || len(s) != ranks[i] {
			return nil, fmt.Errorf("hardneg: %v input %d has shape %v, want rank %d", op, i, d, ranks[i])
		}
		out[i] = s
	}
	return out, nil
}

// ---- l_pos = q·k per row ----

// positiveOp computes l_pos (B) = rowwise q·k from q, k (B×D).
type positiveOp struct {
	graph.OpBase
	b, d int
}

func newPositiveOp(b, d int) *positiveOp { return &positiveOp{graph.NewOpBase(tensor.Shape{b}), b, d} }

func (*positiveOp) Type() hm.Type      { return hm.NewFnType(matType, matType, vecType) }
func (*positiveOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op *positiveOp) String() string {
	return fmt.Sprintf("MoCoPositiveLogits{B=%d, D=%d}", op.b, op.d)
}

func (op *positiveOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(op, in, 2, 2)
	if err != nil {
		return nil, err
	}
	if !s[0].Eq(s[1]) {
		return nil, fmt.Errorf("hardneg: q is %v but k is %v; both must be B×D", s[0], s[1])
	}
	return op.OpBase.InferShape()
}

// Exec: l_pos = RowDot(q, k).
func (op *positiveOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.RowDot(op.b, op.d, in[0], in[1], out)
	return nil
}

// SymDiff: ∂/∂q = g_b k_b, ∂/∂k = g_b q_b.
func (op *positiveOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dq, err := graph.Apply(newScaleRowsOp(op.b, op.d), grad, in[1])
	if err != nil {
		return nil, err
	}
	dk, err := graph.Apply(newScaleRowsOp(op.b, op.d), grad, in[0])
	return G.Nodes{dq, dk}, err
}

// scaleRowsOp computes g_b x_b (B×D) from g (B) and x (B×D).
type scaleRowsOp struct {
	graph.OpBase
	b, d int
}

func newScaleRowsOp(b, d int) *scaleRowsOp {
	return &scaleRowsOp{graph.NewOpBase(tensor.Shape{b, d}), b, d}
}

func (*scaleRowsOp) Type() hm.Type { return hm.NewFnType(vecType, matType, matType) }
func (op *scaleRowsOp) String() string {
	return fmt.Sprintf("MoCoPositiveLogitsGrad{B=%d, D=%d}", op.b, op.d)
}

// Exec: ScaleRows(g, x).
func (op *scaleRowsOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.ScaleRows(op.b, op.d, in[0], in[1], out)
	return nil
}

// ---- l_neg = q·Qᵀ ----

// negativeOp computes l_neg (B×K) = q·Qᵀ from q (B×D) and the queue (K×D).
// The queue is a constant: only q gets a gradient.
type negativeOp struct {
	graph.OpBase
	b, k, d int
}

func newNegativeOp(b, k, d int) *negativeOp {
	return &negativeOp{graph.NewOpBase(tensor.Shape{b, k}), b, k, d}
}

func (*negativeOp) Type() hm.Type      { return hm.NewFnType(matType, matType, matType) }
func (*negativeOp) DiffWRT(int) []bool { return []bool{true, false} }
func (op *negativeOp) String() string {
	return fmt.Sprintf("MoCoNegativeLogits{B=%d, K=%d, D=%d}", op.b, op.k, op.d)
}

func (op *negativeOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(op, in, 2, 2)
	if err != nil {
		return nil, err
	}
	if s[0][1] != s[1][1] {
		return nil, fmt.Errorf("hardneg: q is %v but the queue is %v; both need D columns", s[0], s[1])
	}
	return op.OpBase.InferShape()
}

// Exec: l_neg = q·Qᵀ, one GEMM (cuBLAS on the GPU).
func (op *negativeOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.Gemm(false, true, op.b, op.k, op.d, 1, in[0], in[1], 0, out)
	return nil
}

// SymDiff: ∂/∂q = g·Q.
func (op *negativeOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dq, err := graph.Apply(&negativeGradOp{graph.NewOpBase(tensor.Shape{op.b, op.d}), op}, in[1], grad)
	return G.Nodes{dq, nil}, err
}

// negativeGradOp computes g·Q (B×D) from the queue (K×D) and g (B×K).
type negativeGradOp struct {
	graph.OpBase
	fwd *negativeOp
}

func (*negativeGradOp) Type() hm.Type     { return hm.NewFnType(matType, matType, matType) }
func (op *negativeGradOp) String() string { return op.fwd.String() + "Grad" }

// Exec: dq = g·Q, one GEMM.
func (op *negativeGradOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	f := op.fwd
	be.Gemm(false, false, f.b, f.d, f.k, 1, in[1], in[0], 0, out)
	return nil
}
