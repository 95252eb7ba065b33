package hardneg

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ---- Q̃_N: top-N selection ----

// topNOp selects Q̃_N: from l_neg (B×K), and with the class oracle the
// query labels (B) and queue labels (K), it returns B×N queue indices
// (float-coded, exact below 2²⁴) in queue-index order; see SelectTopN. It
// has no gradient: the selection is piecewise constant.
type topNOp struct {
	opBase
	n      int
	oracle bool
}

func newTopNOp(n int, oracle bool) topNOp {
	return topNOp{opBase{fmt.Sprintf("MoCHiTopN{N=%d, oracle=%t}", n, oracle)}, n, oracle}
}

func (op topNOp) Arity() int {
	if op.oracle {
		return 3
	}
	return 1
}

func (op topNOp) Type() hm.Type {
	if op.oracle {
		return hm.NewFnType(matType, vecType, vecType, matType)
	}
	return hm.NewFnType(matType, matType)
}

func (op topNOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	ranks := []int{2}
	if op.oracle {
		ranks = []int{2, 1, 1}
	}
	s, err := shapes(op.name, in, ranks...)
	if err != nil {
		return nil, err
	}
	if k := s[0][1]; op.n > k {
		return nil, fmt.Errorf("hardneg: N = %d exceeds the queue size K = %d; Q̃_N must be a subset of the queue, so lower mochi n or raise queue_size", op.n, k)
	}
	if op.oracle && (s[1][0] != s[0][0] || s[2][0] != s[0][1]) {
		return nil, fmt.Errorf("hardneg: oracle labels are %v and %v for B×K = %v; pass one label per query and per queue entry", s[1], s[2], s[0])
	}
	return tensor.Shape{s[0][0], op.n}, nil
}

func (op topNOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, func(in []G.Value) (G.Value, error) { return topNDo[float32](op, in) },
		func(in []G.Value) (G.Value, error) { return topNDo[float64](op, in) })
}

func topNDo[T Float](op topNOp, in []G.Value) (G.Value, error) {
	x, err := datas[T](in)
	if err != nil {
		return nil, err
	}
	b, k := in[0].Shape()[0], in[0].Shape()[1]
	if op.n > k {
		return nil, fmt.Errorf("hardneg: N = %d exceeds the queue size K = %d; lower mochi n or raise queue_size", op.n, k)
	}
	var lab Labels
	if op.oracle {
		lab = Labels{Query: labels(x[1]), Queue: labels(x[2])}
	}
	sel := make([]int32, b*op.n)
	if err := SelectTopN(sel, x[0], lab.Query, lab.Queue, b, k, op.n); err != nil {
		return nil, err
	}
	out := make([]T, len(sel))
	for i, v := range sel {
		out[i] = T(v)
	}
	return dense(out, b, op.n), nil
}

// ---- extra logits [q·h, q·h′] ----

// mixOp computes MoCHi's extra logits (B×(s+s′)) from q (B×D), the queue
// (K×D), l_neg (B×K, = q·Qᵀ), Q̃_N (B×N, topNOp) and the plan
// (B×(3s+2s′), Plan.Tensor); see MixLogits. Only q gets a gradient.
type mixOp struct {
	opBase
	n, s, sPrime int
	throughQuery bool
}

func newMixOp(n, s, sPrime int, throughQuery bool) mixOp {
	return mixOp{opBase{fmt.Sprintf("MoCHiMix{N=%d, s=%d, s′=%d, gradThroughQueryMix=%t}", n, s, sPrime, throughQuery)},
		n, s, sPrime, throughQuery}
}

func (mixOp) Arity() int { return 5 }

func (mixOp) Type() hm.Type {
	return hm.NewFnType(matType, matType, matType, matType, matType, matType)
}

func (mixOp) DiffWRT(int) []bool { return []bool{true, false, false, false, false} }

func (op mixOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(op.name, in, 2, 2, 2, 2, 2)
	if err != nil {
		return nil, err
	}
	q, queue, sim, sel, plan := s[0], s[1], s[2], s[3], s[4]
	b, k := q[0], queue[0]
	switch {
	case q[1] != queue[1]:
		return nil, fmt.Errorf("hardneg: q is %v but the queue is %v; both need D columns", q, queue)
	case !sim.Eq(tensor.Shape{b, k}):
		return nil, fmt.Errorf("hardneg: similarities are %v, want B×K = %d×%d", sim, b, k)
	case !sel.Eq(tensor.Shape{b, op.n}):
		return nil, fmt.Errorf("hardneg: Q̃_N is %v, want B×N = %d×%d", sel, b, op.n)
	case !plan.Eq(tensor.Shape{b, planCols(op.s, op.sPrime)}):
		return nil, fmt.Errorf("hardneg: plan is %v, want B×(3s+2s′) = %d×%d; draw it with NewPlan(rng, B, N, s, s′)", plan, b, planCols(op.s, op.sPrime))
	}
	return tensor.Shape{b, op.s + op.sPrime}, nil
}

func (op mixOp) dims(q, queue G.Value) Dims {
	return Dims{B: q.Shape()[0], K: queue.Shape()[0], D: q.Shape()[1], N: op.n, S: op.s, SPrime: op.sPrime}
}

func (op mixOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, func(in []G.Value) (G.Value, error) { return mixDo[float32](op, in) },
		func(in []G.Value) (G.Value, error) { return mixDo[float64](op, in) })
}

// decodeSelection converts Q̃_N and checks the plan's ranks against N, so a
// plan drawn for another N fails instead of indexing out of range.
func decodeSelection[T Float](selT, plan []T, dm Dims) ([]int32, error) {
	sel := make([]int32, len(selT))
	for i, v := range selT {
		sel[i] = int32(v)
		if sel[i] < 0 || int(sel[i]) >= dm.K {
			return nil, fmt.Errorf("hardneg: Q̃_N holds %v, not a queue index in [0, %d)", v, dm.K)
		}
	}
	cols := planCols(dm.S, dm.SPrime)
	for b := range dm.B {
		ri, rj, _, rjq, _ := planRow(plan[b*cols:(b+1)*cols], dm.S, dm.SPrime)
		for _, ranks := range [][]T{ri, rj, rjq} {
			for _, r := range ranks {
				if r < 0 || int(r) >= dm.N || T(int(r)) != r {
					return nil, fmt.Errorf("hardneg: plan rank %v outside [0, N = %d); draw the plan with the op's N", r, dm.N)
				}
			}
		}
	}
	return sel, nil
}

func mixDo[T Float](op mixOp, in []G.Value) (G.Value, error) {
	x, err := datas[T](in)
	if err != nil {
		return nil, err
	}
	dm := op.dims(in[0], in[1])
	sel, err := decodeSelection(x[3], x[4], dm)
	if err != nil {
		return nil, err
	}
	out := make([]T, dm.B*dm.E())
	MixLogits(out, x[0], x[1], x[2], sel, x[4], dm)
	return dense(out, dm.B, dm.E()), nil
}

// SymDiff: ∂/∂q from mixGradOp (h, h′ constant unless gradThroughQueryMix).
func (op mixOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dq, err := G.ApplyOp(mixGradOp{opBase{op.name + "Grad"}, op}, in[0], in[1], in[3], in[4], grad)
	return G.Nodes{dq, nil, nil, nil, nil}, err
}

// mixGradOp computes ∂(Σ g⊙extra)/∂q (B×D) from q, the queue, Q̃_N, the
// plan and g (B×(s+s′)); see MixGrad.
type mixGradOp struct {
	opBase
	fwd mixOp
}

func (mixGradOp) Arity() int { return 5 }

func (mixGradOp) Type() hm.Type {
	return hm.NewFnType(matType, matType, matType, matType, matType, matType)
}

func (op mixGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(op.name, in, 2, 2, 2, 2, 2)
	if err != nil {
		return nil, err
	}
	return s[0].Clone(), nil
}

func (op mixGradOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, func(in []G.Value) (G.Value, error) { return mixGradDo[float32](op, in) },
		func(in []G.Value) (G.Value, error) { return mixGradDo[float64](op, in) })
}

func mixGradDo[T Float](op mixGradOp, in []G.Value) (G.Value, error) {
	x, err := datas[T](in)
	if err != nil {
		return nil, err
	}
	dm := op.fwd.dims(in[0], in[1])
	sel, err := decodeSelection(x[2], x[3], dm)
	if err != nil {
		return nil, err
	}
	dq := make([]T, dm.B*dm.D)
	MixGrad(dq, x[0], x[1], sel, x[3], x[4], dm, op.fwd.throughQuery)
	return dense(dq, dm.B, dm.D), nil
}

// ---- InfoNCE ----

// infoNCEOp is the fused log-softmax + NLL with label 0 over the logits
// [l_pos, l_neg, extra]/τ, averaged over the batch. Inputs: l_pos (B),
// l_neg (B×K), extra (B×E, when hasExtra), and with the class oracle the
// query labels (B) and queue labels (K). Output: a scalar.
type infoNCEOp struct {
	opBase
	tau              float64
	hasExtra, oracle bool
}

func newInfoNCEOp(tau float64, hasExtra, oracle bool) infoNCEOp {
	return infoNCEOp{opBase{fmt.Sprintf("InfoNCE{τ=%v, extra=%t, oracle=%t}", tau, hasExtra, oracle)}, tau, hasExtra, oracle}
}

// inputTypes are the types of the op's inputs, in order.
func (op infoNCEOp) inputTypes() []hm.Type {
	t := []hm.Type{vecType, matType}
	if op.hasExtra {
		t = append(t, matType)
	}
	if op.oracle {
		t = append(t, vecType, vecType)
	}
	return t
}

func (op infoNCEOp) Arity() int { return len(op.inputTypes()) }

func (op infoNCEOp) Type() hm.Type {
	return hm.NewFnType(append(op.inputTypes(), dtypeVar)...)
}

func (op infoNCEOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range op.logitBlocks() {
		d[i] = true
	}
	return d
}

// logitBlocks is the number of logit inputs: l_pos, l_neg and maybe extra.
func (op infoNCEOp) logitBlocks() int {
	if op.hasExtra {
		return 3
	}
	return 2
}

func (op infoNCEOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	ranks := make([]int, 0, 5)
	for _, t := range op.inputTypes() {
		ranks = append(ranks, t.(G.TensorType).Dims)
	}
	s, err := shapes(op.name, in, ranks...)
	if err != nil {
		return nil, err
	}
	b, k := s[0][0], s[1][1]
	if s[1][0] != b || (op.hasExtra && s[2][0] != b) {
		return nil, fmt.Errorf("hardneg: logit blocks %v disagree on the batch size", s[:op.logitBlocks()])
	}
	if op.oracle {
		if l := s[op.logitBlocks():]; l[0][0] != b || l[1][0] != k {
			return nil, fmt.Errorf("hardneg: oracle labels are %v and %v for B×K = %d×%d; pass one label per query and per queue entry", l[0], l[1], b, k)
		}
	}
	return tensor.ScalarShape(), nil
}

// unpack splits the op's inputs into logit blocks, sizes and labels.
func unpackInfoNCE[T Float](op infoNCEOp, in []G.Value) (lpos, lneg, extra []T, lab Labels, b, k, e int, err error) {
	x, err := datas[T](in)
	if err != nil {
		return
	}
	lpos, lneg = x[0], x[1]
	b, k = in[1].Shape()[0], in[1].Shape()[1]
	if op.hasExtra {
		extra, e = x[2], in[2].Shape()[1]
	}
	if op.oracle {
		l := x[op.logitBlocks():]
		lab = Labels{Query: labels(l[0]), Queue: labels(l[1])}
	}
	return
}

func (op infoNCEOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, func(in []G.Value) (G.Value, error) {
		lpos, lneg, extra, lab, b, k, e, err := unpackInfoNCE[float32](op, in)
		if err != nil {
			return nil, err
		}
		return G.NewF32(float32(InfoNCE(lpos, lneg, extra, lab, b, k, e, op.tau))), nil
	}, func(in []G.Value) (G.Value, error) {
		lpos, lneg, extra, lab, b, k, e, err := unpackInfoNCE[float64](op, in)
		if err != nil {
			return nil, err
		}
		return G.NewF64(InfoNCE(lpos, lneg, extra, lab, b, k, e, op.tau)), nil
	})
}

// SymDiff: one infoNCEGradOp per logit block.
func (op infoNCEOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	out := make(G.Nodes, len(in))
	args := append(append(G.Nodes{}, in...), grad)
	for i := range op.logitBlocks() {
		var err error
		if out[i], err = G.ApplyOp(infoNCEGradOp{opBase{fmt.Sprintf("%sGrad{block=%d}", op.name, i)}, op, i}, args...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// infoNCEGradOp is the gradient of infoNCEOp w.r.t. one logit block; its
// inputs are the forward op's inputs and the scalar output gradient.
type infoNCEGradOp struct {
	opBase
	fwd   infoNCEOp
	block int // 0: l_pos, 1: l_neg, 2: extra
}

func (op infoNCEGradOp) Arity() int { return op.fwd.Arity() + 1 }

func (op infoNCEGradOp) Type() hm.Type {
	t := op.fwd.inputTypes()
	return hm.NewFnType(append(t, dtypeVar, t[op.block])...)
}

func (op infoNCEGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, ok := in[op.block].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("hardneg: %s input %d has no shape", op.name, op.block)
	}
	return s.Clone(), nil
}

func (op infoNCEGradOp) Do(in ...G.Value) (G.Value, error) {
	return dispatch(in, func(in []G.Value) (G.Value, error) { return infoNCEGradDo[float32](op, in) },
		func(in []G.Value) (G.Value, error) { return infoNCEGradDo[float64](op, in) })
}

func infoNCEGradDo[T Float](op infoNCEGradOp, in []G.Value) (G.Value, error) {
	g, err := scalar(in[len(in)-1])
	if err != nil {
		return nil, err
	}
	lpos, lneg, extra, lab, b, k, e, err := unpackInfoNCE[T](op.fwd, in[:len(in)-1])
	if err != nil {
		return nil, err
	}
	out := make([]T, in[op.block].Shape().TotalSize())
	blocks := [3][]T{}
	blocks[op.block] = out
	InfoNCEGrad(blocks[0], blocks[1], blocks[2], lpos, lneg, extra, lab, b, k, e, op.fwd.tau, g)
	return dense(out, in[op.block].Shape()...), nil
}
