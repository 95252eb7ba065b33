package hardneg

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/mochi-ssl/mochi/pkg/device"
	"github.com/mochi-ssl/mochi/pkg/graph"
)

// masked is the value the class oracle gives the similarity of a queue
// entry labelled like its query: exp(masked/τ) = 0, so the entry leaves
// the softmax exactly, and it is never among the top N while N entries
// remain (CheckCandidates).
var masked = float32(math.Inf(-1))

// ---- Q̃_N: top-N selection ----

// topNOp selects Q̃_N: from l_neg (B×K), and with the class oracle the
// query labels (B) and queue labels (K), it returns B×N queue indices
// (int32) in queue-index order; see device.Backend.TopN. It has no
// gradient: the selection is piecewise constant.
type topNOp struct {
	graph.OpBase
	b, k, n int
	oracle  bool
	ws      *graph.Workspace // with the oracle: the masked copy of l_neg, B×K
}

func newTopNOp(b, k, n int, oracle bool) *topNOp {
	return &topNOp{graph.NewInt32OpBase(tensor.Shape{b, n}), b, k, n, oracle, new(graph.Workspace)}
}

func (op *topNOp) Type() hm.Type {
	if op.oracle {
		return hm.NewFnType(matType, vecType, vecType, indexType)
	}
	return hm.NewFnType(matType, indexType)
}

func (op *topNOp) String() string {
	return fmt.Sprintf("MoCHiTopN{B=%d, K=%d, N=%d, oracle=%t}", op.b, op.k, op.n, op.oracle)
}
func (op *topNOp) DiffWRT(n int) []bool { return make([]bool, n) }
func (op *topNOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("hardneg: %v has no gradient", op)
}

func (op *topNOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	ranks := []int{2}
	if op.oracle {
		ranks = []int{2, 1, 1}
	}
	s, err := shapes(op, in, ranks...)
	if err != nil {
		return nil, err
	}
	if op.oracle && (s[1][0] != s[0][0] || s[2][0] != s[0][1]) {
		return nil, fmt.Errorf("hardneg: oracle labels are %v and %v for B×K = %v; pass one label per query and per queue entry", s[1], s[2], s[0])
	}
	return op.OpBase.InferShape()
}

// Exec runs the backend's TopN; with the oracle on a copy of l_neg whose
// excluded entries are masked with −∞. A query left with fewer than N
// candidates would get masked entries in Q̃_N; a GPU cannot report it
// without a host sync, so callers check the labels first with
// CheckCandidates.
func (op *topNOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	sim := in[0]
	if op.oracle {
		sim = op.ws.Float32s(be, op.b*op.k)[0]
		be.Copy(sim, in[0])
		be.MaskEqual(op.b, op.k, in[1], in[2], sim, masked)
	}
	be.TopN(op.b, op.k, op.n, sim, out)
	return nil
}

// ---- extra logits [q·h, q·h′] ----

// mixOp computes MoCHi's extra logits (B×(s+s′)) from q (B×D), the queue
// (K×D), l_neg (B×K, = q·Qᵀ), Q̃_N (int32 B×N, topNOp) and the draw
// (B×(3s+2s′), MixDraw.Tensor); see device.Backend.MixLogits. Only q gets a
// gradient.
type mixOp struct {
	graph.OpBase
	dm                Dims
	gradThroughHPrime bool
}

func newMixOp(dm Dims, gradThroughHPrime bool) *mixOp {
	return &mixOp{graph.NewOpBase(tensor.Shape{dm.B, dm.E()}), dm, gradThroughHPrime}
}

func (*mixOp) Type() hm.Type {
	return hm.NewFnType(matType, matType, matType, indexType, matType, matType)
}

func (op *mixOp) String() string {
	d := op.dm
	return fmt.Sprintf("MoCHiMix{B=%d, K=%d, D=%d, N=%d, s=%d, s′=%d, gradThroughHPrime=%t}",
		d.B, d.K, d.D, d.N, d.S, d.SPrime, op.gradThroughHPrime)
}
func (*mixOp) DiffWRT(int) []bool { return []bool{true, false, false, false, false} }

// shape is the op's device.MixShape.
func (op *mixOp) shape() device.MixShape {
	d := op.dm
	return device.MixShape{B: d.B, D: d.D, K: d.K, N: d.N, S: d.S, SPrime: d.SPrime}
}

// Exec runs the backend's MixLogits.
func (op *mixOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.MixLogits(op.shape(), in[0], in[1], in[2], in[3], in[4], out)
	return nil
}

func (op *mixOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(op, in, 2, 2, 2, 2, 2)
	if err != nil {
		return nil, err
	}
	q, queue, sim, sel, draw := s[0], s[1], s[2], s[3], s[4]
	b, k := q[0], queue[0]
	switch {
	case q[1] != queue[1]:
		return nil, fmt.Errorf("hardneg: q is %v but the queue is %v; both need D columns", q, queue)
	case !sim.Eq(tensor.Shape{b, k}):
		return nil, fmt.Errorf("hardneg: similarities are %v, want B×K = %d×%d", sim, b, k)
	case !sel.Eq(tensor.Shape{b, op.dm.N}):
		return nil, fmt.Errorf("hardneg: Q̃_N is %v, want B×N = %d×%d", sel, b, op.dm.N)
	case !draw.Eq(tensor.Shape{b, op.shape().DrawCols()}):
		return nil, fmt.Errorf("hardneg: the mixing draw is %v, want B×(3s+2s′) = %d×%d; draw it with NewMixDraw(rng, B, N, s, s′)", draw, b, op.shape().DrawCols())
	}
	return op.OpBase.InferShape()
}

// SymDiff: ∂/∂q from mixGradOp (h, h′ constant unless gradThroughHPrime).
func (op *mixOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dq, err := graph.Apply(&mixGradOp{graph.NewOpBase(tensor.Shape{op.dm.B, op.dm.D}), op}, in[0], in[1], in[3], in[4], grad)
	return G.Nodes{dq, nil, nil, nil, nil}, err
}

// mixGradOp computes ∂(Σ g⊙extra)/∂q (B×D) from q, the queue, Q̃_N, the
// draw and g (B×(s+s′)); see device.Backend.MixLogitsBackward.
type mixGradOp struct {
	graph.OpBase
	fwd *mixOp
}

func (*mixGradOp) Type() hm.Type {
	return hm.NewFnType(matType, matType, indexType, matType, matType, matType)
}

func (op *mixGradOp) String() string { return op.fwd.String() + "Grad" }

// Exec runs the backend's MixLogitsBackward.
func (op *mixGradOp) Exec(be device.Backend, in []device.Buffer, out device.Buffer) error {
	be.MixLogitsBackward(op.fwd.shape(), in[0], in[1], in[2], in[3], in[4], op.fwd.gradThroughHPrime, out)
	return nil
}
